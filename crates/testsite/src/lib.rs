//! trawl-testsite: the project's own web server for tests, benchmarks and demos.
//!
//! It serves a deterministic synthetic site over several hosts on 127.0.0.1 (one port
//! per host), plus the hostile endpoints of `../shared/DESIGN.md`, and it tells a test
//! exactly what a correct crawl must find and what it may never request.
//!
//! - [`TestSite`] configures and starts a server in-process, on ephemeral ports, over
//!   plain HTTP/1.1 or, with [`TestSite::tls`], over TLS with HTTP/2 and HTTP/1.1
//!   under a CA made at start ([`RunningSite::ca_pem`]).
//! - [`TestSite::vhosts`] serves many virtual hosts (`h0.localhost`, …) on one port,
//!   chosen by the `Host` header, for broad crawls.
//! - [`RunningSite`] is the handle: addresses, the ground truth ([`Site`],
//!   [`CrawlTruth`], [`ENDPOINTS`], [`RobotsVariant`]) and the request log.
//!
//! # Layout
//! - `site`: the pure description of pages and links, and the reachability walk.
//! - `html`: rendering a page as 8 to 20 KB of realistic HTML.
//! - `bad`: the adversarial endpoints under `/bad/`.
//! - `robots`: the regular robots.txt and the broken variants.
//! - `server`: listeners, routing, compression, latency, request log.
//! - `body`: whole, streamed, trickling and stalled response bodies.
//! - `tls`: the CA and certificate made at start when serving TLS ([`TestSite::tls`]).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let running = trawl_testsite::TestSite::new().pages(200).hosts(2).start().await?;
//! let truth = running.site().crawl_truth(&[0], &|_| true);
//! assert_eq!(truth.pages.len(), 200);
//! println!("crawl {} and expect {} pages", running.root_url(), truth.pages.len());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod bad;
mod body;
mod broken;
mod generations;
mod html;
mod limit;
mod robots;
mod server;
mod site;
mod static_dir;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use bad::{BINARY_BYTES, BINARY_CHUNK, BadEndpoint, ENDPOINTS, ODD_URLS, SSRF_LINKS};
pub use body::StreamReport;
pub use broken::{BrokenHref, BrokenTarget};
pub use generations::RecrawlTruth;
pub use limit::RateLimit;
pub use robots::RobotsVariant;
pub use server::{ETAG, LAST_MODIFIED};
pub use site::{CrawlTruth, Site, SiteLink, Target, vhost_name};
pub use static_dir::{ServedDir, serve_dir};

use server::{HostKind, Options, Shared};

/// Added latency per response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// Answer as fast as possible.
    #[default]
    None,
    /// Wait this long before every response.
    Fixed(Duration),
    /// Wait a pseudo-random time between zero and this before every response.
    Random(Duration),
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// When the request arrived, on tokio's clock (so paused-time tests can read it).
    pub at: tokio::time::Instant,
    /// The URL as requested: base, path and query exactly as received.
    pub url: String,
    /// The status the server answered with.
    pub status: u16,
    /// The HTTP version of the request as hyper names it: `"HTTP/1.1"`, or
    /// `"HTTP/2.0"` over TLS when the client chose h2.
    pub version: String,
}

/// Configuration of a test site. Build one with [`TestSite::new`], adjust it with the
/// by-value setters, then [`TestSite::start`] it.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestSite {
    seed: u64,
    pages: u64,
    hosts: usize,
    latency: Latency,
    crawl_delay: Option<f64>,
    compression: bool,
    link_bad: bool,
    robots_variants: bool,
    track: bool,
    ip: IpAddr,
    port: u16,
    tls: bool,
    vhosts: Option<usize>,
    all_validators: bool,
    broken_links: bool,
    rate_limit: Option<RateLimit>,
}

impl Default for TestSite {
    fn default() -> Self {
        TestSite::new()
    }
}

impl TestSite {
    /// A site of 100 pages on one host, seed 1, no latency, compression on, request
    /// tracking on, plain HTTP, on ephemeral ports of 127.0.0.1.
    pub fn new() -> TestSite {
        TestSite {
            seed: 1,
            pages: 100,
            hosts: 1,
            latency: Latency::None,
            crawl_delay: None,
            compression: true,
            link_bad: false,
            robots_variants: false,
            track: true,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tls: false,
            vhosts: None,
            all_validators: false,
            broken_links: false,
            rate_limit: None,
        }
    }

