//! Per-host politeness: one [`HostGate`] per host (scheme, host and port) combines
//!
//! - a governor rate limit (requests per second, with burst),
//! - a concurrency cap (a semaphore),
//! - robots.txt `Crawl-delay` (capped): the least time between two request starts,
//! - a cool-down after 429 or 503: `Retry-After` when given (clamped), otherwise
//!   exponential backoff with full jitter,
//! - the adaptive rate ([`GatePolicy::adaptive`], the `adaptive` module): a limit under
//!   the configured rate, cut on 429, 503, timeouts and slow first bytes, recovered
//!   while the host is healthy.
//!
//! Time is tokio's clock, so tests run on paused time. A scheduler claims a request
//! start with [`HostGate::try_acquire`], which never blocks: it either returns the
//! permit or says why not ([`NotReady`]: busy, or how long to wait), so the scheduler
//! serves other hosts meanwhile and one host's limits never delay another's requests.
//! [`HostGate::acquire`] waits instead, for callers with nothing else to do.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::adaptive::{RateController, Signal};

/// governor's clock on tokio's time: instants are durations since the gate was made.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The politeness rules of one host.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GatePolicy {
    /// Requests per second, or `None` for no rate limit. By default, 1.
    pub rate: Option<f64>,
    /// Requests allowed back to back before the rate applies. By default, 1.
    pub burst: u32,
    /// Requests in flight at once. By default, 2.
    pub concurrency: usize,
    /// The longest `Crawl-delay` honoured. By default, 30 s.
    pub max_crawl_delay: Duration,
    /// The first backoff step. By default, 1 s.
    pub backoff_base: Duration,
    /// The longest backoff or `Retry-After` honoured. By default, 10 minutes.
    pub max_cool_down: Duration,
    /// Whether the rate adapts to the host: cut (by a quarter) on 429, 503, a timeout
    /// or a time to first byte far above the host's recent median, and recovered
    /// step by step while responses are healthy, never above `rate` nor the
    /// Crawl-delay. `false` keeps the configured rate fixed. By default, on.
    pub adaptive: bool,
}

impl Default for GatePolicy {
    fn default() -> GatePolicy {
        GatePolicy {
            rate: Some(1.0),
            burst: 1,
            concurrency: 2,
            max_crawl_delay: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(600),
            adaptive: true,
        }
    }
}

/// The most hosts whose Crawl-delay a gate keeps (a gate shared by the hosts of one
/// address, [`PolitenessKey::Ip`](crate::PolitenessKey::Ip)); past it the smallest
/// goes, so the largest, the one that rules, is kept. Hosts without a Crawl-delay
/// take no room.
const CRAWL_DELAY_HOSTS: usize = 64;

#[derive(Debug, Default)]
struct GateState {
    /// The Crawl-delay applied: the largest of `crawl_delays`.
    crawl_delay: Duration,
    /// The non-zero Crawl-delays of the hosts behind this gate (capped by the
    /// policy), by host. One entry for a gate of one host; in a gate shared by
    /// several, the most polite host rules, whichever robots.txt was read last.
    crawl_delays: Vec<(String, Duration)>,
    /// When the last request started (on the gate's clock), for the crawl delay.
    last_start: Option<Duration>,
    /// No request before this (on the gate's clock).
    cool_down_until: Duration,
    backoff_level: u32,
    /// The limiter's theoretical arrival time after the last start it allowed (on the
    /// gate's clock). governor has no way to ask without consuming, so the gate keeps
    /// this copy for [`HostGate::ready_in`]. Every `check()` runs under the state
    /// lock and the copy is updated from a clock reading taken after it, so the copy
    /// is never behind the limiter: `ready_in` is never early. The limiter stays the
    /// judge.
    rate_tat: Duration,
    /// The adaptive rate; its spacing counts with the crawl delay's.
    adaptive: RateController,
}

impl GateState {
    /// How long the cool-down and the crawl delay still hold a start back at `now`.
    fn time_rules_wait(&self, now: Duration) -> Duration {
        let mut at = self.cool_down_until;
        if let Some(last) = self.last_start {
            at = at.max(last + self.crawl_delay.max(self.adaptive.spacing()));
        }
        at.saturating_sub(now)
    }
}

