//! [`FetcherBuilder`]: the fetcher's settings with their defaults, and `build()`, which
//! makes the clients (one per address set given to `resolve`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use super::Error;
use super::hosts::{Gates, PolitenessKey, RobotsCache};
use super::robots::RobotsStore;
use super::{Fetcher, Inner};
use crate::accept::AcceptTypes;
use crate::gate::GatePolicy;
use crate::memory::BodyMemory;
use crate::net::{DnsCache, FilteringResolver, tls_config};

/// Settings of a [`Fetcher`]; build one with [`Fetcher::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FetcherBuilder {
    pub(super) user_agent: String,
    pub(super) policy: GatePolicy,
    pub(super) max_body: u64,
    pub(super) body_memory: Option<u64>,
    pub(super) max_ratio: u64,
    pub(super) connect_timeout: Duration,
    pub(super) read_timeout: Duration,
    pub(super) total_timeout: Duration,
    pub(super) max_attempts: u32,
    pub(super) robots: bool,
    pub(super) robots_ttl: Duration,
    pub(super) allow_private_ips: bool,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) content_types: Option<Vec<String>>,
    pub(super) accept: AcceptTypes,
    pub(super) compression: bool,
    pub(super) headers: Vec<(String, String)>,
    pub(super) proxy: Option<String>,
    pub(super) robots_store: Option<Arc<dyn RobotsStore>>,
    pub(super) min_speed: Option<(u64, Duration)>,
    pub(super) cookies: bool,
    pub(super) follow_redirects: usize,
    pub(super) dns_ttl: Duration,
    /// Extra trusted CA certificates, PEM, as given to [`FetcherBuilder::ca_cert`].
    pub(super) ca_certs: Vec<Vec<u8>>,
    /// Addresses given with [`FetcherBuilder::resolve`]: `(host, port)` and its
    /// addresses, in the order given.
    pub(super) resolves: Vec<((String, u16), Vec<IpAddr>)>,
    /// [`FetcherBuilder::host_cache_capacity`].
    pub(super) host_cache: usize,
    /// [`FetcherBuilder::pool_idle_timeout`].
    pub(super) pool_idle: Duration,
    /// [`FetcherBuilder::politeness_key`].
    pub(super) politeness_key: PolitenessKey,
}

impl Default for FetcherBuilder {
    fn default() -> FetcherBuilder {
        FetcherBuilder {
            user_agent: String::new(),
            policy: GatePolicy::default(),
            max_body: 10 << 20,
            body_memory: None,
            max_ratio: 100,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(60),
            max_attempts: 3,
            robots: true,
            robots_ttl: Duration::from_secs(24 * 3600),
            allow_private_ips: false,
            allowed_hosts: Vec::new(),
            content_types: None,
            accept: AcceptTypes::any(),
            compression: true,
            headers: Vec::new(),
            proxy: None,
            robots_store: None,
            min_speed: None,
            cookies: false,
            follow_redirects: 0,
            dns_ttl: Duration::from_secs(300),
            ca_certs: Vec::new(),
            resolves: Vec::new(),
            host_cache: DEFAULT_HOST_CACHE,
            pool_idle: Duration::from_secs(2),
            politeness_key: PolitenessKey::Host,
        }
    }
}

/// The default of [`FetcherBuilder::host_cache_capacity`].
pub const DEFAULT_HOST_CACHE: usize = 4_096;