    /// Every regular page sends an `ETag` and a `Last-Modified` (and answers 304 to a
    /// matching conditional GET), not one in two. By default, off.
    pub fn all_validators(mut self, on: bool) -> TestSite {
        self.all_validators = on;
        self
    }

    /// Some pages also link to broken URLs under `/broken/` (404, 410, 500, a
    /// connection dropped mid-body), each from several pages: [`Site::broken_truth`]
    /// says what a broken-link report must hold. By default, off.
    pub fn broken_links(mut self, on: bool) -> TestSite {
        self.broken_links = on;
        self
    }

    /// The seed the whole site derives from. By default, 1.
    pub fn seed(mut self, seed: u64) -> TestSite {
        self.seed = seed;
        self
    }

    /// The number of regular pages, at least one per host. By default, 100.
    pub fn pages(mut self, pages: u64) -> TestSite {
        self.pages = pages;
        self
    }

    /// The number of regular hosts (one port each). By default, 1.
    pub fn hosts(mut self, hosts: usize) -> TestSite {
        self.hosts = hosts.max(1);
        self
    }

    /// Added latency per response. By default, none.
    pub fn latency(mut self, latency: Latency) -> TestSite {
        self.latency = latency;
        self
    }

    /// A `Crawl-delay` (seconds) in the regular hosts' robots.txt. By default, none.
    pub fn crawl_delay(mut self, seconds: Option<f64>) -> TestSite {
        self.crawl_delay = seconds;
        self
    }

    /// Whether text bodies are compressed (zstd, br or gzip) when the client asks. By
    /// default, on.
    pub fn compression(mut self, on: bool) -> TestSite {
        self.compression = on;
        self
    }

    /// Whether the hosts' root pages link to the `/bad/` index, which makes a crawl walk
    /// into every hostile endpoint. By default, off.
    pub fn link_bad(mut self, on: bool) -> TestSite {
        self.link_bad = on;
        self
    }

    /// Whether to start one extra host per [`RobotsVariant`]. By default, off.
    pub fn robots_variants(mut self, on: bool) -> TestSite {
        self.robots_variants = on;
        self
    }

    /// Whether to log every request and count hits per page. Turn it off for
    /// million-page benchmarks. The `/bad/` endpoints are always counted. By default, on.
    pub fn track_requests(mut self, on: bool) -> TestSite {
        self.track = on;
        self
    }

    /// The address to listen on; it must be a loopback address. By default, 127.0.0.1.
    pub fn ip(mut self, ip: IpAddr) -> TestSite {
        self.ip = ip;
        self
    }

    /// The port of host 0; host `k` listens on `port + k`, then the robots variants. By
    /// default, 0: every host gets an ephemeral port.
    pub fn port(mut self, port: u16) -> TestSite {
        self.port = port;
        self
    }

    /// Whether every host is served over TLS, HTTP/2 or HTTP/1.1 by ALPN, with base
    /// URLs `https://127.0.0.1:PORT`. The certificate (for 127.0.0.1, ::1 and
    /// localhost) is issued at start by a CA made for this site alone, which a client
    /// must trust: [`RunningSite::ca_pem`], [`RunningSite::write_ca`]. By default,
    /// off: plain HTTP/1.1.
    pub fn tls(mut self, on: bool) -> TestSite {
        self.tls = on;
        self
    }

    /// Serves `hosts` virtual hosts on one port instead of one port per host: the
    /// `Host` header chooses among `h0.localhost` to `h{hosts-1}.localhost`, laid out
    /// as [`Site::virtual_hosts`] says, and bare `localhost` serves a portal page
    /// linking to `h0` ([`RunningSite::portal_url`]). A client resolves the names to
    /// the listener's address (RFC 6761 puts `*.localhost` on loopback; trawl does so
    /// without DNS, curl with `--resolve`). The pages are shared out as with
    /// [`TestSite::hosts`], which this replaces. Plain HTTP only. By default, off.
    pub fn vhosts(mut self, hosts: usize) -> TestSite {
        self.vhosts = Some(hosts.max(1));
        self
    }

