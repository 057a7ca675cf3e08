//! The hidden per-client rate limit of [`crate::TestSite::rate_limit`]: at most R
//! requests in any second per client address, answered 429 above it, with or without
//! a `Retry-After`. Only admitted requests count, as most servers count them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A site's hidden limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per client in any one second.
    pub per_second: u32,
    /// The `Retry-After` of a 429, in seconds; `None` for a 429 without one.
    pub retry_after: Option<u64>,
}

/// The window of each client: the times of its admitted requests in the last second.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    clients: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Limiter {
    /// Whether a request from `client` at `now` is admitted under `limit` (and if so,
    /// counts it).
    pub(crate) fn admit(&self, limit: RateLimit, client: IpAddr, now: Instant) -> bool {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let window = clients.entry(client).or_default();
        while window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit.per_second as usize {
            return false;
        }
        window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_r_in_any_second_per_client() {
        let limit = RateLimit {
            per_second: 3,
            retry_after: None,
        };
        let l = Limiter::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip"));
        let t0 = Instant::now();
        let admitted: Vec<bool> = (0..5).map(|_| l.admit(limit, a, t0)).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert!(l.admit(limit, b, t0), "another client has its own window");
        assert!(!l.admit(limit, a, t0 + Duration::from_millis(999)));
        assert!(l.admit(limit, a, t0 + Duration::from_secs(1)), "a second later");
    }
}