impl FetcherBuilder {
    /// The User-Agent; its product token is the robots.txt agent. Required: `build`
    /// fails without one. By default, empty.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
    /// Per-host politeness: rate, burst, concurrency, caps. By default,
    /// [`GatePolicy::default`] (1 request per second, 2 at once).
    pub fn politeness(mut self, policy: GatePolicy) -> Self {
        self.policy = policy;
        self
    }
    /// The body cap, counted after decompression. By default, 10 MiB.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }
    /// A budget for the bodies in memory, over all fetches of this fetcher: each body
    /// takes its share before it is read (its `Content-Length`, waiting for room) and
    /// keeps it as [`Fetched::memory`](crate::Fetched::memory) until the caller drops that. By default, none:
    /// every fetch reads its body at once. See [`MemoryReservation`](crate::MemoryReservation) for the rules.
    pub fn body_memory(mut self, bytes: u64) -> Self {
        self.body_memory = Some(bytes);
        self
    }
    /// The largest decompressed / wire ratio accepted (past 64 KiB). By default, 100.
    pub fn max_ratio(mut self, ratio: u64) -> Self {
        self.max_ratio = ratio.max(1);
        self
    }
    /// The connect timeout. By default, 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// The idle timeout between two reads. By default, 20 s.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }
    /// The total timeout of one attempt, body included. It also stops a server that
    /// trickles bytes, which an idle timeout never does. By default, 60 s.
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = d;
        self
    }
    /// A minimum transfer speed: once `grace` has passed since the headers, a body
    /// arriving at fewer than `bytes_per_sec` on average is given up on. By default,
    /// off (the total timeout still bounds a slow body).
    pub fn min_speed(mut self, bytes_per_sec: u64, grace: Duration) -> Self {
        self.min_speed = Some((bytes_per_sec, grace));
        self
    }
    /// Attempts per URL for timeouts, connection errors, 5xx, 408 and 429. By
    /// default, 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Whether robots.txt is fetched and obeyed. By default, on.
    pub fn robots(mut self, on: bool) -> Self {
        self.robots = on;
        self
    }
    /// Whether special-purpose addresses (loopback, private, …) may be fetched. By
    /// default, off.
    pub fn allow_private_ips(mut self, on: bool) -> Self {
        self.allow_private_ips = on;
        self
    }
    /// Hosts (`host` or `host:port`) exempt from the special-address check, such as a
    /// seed on a private network. By default, none.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into().to_ascii_lowercase());
        self
    }
    /// Accept only these content types (prefix match, before any body is read): a
    /// 2xx of another type fails with [`Error::ContentType`]. To keep such responses
    /// as results (status and headers) and only leave their bodies unread, use
    /// [`FetcherBuilder::accept`] instead. By default, any.
    pub fn content_types(mut self, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.content_types = Some(types.into_iter().map(|t| t.into().to_ascii_lowercase()).collect());
        self
    }
    /// The bodies that are downloaded, by `Content-Type`, decided on the headers: a
    /// response of another type comes back with its status and headers and
    /// [`Fetched::body_skipped`](crate::Fetched::body_skipped) set, its body unread and its connection closed. It
    /// applies to every status, and a response without a `Content-Type` is always
    /// read (see [`AcceptTypes`]). One request can ask for other types with
    /// [`RequestOptions::accept`](crate::RequestOptions::accept). A crawler that parses only HTML passes
    /// [`AcceptTypes::html`]. By default, [`AcceptTypes::any`]: every body is read.
    pub fn accept(mut self, types: AcceptTypes) -> Self {
        self.accept = types;
        self
    }
    /// A header sent with every request. By default, none besides User-Agent and
    /// Accept-Encoding.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Send every request through this proxy (`http://host:port`). By default, no
    /// proxy, and the environment's proxy variables are ignored.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }
    /// Keep robots.txt answers in `store` as well as in memory. By default, in memory
    /// only.
    pub fn robots_store(mut self, store: Arc<dyn RobotsStore>) -> Self {
        self.robots_store = Some(store);
        self
    }
    /// Whether to keep cookies the servers set and send them back (one cookie jar
    /// shared by every clone of the fetcher). By default, off: a crawler usually
    /// wants every request to look the same.
    pub fn cookies(mut self, on: bool) -> Self {
        self.cookies = on;
        self
    }
    /// Follow up to `max_hops` redirects inside [`Fetcher::fetch`], putting every hop
    /// through the same checks as a first request (scheme, special-purpose address,
    /// robots.txt, politeness) and failing with [`Error::TooManyRedirects`] past the
    /// limit or on a loop. By default, 0: a 3xx comes back with
    /// [`Fetched::redirect_to`](crate::Fetched::redirect_to) for the caller to check, as a crawler wants.
    pub fn follow_redirects(mut self, max_hops: usize) -> Self {
        self.follow_redirects = max_hops;
        self
    }
    /// How long a DNS answer is reused. By default, 5 minutes; zero turns the cache off.
    pub fn dns_cache_ttl(mut self, ttl: Duration) -> Self {
        self.dns_ttl = ttl;
        self
    }
    /// Trusts the CA certificates in `pem` (one or more PEM `CERTIFICATE` blocks) for
    /// TLS, besides the system's roots: like curl's `--cacert`, except that the
    /// system's roots stay trusted too. Call it again to add more. PEM that holds no
    /// valid certificate fails [`FetcherBuilder::build`] with [`Error::Config`]. By
    /// default, only the system's roots are trusted.
    pub fn ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certs.push(pem.into());
        self
    }
    /// Sends requests for `host` on `port` to `addr` instead of the addresses DNS
    /// gives, like curl's `--resolve host:port:addr`: the URL, the `Host` header and
    /// TLS (SNI and the certificate check) still name `host`. Other ports of `host`
    /// resolve as usual. Call it again for more addresses of the same `host` and
    /// `port` (tried in order) or for other hosts. The addresses are used as given:
    /// the special-purpose address check does not apply to them, since they were
    /// named by the user, as with [`FetcherBuilder::allow_host`]. A `host` that is
    /// an IP literal is never resolved, so an entry for one has no effect. By
    /// default, none.
    ///
    /// `localhost` and names under it (`h1.localhost`) always resolve to loopback
    /// (127.0.0.1, then ::1) without DNS, as RFC 6761 asks; the address check applies
    /// to them as to any name.
    pub fn resolve(mut self, host: impl Into<String>, port: u16, addr: IpAddr) -> Self {
        let key = (host.into().trim_end_matches('.').to_ascii_lowercase(), port);
        match self.resolves.iter_mut().find(|(k, _)| *k == key) {
            Some((_, addrs)) => addrs.push(addr),
            None => self.resolves.push((key, vec![addr])),
        }
        self
    }
    /// What a politeness gate is for: each origin ([`PolitenessKey::Host`]), or each
    /// server address ([`PolitenessKey::Ip`]: hosts that resolve to the same address
    /// share one rate, one set of request slots and one cool-down, as shared hosting
    /// wants; the name is resolved when its gate is first asked for). robots.txt
    /// stays per origin. By default, per host.
    pub fn politeness_key(mut self, key: PolitenessKey) -> Self {
        self.politeness_key = key;
        self
    }

    /// How many hosts' idle state is kept in memory: their politeness gates (see
    /// [`Fetcher::gate`]) and their robots.txt verdicts. Past it, the gates of hosts
    /// at rest (no request in flight, no cool-down, crawl delay or rate spacing
    /// pending, and no one holding the gate) are dropped, and the robots.txt
    /// verdicts used least recently, which are asked of the [`RobotsStore`] (or
    /// fetched) again when next needed. A gate that is not at rest is never dropped,
    /// so no host is ever fetched faster than its rules allow; a gate with a backoff
    /// level is dropped only when nothing else can be, and forgets that level. By
    /// default, 4,096.
    pub fn host_cache_capacity(mut self, hosts: usize) -> Self {
        self.host_cache = hosts.max(1);
        self
    }
    /// How long an idle connection is kept for reuse. Idle connections are per-host
    /// state too (the pool keeps one per host, with its buffers, about 20 KiB, and a
    /// file descriptor), so in a crawl of many hosts this bounds them by the hosts
    /// fetched in the last `timeout`, not by all the hosts ever fetched: a crawl
    /// that takes on 1,000 new hosts a second holds about 2,000 idle connections
    /// with the default. Past it a host's next request opens a new connection. By
    /// default, 2 s (reqwest's is 90 s), enough for a host fetched once a second.
    /// A request for a host with nothing more to fetch can skip the pool altogether
    /// with [`RequestOptions::close_connection`](crate::RequestOptions::close_connection).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle = timeout;
        self
    }
    /// Whether to ask for gzip, br, zstd and deflate. By default, on.
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Builds the fetcher.
    ///
    /// # Errors
    /// [`Error::Config`] when the User-Agent is empty, a header, the proxy or a CA
    /// certificate is invalid, or the HTTP client cannot be built.
    pub fn build(self) -> Result<Fetcher, Error> {
        let memory = self.body_memory.map(|b| Arc::new(BodyMemory::new(b)));
        if self.user_agent.trim().is_empty() {
            return Err(Error::Config("a User-Agent is required".into()));
        }
        let mut headers = HeaderMap::new();
        if self.compression {
            headers.insert(
                reqwest::header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, br, zstd, deflate"),
            );
        }
        for (name, value) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Config(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("invalid value for header {name}")))?;
            headers.append(name, value);
        }
        let dns = Arc::new(DnsCache::new(self.dns_ttl));
        let tls = tls_config(&self.ca_certs)?;
        // reqwest's resolver sees a name without its port, so one client can send a
        // name to one set of addresses only. Client 0 resolves as usual; each
        // `(host, port)` given to `resolve` is served by the first further client
        // that has no other addresses for that host.
        let mut plans: Vec<HashMap<String, Arc<[SocketAddr]>>> = vec![HashMap::new()];
        let mut routes = HashMap::new();
        for ((host, port), ips) in &self.resolves {
            let addrs: Arc<[SocketAddr]> = ips.iter().map(|ip| SocketAddr::new(*ip, *port)).collect();
            let fits = |plan: &HashMap<String, Arc<[SocketAddr]>>| {
                plan.get(host)
                    .is_none_or(|a| a.iter().map(SocketAddr::ip).eq(ips.iter().copied()))
            };
            let k = match (1..plans.len()).find(|k| fits(&plans[*k])) {
                Some(k) => k,
                None => {
                    plans.push(HashMap::new());
                    plans.len() - 1
                }
            };
            plans[k].insert(host.clone(), addrs);
            routes.insert((host.clone(), *port), k);
        }
        let mut clients = Vec::with_capacity(plans.len());
        for overrides in plans {
            let mut client = reqwest::Client::builder()
                .tls_backend_preconfigured(tls.clone())
                .cookie_store(self.cookies)
                .user_agent(self.user_agent.clone())
                .default_headers(headers.clone())
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(self.connect_timeout)
                .read_timeout(self.read_timeout)
                .timeout(self.total_timeout)
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(self.pool_idle)
                .dns_resolver(FilteringResolver {
                    allow_private: self.allow_private_ips,
                    allowed: self.allowed_hosts.clone(),
                    cache: dns.clone(),
                    overrides,
                });
            if let Some(proxy) = &self.proxy {
                let proxy = reqwest::Proxy::all(proxy.as_str())
                    .map_err(|e| Error::Config(format!("invalid proxy {proxy:?}: {e}")))?;
                client = client.proxy(proxy);
            }
            clients.push(client.build().map_err(|e| Error::Config(e.to_string()))?);
        }
        Ok(Fetcher {
            inner: Arc::new(Inner {
                clients,
                routes,
                cfg: self,
                dns,
                gates: Mutex::new(Gates::default()),
                memory,
                robots: Mutex::new(RobotsCache::default()),
                robots_flights: Mutex::new(HashMap::new()),
                ip_keys: Mutex::new(HashMap::new()),
                ip_pending: Mutex::new(std::collections::HashSet::new()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_agent_is_required() {
        assert!(matches!(Fetcher::builder().build(), Err(Error::Config(_))));
    }
}