    /// A hidden limit on the regular hosts' pages (robots.txt is exempt): at most
    /// `limit.per_second` requests from one client address in any second, each one
    /// above answered 429, with `Retry-After: limit.retry_after` when that is set.
    /// Admitted requests count, refused ones do not. By default, none.
    pub fn rate_limit(mut self, limit: RateLimit) -> TestSite {
        self.rate_limit = Some(limit);
        self
    }

    /// Binds the listeners and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// If a port cannot be bound, the address is not loopback, there are fewer pages
    /// than hosts, or the TLS certificates cannot be made.
    pub async fn start(self) -> std::io::Result<RunningSite> {
        if !self.ip.is_loopback() {
            return Err(std::io::Error::other(
                "trawl-testsite listens on loopback addresses only",
            ));
        }
        if self.vhosts.is_some() && self.tls {
            return Err(std::io::Error::other(
                "virtual hosts are served over plain http only (the certificate names localhost alone)",
            ));
        }
        let hosts = self.vhosts.unwrap_or(self.hosts);
        if self.pages < hosts as u64 {
            return Err(std::io::Error::other("a site needs at least one page per host"));
        }
        // Listeners for the regular hosts: one per host, or one for every virtual host.
        let host_listeners = if self.vhosts.is_some() { 1 } else { hosts };
        let variants: &[RobotsVariant] = if self.robots_variants {
            RobotsVariant::ALL
        } else {
            &[]
        };
        let tls = if self.tls { Some(tls::make()?) } else { None };
        let listeners = server::bind(self.ip, self.port, host_listeners + variants.len()).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_of = |a: &SocketAddr| format!("{scheme}://{a}");
        let variant_bases: Vec<(RobotsVariant, String)> = variants
            .iter()
            .zip(&listeners[host_listeners..])
            .map(|(v, (_, a))| (*v, base_of(a)))
            .collect();
        let site = if self.vhosts.is_some() {
            Site::virtual_hosts(self.seed, self.pages, hosts, listeners[0].1.port())
        } else {
            let bases = listeners[..hosts].iter().map(|(_, a)| base_of(a)).collect();
            Site::new(self.seed, self.pages, bases)
        };
        let site = if self.all_validators {
            site.with_validators_on_every_page()
        } else {
            site
        };
        let site = if self.broken_links {
            site.with_broken_links()
        } else {
            site
        };
        let page_hits = if self.track {
            (0..self.pages).map(|_| AtomicU32::new(0)).collect()
        } else {
            Vec::new()
        };
        let shared = Arc::new(Shared {
            site,
            opts: Options {
                latency: self.latency,
                crawl_delay: self.crawl_delay,
                compression: self.compression,
                link_bad: self.link_bad,
                track: self.track,
                rate_limit: self.rate_limit,
            },
            variant_bases: variant_bases.clone(),
            log: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            page_hits,
            private_hits: AtomicU64::new(0),
            total: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            no_sitemaps: std::sync::atomic::AtomicBool::new(false),
            streams: Arc::default(),
            limiter: limit::Limiter::default(),
        });
        let stop = CancellationToken::new();
        let mut addrs = Vec::with_capacity(listeners.len());
        for (k, (listener, addr)) in listeners.into_iter().enumerate() {
            let kind = if k >= host_listeners {
                HostKind::Robots(variants[k - host_listeners])
            } else if self.vhosts.is_some() {
                HostKind::VHosts
            } else {
                HostKind::Site(k)
            };
            addrs.push(addr);
            // The virtual hosts' listener is named by its portal; each request gets
            // its own host's base.
            let base = if self.vhosts.is_some() && k == 0 {
                format!("http://localhost:{}", addr.port())
            } else {
                base_of(&addr)
            };
            tokio::spawn(server::serve(
                listener,
                kind,
                base,
                shared.clone(),
                stop.clone(),
                tls.as_ref().map(|t| t.acceptor.clone()),
            ));
        }
        Ok(RunningSite {
            shared,
            stop,
            addrs,
            ca_pem: tls.map(|t| t.ca_pem),
        })
    }
}

/// A started test site. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct RunningSite {
    shared: Arc<Shared>,
    stop: CancellationToken,
    addrs: Vec<SocketAddr>,
    /// The CA that issued the site's certificate, PEM, when serving TLS.
    ca_pem: Option<String>,
}

