//! [`Fetcher`]: polite, pooled fetching on reqwest, with the rule sets of this crate
//! around every request.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::accept::AcceptTypes;
use crate::body::{BodyDecoder, BodyError, ContentEncoding};
use crate::gate::{GatePolicy, HostGate, HostPermit};
use crate::memory::{BodyMemory, MemoryReservation};
use crate::net::{DisplayChain, DnsCache, FilteringResolver, classify_send_error, protocol_name, tls_config};
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
    /// says to disallow everything for now; it is fetched again after a minute. A TLS
    /// failure or a refused address on the way is reported as itself instead
    /// ([`Error::Tls`], [`Error::Forbidden`]): trying again would not help.
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
    /// The TLS handshake failed: the certificate is not trusted, has expired or names
    /// another host, or the handshake itself broke. Permanent: trying again with the
    /// same settings fails the same way (see [`FetcherBuilder::ca_cert`]). Also the
    /// error of a page whose host's robots.txt could not be fetched for this reason.
    #[error("{url}: tls handshake failed: {detail}")]
    Tls {
        /// The URL.
        url: Url,
        /// rustls's description of the failure, such as
        /// `invalid peer certificate: UnknownIssuer`.
        detail: String,
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
    /// A request claimed with [`HostGate::try_acquire`] was not sent, because the host
    /// began a cool-down after the claim (a 429 or 503 to another of its requests).
    /// Nothing went out; try again once the cool-down is over. Waiting it out here
    /// would hold the caller's slot for up to the longest cool-down.
    #[error("{url} was not sent: the host began a cool-down of {wait:?} after the request was claimed")]
    CoolingDown {
        /// The URL.
        url: Url,
        /// What is left of the cool-down.
        wait: Duration,
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
    /// Whether trying the same URL again later may succeed: a timeout, a body slower
    /// than the minimum speed, a failed connection or exchange, a retryable status
    /// (5xx, 408, 429), or an unreadable robots.txt. Everything else (robots rules, a
    /// 4xx, a cap, a TLS failure, a refused address, a bad URL) fails the same way
    /// again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::TooSlow { .. }
            | Error::Request { .. }
            | Error::RobotsUnavailable { .. }
            | Error::CoolingDown { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
    /// Whether the failure is a sign that the host itself is failing (down, overloaded
    /// or misconfigured), as opposed to one URL being wrong: a timeout, a too-slow
    /// body, a failed connection or exchange, a 5xx, an unreadable robots.txt, or a
    /// TLS failure. A crawler counts these to give up on a dead host.
    pub fn counts_against_host(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::TooSlow { .. }
            | Error::Request { .. }
            | Error::RobotsUnavailable { .. }
            | Error::Tls { .. } => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
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
            | Error::Tls { url, .. }
            | Error::TooManyRedirects { url, .. }
            | Error::CoolingDown { url, .. }
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
            Error::Tls { .. } => "tls",
            Error::TooManyRedirects { .. } => "too-many-redirects",
            Error::CoolingDown { .. } => "cooling-down",
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
    /// The body after decompression, capped. Empty when [`Fetched::body_skipped`].
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
    /// The HTTP version the response came over, as its ALPN name: `"h2"`,
    /// `"http/1.1"` or `"http/1.0"` (HTTP/2 is negotiated over TLS only).
    pub protocol: &'static str,
    /// This body's share of the fetcher's body-memory budget, when it has one
    /// ([`FetcherBuilder::body_memory`]): hold it while the body is held.
    pub memory: Option<MemoryReservation>,
    /// Whether the body was left unread because its `Content-Type` is not in the
    /// request's [`AcceptTypes`] ([`FetcherBuilder::accept`],
    /// [`RequestOptions::accept`]). The response was dropped after its headers, so
    /// `body` is empty and `wire_bytes` and `body_bytes` are 0; `status`, `headers`
    /// and `content_type` are as received.
    pub body_skipped: bool,
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

/// Settings of one request, for [`Fetcher::fetch_with`] and
/// [`Fetcher::fetch_claimed_with`]; what is not set here follows the builder.
///
/// ```no_run
/// # async fn demo(fetcher: trawl_fetcher::Fetcher) -> Result<(), trawl_fetcher::Error> {
/// use trawl_fetcher::{AcceptTypes, RequestOptions};
/// let options = RequestOptions::new().accept(AcceptTypes::sitemaps());
/// let sitemap = fetcher.fetch_with("https://example.com/sitemap.xml.gz", &options).await?;
/// assert!(!sitemap.body_skipped || sitemap.content_type.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RequestOptions {
    validators: Validators,
    accept: Option<AcceptTypes>,
}

impl RequestOptions {
    /// Options that change nothing: the request goes out as [`Fetcher::fetch`] sends it.
    pub fn new() -> RequestOptions {
        RequestOptions::default()
    }

    /// Makes the request a conditional GET, as [`Fetcher::fetch_conditional`]. Only
    /// the first request carries them: a redirect hop that
    /// [`FetcherBuilder::follow_redirects`] follows is another URL. By default, none.
    pub fn validators(mut self, validators: Validators) -> RequestOptions {
        self.validators = validators;
        self
    }

    /// The bodies this request reads, instead of [`FetcherBuilder::accept`]'s; it
    /// also applies to the redirect hops that [`FetcherBuilder::follow_redirects`]
    /// follows. By default, the builder's.
    pub fn accept(mut self, types: AcceptTypes) -> RequestOptions {
        self.accept = Some(types);
        self
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
    body_memory: Option<u64>,
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
    accept: AcceptTypes,
    compression: bool,
    headers: Vec<(String, String)>,
    proxy: Option<String>,
    robots_store: Option<Arc<dyn RobotsStore>>,
    min_speed: Option<(u64, Duration)>,
    cookies: bool,
    follow_redirects: usize,
    dns_ttl: Duration,
    /// Extra trusted CA certificates, PEM, as given to [`FetcherBuilder::ca_cert`].
    ca_certs: Vec<Vec<u8>>,
    /// Addresses given with [`FetcherBuilder::resolve`]: `(host, port)` and its
    /// addresses, in the order given.
    resolves: Vec<((String, u16), Vec<IpAddr>)>,
    /// [`FetcherBuilder::host_cache_capacity`].
    host_cache: usize,
    /// [`FetcherBuilder::pool_idle_timeout`].
    pool_idle: Duration,
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
    /// keeps it as [`Fetched::memory`] until the caller drops that. By default, none:
    /// every fetch reads its body at once. See [`MemoryReservation`] for the rules.
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
    /// [`Fetched::body_skipped`] set, its body unread and its connection closed. It
    /// applies to every status, and a response without a `Content-Type` is always
    /// read (see [`AcceptTypes`]). One request can ask for other types with
    /// [`RequestOptions::accept`]. A crawler that parses only HTML passes
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
            }),
        })
    }
}

