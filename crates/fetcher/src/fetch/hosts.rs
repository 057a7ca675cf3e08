//! The fetcher's bounded per-host state: the gates and the robots.txt verdicts in
//! memory, each kept under [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::robots::RobotsVerdict;
use super::{Fetcher, origin};
use crate::gate::HostGate;

/// What a politeness gate is for: one per origin, or one per server address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolitenessKey {
    /// One gate per origin (`scheme://host:port`).
    #[default]
    Host,
    /// One gate per IP address the host resolves to (its first address): virtual
    /// hosts of one server share its rate, request slots and cool-downs.
    Ip,
}

/// One host's live politeness, from [`Fetcher::host_states`].
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// The gate's key: `scheme://host:port`, or `ip:ADDRESS` with
    /// [`PolitenessKey::Ip`].
    pub origin: String,
    /// How much of a cool-down (Retry-After or backoff) is left.
    pub cool_down: Duration,
    /// Failures in a row since the last success.
    pub backoff_level: u32,
    /// The adaptive rate while it holds the host below the configured rate.
    pub adaptive_rate: Option<f64>,
    /// The robots.txt Crawl-delay applied (zero for none).
    pub crawl_delay: Duration,
}

/// The per-host gates, bounded by [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity). Past it,
/// every new gate looks at the [`GATE_EVICT_STEP`] oldest in `order`: one at rest
/// that nobody holds is dropped (that loses nothing: a new gate for the host
/// behaves the same, see [`HostGate::is_at_rest`]), the others go to the back. So
/// eviction keeps pace with new hosts at O(1) per gate, and never takes a gate that
/// still holds its host back.
#[derive(Default)]
pub(super) struct Gates {
    pub(super) map: HashMap<String, Arc<HostGate>>,
    /// The keys of `map`, oldest (or longest since looked at) first.
    pub(super) order: VecDeque<String>,
}

/// Gates looked at per new gate once the map is full.
const GATE_EVICT_STEP: usize = 4;

impl Gates {
    pub(super) fn evict_some(&mut self, capacity: usize) {
        // Twice over: let gates with a backoff level go too (their rate, crawl delay
        // and cool-down are over; only the level is forgotten).
        let ignore_backoff = self.map.len() >= capacity.saturating_mul(2);
        for _ in 0..GATE_EVICT_STEP {
            if self.map.len() < capacity {
                break;
            }
            let Some(key) = self.order.pop_front() else { break };
            // The map's clone is the only one, so no one can start a request through
            // it meanwhile: clones come only from the map, under this lock.
            match self.map.get(&key) {
                Some(g) if Arc::strong_count(g) == 1 && g.rests(ignore_backoff) => {
                    self.map.remove(&key);
                }
                Some(_) => self.order.push_back(key),
                None => {}
            }
        }
    }
}

/// A cached robots.txt verdict: when it was read, how long it holds, the verdict,
/// and when it was last used (a tick of [`RobotsCache::tick`]).
pub(super) struct RobotsSlot {
    pub(super) at: Instant,
    pub(super) ttl: Duration,
    pub(super) verdict: RobotsVerdict,
    pub(super) used: u64,
}

/// The robots.txt verdicts in memory, bounded by
/// [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity): past it, expired verdicts and then the
/// half used least recently are dropped (a [`RobotsStore`](crate::RobotsStore) answers for them again).
#[derive(Default)]
pub(super) struct RobotsCache {
    pub(super) map: HashMap<String, RobotsSlot>,
    pub(super) tick: u64,
}

impl RobotsCache {
    pub(super) fn get(&mut self, key: &str) -> Option<RobotsVerdict> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(key)?;
        slot.used = tick;
        (slot.at.elapsed() < slot.ttl).then(|| slot.verdict.clone())
    }

    /// The Crawl-delay of a cached verdict, without counting a use.
    pub(super) fn crawl_delay(&self, key: &str) -> Option<f64> {
        match &self.map.get(key)?.verdict {
            RobotsVerdict::Rules(r) => r.crawl_delay(),
            _ => None,
        }
    }

    pub(super) fn insert(&mut self, key: String, ttl: Duration, verdict: RobotsVerdict, capacity: usize) {
        if self.map.len() >= capacity && !self.map.contains_key(&key) {
            self.map.retain(|_, s| s.at.elapsed() < s.ttl);
            if self.map.len() >= capacity {
                let mut ticks: Vec<u64> = self.map.values().map(|s| s.used).collect();
                let mid = ticks.len() / 2;
                let (_, median, _) = ticks.select_nth_unstable(mid);
                let median = *median;
                self.map.retain(|_, s| s.used > median);
            }
        }
        self.tick += 1;
        let slot = RobotsSlot {
            at: Instant::now(),
            ttl,
            verdict,
            used: self.tick,
        };
        self.map.insert(key, slot);
    }
}