impl RunningSite {
    /// Serves generation `g` of the site from now on (0 at start): pages change, go
    /// and appear as [`Site::recrawl_truth`] says.
    pub fn set_generation(&self, g: u64) {
        self.shared
            .generation
            .store(g, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the sitemaps (`/sitemap.xml`, its index and chunks, `.gz` and `.txt`)
    /// are served from now on (they are at start); off, they answer 404, as on a site
    /// without one.
    pub fn set_sitemaps(&self, on: bool) {
        self.shared
            .no_sitemaps
            .store(!on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The generation served.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The PEM of the CA that issued the site's certificate, for a client to trust
    /// (`trawl_fetcher::FetcherBuilder::ca_cert`, say); `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes [`RunningSite::ca_pem`] to `path`, for a program that takes a CA file
    /// (such as the trawl CLI or curl's `--cacert`).
    ///
    /// # Errors
    /// If the file cannot be written, or the site is not serving TLS.
    pub fn write_ca(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        let pem = self
            .ca_pem()
            .ok_or_else(|| std::io::Error::other("the site serves plain http: there is no ca certificate"))?;
        std::fs::write(path, pem)
    }

    /// The description of the regular pages: URLs, links, and the reachability walk.
    pub fn site(&self) -> &Site {
        &self.shared.site
    }

    /// The root page of host 0, where a crawl usually starts.
    pub fn root_url(&self) -> String {
        self.shared.site.root_url(0)
    }

    /// The portal of a site of virtual hosts ([`TestSite::vhosts`]),
    /// `http://localhost:PORT/`: a page that links to `h0`'s root, so that a crawl
    /// seeded here with subdomains in scope reaches every virtual host. `None` for
    /// a site of one port per host.
    pub fn portal_url(&self) -> Option<String> {
        self.shared
            .site
            .is_virtual()
            .then(|| format!("http://localhost:{}/", self.addrs[0].port()))
    }

    /// The socket addresses of every listener: the regular hosts first (one listener
    /// for all virtual hosts), then the robots variants.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The base URL (`http://127.0.0.1:PORT`, `https://` with TLS) of the host serving
    /// `variant`, when robots variants were asked for.
    pub fn variant_base(&self, variant: RobotsVariant) -> Option<&str> {
        self.shared
            .variant_bases
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, b)| b.as_str())
    }

    /// How many times this exact URL (path and query as sent) was requested. Counted for
    /// every URL when tracking is on, and for `/bad/` URLs always.
    pub fn hits(&self, url: &str) -> u64 {
        let counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(url).copied().unwrap_or(0)
    }

    /// How many times regular page `i` was requested, under any spelling of its URL.
    /// Always 0 when tracking is off.
    pub fn page_hits(&self, i: u64) -> u32 {
        self.shared
            .page_hits
            .get(i as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Regular pages requested more than once, with their counts.
    pub fn pages_hit_twice(&self) -> Vec<(u64, u32)> {
        self.shared
            .page_hits
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 1).then_some((i as u64, n))
            })
            .collect()
    }

    /// Requests for robots-disallowed `/private/` pages, on any host.
    pub fn private_hits(&self) -> u64 {
        self.shared.private_hits.load(Ordering::Relaxed)
    }

    /// Every request received so far, in arrival order, when tracking is on.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What became of each streamed body sent for this exact URL (a `/bad/` endpoint
    /// that streams: the bombs, `/bad/endless`, `/bad/binary`) that has ended so far,
    /// in the order they ended.
    pub fn stream_reports(&self, url: &str) -> Vec<StreamReport> {
        self.shared.streams.reports(url)
    }

    /// Waits until `n` streamed bodies of this exact URL have ended (sent to their end,
    /// or cut off because the client hung up), and returns their reports. The server
    /// files a report when its connection lets go of the body, which can be a moment
    /// after the client has its answer; this waits for that without polling.
    pub async fn streams_ended(&self, url: &str, n: usize) -> Vec<StreamReport> {
        loop {
            // Registered before looking, so that a report filed in between wakes it.
            let notified = self.shared.streams.ended.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let reports = self.shared.streams.reports(url);
            if reports.len() >= n {
                return reports;
            }
            notified.await;
        }
    }

    /// The number of requests received so far.
    pub fn total_requests(&self) -> u64 {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// The number of connections accepted so far, on every host.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection. Dropping does the same.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for RunningSite {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
