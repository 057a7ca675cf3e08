//! [`Fetcher`]: polite, pooled fetching on reqwest, with the rule sets of this crate
//! around every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::body::{BodyDecoder, BodyError, ContentEncoding};
use crate::gate::{GatePolicy, HostGate};
use crate::robots::Robots;
use crate::ssrf::is_special;

/// What went wrong fetching a URL. A failed URL is data for a crawler: inspect the
/// error with the helpers and record it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fetcher was configured wrongly.
    #[error("invalid fetcher configuration: {0}")]
    Config(String),
    /// The URL is not an absolute http(s) URL with a host.
    #[error("invalid url {url}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
    },
    /// robots.txt disallows the URL.
    #[error("{url} is disallowed by robots.txt")]
    RobotsDenied {
        /// The URL.
        url: Url,
    },
    /// The host's robots.txt could not be read (5xx, 429 or unreachable), so RFC 9309
    /// says to disallow everything for now; it is fetched again after a minute.
    #[error("{url}: robots.txt is unavailable, so the host is off limits for now")]
    RobotsUnavailable {
        /// The URL.
        url: Url,
    },
    /// The URL's host is, or resolves only to, a special-purpose address.
    #[error("{url} is refused: it points at a special-purpose address")]
    Forbidden {
        /// The URL.
        url: Url,
    },
    /// A connect, idle or total timeout fired.
    #[error("{url} timed out")]
    Timeout {
        /// The URL.
        url: Url,
    },
    /// The body arrived more slowly than the minimum transfer speed.
    #[error("{url} is too slow (under {min_bytes_per_sec} bytes/s)")]
    TooSlow {
        /// The URL.
        url: Url,
        /// The minimum speed that was not met.
        min_bytes_per_sec: u64,
    },
    /// The body passed the size cap or the compression-ratio cap.
    #[error("{url} is too large (over {limit} bytes, or compressed more than allowed)")]
    TooLarge {
        /// The URL.
        url: Url,
        /// The cap that was hit.
        limit: u64,
    },
    /// The response's content type is not on the allow list.
    #[error("{url} has content type {content_type:?}, which is not wanted")]
    ContentType {
        /// The URL.
        url: Url,
        /// The `Content-Type` received.
        content_type: String,
    },
    /// The server kept answering with a retryable status (5xx, 408, 429).
    #[error("{url} answered {status} after {attempts} attempts")]
    Status {
        /// The URL.
        url: Url,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection or the HTTP exchange failed.
    #[error("{url}: request failed")]
    Request {
        /// The URL.
        url: Url,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// More redirects than [`FetcherBuilder::follow_redirects`] allows, or a loop.
    #[error("{url}: gave up after {hops} redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: Url,
        /// Redirects followed.
        hops: usize,
    },
    /// The body could not be decoded (a broken gzip stream, say).
    #[error("{url}: the body could not be decoded: {detail}")]
    Body {
        /// The URL.
        url: Url,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// Whether a time cap stopped the fetch: a timeout, or a body slower than the
    /// minimum transfer speed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::TooSlow { .. })
    }
    /// Whether robots.txt disallowed the URL, by its rules or because it could not be
    /// read ([`Error::RobotsUnavailable`]).
    pub fn is_robots_denied(&self) -> bool {
        matches!(self, Error::RobotsDenied { .. } | Error::RobotsUnavailable { .. })
    }
    /// Whether a size or ratio cap stopped the body.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::TooLarge { .. })
    }
    /// Whether the SSRF protection refused the URL.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Forbidden { .. })
    }
    /// The HTTP status, when the failure was a status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The URL the error is about, when there is one.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Error::RobotsDenied { url }
            | Error::RobotsUnavailable { url }
            | Error::Forbidden { url }
            | Error::Timeout { url }
            | Error::TooSlow { url, .. }
            | Error::TooLarge { url, .. }
            | Error::ContentType { url, .. }
            | Error::Status { url, .. }
            | Error::Request { url, .. }
            | Error::TooManyRedirects { url, .. }
            | Error::Body { url, .. } => Some(url),
            Error::Config(_) | Error::InvalidUrl { .. } => None,
        }
    }
    /// A stable, lower-case kind for records and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidUrl { .. } => "invalid-url",
            Error::RobotsDenied { .. } => "robots-denied",
            Error::RobotsUnavailable { .. } => "robots-unavailable",
            Error::Forbidden { .. } => "forbidden-address",
            Error::Timeout { .. } => "timeout",
            Error::TooSlow { .. } => "too-slow",
            Error::TooLarge { .. } => "too-large",
            Error::ContentType { .. } => "content-type",
            Error::Status { .. } => "http-status",
            Error::Request { .. } => "request",
            Error::TooManyRedirects { .. } => "too-many-redirects",
            Error::Body { .. } => "body",
        }
    }
}