/// What robots.txt says about a host's pages.
#[derive(Debug, Clone)]
enum RobotsVerdict {
    Rules(Arc<Robots>),
    AllowAll,
    /// A 5xx or a 429: RFC 9309 says to disallow everything for now.
    DisallowAll,
    /// No HTTP answer (connection failure, timeout, refused address, broken body):
    /// disallow everything as well, kept apart so [`Fetcher::probe`] can tell that
    /// no answer came.
    Unreachable,
    /// The TLS handshake failed: the host's pages fail with [`Error::Tls`], which
    /// says what to fix, instead of [`Error::RobotsUnavailable`].
    Tls(Arc<str>),
    /// The host's own name resolves only to special-purpose addresses: its pages fail
    /// with [`Error::Forbidden`], which is what is wrong, and not worth retrying.
    Forbidden,
}

/// A robots.txt verdict, and for the caller that fetched it, how the fetch went.
struct RobotsOutcome {
    verdict: RobotsVerdict,
    /// Whether this call sent the robots.txt request (not a cache or store hit).
    fetched: bool,
    /// Why no answer came, for the caller that fetched it.
    failure: Option<Error>,
}

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
}

/// The per-host gates, bounded by [`FetcherBuilder::host_cache_capacity`]. Past it,
/// every new gate looks at the [`GATE_EVICT_STEP`] oldest in `order`: one at rest
/// that nobody holds is dropped (that loses nothing: a new gate for the host
/// behaves the same, see [`HostGate::is_at_rest`]), the others go to the back. So
/// eviction keeps pace with new hosts at O(1) per gate, and never takes a gate that
/// still holds its host back.
#[derive(Default)]
struct Gates {
    map: HashMap<String, Arc<HostGate>>,
    /// The keys of `map`, oldest (or longest since looked at) first.
    order: VecDeque<String>,
}