impl Fetcher {
    /// The politeness gate of the host of `url`. One gate per origin (or per address
    /// with [`PolitenessKey::Ip`]) while it is in use: a gate is dropped from memory
    /// only when it is at rest (see
    /// [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity))
    /// and no one holds it, and a new one takes the Crawl-delay of the host's cached
    /// robots.txt, so a host's rules hold across its gates.
    ///
    /// With [`PolitenessKey::Ip`], a name whose address is not known yet (no IP
    /// literal, `resolve` entry, `*.localhost` or cached DNS answer) is looked up on
    /// this thread, blocking it. On an async runtime use [`Fetcher::gate_for`]; a
    /// scheduler that must not wait for one host uses [`Fetcher::try_gate`].
    pub fn gate(&self, url: &Url) -> Arc<HostGate> {
        let key = match self.known_key(url) {
            Some(k) => k,
            None => {
                let ip = self.lookup_blocking(url);
                self.remember_key(url, ip)
            }
        };
        self.gate_by_key(key, url)
    }

    /// [`Fetcher::gate`] for async callers: a name not resolved yet is looked up
    /// without blocking the runtime (the fetcher's caching resolver, at most the
    /// connect timeout). A name that fails to resolve gets a gate of its own (and
    /// its requests then fail with the resolver's error).
    pub async fn gate_for(&self, url: &Url) -> Arc<HostGate> {
        let key = match self.known_key(url) {
            Some(k) => k,
            None => {
                let ip = self.lookup(url).await;
                self.remember_key(url, ip)
            }
        };
        self.gate_by_key(key, url)
    }