/// Time spent on one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Waiting for the host's politeness gate.
    pub queued: Duration,
    /// From sending the request to the response headers (connect included).
    pub first_byte: Duration,
    /// From sending the request to the end of the body.
    pub total: Duration,
}

/// A fetched response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL requested.
    pub url: Url,
    /// The URL the response came from: the same as `url` unless
    /// [`FetcherBuilder::follow_redirects`] is on and redirects were followed.
    pub final_url: Url,
    /// The status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body after decompression, capped.
    pub body: Bytes,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The resolved `Location` of a 3xx, for the caller to check and follow.
    pub redirect_to: Option<Url>,
    /// The redirects followed on the way to `final_url`, in order (each hop's target),
    /// when [`FetcherBuilder::follow_redirects`] is on; otherwise empty.
    pub redirects: Vec<Url>,
    /// Where the time went.
    pub timings: Timings,
    /// Body bytes on the wire.
    pub wire_bytes: u64,
    /// Body bytes after decompression.
    pub body_bytes: u64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The peer address, when known.
    pub remote_addr: Option<SocketAddr>,
}

impl Fetched {
    /// Whether the server answered 304 Not Modified to a conditional GET (the body is
    /// then empty: the caller's copy is current).
    pub fn not_modified(&self) -> bool {
        self.status == 304
    }

    /// The `ETag` and `Last-Modified` of this response, to give to
    /// [`Fetcher::fetch_conditional`] next time.
    pub fn validators(&self) -> Validators {
        let get = |name| {
            self.headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        Validators {
            etag: get(reqwest::header::ETAG),
            last_modified: get(reqwest::header::LAST_MODIFIED),
        }
    }
}

/// Validators from an earlier fetch, for a conditional GET: sent as `If-None-Match`
/// and `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` received earlier.
    pub etag: Option<String>,
    /// The `Last-Modified` received earlier (an HTTP date).
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// Settings of a [`Fetcher`]; build one with [`Fetcher::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FetcherBuilder {
    user_agent: String,
    policy: GatePolicy,
    max_body: u64,
    max_ratio: u64,
    connect_timeout: Duration,
    read_timeout: Duration,
    total_timeout: Duration,
    max_attempts: u32,
    robots: bool,
    robots_ttl: Duration,
    allow_private_ips: bool,
    allowed_hosts: Vec<String>,
    content_types: Option<Vec<String>>,
    compression: bool,
    headers: Vec<(String, String)>,
    proxy: Option<String>,
    robots_store: Option<Arc<dyn RobotsStore>>,
    min_speed: Option<(u64, Duration)>,
    cookies: bool,
    follow_redirects: usize,
    dns_ttl: Duration,
}

/// A robots.txt answer as fetched: what a [`RobotsStore`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRobots {
    /// The final HTTP status after redirects; 0 when the server could not be reached.
    pub status: u16,
    /// When it was fetched.
    pub fetched_at: SystemTime,
    /// The body (at most 500 KiB), for a 2xx.
    pub body: Vec<u8>,
}