/// Why [`HostGate::try_acquire`] gave no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Every request slot of the host is taken; one frees when a permit is dropped.
    Busy,
    /// A time rule (cool-down, crawl delay) or the rate refuses a start for this long
    /// (never zero).
    Wait(Duration),
}

/// The rate's spacing as governor's GCRA sees it: the period between two starts and
/// the tolerance (`period * (burst - 1)`) that lets a burst through back to back.
#[derive(Debug, Clone, Copy)]
struct RateShape {
    period: Duration,
    tolerance: Duration,
}

/// The politeness gate of one host.
pub struct HostGate {
    clock: TokioClock,
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>>,
    /// The limiter's quota, for the copy of its state in [`GateState::rate_tat`].
    rate: Option<RateShape>,
    /// One permit per request allowed in flight at once.
    slots: Arc<Semaphore>,
    state: Mutex<GateState>,
    policy: GatePolicy,
}

impl std::fmt::Debug for HostGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGate")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A host's cool-down state and adaptive rate, as taken by [`HostGate::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateSnapshot {
    /// How much of the cool-down (Retry-After or backoff) is left.
    pub cool_down: Duration,
    /// Failures in a row since the last success.
    pub backoff_level: u32,
    /// The adaptive rate while it holds the host below its configured rate, in
    /// thousandths of a request per second; 0 when it does not
    /// ([`HostGate::adaptive_rate`]).
    pub adaptive_millirate: u32,
}

/// A request slot of a host; dropping it frees the slot.
#[derive(Debug)]
pub struct HostPermit {
    _slot: OwnedSemaphorePermit,
}