    /// [`Fetcher::gate`] without waiting: `None` while the address of `url`'s name is
    /// being looked up (with [`PolitenessKey::Ip`] only; the lookup is started on the
    /// current tokio runtime, once per origin, and the answer kept), so that a
    /// scheduler serving many hosts asks again later instead of waiting on one name.
    /// Without a runtime the lookup is made on this thread.
    pub fn try_gate(&self, url: &Url) -> Option<Arc<HostGate>> {
        if let Some(key) = self.known_key(url) {
            return Some(self.gate_by_key(key, url));
        }
        let origin = origin(url);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Some(self.gate(url));
        };
        if !self.lock_pending().insert(origin.clone()) {
            return None;
        }
        let (fetcher, url) = (self.clone(), url.clone());
        runtime.spawn(async move {
            let ip = fetcher.lookup(&url).await;
            fetcher.remember_key(&url, ip);
            fetcher.lock_pending().remove(&origin);
        });
        None
    }

    /// The gate under `key`, made if there is none, for `url`'s host.
    fn gate_by_key(&self, key: String, url: &Url) -> Arc<HostGate> {
        let shared = self.inner.cfg.politeness_key == PolitenessKey::Ip;
        let found = self.lock_gates().map.get(&key).cloned();
        if let Some(g) = found {
            if shared {
                // Several hosts share this gate: each one's Crawl-delay counts (the
                // largest rules), including a host that comes to a gate made by
                // another. Read before the gate's lock: never two locks at once.
                if let Some(d) = self.cached_crawl_delay(url) {
                    g.set_crawl_delay_of(&origin(url), Some(d));
                }
            }
            return g;
        }
        let crawl_delay = self.cached_crawl_delay(url);
        let mut gates = self.lock_gates();
        if let Some(g) = gates.map.get(&key) {
            return g.clone();
        }
        gates.evict_some(self.inner.cfg.host_cache);
        let gate = HostGate::new(self.inner.cfg.policy);
        gate.set_crawl_delay_of(&origin(url), crawl_delay);
        let gate = Arc::new(gate);
        gates.order.push_back(key.clone());
        gates.map.insert(key, gate.clone());
        gate
    }

    /// The Crawl-delay of the cached robots.txt of `url`'s origin.
    fn cached_crawl_delay(&self, url: &Url) -> Option<f64> {
        self.inner
            .robots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .crawl_delay(&origin(url))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.inner.ip_pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of `url`'s gate when it is known without a DNS lookup: its origin, or
    /// with [`PolitenessKey::Ip`] the key the origin got first (a memo bounded like
    /// the gates, so a gate is found again without a lookup and a host never moves
    /// to another gate), or the address of an IP literal, a `resolve` entry,
    /// `*.localhost` or a cached DNS answer.
    fn known_key(&self, url: &Url) -> Option<String> {
        let origin = origin(url);
        if self.inner.cfg.politeness_key == PolitenessKey::Host {
            return Some(origin);
        }
        if let Some(k) = self
            .inner
            .ip_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&origin)
        {
            return Some(k.clone());
        }
        let ip = self.address_without_lookup(url)?;
        Some(self.remember_key(url, ip))
    }

    /// Keeps the key of `url`'s origin: the address `ip` it resolves to, or with none
    /// (the name did not resolve) the origin itself, a gate of its own. The key an
    /// origin got first stays; that is the one returned.
    fn remember_key(&self, url: &Url, ip: Option<std::net::IpAddr>) -> String {
        let origin = origin(url);
        let key = ip.map_or_else(|| origin.clone(), |ip| format!("ip:{ip}"));
        let capacity = self.inner.cfg.host_cache.max(1);
        let mut memo = self.inner.ip_keys.lock().unwrap_or_else(|e| e.into_inner());
        if memo.len() >= capacity.saturating_mul(2) && !memo.contains_key(&origin) {
            // Forgetting a key only means looking the name up again.
            memo.clear();
        }
        memo.entry(origin).or_insert(key).clone()
    }

    /// The address `url` will be fetched from when it is known without a lookup:
    /// `Some(Some(ip))` for an IP literal, an address given to `resolve`, loopback
    /// for `*.localhost` or a cached DNS answer; `Some(None)` for a URL without a
    /// name; `None` when the name must be looked up.
    fn address_without_lookup(&self, url: &Url) -> Option<Option<std::net::IpAddr>> {
        match url.host() {
            Some(url::Host::Ipv4(v4)) => return Some(Some(v4.into())),
            Some(url::Host::Ipv6(v6)) => return Some(Some(v6.into())),
            Some(url::Host::Domain(_)) => {}
            None => return Some(None),
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return Some(None);
        };
        let port = url.port_or_known_default();
        if let Some((_, ips)) = self
            .inner
            .cfg
            .resolves
            .iter()
            .find(|((h, p), _)| *h == host && Some(*p) == port)
        {
            return Some(ips.first().copied());
        }
        if crate::net::is_localhost(&host) {
            return Some(Some(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        let cached = self.inner.dns.get(&host)?;
        Some(cached.first().map(|a| a.ip()))
    }

    /// The first address `url`'s name resolves to, looked up without blocking the
    /// runtime; `None` when the lookup fails or takes longer than the connect
    /// timeout.
    async fn lookup(&self, url: &Url) -> Option<std::net::IpAddr> {
        let host = url.host_str()?.to_ascii_lowercase();
        let answer =
            tokio::time::timeout(self.inner.cfg.connect_timeout, self.inner.dns.resolve(&host)).await;
        match answer {
            Ok(Ok(addrs)) => addrs.first().map(|a| a.ip()),
            Ok(Err(e)) => {
                tracing::debug!(%host, error = %e, "no address for the politeness key: a gate of its own");
                None
            }
            Err(_) => {
                tracing::debug!(%host, "the address lookup timed out: a gate of its own");
                None
            }
        }
    }

    /// [`Fetcher::lookup`] on this thread, blocking it.
    fn lookup_blocking(&self, url: &Url) -> Option<std::net::IpAddr> {
        let host = url.host_str()?.to_ascii_lowercase();
        self.inner
            .dns
            .resolve_blocking(&host)
            .ok()?
            .first()
            .map(|a| a.ip())
    }

    pub(super) fn lock_gates(&self) -> std::sync::MutexGuard<'_, Gates> {
        self.inner.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many hosts' gates are in memory (see
    /// [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity)).
    pub fn gates_in_memory(&self) -> usize {
        self.lock_gates().map.len()
    }

    /// The politeness of every host whose gate is in memory (at most
    /// [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity)
    /// of them, plus those still holding a host back), for live reports: metrics, a
    /// progress line. Gates are read one at a time, never two locks at once.
    pub fn host_states(&self) -> Vec<HostState> {
        let gates: Vec<(String, Arc<HostGate>)> = {
            let gates = self.lock_gates();
            gates.map.iter().map(|(k, g)| (k.clone(), g.clone())).collect()
        };
        gates
            .into_iter()
            .map(|(origin, g)| {
                let snap = g.snapshot();
                HostState {
                    origin,
                    cool_down: snap.cool_down,
                    backoff_level: snap.backoff_level,
                    adaptive_rate: g.adaptive_rate(),
                    crawl_delay: g.crawl_delay(),
                }
            })
            .collect()
    }

    /// How many hosts' robots.txt verdicts are in memory (see
    /// [`FetcherBuilder::host_cache_capacity`](super::FetcherBuilder::host_cache_capacity)).
    pub fn robots_in_memory(&self) -> usize {
        self.inner
            .robots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{GatePolicy, NotReady};
    use crate::robots::Robots;

    /// A fetcher with a small host cache and the given per-host rate, for eviction.
    fn small(capacity: usize, rate: Option<f64>) -> Fetcher {
        Fetcher::builder()
            .user_agent("t/1")
            .politeness(GatePolicy {
                rate,
                concurrency: 2,
                ..GatePolicy::default()
            })
            .host_cache_capacity(capacity)
            .build()
            .expect("fetcher")
    }

    fn host(k: usize) -> Url {
        Url::parse(&format!("http://h{k}.example.test/")).expect("url")
    }

    /// Creates gates for `n` other hosts, which pushes the map past its capacity.
    fn churn(f: &Fetcher, from: usize, n: usize) {
        for k in from..from + n {
            drop(f.gate(&host(k)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gates_stay_bounded_and_one_holding_its_host_back_is_kept() {
        let f = small(8, Some(1.0));
        let a = host(0);
        let gate = f.gate(&a);
        drop(gate.try_acquire().expect("the first start"));
        let first = Arc::downgrade(&gate);
        drop(gate);
        churn(&f, 1, 1_000);
        assert!(
            f.gates_in_memory() <= 16,
            "{} gates in memory",
            f.gates_in_memory()
        );
        let again = f.gate(&a);
        assert!(
            first.upgrade().is_some_and(|g| Arc::ptr_eq(&g, &again)),
            "a gate in its rate spacing is kept"
        );
        assert_eq!(
            again.try_acquire().err(),
            Some(NotReady::Wait(Duration::from_secs(1)))
        );
        drop(again);
        tokio::time::advance(Duration::from_secs(1)).await;
        churn(&f, 1_000, 1_000);
        assert!(first.upgrade().is_none(), "a gate at rest is dropped");
        let later = f.gate(&a);
        assert!(later.try_acquire().is_ok());
    }

    /// Tries to claim starts of one host at random steps of 100 ms of paused time
    /// (one step in three), with enough other hosts in between that its gate is
    /// dropped whenever it may be; returns the times of the starts and how many
    /// gates served them.
    async fn starts_under_churn(f: &Fetcher, steps: usize) -> (Vec<Duration>, usize) {
        let t0 = tokio::time::Instant::now();
        let a = host(0);
        let mut starts = Vec::new();
        let mut gates = 0;
        // The last gate, weakly: it is dead once the map dropped it. (Addresses are
        // no identity: a new gate may reuse the old one's.)
        let mut last: std::sync::Weak<HostGate> = std::sync::Weak::new();
        for step in 0..steps {
            let gate = f.gate(&a);
            if last.upgrade().is_none() {
                gates += 1;
                last = Arc::downgrade(&gate);
            }
            let r = (step as u64 ^ 0x5DEE_CE66).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
            if r.is_multiple_of(3)
                && let Ok(p) = gate.try_acquire()
            {
                starts.push(t0.elapsed());
                drop(p);
            }
            drop(gate);
            churn(f, 1 + step * 40, 40);
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        (starts, gates)
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_and_recreated_gate_never_lets_a_host_exceed_its_rate() {
        let f = small(16, Some(0.5));
        let (starts, gates) = starts_under_churn(&f, 300).await;
        assert!(gates > 3, "the gate was dropped and made again ({gates} gates)");
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(2), "{starts:?}");
        }
        // Not much slower than the rate either: 30 s at one start per 2 s at most.
        assert!(starts.len() >= 8, "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_recreated_gate_keeps_the_crawl_delay_of_the_cached_robots() {
        let f = small(16, None);
        let robots = Robots::parse(b"User-agent: *\nCrawl-delay: 3\n", "t");
        f.inner.robots.lock().expect("lock").insert(
            origin(&host(0)),
            Duration::from_secs(3_600),
            RobotsVerdict::Rules(Arc::new(robots)),
            16,
        );
        let (starts, gates) = starts_under_churn(&f, 200).await;
        assert!(gates > 3, "the gate was dropped and made again ({gates} gates)");
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(3), "{starts:?}");
        }
        assert!(starts.len() >= 4, "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cool_down_survives_the_churn_of_other_hosts() {
        let f = small(8, None);
        let a = host(0);
        f.gate(&a).cool_down(Some(Duration::from_secs(10)));
        for s in 0..10 {
            churn(&f, 1 + s * 100, 100);
            tokio::time::advance(Duration::from_millis(900)).await;
            assert!(
                matches!(f.gate(&a).try_acquire(), Err(NotReady::Wait(_))),
                "a start {} s into a 10 s cool-down",
                (s + 1) as f64 * 0.9
            );
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(f.gate(&a).try_acquire().is_ok(), "the cool-down is over");
        // The backoff level after a failure keeps a gate too, unless nothing else
        // can go.
        let b = host(5_000);
        f.gate(&b).cool_down(None);
        tokio::time::advance(Duration::from_secs(2)).await;
        churn(&f, 6_000, 4);
        assert_eq!(f.gate(&b).backoff_level(), 1);
        assert!(f.gates_in_memory() <= 16);
    }

    #[tokio::test(start_paused = true)]
    async fn robots_verdicts_are_bounded_and_the_recent_ones_stay() {
        let f = small(100, None);
        for k in 0..1_000 {
            let mut cache = f.inner.robots.lock().expect("lock");
            cache.insert(
                origin(&host(k)),
                Duration::from_secs(60),
                RobotsVerdict::AllowAll,
                100,
            );
            // Host 0 is used all along.
            assert!(
                k == 0 || cache.get(&origin(&host(0))).is_some(),
                "host 0 dropped at {k}"
            );
        }
        assert!(f.robots_in_memory() <= 100, "{}", f.robots_in_memory());
        assert!(f.cached_robots(&origin(&host(999))).is_some());
    }

    #[tokio::test]
    async fn by_ip_the_hosts_of_one_address_share_a_gate() {
        let url = |s: &str| Url::parse(s).expect("url");
        let by_ip = Fetcher::builder()
            .user_agent("t/1")
            .politeness_key(PolitenessKey::Ip)
            .resolve("shared.example.test", 80, "127.0.0.9".parse().expect("ip"))
            .build()
            .expect("fetcher");
        let a = by_ip.gate(&url("http://h0.localhost:8080/"));
        let b = by_ip.gate(&url("http://h1.localhost:8080/x"));
        assert!(Arc::ptr_eq(&a, &b), "two names on loopback, one gate");
        assert!(Arc::ptr_eq(&a, &by_ip.gate(&url("http://127.0.0.1:9/"))));
        let other = by_ip.gate(&url("http://shared.example.test/"));
        assert!(!Arc::ptr_eq(&a, &other), "another address, another gate");
        assert!(Arc::ptr_eq(&other, &by_ip.gate(&url("http://127.0.0.9:81/"))));
        assert_eq!(by_ip.gates_in_memory(), 2);
        // A cool-down of one host holds back the other.
        a.cool_down(Some(Duration::from_secs(30)));
        assert!(matches!(b.try_acquire(), Err(NotReady::Wait(_))));
        let by_host = Fetcher::builder().user_agent("t/1").build().expect("fetcher");
        let (a, b) = (
            by_host.gate(&url("http://h0.localhost:8080/")),
            by_host.gate(&url("http://h1.localhost:8080/")),
        );
        assert!(!Arc::ptr_eq(&a, &b), "by host, a gate each");
    }

    /// A fetcher keyed by address whose resolver answers `names` after their delays
    /// (with an address, or failing without one).
    fn by_ip_with(names: &[(&str, u64, Option<&str>)]) -> Fetcher {
        let f = Fetcher::builder()
            .user_agent("t/1")
            .politeness_key(PolitenessKey::Ip)
            .build()
            .expect("fetcher");
        let mut fake = f.inner.dns.fake.lock().expect("lock");
        for (name, ms, ip) in names {
            let ip = ip.map(|ip| ip.parse().expect("ip"));
            fake.insert((*name).to_string(), (Duration::from_millis(*ms), ip));
        }
        drop(fake);
        f
    }

    #[tokio::test(start_paused = true)]
    async fn by_ip_a_name_being_looked_up_holds_no_one_up_and_is_looked_up_once() {
        let url = |s: &str| Url::parse(s).expect("url");
        let f = by_ip_with(&[
            ("slow.example.test", 2_000, Some("10.0.0.7")),
            ("alias.example.test", 0, Some("10.0.0.7")),
        ]);
        let slow = url("http://slow.example.test/");
        let t0 = Instant::now();
        assert!(
            f.try_gate(&slow).is_none(),
            "not resolved yet: no answer, no wait"
        );
        assert!(f.try_gate(&url("http://slow.example.test/other")).is_none());
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // Other hosts are served meanwhile.
        let other = f
            .try_gate(&url("http://h0.localhost/"))
            .expect("known without a lookup");
        assert!(other.try_acquire().is_ok());
        tokio::time::sleep(Duration::from_millis(1_999)).await;
        assert!(f.try_gate(&slow).is_none(), "still being looked up");
        tokio::time::sleep(Duration::from_millis(2)).await;
        let gate = f.try_gate(&slow).expect("resolved");
        assert_eq!(f.dns_lookups(), 1, "one lookup however often it was asked for");
        // Another name of the same address shares the gate (asked for by a task:
        // it waits for the lookup, on the runtime).
        assert!(Arc::ptr_eq(
            &gate,
            &f.gate_for(&url("http://alias.example.test/")).await
        ));
        assert!(Arc::ptr_eq(&gate, &f.gate(&url("http://10.0.0.7/"))));
        assert!(!Arc::ptr_eq(&gate, &other));
    }

    #[tokio::test(start_paused = true)]
    async fn by_ip_a_name_that_does_not_resolve_gets_a_gate_of_its_own() {
        let url = |s: &str| Url::parse(s).expect("url");
        let f = by_ip_with(&[
            ("gone.example.test", 10, None),
            ("stuck.example.test", 3_600_000, Some("127.0.0.1")),
        ]);
        let gone = url("http://gone.example.test/");
        assert!(f.try_gate(&gone).is_none());
        tokio::time::sleep(Duration::from_millis(11)).await;
        let own = f.try_gate(&gone).expect("given up on");
        let shared = f.gate(&url("http://127.0.0.1/"));
        assert!(!Arc::ptr_eq(&own, &shared));
        assert!(Arc::ptr_eq(&own, &f.gate_for(&gone).await), "and it keeps it");
        // A lookup that never answers is given up at the connect timeout (10 s).
        let t0 = Instant::now();
        let stuck = f.gate_for(&url("http://stuck.example.test/")).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        assert!(
            !Arc::ptr_eq(&stuck, &shared),
            "a gate of its own, not 127.0.0.1's"
        );
        assert_eq!(f.gates_in_memory(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_comes_to_a_shared_gate_brings_its_crawl_delay() {
        let url = |s: &str| Url::parse(s).expect("url");
        let f = Fetcher::builder()
            .user_agent("t/1")
            .politeness_key(PolitenessKey::Ip)
            .politeness(GatePolicy {
                rate: None,
                concurrency: 4,
                ..GatePolicy::default()
            })
            .build()
            .expect("fetcher");
        let (a, b) = (url("http://a.localhost/"), url("http://b.localhost/"));
        for (u, delay) in [(&a, "0.2"), (&b, "1")] {
            let robots = Robots::parse(format!("User-agent: *\nCrawl-delay: {delay}\n").as_bytes(), "t");
            f.inner.robots.lock().expect("lock").insert(
                origin(u),
                Duration::from_secs(3_600),
                RobotsVerdict::Rules(Arc::new(robots)),
                16,
            );
        }
        // The gate is made for `a` (0.2 s); `b` comes to it later with 1 s.
        let gate = f.gate(&a);
        assert_eq!(gate.crawl_delay(), Duration::from_millis(200));
        assert!(Arc::ptr_eq(&gate, &f.gate(&b)));
        assert_eq!(gate.crawl_delay(), Duration::from_secs(1));
        assert!(Arc::ptr_eq(&gate, &f.gate(&a)));
        assert_eq!(gate.crawl_delay(), Duration::from_secs(1), "the largest stays");
    }
}