/// Where robots.txt answers are kept beyond this process, keyed by origin
/// (`scheme://host:port`). The trawl engine keeps them in its frontier, so a resumed
/// crawl does not fetch a fresh robots.txt again. The fetcher still caches verdicts
/// in memory; the store is asked on a miss and told about every fetch.
pub trait RobotsStore: Send + Sync {
    /// The stored answer for `origin`, if any.
    fn load(&self, origin: &str) -> Option<StoredRobots>;
    /// Keeps a fresh answer for `origin`.
    fn save(&self, origin: &str, answer: &StoredRobots);
}

impl std::fmt::Debug for dyn RobotsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RobotsStore")
    }
}

impl Default for FetcherBuilder {
    fn default() -> FetcherBuilder {
        FetcherBuilder {
            user_agent: String::new(),
            policy: GatePolicy::default(),
            max_body: 10 << 20,
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
            compression: true,
            headers: Vec::new(),
            proxy: None,
            robots_store: None,
            min_speed: None,
            cookies: false,
            follow_redirects: 0,
            dns_ttl: Duration::from_secs(300),
        }
    }
}

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
    /// Accept only these content types (prefix match, before any body is read). By
    /// default, any.
    pub fn content_types(mut self, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.content_types = Some(types.into_iter().map(|t| t.into().to_ascii_lowercase()).collect());
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
    /// [`Fetched::redirect_to`] for the caller to check, as a crawler wants.
    pub fn follow_redirects(mut self, max_hops: usize) -> Self {
        self.follow_redirects = max_hops;
        self
    }
    /// How long a DNS answer is reused. By default, 5 minutes; zero turns the cache off.
    pub fn dns_cache_ttl(mut self, ttl: Duration) -> Self {
        self.dns_ttl = ttl;
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
    /// [`Error::Config`] when the User-Agent is empty or the HTTP client cannot be
    /// built.
    pub fn build(self) -> Result<Fetcher, Error> {
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
        let mut client = reqwest::Client::builder()
            .cookie_store(self.cookies)
            .user_agent(self.user_agent.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .timeout(self.total_timeout)
            .pool_max_idle_per_host(self.policy.concurrency.max(1))
            .dns_resolver(FilteringResolver {
                allow_private: self.allow_private_ips,
                allowed: self.allowed_hosts.clone(),
                cache: dns.clone(),
            });
        if let Some(proxy) = &self.proxy {
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| Error::Config(format!("invalid proxy {proxy:?}: {e}")))?;
            client = client.proxy(proxy);
        }
        let client = client.build().map_err(|e| Error::Config(e.to_string()))?;
        Ok(Fetcher {
            inner: Arc::new(Inner {
                client,
                cfg: self,
                dns,
                gates: Mutex::new(HashMap::new()),
                robots: Mutex::new(HashMap::new()),
                robots_flights: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// The most host names the DNS cache holds; past it, expired entries go, and if that
/// is not enough, all of them.
const DNS_CACHE_MAX: usize = 16_384;

/// When a name was resolved, and to what.
type DnsEntry = (std::time::Instant, Arc<[SocketAddr]>);

/// Resolved addresses by host name, reused for a TTL.
struct DnsCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, DnsEntry>>,
    lookups: std::sync::atomic::AtomicU64,
}

impl DnsCache {
    fn new(ttl: Duration) -> DnsCache {
        DnsCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            lookups: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn get(&self, host: &str) -> Option<Arc<[SocketAddr]>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, addrs) = entries.get(host)?;
        (at.elapsed() < self.ttl).then(|| addrs.clone())
    }

    fn put(&self, host: String, addrs: Arc<[SocketAddr]>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= DNS_CACHE_MAX {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= DNS_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(host, (std::time::Instant::now(), addrs));
    }

    async fn resolve(&self, host: &str) -> std::io::Result<Arc<[SocketAddr]>> {
        if let Some(addrs) = self.get(host) {
            return Ok(addrs);
        }
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((host, 0)).await?.collect();
        self.put(host.to_string(), addrs.clone());
        Ok(addrs)
    }
}

/// A DNS resolver that drops special-purpose addresses (unless allowed), with a cache.
struct FilteringResolver {
    allow_private: bool,
    allowed: Vec<String>,
    cache: Arc<DnsCache>,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow = self.allow_private
            || self
                .allowed
                .iter()
                .any(|a| a == &host || a.split(':').next() == Some(&host));
        let cache = self.cache.clone();
        Box::pin(async move {
            let addrs = cache.resolve(&host).await?;
            let kept: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow || !is_special(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!("{host} resolves only to special-purpose addresses").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug, Clone)]
enum RobotsVerdict {
    Rules(Arc<Robots>),
    AllowAll,
    DisallowAll,
}

struct Inner {
    client: reqwest::Client,
    cfg: FetcherBuilder,
    dns: Arc<DnsCache>,
    gates: Mutex<HashMap<String, Arc<HostGate>>>,
    robots: Mutex<HashMap<String, (Instant, Duration, RobotsVerdict)>>,
    robots_flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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

/// How long a robots.txt that could not be read (5xx, 429, network error) disallows
/// its host before it is fetched again.
const ROBOTS_RETRY: Duration = Duration::from_secs(60);

/// The most redirects followed for robots.txt.
const ROBOTS_REDIRECTS: usize = 5;

fn origin(url: &Url) -> String {
    let mut o = url.origin().ascii_serialization();
    if o == "null" {
        o = url.as_str().to_string();
    }
    o
}

/// A `Retry-After` value: seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

impl Fetcher {
    /// A builder with every setting at its default.
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder::default()
    }

    /// How many DNS lookups were made (answers taken from the cache not counted).
    pub fn dns_lookups(&self) -> u64 {
        self.inner.dns.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The politeness gate of the host of `url`.
    pub fn gate(&self, url: &Url) -> Arc<HostGate> {
        let mut gates = self.inner.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(origin(url))
            .or_insert_with(|| Arc::new(HostGate::new(self.inner.cfg.policy)))
            .clone()
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

    /// The robots.txt verdict for `url`, without fetching the page itself.
    ///
    /// # Errors
    /// Only for an invalid URL; an unreachable robots.txt is a verdict (disallow).
    pub async fn allowed(&self, url: &str) -> Result<bool, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        if !self.inner.cfg.robots {
            return Ok(true);
        }
        Ok(match self.robots_for(&url).await {
            RobotsVerdict::AllowAll => true,
            RobotsVerdict::DisallowAll => url.path() == "/robots.txt",
            RobotsVerdict::Rules(r) => r.allowed(url.as_str()),
        })
    }

    /// The `Sitemap:` URLs of the robots.txt of `url`'s host (fetched if needed).
    ///
    /// # Errors
    /// Only for an invalid URL.
    pub async fn sitemaps(&self, url: &str) -> Result<Vec<String>, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        Ok(match self.robots_for(&url).await {
            RobotsVerdict::Rules(r) => r.sitemaps().to_vec(),
            _ => Vec::new(),
        })
    }

    fn cached_robots(&self, key: &str) -> Option<RobotsVerdict> {
        let cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .and_then(|(at, ttl, v)| (at.elapsed() < *ttl).then(|| v.clone()))
    }

    async fn robots_for(&self, url: &Url) -> RobotsVerdict {
        let key = origin(url);
        if let Some(v) = self.cached_robots(&key) {
            return v;
        }
        // One robots.txt request per origin: concurrent first requests wait for it.
        let flight = {
            let mut flights = self
                .inner
                .robots_flights
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let _turn = flight.lock().await;
        if let Some(v) = self.cached_robots(&key) {
            return v;
        }
        // A stored answer that is still fresh saves the request (a resumed crawl does
        // not fetch a fresh robots.txt again).
        let stored = self
            .inner
            .cfg
            .robots_store
            .as_ref()
            .and_then(|s| s.load(&key))
            .and_then(|answer| {
                let age = SystemTime::now()
                    .duration_since(answer.fetched_at)
                    .unwrap_or(Duration::ZERO);
                let (verdict, ttl) = self.verdict_of(&answer);
                (age < ttl).then(|| (verdict, ttl - age))
            });
        let (verdict, ttl) = match stored {
            Some(v) => v,
            None => {
                let answer = self.fetch_robots(url).await;
                if let Some(store) = &self.inner.cfg.robots_store {
                    store.save(&key, &answer);
                }
                self.verdict_of(&answer)
            }
        };
        if let RobotsVerdict::Rules(r) = &verdict {
            self.gate(url).set_crawl_delay(r.crawl_delay());
        }
        let mut cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), (Instant::now(), ttl, verdict.clone()));
        drop(cache);
        self.inner
            .robots_flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        verdict
    }

    /// Fetches the robots.txt of `page`'s host, following up to 5 redirects, and
    /// returns the final status (0: unreachable) and body.
    async fn fetch_robots(&self, page: &Url) -> StoredRobots {
        let answer = |status: u16, body: Vec<u8>| StoredRobots {
            status,
            fetched_at: SystemTime::now(),
            body,
        };
        let Ok(mut url) = page.join("/robots.txt") else {
            return answer(404, Vec::new());
        };
        for _ in 0..=ROBOTS_REDIRECTS {
            if self.check_address(&url).is_err() {
                return answer(0, Vec::new());
            }
            let gate = self.gate(&url);
            let permit = gate.acquire().await;
            let Ok(resp) = self.inner.client.get(url.clone()).send().await else {
                return answer(0, Vec::new());
            };
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                drop(permit);
                match next {
                    Some(n) => {
                        url = n;
                        continue;
                    }
                    None => return answer(404, Vec::new()),
                }
            }
            if status >= 400 {
                return answer(status, Vec::new());
            }
            let body = self
                .read_body(&url, resp, crate::robots::MAX_ROBOTS_BYTES as u64, true)
                .await;
            drop(permit);
            return match body {
                Ok((bytes, _)) => answer(status, bytes),
                Err(_) => answer(0, Vec::new()),
            };
        }
        // Too many redirects: RFC 9309 treats that like an unavailable file.
        answer(404, Vec::new())
    }

    /// The verdict of a robots.txt answer, and how long it stays valid.
    fn verdict_of(&self, answer: &StoredRobots) -> (RobotsVerdict, Duration) {
        match answer.status {
            200..=299 => (
                RobotsVerdict::Rules(Arc::new(Robots::parse(&answer.body, &self.inner.cfg.user_agent))),
                self.inner.cfg.robots_ttl,
            ),
            429 | 500.. | 0 => (RobotsVerdict::DisallowAll, ROBOTS_RETRY),
            _ => (RobotsVerdict::AllowAll, self.inner.cfg.robots_ttl),
        }
    }

    /// Reads a body under the caps. With `keep_prefix`, hitting the size cap keeps what
    /// was read (robots.txt is read up to 500 KiB and the rest ignored).
    async fn read_body(
        &self,
        url: &Url,
        mut resp: reqwest::Response,
        max_body: u64,
        keep_prefix: bool,
    ) -> Result<(Vec<u8>, u64), Error> {
        let encoding = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map_or(Some(ContentEncoding::Identity), ContentEncoding::from_header)
            .ok_or_else(|| Error::Body {
                url: url.clone(),
                detail: "unsupported content-encoding".into(),
            })?;
        let mut dec =
            BodyDecoder::new(encoding, max_body, self.inner.cfg.max_ratio).map_err(|e| Error::Body {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let started = Instant::now();
        loop {
            let next = resp.chunk();
            let result = match self.inner.cfg.min_speed {
                // The next byte must arrive before the average would fall under the
                // minimum (and never before the grace period is over).
                Some((min, grace)) => {
                    let need = Duration::from_secs_f64((dec.wire_bytes() as f64 + 1.0) / min.max(1) as f64);
                    match tokio::time::timeout_at(started + need.max(grace), next).await {
                        Ok(r) => r,
                        Err(_) => {
                            return Err(Error::TooSlow {
                                url: url.clone(),
                                min_bytes_per_sec: min,
                            });
                        }
                    }
                }
                None => next.await,
            };
            let chunk = match result {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Error::Timeout { url: url.clone() }),
                Err(e) => {
                    return Err(Error::Request {
                        url: url.clone(),
                        source: e,
                    });
                }
            };
            match dec.push(&chunk) {
                Ok(()) => {}
                Err(BodyError::TooLarge { .. }) if keep_prefix => {
                    let wire = dec.wire_bytes();
                    return Ok((dec.into_prefix(), wire));
                }
                Err(BodyError::TooLarge { limit } | BodyError::Ratio { limit }) => {
                    return Err(Error::TooLarge {
                        url: url.clone(),
                        limit,
                    });
                }
                Err(BodyError::Corrupt(detail)) => {
                    return Err(Error::Body {
                        url: url.clone(),
                        detail,
                    });
                }
            }
        }
        let wire = dec.wire_bytes();
        let body = dec.finish().map_err(|e| match e {
            BodyError::TooLarge { limit } | BodyError::Ratio { limit } => Error::TooLarge {
                url: url.clone(),
                limit,
            },
            BodyError::Corrupt(detail) => Error::Body {
                url: url.clone(),
                detail,
            },
        })?;
        Ok((body, wire))
    }

    /// Fetches `url` politely: robots.txt, the host's gate, timeouts, caps and
    /// retries. Redirects are not followed: a 3xx comes back with
    /// [`Fetched::redirect_to`] for the caller to check and fetch.
    ///
    /// # Errors
    /// See [`Error`]: every failure names its URL and kind.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, Error> {
        self.fetch_conditional(url, &Validators::default()).await
    }

    /// Like [`Fetcher::fetch`], with a conditional GET: `If-None-Match` and
    /// `If-Modified-Since` from `validators`. A `304 Not Modified` comes back as a
    /// [`Fetched`] with status 304 and an empty body ([`Fetched::not_modified`]).
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_conditional(&self, url: &str, validators: &Validators) -> Result<Fetched, Error> {
        let span = tracing::debug_span!("fetch", url = %url, host = tracing::field::Empty, status = tracing::field::Empty, attempts = tracing::field::Empty, ms = tracing::field::Empty);
        let result =
            tracing::Instrument::instrument(self.fetch_following(url, validators), span.clone()).await;
        match &result {
            Ok(f) => {
                span.record("status", f.status);
                span.record("attempts", f.attempts);
                span.record("ms", f.timings.total.as_millis() as u64);
                tracing::debug!(parent: &span, status = f.status, bytes = f.body_bytes, "fetched");
            }
            Err(e) => tracing::debug!(parent: &span, kind = e.kind(), error = %e, "fetch failed"),
        }
        result
    }

    /// [`Fetcher::fetch_one`], then each redirect hop through the same, when following.
    async fn fetch_following(&self, url: &str, validators: &Validators) -> Result<Fetched, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        tracing::Span::current().record("host", url.host_str().unwrap_or(""));
        let mut fetched = self.fetch_one(url.clone(), validators).await?;
        let max = self.inner.cfg.follow_redirects;
        if max == 0 {
            return Ok(fetched);
        }
        let mut chain: Vec<Url> = Vec::new();
        let mut attempts = fetched.attempts;
        while let Some(next) = fetched.redirect_to.take() {
            if chain.len() >= max || next == url || chain.contains(&next) {
                return Err(Error::TooManyRedirects {
                    url,
                    hops: chain.len(),
                });
            }
            tracing::debug!(from = %fetched.final_url, to = %next, "following a redirect");
            chain.push(next.clone());
            fetched = self.fetch_one(next, &Validators::default()).await?;
            attempts += fetched.attempts;
        }
        fetched.url = url;
        fetched.redirects = chain;
        fetched.attempts = attempts;
        Ok(fetched)
    }

    /// One URL, no redirects followed: robots, address checks, the gate, retries.
    async fn fetch_one(&self, url: Url, validators: &Validators) -> Result<Fetched, Error> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidUrl { url: url.to_string() });
        }
        self.check_address(&url)?;
        if self.inner.cfg.robots && url.path() != "/robots.txt" {
            let ok = match self.robots_for(&url).await {
                RobotsVerdict::AllowAll => true,
                RobotsVerdict::DisallowAll => return Err(Error::RobotsUnavailable { url }),
                RobotsVerdict::Rules(r) => r.allowed(url.as_str()),
            };
            if !ok {
                return Err(Error::RobotsDenied { url });
            }
        }
        let gate = self.gate(&url);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let queued_at = Instant::now();
            let permit = gate.acquire().await;
            let queued = queued_at.elapsed();
            let sent_at = Instant::now();
            let mut request = self.inner.client.get(url.clone());
            if let Some(etag) = &validators.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
            let result = request.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    let timeout = e.is_timeout();
                    let wait = gate.cool_down(None);
                    if attempts < self.inner.cfg.max_attempts {
                        tracing::debug!(attempt = attempts, error = %e, ?wait, "retrying after a failed request");
                        continue;
                    }
                    return Err(if timeout {
                        Error::Timeout { url }
                    } else if e.is_connect() && format!("{e:?}").contains("special-purpose") {
                        Error::Forbidden { url }
                    } else {
                        Error::Request { url, source: e }
                    });
                }
            };
            let first_byte = sent_at.elapsed();
            let status = resp.status().as_u16();
            let remote_addr = resp.remote_addr();
            if let Some(addr) = remote_addr
                && is_special(addr.ip())
            {
                self.check_address(&url)?;
                if !self.inner.cfg.allow_private_ips
                    && url.host_str().is_some_and(|h| h.parse::<IpAddr>().is_err())
                {
                    return Err(Error::Forbidden { url });
                }
            }
            if status == 429 || status == 503 || status == 408 || (status >= 500 && status != 501) {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                drop(permit);
                let wait = gate.cool_down(retry_after);
                if attempts < self.inner.cfg.max_attempts {
                    tracing::debug!(
                        attempt = attempts,
                        status,
                        ?wait,
                        "retrying after a retryable status"
                    );
                    continue;
                }
                return Err(Error::Status {
                    url,
                    status,
                    attempts,
                });
            }
            let headers = resp.headers().clone();
            let content_type = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            if let (Some(allowed), true) = (&self.inner.cfg.content_types, (200..300).contains(&status)) {
                let ct = content_type.clone().unwrap_or_default().to_ascii_lowercase();
                if !allowed.iter().any(|a| ct.starts_with(a.as_str())) {
                    return Err(Error::ContentType {
                        url,
                        content_type: ct,
                    });
                }
            }
            let redirect_to = if (300..400).contains(&status) {
                headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
            } else {
                None
            };
            let read = self.read_body(&url, resp, self.inner.cfg.max_body, false).await;
            drop(permit);
            let (body, wire_bytes) = match read {
                Ok(b) => b,
                Err(Error::Timeout { url }) if attempts < self.inner.cfg.max_attempts => {
                    let _ = url;
                    gate.cool_down(None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            gate.succeeded();
            let body_bytes = body.len() as u64;
            return Ok(Fetched {
                final_url: url.clone(),
                url,
                status,
                headers,
                body: Bytes::from(body),
                content_type,
                redirect_to,
                redirects: Vec::new(),
                timings: Timings {
                    queued,
                    first_byte,
                    total: sent_at.elapsed(),
                },
                wire_bytes,
                body_bytes,
                attempts,
                remote_addr,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&soon).expect("a date");
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_user_agent_is_required() {
        assert!(matches!(Fetcher::builder().build(), Err(Error::Config(_))));
    }
}
