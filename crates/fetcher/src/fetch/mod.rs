//! [`Fetcher`]: polite, pooled fetching on reqwest, with the rule sets of this crate
//! around every request.
//!
//! Layout: `builder` ([`FetcherBuilder`] and `build()`), `error` ([`Error`]),
//! `response` (what a fetch returns and per-request settings), `robots` (the robots.txt
//! path and [`RobotsStore`]), `hosts` (the bounded per-host state: gates and robots.txt
//! verdicts), `request` (the request loop and the body read). This file holds
//! [`Fetcher`] itself: its shared state, the client routing and the address checks.

mod builder;
mod error;
mod hosts;
mod request;
mod response;
mod robots;

pub use builder::{DEFAULT_HOST_CACHE, FetcherBuilder};
pub use error::Error;
pub use hosts::{HostState, PolitenessKey};
pub use request::parse_retry_after;
pub use response::{Fetched, RequestOptions, Timings, Validators};
pub use robots::{RobotsStore, StoredRobots};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use url::Url;

use crate::memory::BodyMemory;
use crate::net::DnsCache;
use crate::ssrf::is_special;
use hosts::{Gates, RobotsCache};

struct Inner {
    /// Client 0 resolves names as usual; the others serve the `(host, port)`s given
    /// to [`FetcherBuilder::resolve`] (see `routes`). They share the DNS cache.
    clients: Vec<reqwest::Client>,
    /// Which client sends requests for a `(host, port)` given to `resolve`.
    routes: HashMap<(String, u16), usize>,
    cfg: FetcherBuilder,
    dns: Arc<DnsCache>,
    gates: Mutex<Gates>,
    memory: Option<Arc<BodyMemory>>,
    robots: Mutex<RobotsCache>,
    robots_flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// With [`PolitenessKey::Ip`]: each origin's gate key, as first resolved.
    ip_keys: Mutex<HashMap<String, String>>,
    /// With [`PolitenessKey::Ip`]: the origins whose address [`Fetcher::try_gate`] is
    /// looking up, so that a name is looked up once however often it is asked for.
    ip_pending: Mutex<std::collections::HashSet<String>>,
}

/// A polite HTTP fetcher. Cheap to clone: clones share one connection pool, the
/// per-host gates and the robots.txt cache.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("user_agent", &self.inner.cfg.user_agent)
            .finish_non_exhaustive()
    }
}

fn origin(url: &Url) -> String {
    let mut o = url.origin().ascii_serialization();
    if o == "null" {
        o = url.as_str().to_string();
    }
    o
}

impl Fetcher {
    /// A builder with every setting at its default.
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder::default()
    }

    /// Bytes that bodies grew past their body-memory reservations while the budget
    /// was full ([`FetcherBuilder::body_memory`]); 0 without a budget.
    pub fn memory_overdrawn(&self) -> u64 {
        self.inner.memory.as_ref().map_or(0, |m| m.overdrawn())
    }

    /// How many DNS lookups were made (answers taken from the cache not counted).
    pub fn dns_lookups(&self) -> u64 {
        self.inner.dns.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The client that sends requests for `url`: the one holding its `(host, port)`
    /// override, if it has one.
    fn client(&self, url: &Url) -> &reqwest::Client {
        let k = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) if !self.inner.routes.is_empty() => {
                self.inner.routes.get(&(h.to_string(), p)).copied().unwrap_or(0)
            }
            _ => 0,
        };
        &self.inner.clients[k]
    }

    /// Whether the user vouched for the address `url` reaches: its host is one that
    /// [`FetcherBuilder::allow_host`] names, or its `(host, port)` was given to
    /// [`FetcherBuilder::resolve`].
    fn vouched(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        self.inner.routes.contains_key(&(host.clone(), port))
            || self
                .inner
                .cfg
                .allowed_hosts
                .iter()
                .any(|a| *a == host || *a == with_port)
    }

    fn check_address(&self, url: &Url) -> Result<(), Error> {
        if self.inner.cfg.allow_private_ips {
            return Ok(());
        }
        let ip: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(v4.into()),
            Some(url::Host::Ipv6(v6)) => Some(v6.into()),
            _ => None,
        };
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let with_port = url
            .port_or_known_default()
            .map(|p| format!("{host}:{p}"))
            .unwrap_or_default();
        let allowed = self
            .inner
            .cfg
            .allowed_hosts
            .iter()
            .any(|a| *a == host || *a == with_port);
        match ip {
            Some(ip) if is_special(ip) && !allowed => Err(Error::Forbidden { url: url.clone() }),
            _ => Ok(()),
        }
    }
}