impl HostGate {
    /// A gate applying `policy`.
    pub fn new(policy: GatePolicy) -> HostGate {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let quota = policy.rate.filter(|r| *r > 0.0 && r.is_finite()).map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let burst = NonZeroU32::new(policy.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst)
        });
        // The same numbers governor's GCRA derives from the quota.
        let rate = quota.map(|q| {
            let period = q.replenish_interval().max(Duration::from_nanos(1));
            RateShape {
                period,
                tolerance: period.saturating_mul(q.burst_size().get() - 1),
            }
        });
        let limiter = quota.map(|q| RateLimiter::direct_with_clock(q, clock));
        HostGate {
            clock,
            limiter,
            rate,
            slots: Arc::new(Semaphore::new(policy.concurrency.max(1))),
            state: Mutex::new(GateState {
                adaptive: RateController::new(policy.rate),
                ..GateState::default()
            }),
            policy,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a robots.txt `Crawl-delay` (seconds), capped by the policy, as the
    /// delay of the gate's one host: it replaces any set before, for any host.
    pub fn set_crawl_delay(&self, seconds: Option<f64>) {
        let d = self.capped_crawl_delay(seconds);
        let mut st = self.state();
        st.crawl_delays.clear();
        if !d.is_zero() {
            st.crawl_delays.push((String::new(), d));
        }
        self.apply_crawl_delay(&mut st);
    }

    /// Applies the robots.txt `Crawl-delay` (seconds) of `host`, one of the hosts
    /// behind this gate: it replaces that host's earlier one, and the gate spaces
    /// starts by the largest of its hosts' delays.
    pub(crate) fn set_crawl_delay_of(&self, host: &str, seconds: Option<f64>) {
        let d = self.capped_crawl_delay(seconds);
        let mut st = self.state();
        let delays = &mut st.crawl_delays;
        match delays.iter().position(|(h, _)| h == host) {
            Some(i) if d.is_zero() => {
                delays.swap_remove(i);
            }
            Some(i) => delays[i].1 = d,
            None if d.is_zero() => return,
            None => {
                if delays.len() >= CRAWL_DELAY_HOSTS {
                    let Some((i, least)) = delays.iter().enumerate().min_by_key(|(_, (_, d))| *d) else {
                        return;
                    };
                    if least.1 >= d {
                        // Smaller than every delay kept: it changes nothing.
                        return;
                    }
                    delays.swap_remove(i);
                }
                delays.push((host.to_string(), d));
            }
        }
        self.apply_crawl_delay(&mut st);
    }

    fn capped_crawl_delay(&self, seconds: Option<f64>) -> Duration {
        seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::ZERO, Duration::from_secs_f64)
            .min(self.policy.max_crawl_delay)
    }

    /// The largest of the hosts' delays becomes the gate's, and its rate the
    /// adaptive limit's ceiling (with the configured rate).
    fn apply_crawl_delay(&self, st: &mut GateState) {
        let d = st
            .crawl_delays
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(Duration::ZERO);
        st.crawl_delay = d;
        let by_delay = (!d.is_zero()).then(|| 1.0 / d.as_secs_f64());
        let ceiling = match (self.policy.rate, by_delay) {
            (Some(r), Some(c)) => Some(r.min(c)),
            (r, c) => r.or(c),
        };
        st.adaptive.set_ceiling(ceiling);
    }

    /// How long until the time rules (crawl delay, cool-down, rate) let a request
    /// start; zero if one may start now. It never claims anything. The rate is counted
    /// with its burst: after a burst of N back-to-back starts it answers the spacing
    /// the limiter will ask for. The concurrency cap is not counted here: see
    /// [`HostGate::free_slots`], or claim with [`HostGate::try_acquire`].
    pub fn ready_in(&self) -> Duration {
        let now = self.clock.now();
        let st = self.state();
        let mut wait = st.time_rules_wait(now);
        if let Some(rate) = self.rate {
            // GCRA lets a start through once `now >= tat - tolerance`.
            wait = wait.max(st.rate_tat.saturating_sub(rate.tolerance).saturating_sub(now));
        }
        wait
    }

    /// Request slots free right now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Claims the start of a request if the time rules and the rate allow one now:
    /// records it and returns `Ok`; otherwise how long until they could (never zero).
    /// The limiter's `check()` consumes only when it allows, so a refusal costs
    /// nothing. Under the state lock, so two claims never both take the last start.
    fn claim_start(&self) -> Result<(), Duration> {
        let mut st = self.state();
        let now = self.clock.now();
        let wait = st.time_rules_wait(now);
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(l) = &self.limiter
            && let Err(not_until) = l.check()
        {
            let wait = not_until.wait_time_from(self.clock.now());
            return Err(wait.max(Duration::from_nanos(1)));
        }
        if let Some(rate) = self.rate {
            // The GCRA's update, mirrored for `ready_in` (read after `check()`, whose
            // own reading of the clock is no later).
            st.rate_tat = st.rate_tat.max(self.clock.now()) + rate.period;
        }
        st.last_start = Some(now);
        st.adaptive.started(now);
        Ok(())
    }

    /// Claims a request without waiting: a free request slot, then the time rules
    /// (cool-down, crawl delay since the last start) and the rate. On success the
    /// start is recorded and the permit holds the slot until dropped. With a burst
    /// of N, N claims pass back to back, then they are spaced at 1 / rate.
    ///
    /// # Errors
    /// [`NotReady::Busy`] when every slot is taken; [`NotReady::Wait`] with how long
    /// until a start could pass when a time rule or the rate refuses (the slot is
    /// given back at once).
    pub fn try_acquire(&self) -> Result<HostPermit, NotReady> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| NotReady::Busy)?;
        match self.claim_start() {
            Ok(()) => Ok(HostPermit { _slot: slot }),
            // Dropping `slot` gives the slot back to the host.
            Err(wait) => Err(NotReady::Wait(wait)),
        }
    }

    /// Waits for a request slot and for the time rules, then claims the start of a
    /// request. Hold the permit until the response body is read.
    pub async fn acquire(&self) -> HostPermit {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; were it, a fresh one would still bound us.
            Err(_) => Arc::new(Semaphore::new(1))
                .acquire_owned()
                .await
                .expect("a fresh semaphore is open"),
        };
        self.acquire_start().await;
        HostPermit { _slot: slot }
    }

    /// Waits for the time rules and the rate, then claims the start of a request
    /// without taking a request slot. For requests that must not queue behind the
    /// host's page requests, such as robots.txt: a page request holding the host's
    /// only slot may be the one waiting for robots.txt, which would deadlock if
    /// robots.txt needed a slot too.
    pub async fn acquire_start(&self) {
        while let Err(wait) = self.claim_start() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Starts a cool-down after a 429, a 503 or a failure: `retry_after` when the
    /// server gave one (clamped to the policy's maximum), otherwise exponential backoff
    /// with full jitter. Returns the cool-down applied.
    pub fn cool_down(&self, retry_after: Option<Duration>) -> Duration {
        let mut st = self.state();
        let d = match retry_after {
            Some(d) => d.min(self.policy.max_cool_down),
            None => {
                let ceiling = self
                    .policy
                    .backoff_base
                    .saturating_mul(1u32 << st.backoff_level.min(20))
                    .min(self.policy.max_cool_down);
                // Full jitter: anywhere between zero and the ceiling.
                ceiling.mul_f64(fastrand::f64())
            }
        };
        st.backoff_level = st.backoff_level.saturating_add(1);
        let until = self.clock.now() + d;
        st.cool_down_until = st.cool_down_until.max(until);
        d
    }

    /// Records a success: the backoff starts over.
    pub fn succeeded(&self) {
        self.state().backoff_level = 0;
    }

    /// Tells the adaptive rate about a response: a healthy one (recovery, or a cut
    /// when its first byte came far later than the host's recent ones) for a request
    /// sent at `sent_at` whose headers came after `first_byte`. Nothing without
    /// [`GatePolicy::adaptive`].
    pub(crate) fn adapt_healthy(&self, sent_at: Instant, first_byte: Duration) {
        if !self.policy.adaptive {
            return;
        }
        let (started, now) = (
            sent_at.saturating_duration_since(self.clock.start),
            self.clock.now(),
        );
        let mut st = self.state();
        if let Some(why) = st.adaptive.healthy(first_byte, started, now) {
            tracing::debug!(?why, limit = ?st.adaptive.limit(), "adaptive rate cut");
        }
    }

    /// Tells the adaptive rate that a request sent at `sent_at` was refused (429,
    /// 503) or timed out: one multiplicative cut per round. Nothing without
    /// [`GatePolicy::adaptive`].
    pub(crate) fn adapt_overloaded(&self, sent_at: Instant, why: Signal) {
        if !self.policy.adaptive {
            return;
        }
        let (started, now) = (
            sent_at.saturating_duration_since(self.clock.start),
            self.clock.now(),
        );
        let mut st = self.state();
        if st.adaptive.signal(why, started, now) {
            tracing::debug!(?why, limit = ?st.adaptive.limit(), "adaptive rate cut");
        }
    }

    /// What the request path tells the gate about a retryable status (429, 503, 408,
    /// another 5xx but 501) to a request sent at `sent_at`, once its permit is
    /// dropped: 429, 503 and 504 cut the adaptive rate, and every one starts a
    /// cool-down, `retry_after` when the server gave one. Returns the cool-down.
    /// `fetch/request.rs` calls this, and so does the simulation in `adaptive_sim`,
    /// so that the simulation drives the gate exactly as a crawl does.
    pub(crate) fn answered_retryable(
        &self,
        sent_at: Instant,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Duration {
        if matches!(status, 429 | 503 | 504) {
            self.adapt_overloaded(sent_at, Signal::Refused);
        }
        self.cool_down(retry_after)
    }

    /// What the request path tells the gate about a response that is not a retryable
    /// status, once its permit is dropped: the backoff starts over and the adaptive
    /// rate hears of a healthy response with its time to first byte.
    pub(crate) fn answered(&self, sent_at: Instant, first_byte: Duration) {
        self.succeeded();
        self.adapt_healthy(sent_at, first_byte);
    }

    /// The adaptive limit in requests per second while it holds the host below its
    /// configured rate (and Crawl-delay); `None` at the ceiling, or without
    /// [`GatePolicy::adaptive`].
    pub fn adaptive_rate(&self) -> Option<f64> {
        self.state().adaptive.limit()
    }

    /// The robots.txt Crawl-delay this gate applies (capped; zero for none).
    pub fn crawl_delay(&self) -> Duration {
        self.state().crawl_delay
    }

    /// How many times the adaptive rate was cut.
    pub fn adaptive_cuts(&self) -> u64 {
        self.state().adaptive.cuts
    }

    /// The host's cool-down state, to persist it (the trawl engine keeps it in its
    /// frontier so that a resumed crawl stays polite).
    pub fn snapshot(&self) -> GateSnapshot {
        let now = self.clock.now();
        let st = self.state();
        GateSnapshot {
            cool_down: st.cool_down_until.saturating_sub(now),
            backoff_level: st.backoff_level,
            adaptive_millirate: st
                .adaptive
                .limit()
                .map_or(0, |l| ((l * 1000.0).round() as u32).max(1)),
        }
    }

    /// Restores a state taken with [`HostGate::snapshot`]: the cool-down (its
    /// remaining time counted from now), the backoff level and the adaptive rate.
    pub fn restore(&self, snap: GateSnapshot) {
        let until = self.clock.now() + snap.cool_down.min(self.policy.max_cool_down);
        let mut st = self.state();
        st.cool_down_until = st.cool_down_until.max(until);
        st.backoff_level = snap.backoff_level;
        if self.policy.adaptive && snap.adaptive_millirate != 0 {
            st.adaptive
                .restore(Some(f64::from(snap.adaptive_millirate) / 1000.0));
        }
    }

    /// The current backoff level (failures in a row since the last success).
    pub fn backoff_level(&self) -> u32 {
        self.state().backoff_level
    }

    /// Whether a new gate with the same policy and Crawl-delay would behave exactly
    /// as this one from now on: no request in flight, no cool-down left, the crawl
    /// delay since the last start over, the rate's full burst available again, and
    /// no backoff level and no adaptive limit below the rate. Such a gate can be dropped and made again without letting
    /// the host be fetched sooner than its rules allow.
    pub fn is_at_rest(&self) -> bool {
        self.rests(false)
    }

    /// [`HostGate::is_at_rest`], or with `ignore_backoff` the same but for the
    /// backoff level and the adaptive limit (a new gate starts at the configured rate
    /// and learns the host again).
    pub(crate) fn rests(&self, ignore_backoff: bool) -> bool {
        if self.slots.available_permits() < self.policy.concurrency.max(1) {
            return false;
        }
        let now = self.clock.now();
        let st = self.state();
        st.time_rules_wait(now).is_zero()
            && (self.rate.is_none() || st.rate_tat <= now)
            && (ignore_backoff || (st.backoff_level == 0 && st.adaptive.limit().is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GatePolicy {
        GatePolicy::default()
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_held() {
        let gate = HostGate::new(GatePolicy {
            rate: Some(2.0),
            concurrency: 10,
            ..policy()
        });
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let _p = gate.acquire().await;
            starts.push(t0.elapsed());
            // Asking never consumes the rate.
            assert!(gate.ready_in() >= Duration::from_millis(499));
        }
        // N requests at rate R take at least (N - 1) / R.
        assert!(starts[4] >= Duration::from_millis(2_000), "{starts:?}");
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(499), "{starts:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn crawl_delay_spaces_starts_and_is_capped() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            concurrency: 10,
            ..policy()
        });
        gate.set_crawl_delay(Some(3.0));
        let t0 = Instant::now();
        drop(gate.acquire().await);
        assert!(gate.ready_in() >= Duration::from_millis(2_999));
        drop(gate.acquire().await);
        assert!(t0.elapsed() >= Duration::from_secs(3));
        gate.set_crawl_delay(Some(86_400.0));
        let t1 = Instant::now();
        drop(gate.acquire().await);
        assert!(t1.elapsed() <= Duration::from_secs(30), "the cap holds");
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_holds() {
        let gate = Arc::new(HostGate::new(GatePolicy {
            rate: None,
            concurrency: 2,
            ..policy()
        }));
        let a = gate.acquire().await;
        let _b = gate.acquire().await;
        assert_eq!(gate.free_slots(), 0);
        let g = gate.clone();
        let third = tokio::spawn(async move { g.acquire().await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !third.is_finished(),
            "a third request started while two were in flight"
        );
        drop(a);
        let _c = third.await.expect("third");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_and_backoff() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            concurrency: 10,
            ..policy()
        });
        assert_eq!(
            gate.cool_down(Some(Duration::from_secs(10))),
            Duration::from_secs(10)
        );
        assert!(gate.ready_in() >= Duration::from_millis(9_999));
        let t0 = Instant::now();
        drop(gate.acquire().await);
        assert!(t0.elapsed() >= Duration::from_secs(10));
        assert_eq!(
            gate.cool_down(Some(Duration::from_secs(86_400))),
            Duration::from_secs(600),
            "clamped"
        );
        let gate = HostGate::new(GatePolicy {
            rate: None,
            ..policy()
        });
        let mut ceilings = Vec::new();
        for level in 0..12 {
            let d = gate.cool_down(None);
            let ceiling = Duration::from_secs(1u64 << level).min(Duration::from_secs(600));
            assert!(d <= ceiling, "level {level}: {d:?} over {ceiling:?}");
            ceilings.push(ceiling);
        }
        assert_eq!(gate.backoff_level(), 12);
        gate.succeeded();
        assert_eq!(gate.backoff_level(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cool_down_survives_a_snapshot() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            ..policy()
        });
        gate.cool_down(Some(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(4)).await;
        let snap = gate.snapshot();
        assert_eq!(
            snap,
            GateSnapshot {
                cool_down: Duration::from_secs(6),
                backoff_level: 1,
                adaptive_millirate: 0,
            }
        );
        let resumed = HostGate::new(GatePolicy {
            rate: None,
            ..policy()
        });
        resumed.restore(snap);
        assert_eq!(resumed.ready_in(), Duration::from_secs(6));
        let t0 = Instant::now();
        drop(resumed.acquire().await);
        assert_eq!(t0.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooling_host_does_not_slow_another() {
        let slow = HostGate::new(GatePolicy {
            rate: None,
            ..policy()
        });
        let fast = HostGate::new(GatePolicy {
            rate: None,
            concurrency: 10,
            ..policy()
        });
        slow.cool_down(Some(Duration::from_secs(60)));
        let t0 = Instant::now();
        for _ in 0..20 {
            drop(fast.acquire().await);
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert!(slow.ready_in() >= Duration::from_secs(59));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_claims_are_spaced_at_the_rate() {
        let gate = HostGate::new(GatePolicy {
            rate: Some(1.0),
            burst: 5,
            concurrency: 10,
            ..policy()
        });
        let mut held = Vec::new();
        for k in 0..5 {
            held.push(gate.try_acquire().unwrap_or_else(|e| panic!("claim {k}: {e:?}")));
        }
        assert_eq!(
            gate.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(1)))
        );
        // Asking agrees with the limiter, and neither consumed anything.
        assert_eq!(gate.ready_in(), Duration::from_secs(1));
        assert_eq!(gate.free_slots(), 5, "a refused claim gives its slot back");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(gate.ready_in(), Duration::ZERO);
        held.push(gate.try_acquire().expect("one more after 1 s"));
        assert_eq!(
            gate.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(1)))
        );
        assert_eq!(held.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_when_every_slot_is_taken() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            concurrency: 2,
            ..policy()
        });
        let a = gate.try_acquire().expect("first");
        let _b = gate.try_acquire().expect("second");
        assert_eq!(gate.try_acquire().err(), Some(NotReady::Busy));
        drop(a);
        let _c = gate.try_acquire().expect("a slot freed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cool_down_or_crawl_delay_refuses_with_the_time_left() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            concurrency: 10,
            ..policy()
        });
        gate.cool_down(Some(Duration::from_secs(10)));
        assert_eq!(
            gate.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(10)))
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            gate.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(6)))
        );
        assert_eq!(gate.free_slots(), 10);
        tokio::time::advance(Duration::from_secs(6)).await;
        gate.set_crawl_delay(Some(3.0));
        drop(gate.try_acquire().expect("the cool-down is over"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            gate.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(2)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_without_a_slot_still_waits_for_the_rules() {
        let gate = HostGate::new(GatePolicy {
            rate: Some(1.0),
            concurrency: 1,
            ..policy()
        });
        let _only = gate.try_acquire().expect("the only slot");
        let t0 = Instant::now();
        gate.acquire_start().await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(1),
            "spaced by the rate, not by a slot"
        );
        assert_eq!(gate.free_slots(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_slows_the_host_and_the_slower_rate_survives_a_snapshot() {
        let gate = HostGate::new(GatePolicy {
            rate: Some(4.0),
            concurrency: 10,
            ..policy()
        });
        let sent = Instant::now();
        drop(gate.try_acquire().expect("first"));
        gate.adapt_overloaded(sent, Signal::Refused);
        assert_eq!(gate.adaptive_rate(), Some(3.0));
        assert_eq!(gate.adaptive_cuts(), 1);
        // Spaced at 1/3 s now, not at the configured 1/4 s.
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(matches!(gate.try_acquire(), Err(NotReady::Wait(_))));
        assert!(!gate.is_at_rest(), "a new gate would forget the slower rate");
        let snap = gate.snapshot();
        assert_eq!(snap.adaptive_millirate, 3_000);
        let resumed = HostGate::new(GatePolicy {
            rate: Some(4.0),
            concurrency: 10,
            ..policy()
        });
        resumed.restore(snap);
        assert_eq!(resumed.adaptive_rate(), Some(3.0));
        // Off: the same signal changes nothing.
        let fixed = HostGate::new(GatePolicy {
            rate: Some(4.0),
            adaptive: false,
            ..policy()
        });
        fixed.adapt_overloaded(sent, Signal::Refused);
        fixed.restore(snap);
        assert_eq!(fixed.adaptive_rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_crawl_delay_is_the_adaptive_ceiling() {
        let gate = HostGate::new(GatePolicy {
            rate: Some(10.0),
            concurrency: 10,
            ..policy()
        });
        gate.set_crawl_delay(Some(2.0));
        gate.adapt_overloaded(Instant::now(), Signal::Timeout);
        assert_eq!(
            gate.adaptive_rate(),
            Some(0.375),
            "cut from the Crawl-delay's 0.5/s"
        );
        // About 200 healthy responses from 90% of the rate that hurt to it.
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..300 {
            gate.adapt_healthy(Instant::now(), Duration::from_millis(1));
        }
        assert_eq!(gate.adaptive_rate(), None, "back at the ceiling, never above it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_gate_spaces_by_the_largest_crawl_delay_whichever_came_last() {
        let (small, large) = (("http://a.test", 0.2), ("http://b.test", 1.0));
        for order in [[small, large], [large, small]] {
            let gate = HostGate::new(GatePolicy {
                rate: None,
                concurrency: 10,
                ..policy()
            });
            for (host, d) in order {
                gate.set_crawl_delay_of(host, Some(d));
            }
            assert_eq!(gate.crawl_delay(), Duration::from_secs(1), "{order:?}");
            drop(gate.try_acquire().expect("the first start"));
            tokio::time::advance(Duration::from_millis(999)).await;
            assert_eq!(
                gate.try_acquire().err(),
                Some(NotReady::Wait(Duration::from_millis(1))),
                "{order:?}"
            );
            tokio::time::advance(Duration::from_millis(1)).await;
            drop(gate.try_acquire().expect("1 s after"));
            // A robots.txt read again replaces its host's delay: the next largest rules.
            gate.set_crawl_delay_of(large.0, None);
            assert_eq!(gate.crawl_delay(), Duration::from_millis(200));
            gate.set_crawl_delay_of(small.0, Some(0.1));
            assert_eq!(gate.crawl_delay(), Duration::from_millis(100));
            // The one-host setter replaces them all.
            gate.set_crawl_delay(Some(3.0));
            assert_eq!(gate.crawl_delay(), Duration::from_secs(3));
            gate.set_crawl_delay(None);
            assert_eq!(gate.crawl_delay(), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_of_many_hosts_keeps_the_largest_crawl_delays() {
        let gate = HostGate::new(GatePolicy {
            rate: None,
            ..policy()
        });
        for k in 1..=(CRAWL_DELAY_HOSTS as u64 * 3) {
            gate.set_crawl_delay_of(&format!("http://h{k}.test"), Some(k as f64 / 1000.0));
            // Hosts without one take no room.
            gate.set_crawl_delay_of(&format!("http://none{k}.test"), None);
        }
        let most = Duration::from_millis(CRAWL_DELAY_HOSTS as u64 * 3);
        assert_eq!(gate.crawl_delay(), most);
        assert_eq!(gate.state().crawl_delays.len(), CRAWL_DELAY_HOSTS);
        gate.set_crawl_delay_of("http://h1.test", Some(0.001));
        assert_eq!(
            gate.state().crawl_delays.len(),
            CRAWL_DELAY_HOSTS,
            "smaller than all kept"
        );
        // The largest goes: the next largest of the kept ones rules.
        gate.set_crawl_delay_of(&format!("http://h{}.test", CRAWL_DELAY_HOSTS * 3), None);
        assert_eq!(gate.crawl_delay(), most - Duration::from_millis(1));
        // And the rate that the Crawl-delay allows is the adaptive ceiling.
        gate.adapt_overloaded(Instant::now(), Signal::Refused);
        let ceiling = 1.0 / (most - Duration::from_millis(1)).as_secs_f64();
        let limit = gate.adaptive_rate().expect("cut");
        assert!((limit - ceiling * 0.75).abs() < 1e-6, "{limit} against {ceiling}");
    }
}