/// Gates looked at per new gate once the map is full.
const GATE_EVICT_STEP: usize = 4;

impl Gates {
    fn evict_some(&mut self, capacity: usize) {
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
struct RobotsSlot {
    at: Instant,
    ttl: Duration,
    verdict: RobotsVerdict,
    used: u64,
}

/// The robots.txt verdicts in memory, bounded by
/// [`FetcherBuilder::host_cache_capacity`]: past it, expired verdicts and then the
/// half used least recently are dropped (a [`RobotsStore`] answers for them again).
#[derive(Default)]
struct RobotsCache {
    map: HashMap<String, RobotsSlot>,
    tick: u64,
}

impl RobotsCache {
    fn get(&mut self, key: &str) -> Option<RobotsVerdict> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(key)?;
        slot.used = tick;
        (slot.at.elapsed() < slot.ttl).then(|| slot.verdict.clone())
    }

    /// The Crawl-delay of a cached verdict, without counting a use.
    fn crawl_delay(&self, key: &str) -> Option<f64> {
        match &self.map.get(key)?.verdict {
            RobotsVerdict::Rules(r) => r.crawl_delay(),
            _ => None,
        }
    }

    fn insert(&mut self, key: String, ttl: Duration, verdict: RobotsVerdict, capacity: usize) {
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

    /// Bytes that bodies grew past their body-memory reservations while the budget
    /// was full ([`FetcherBuilder::body_memory`]); 0 without a budget.
    pub fn memory_overdrawn(&self) -> u64 {
        self.inner.memory.as_ref().map_or(0, |m| m.overdrawn())
    }

    /// How many DNS lookups were made (answers taken from the cache not counted).
    pub fn dns_lookups(&self) -> u64 {
        self.inner.dns.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The politeness gate of the host of `url`. One gate per origin while it is
    /// in use: a gate is dropped from memory only when it is at rest (see
    /// [`FetcherBuilder::host_cache_capacity`]) and no one holds it, and a new one
    /// takes the Crawl-delay of the host's cached robots.txt, so a host's rules hold
    /// across its gates.
    pub fn gate(&self, url: &Url) -> Arc<HostGate> {
        let key = origin(url);
        if let Some(g) = self.lock_gates().map.get(&key) {
            return g.clone();
        }
        // Read before the gates' lock is taken again: never both locks at once.
        let crawl_delay = self
            .inner
            .robots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .crawl_delay(&key);
        let mut gates = self.lock_gates();
        if let Some(g) = gates.map.get(&key) {
            return g.clone();
        }
        gates.evict_some(self.inner.cfg.host_cache);
        let gate = HostGate::new(self.inner.cfg.policy);
        gate.set_crawl_delay(crawl_delay);
        let gate = Arc::new(gate);
        gates.order.push_back(key.clone());
        gates.map.insert(key, gate.clone());
        gate
    }

    fn lock_gates(&self) -> std::sync::MutexGuard<'_, Gates> {
        self.inner.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many hosts' gates are in memory (see
    /// [`FetcherBuilder::host_cache_capacity`]).
    pub fn gates_in_memory(&self) -> usize {
        self.lock_gates().map.len()
    }

    /// How many hosts' robots.txt verdicts are in memory (see
    /// [`FetcherBuilder::host_cache_capacity`]).
    pub fn robots_in_memory(&self) -> usize {
        self.inner
            .robots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
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

    /// The robots.txt verdict for `url`, without fetching the page itself.
    ///
    /// # Errors
    /// Only for an invalid URL; an unreachable robots.txt is a verdict (disallow).
    pub async fn allowed(&self, url: &str) -> Result<bool, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        if !self.inner.cfg.robots {
            return Ok(true);
        }
        Ok(match self.robots_for(&url, false).await.verdict {
            RobotsVerdict::AllowAll => true,
            RobotsVerdict::DisallowAll
            | RobotsVerdict::Unreachable
            | RobotsVerdict::Tls(_)
            | RobotsVerdict::Forbidden => url.path() == "/robots.txt",
            RobotsVerdict::Rules(r) => r.allowed(url.as_str()),
        })
    }

    /// The `Sitemap:` URLs of the robots.txt of `url`'s host (fetched if needed).
    ///
    /// # Errors
    /// Only for an invalid URL.
    pub async fn sitemaps(&self, url: &str) -> Result<Vec<String>, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        Ok(match self.robots_for(&url, false).await.verdict {
            RobotsVerdict::Rules(r) => r.sitemaps().to_vec(),
            _ => Vec::new(),
        })
    }

    /// Checks that `url`'s host can be reached with this fetcher's settings (address
    /// checks, resolver, TLS trust, timeouts), as a crawler's preflight for a seed. It
    /// fetches the host's robots.txt through the usual path, so the answer is cached
    /// (and given to the [`RobotsStore`]) and the first page does not fetch it again;
    /// a cached "no answer" is not trusted, so the error says why now. Any HTTP answer,
    /// a 404 or a 503 included, is `Ok`. With robots.txt off it sends one `HEAD`
    /// request to `url` instead. Either way the request waits for the host's time
    /// rules and rate, but takes no request slot.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]; [`Error::Forbidden`] for a special-purpose address;
    /// [`Error::Tls`], [`Error::Timeout`] or [`Error::Request`] when the host could
    /// not be reached or spoken to.
    pub async fn probe(&self, url: &str) -> Result<(), Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidUrl { url: url.to_string() });
        }
        self.check_address(&url)?;
        if !self.inner.cfg.robots {
            self.gate(&url).acquire_start().await;
            return match self.client(&url).head(url.clone()).send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(classify_send_error(url, e)),
            };
        }
        let outcome = self.robots_for(&url, true).await;
        match (outcome.failure, outcome.verdict) {
            // A body that broke off or could not be decoded still came from a
            // server that answered.
            (Some(Error::Body { .. } | Error::TooLarge { .. }), _) => Ok(()),
            (Some(e), _) => Err(e),
            // Named like a fresh failure: by the request that failed.
            (None, RobotsVerdict::Tls(detail)) => Err(Error::Tls {
                url: url.join("/robots.txt").unwrap_or(url),
                detail: detail.to_string(),
            }),
            (None, RobotsVerdict::Forbidden) => Err(Error::Forbidden {
                url: url.join("/robots.txt").unwrap_or(url),
            }),
            (None, _) => Ok(()),
        }
    }

    fn cached_robots(&self, key: &str) -> Option<RobotsVerdict> {
        let mut cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key)
    }

    /// The robots.txt verdict for `url`'s origin: from the memory cache, the store,
    /// or a fetch. With `refresh_unreachable`, a cached "no answer" is not trusted
    /// and robots.txt is fetched again, so that the caller learns why.
    async fn robots_for(&self, url: &Url, refresh_unreachable: bool) -> RobotsOutcome {
        let cached = |v: RobotsVerdict| RobotsOutcome {
            verdict: v,
            fetched: false,
            failure: None,
        };
        let usable = |v: &RobotsVerdict| !(refresh_unreachable && matches!(v, RobotsVerdict::Unreachable));
        let key = origin(url);
        if let Some(v) = self.cached_robots(&key).filter(usable) {
            return cached(v);
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
        if let Some(v) = self.cached_robots(&key).filter(usable) {
            return cached(v);
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
                (age < ttl && usable(&verdict)).then(|| (verdict, ttl - age))
            });
        let (verdict, ttl, fetched, failure) = match stored {
            Some((verdict, ttl)) => (verdict, ttl, false, None),
            None => match self.fetch_robots(url).await {
                Ok(answer) => {
                    if let Some(store) = &self.inner.cfg.robots_store {
                        store.save(&key, &answer);
                    }
                    let (verdict, ttl) = self.verdict_of(&answer);
                    (verdict, ttl, true, None)
                }
                // Not stored: whether a certificate is trusted depends on this
                // fetcher's settings (a CA added next run fixes it), not on the host.
                Err(Error::Tls { detail, .. }) => {
                    (RobotsVerdict::Tls(detail.into()), ROBOTS_RETRY, true, None)
                }
                // Not stored either, for the same reason (`allow_host`). Only for the
                // host's own robots.txt: a redirect to a refused address elsewhere
                // leaves this host's robots.txt merely unavailable.
                Err(Error::Forbidden { url: refused }) if origin(&refused) == key => {
                    (RobotsVerdict::Forbidden, ROBOTS_RETRY, true, None)
                }
                Err(e) => {
                    // Stored as status 0, so a resumed crawl also waits out the minute.
                    let answer = StoredRobots {
                        status: 0,
                        fetched_at: SystemTime::now(),
                        body: Vec::new(),
                    };
                    if let Some(store) = &self.inner.cfg.robots_store {
                        store.save(&key, &answer);
                    }
                    (RobotsVerdict::Unreachable, ROBOTS_RETRY, true, Some(e))
                }
            },
        };
        if let RobotsVerdict::Rules(r) = &verdict {
            self.gate(url).set_crawl_delay(r.crawl_delay());
        }
        let mut cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), ttl, verdict.clone(), self.inner.cfg.host_cache);
        drop(cache);
        self.inner
            .robots_flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        RobotsOutcome {
            verdict,
            fetched,
            failure,
        }
    }

    /// Fetches the robots.txt of `page`'s host, following up to 5 redirects: the
    /// final status and body, or why no HTTP answer came. The requests wait for each
    /// host's time rules and rate but take no request slot: the page request waiting
    /// for this answer may hold the host's only slot.
    async fn fetch_robots(&self, page: &Url) -> Result<StoredRobots, Error> {
        let answer = |status: u16, body: Vec<u8>| StoredRobots {
            status,
            fetched_at: SystemTime::now(),
            body,
        };
        let Ok(mut url) = page.join("/robots.txt") else {
            return Ok(answer(404, Vec::new()));
        };
        for _ in 0..=ROBOTS_REDIRECTS {
            self.check_address(&url)?;
            self.gate(&url).acquire_start().await;
            let resp = match self.client(&url).get(url.clone()).send().await {
                Ok(resp) => resp,
                Err(e) => return Err(classify_send_error(url, e)),
            };
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                match next {
                    Some(n) => {
                        url = n;
                        continue;
                    }
                    None => return Ok(answer(404, Vec::new())),
                }
            }
            if status >= 400 {
                return Ok(answer(status, Vec::new()));
            }
            let (bytes, _) = self
                .read_body(&url, resp, crate::robots::MAX_ROBOTS_BYTES as u64, true, None)
                .await?;
            return Ok(answer(status, bytes));
        }
        // Too many redirects: RFC 9309 treats that like an unavailable file.
        Ok(answer(404, Vec::new()))
    }

    /// The verdict of a robots.txt answer, and how long it stays valid.
    fn verdict_of(&self, answer: &StoredRobots) -> (RobotsVerdict, Duration) {
        match answer.status {
            200..=299 => (
                RobotsVerdict::Rules(Arc::new(Robots::parse(&answer.body, &self.inner.cfg.user_agent))),
                self.inner.cfg.robots_ttl,
            ),
            0 => (RobotsVerdict::Unreachable, ROBOTS_RETRY),
            429 | 500.. => (RobotsVerdict::DisallowAll, ROBOTS_RETRY),
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
        mut memory: Option<&mut MemoryReservation>,
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
                Err(e) => return Err(classify_send_error(url.clone(), e)),
            };
            let pushed = dec.push(&chunk);
            if let Some(m) = memory.as_deref_mut() {
                m.grow_to(dec.decoded_bytes());
            }
            match pushed {
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
        if let Some(m) = memory {
            // A decoder may hold output back until the end.
            m.grow_to(body.len() as u64);
        }
        Ok((body, wire))
    }

    /// Fetches `url` politely: robots.txt, the host's gate, timeouts, caps and
    /// retries. Redirects are not followed: a 3xx comes back with
    /// [`Fetched::redirect_to`] for the caller to check and fetch.
    ///
    /// # Errors
    /// See [`Error`]: every failure names its URL and kind.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, Error> {
        self.fetch_traced(url, &RequestOptions::default(), None).await
    }

    /// Like [`Fetcher::fetch`], with per-request settings ([`RequestOptions`]): a
    /// conditional GET, other accepted body types.
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_with(&self, url: &str, options: &RequestOptions) -> Result<Fetched, Error> {
        self.fetch_traced(url, options, None).await
    }

    /// Like [`Fetcher::fetch`], with a conditional GET: `If-None-Match` and
    /// `If-Modified-Since` from `validators`. A `304 Not Modified` comes back as a
    /// [`Fetched`] with status 304 and an empty body ([`Fetched::not_modified`]).
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_conditional(&self, url: &str, validators: &Validators) -> Result<Fetched, Error> {
        let options = RequestOptions::new().validators(validators.clone());
        self.fetch_traced(url, &options, None).await
    }

    /// Like [`Fetcher::fetch`], for a request whose start was already claimed with
    /// `fetcher.gate(&url).try_acquire()`: the first attempt goes out under `permit`
    /// instead of waiting in [`HostGate::acquire`], so a scheduler that claims
    /// without blocking keeps no spacing of its own. When a cool-down began after the
    /// claim (a 429 to another request, say), nothing is sent and it returns
    /// [`Error::CoolingDown`]; when this call had to fetch the host's robots.txt first,
    /// it waits for the time rules again so that the two requests are spaced too.
    /// Retries acquire as usual.
    ///
    /// # Errors
    /// As [`Fetcher::fetch`], and [`Error::CoolingDown`].
    pub async fn fetch_claimed(&self, url: &str, permit: HostPermit) -> Result<Fetched, Error> {
        self.fetch_traced(url, &RequestOptions::default(), Some(permit))
            .await
    }

    /// [`Fetcher::fetch_claimed`] with per-request settings, as
    /// [`Fetcher::fetch_with`].
    ///
    /// # Errors
    /// As [`Fetcher::fetch_claimed`].
    pub async fn fetch_claimed_with(
        &self,
        url: &str,
        permit: HostPermit,
        options: &RequestOptions,
    ) -> Result<Fetched, Error> {
        self.fetch_traced(url, options, Some(permit)).await
    }

    /// [`Fetcher::fetch_claimed`] with a conditional GET, as
    /// [`Fetcher::fetch_conditional`].
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_claimed_conditional(
        &self,
        url: &str,
        validators: &Validators,
        permit: HostPermit,
    ) -> Result<Fetched, Error> {
        let options = RequestOptions::new().validators(validators.clone());
        self.fetch_traced(url, &options, Some(permit)).await
    }

    /// A fetch in its `tracing` span, with the outcome logged.
    async fn fetch_traced(
        &self,
        url: &str,
        options: &RequestOptions,
        permit: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        let span = tracing::debug_span!("fetch", url = %url, host = tracing::field::Empty, status = tracing::field::Empty, attempts = tracing::field::Empty, ms = tracing::field::Empty);
        let result =
            tracing::Instrument::instrument(self.fetch_following(url, options, permit), span.clone()).await;
        match &result {
            Ok(f) => {
                span.record("status", f.status);
                span.record("attempts", f.attempts);
                span.record("ms", f.timings.total.as_millis() as u64);
                tracing::debug!(parent: &span, status = f.status, bytes = f.body_bytes, body_skipped = f.body_skipped, "fetched");
            }
            Err(e) => tracing::debug!(parent: &span, kind = e.kind(), error = %e, "fetch failed"),
        }
        result
    }

    /// [`Fetcher::fetch_one`], then each redirect hop through the same, when following.
    async fn fetch_following(
        &self,
        url: &str,
        options: &RequestOptions,
        permit: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        tracing::Span::current().record("host", url.host_str().unwrap_or(""));
        let accept = options.accept.as_ref().unwrap_or(&self.inner.cfg.accept);
        let mut fetched = self
            .fetch_one(url.clone(), &options.validators, accept, permit)
            .await?;
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
            fetched = self.fetch_one(next, &Validators::default(), accept, None).await?;
            attempts += fetched.attempts;
        }
        fetched.url = url;
        fetched.redirects = chain;
        fetched.attempts = attempts;
        Ok(fetched)
    }

    /// One URL, no redirects followed: robots, address checks, the gate, retries; the
    /// body is read only when `accept` takes its type. `claimed` is a permit of the
    /// URL's host claimed by the caller, for the first attempt.
    async fn fetch_one(
        &self,
        url: Url,
        validators: &Validators,
        accept: &AcceptTypes,
        mut claimed: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidUrl { url: url.to_string() });
        }
        self.check_address(&url)?;
        let mut robots_fetched = false;
        if self.inner.cfg.robots && url.path() != "/robots.txt" {
            let outcome = self.robots_for(&url, false).await;
            robots_fetched = outcome.fetched;
            let ok = match outcome.verdict {
                RobotsVerdict::AllowAll => true,
                RobotsVerdict::DisallowAll | RobotsVerdict::Unreachable => {
                    return Err(Error::RobotsUnavailable { url });
                }
                RobotsVerdict::Tls(detail) => {
                    return Err(Error::Tls {
                        url,
                        detail: detail.to_string(),
                    });
                }
                RobotsVerdict::Forbidden => return Err(Error::Forbidden { url }),
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
            let permit = match claimed.take() {
                Some(permit) => {
                    let cooling = gate.snapshot().cool_down;
                    if !cooling.is_zero() {
                        return Err(Error::CoolingDown { url, wait: cooling });
                    }
                    if robots_fetched {
                        // The robots.txt request used the start this claim was for.
                        gate.acquire_start().await;
                    }
                    permit
                }
                None => gate.acquire().await,
            };
            let queued = queued_at.elapsed();
            let sent_at = Instant::now();
            let mut request = self.client(&url).get(url.clone());
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
                    let err = classify_send_error(url.clone(), e);
                    // Trying again fails the same way: no retry, and no cool-down
                    // that would hold back the host's other URLs for nothing.
                    if matches!(err, Error::Tls { .. } | Error::Forbidden { .. }) {
                        return Err(err);
                    }
                    let wait = gate.cool_down(None);
                    if attempts < self.inner.cfg.max_attempts {
                        tracing::debug!(attempt = attempts, error = %DisplayChain(&err), ?wait, "retrying after a failed request");
                        continue;
                    }
                    return Err(err);
                }
            };
            let first_byte = sent_at.elapsed();
            let status = resp.status().as_u16();
            let protocol = protocol_name(resp.version());
            let remote_addr = resp.remote_addr();
            if let Some(addr) = remote_addr
                && is_special(addr.ip())
            {
                self.check_address(&url)?;
                if !self.inner.cfg.allow_private_ips
                    && url.host_str().is_some_and(|h| h.parse::<IpAddr>().is_err())
                    && !self.vouched(&url)
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
            let timings = |total| Timings {
                queued,
                first_byte,
                total,
            };
            if !accept.accepts(content_type.as_deref()) {
                // Not a body the caller wants: dropping the response unread closes the
                // connection (HTTP/1.1) or resets the stream (h2), so nothing more of
                // it is downloaded.
                drop(resp);
                drop(permit);
                gate.succeeded();
                return Ok(Fetched {
                    final_url: url.clone(),
                    url,
                    status,
                    headers,
                    body: Bytes::new(),
                    content_type,
                    redirect_to,
                    redirects: Vec::new(),
                    timings: timings(sent_at.elapsed()),
                    wire_bytes: 0,
                    body_bytes: 0,
                    attempts,
                    remote_addr,
                    protocol,
                    body_skipped: true,
                    memory: None,
                });
            }
            let mut memory = match &self.inner.memory {
                Some(m) => {
                    let len = resp.content_length().unwrap_or(0).min(self.inner.cfg.max_body);
                    Some(m.reserve(len).await)
                }
                None => None,
            };
            let read = self
                .read_body(&url, resp, self.inner.cfg.max_body, false, memory.as_mut())
                .await;
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
                timings: timings(sent_at.elapsed()),
                wire_bytes,
                body_bytes,
                attempts,
                remote_addr,
                protocol,
                memory,
                body_skipped: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::NotReady;

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

    #[test]
    fn a_user_agent_is_required() {
        assert!(matches!(Fetcher::builder().build(), Err(Error::Config(_))));
    }

    #[test]
    fn errors_say_whether_to_try_again_and_whether_the_host_is_failing() {
        let url = Url::parse("http://example.com/a").expect("url");
        let fetcher = Fetcher::builder().user_agent("t/1").build().expect("fetcher");
        let request = Error::Request {
            url: url.clone(),
            source: fetcher.inner.clients[0]
                .get("not a url")
                .build()
                .expect_err("invalid url"),
        };
        let status = |status| Error::Status {
            url: url.clone(),
            status,
            attempts: 3,
        };
        // (error, transient, counts against the host)
        let cases = [
            (Error::Timeout { url: url.clone() }, true, true),
            (
                Error::TooSlow {
                    url: url.clone(),
                    min_bytes_per_sec: 10,
                },
                true,
                true,
            ),
            (request, true, true),
            (status(503), true, true),
            (status(500), true, true),
            (status(429), true, false),
            (status(408), true, false),
            (Error::RobotsUnavailable { url: url.clone() }, true, true),
            (
                Error::Tls {
                    url: url.clone(),
                    detail: "invalid peer certificate: UnknownIssuer".into(),
                },
                false,
                true,
            ),
            (Error::RobotsDenied { url: url.clone() }, false, false),
            (Error::Forbidden { url: url.clone() }, false, false),
            (
                Error::TooLarge {
                    url: url.clone(),
                    limit: 1,
                },
                false,
                false,
            ),
            (
                Error::Body {
                    url: url.clone(),
                    detail: "broken".into(),
                },
                false,
                false,
            ),
            (Error::InvalidUrl { url: "x".into() }, false, false),
            (Error::Config("x".into()), false, false),
        ];
        for (e, transient, against_host) in cases {
            assert_eq!(e.is_transient(), transient, "{e:?}");
            assert_eq!(e.counts_against_host(), against_host, "{e:?}");
        }
    }

    #[test]
    fn a_tls_error_names_its_cause_in_its_message_only() {
        let e = Error::Tls {
            url: Url::parse("https://127.0.0.1:1234/").expect("url"),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert_eq!(e.kind(), "tls");
        assert_eq!(
            e.to_string(),
            "https://127.0.0.1:1234/: tls handshake failed: invalid peer certificate: UnknownIssuer"
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
