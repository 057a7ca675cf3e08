//! [`CrawlConfig`]: everything a crawl needs to know, stored in its state directory so
//! that `trawl resume` continues the same crawl.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The product token and contact URL sent by default. A crawl should name its operator
/// with `--user-agent`.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "trawl/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/trawl-crawler/trawl)"
);

/// A whole crawl's settings. `Default` gives a polite crawl with no seeds.
///
/// The seeds and the scope are the crawl's identity: a state directory stays bound to
/// them, and to its outputs. Limits, politeness, fetch caps and the state settings may
/// change on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CrawlConfig {
    /// The URLs the crawl starts from.
    pub seeds: Vec<String>,
    /// Which URLs belong to the crawl.
    pub scope: ScopeConfig,
    /// When the crawl stops.
    pub limits: Limits,
    /// How gently hosts are treated.
    pub politeness: PolitenessConfig,
    /// Per-request caps.
    pub fetch: FetchConfig,
    /// Where records go.
    pub output: OutputConfig,
    /// The state directory and its memory.
    pub state: StateConfig,
    /// Set when this crawl is a recrawl of an earlier one ([`crate::recrawl`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recrawl: Option<RecrawlConfig>,
}

/// What makes a crawl a recrawl: which generation it is and the state directory of the
/// crawl it revisits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RecrawlConfig {
    /// 1 for the first recrawl of a crawl, 2 for the recrawl of that, and so on.
    pub generation: u32,
    /// The state directory of the generation before (the crawl itself for 1).
    pub source: PathBuf,
    /// `--changed-since`: a W3C datetime (RFC 3339, or a day `YYYY-MM-DD` read as
    /// its UTC midnight). Before any revisit, the sitemaps the generation before read
    /// are read again: a known page whose `<lastmod>` says it last changed before
    /// this time is recorded as `skipped-unchanged` without a request, and those
    /// that changed at or after it are revisited first. By default, none: every
    /// known page is revisited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<String>,
}

impl RecrawlConfig {
    /// The recrawl `generation` of the crawl whose previous generation is in `source`.
    pub fn new(generation: u32, source: PathBuf) -> RecrawlConfig {
        RecrawlConfig {
            generation,
            source,
            changed_since: None,
        }
    }

    /// The same, revisiting only what changed since `date`
    /// ([`RecrawlConfig::changed_since`]).
    pub fn with_changed_since(mut self, date: impl Into<String>) -> RecrawlConfig {
        self.changed_since = Some(date.into());
        self
    }
}

/// Which URLs belong to the crawl. By default, the seeds' hosts (scheme, host and port)
/// and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ScopeConfig {
    /// Also the subdomains of the seed hosts (`blog.example.com` for `example.com`).
    pub subdomains: bool,
    /// Also every host under the seeds' registrable domains (by the public suffix
    /// list: `a.example.co.uk` and `b.example.co.uk` share `example.co.uk`).
    pub registrable_domain: bool,
    /// Extra hosts (`host` or `host:port`).
    pub extra_hosts: Vec<String>,
    /// Regular expressions; when any is given, a URL must match one.
    pub include: Vec<String>,
    /// Regular expressions; a URL that matches one is out of scope.
    pub exclude: Vec<String>,
    /// Do not look for sitemaps (robots.txt `Sitemap:` lines and `/sitemap.xml`).
    pub no_sitemaps: bool,
}

/// A per-path-prefix budget against traps: at most `max` URLs whose path starts with
/// `prefix` are accepted per host. Links beyond it are dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathBudget {
    /// The path prefix, starting with `/`.
    pub prefix: String,
    /// URLs accepted under it, per host.
    pub max: u64,
}

/// The default [`Limits::max_depth`]: a guard against traps that link one page further
/// for ever (a calendar's next month). Real sites sit far shallower: every page of the
/// synthetic million-page site is within 10 hops of its root (8 tree children per
/// page), and sites are built for people to reach pages in a few clicks; Heritrix's default is 20 hops.
pub const DEFAULT_MAX_DEPTH: u16 = 50;

/// The default [`Limits::max_query_variants`]: a guard against pages that link
/// endless near-identical variants of one path (facets, sort orders, filters, session
/// and calendar parameters in the query).
pub const DEFAULT_MAX_QUERY_VARIANTS: u32 = 500;
/// The default [`Limits::max_path_segments`].
pub const DEFAULT_MAX_PATH_SEGMENTS: usize = 32;
/// The default [`Limits::max_repeated_segments`].
pub const DEFAULT_MAX_REPEATED_SEGMENTS: usize = 3;

/// When the crawl stops. Every limit counts over the whole crawl, across resumes.
/// Reaching one ends the crawl cleanly and resumably; raising it on resume goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Link hops from a seed (a seed is depth 0, a link on it depth 1; a redirect hop
    /// and a sitemap entry count as a hop). Links deeper than this are not followed,
    /// and counted (`beyond_depth`). `None` for no limit. By default,
    /// [`DEFAULT_MAX_DEPTH`].
    pub max_depth: Option<u16>,
    /// Records written (fetched or failed pages).
    pub max_pages: Option<u64>,
    /// Body bytes downloaded, after decompression. Leasing stops once reached; pages
    /// in flight finish.
    pub max_bytes: Option<u64>,
    /// Seconds of crawling, summed over runs.
    pub max_time_secs: Option<f64>,
    /// URLs fetched or failed per host; the rest stay queued.
    pub max_pages_per_host: Option<u64>,
    /// Path-prefix budgets.
    pub budgets: Vec<PathBudget>,
    /// Trap guard: distinct queries followed per path of a host (`/search?q=…`,
    /// `/list?sort=…&page=…`); links to further variants are not followed, and the
    /// record of the page they were on says so. Counted per run: a resumed crawl may
    /// follow that many again. `None` for no limit. By default,
    /// [`DEFAULT_MAX_QUERY_VARIANTS`].
    pub max_query_variants: Option<u32>,
    /// Trap guard: path segments of a URL followed. `None` for no limit. By default,
    /// [`DEFAULT_MAX_PATH_SEGMENTS`].
    pub max_path_segments: Option<usize>,
    /// Trap guard: how often one path segment may occur in a URL followed
    /// (`/a/b/a/b/a/b/…`). `None` for no limit. By default,
    /// [`DEFAULT_MAX_REPEATED_SEGMENTS`].
    pub max_repeated_segments: Option<usize>,
    /// Also fetch the requisites of every HTML page (images, stylesheets, scripts,
    /// the `url()`s of inline CSS), so that an archived page replays with its assets;
    /// they are recorded (`discovery: requisite`, at their page's depth) but never
    /// parsed for links. By default, off.
    pub requisites: bool,
}

impl Limits {
    /// The parse options these limits give: the canonicalization trap guards.
    pub fn parse_options(&self) -> trawl_parser::ParseOptions {
        let mut o = trawl_parser::ParseOptions::default().requisites(self.requisites);
        o.canon.max_path_segments = self.max_path_segments.unwrap_or(usize::MAX);
        o.canon.max_repeated_segments = self.max_repeated_segments.unwrap_or(usize::MAX);
        o
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: Some(DEFAULT_MAX_DEPTH),
            max_pages: None,
            max_bytes: None,
            max_time_secs: None,
            max_pages_per_host: None,
            budgets: Vec::new(),
            max_query_variants: Some(DEFAULT_MAX_QUERY_VARIANTS),
            max_path_segments: Some(DEFAULT_MAX_PATH_SEGMENTS),
            max_repeated_segments: Some(DEFAULT_MAX_REPEATED_SEGMENTS),
            requisites: false,
        }
    }
}

/// What a host's politeness (rate, request slots, cool-downs) is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolitenessBy {
    /// Each host (`scheme://host:port`).
    #[default]
    Host,
    /// Each IP address the hosts resolve to.
    Ip,
}

/// How gently hosts are treated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PolitenessConfig {
    /// The User-Agent; its product token is the robots.txt agent.
    pub user_agent: String,
    /// Requests per second per host; 0 means no rate limit (Crawl-delay still applies
    /// unless ignored). By default, 1.
    pub rate: f64,
    /// Requests per host allowed back to back before the rate applies. By default, 1.
    pub burst: u32,
    /// Adapt each host's rate to its answers: cut by a quarter on 429, 503, a timeout
    /// or a time to first byte far above the host's recent median, recovered step by
    /// step while it is healthy, never above `rate` nor the Crawl-delay, and persisted
    /// with the host's politeness. `false` keeps `rate` fixed. By default, on.
    pub adaptive: bool,
    /// What politeness is kept per: each host, or each server address (virtual hosts
    /// of one server share one rate, one set of request slots and one cool-down).
    /// By default, per host.
    pub politeness_key: PolitenessBy,
    /// Fetches in flight per host. By default, 2.
    pub per_host_concurrency: usize,
    /// Fetches in flight in total. By default, 64.
    pub concurrency: usize,
    /// Obey robots.txt. By default, on.
    pub robots: bool,
    /// Ignore robots.txt `Crawl-delay`. By default, off.
    pub ignore_crawl_delay: bool,
    /// The longest Crawl-delay honoured, in seconds. By default, 30.
    pub max_crawl_delay_secs: f64,
    /// Allow special-purpose addresses (loopback, private networks…) beyond the seed
    /// hosts. By default, off.
    pub allow_private_ips: bool,
    /// Consecutive connection failures, timeouts or 5xx after which a host pauses with
    /// growing backoff. By default, 5.
    pub pause_after_failures: u32,
    /// Consecutive failures after which a host's remaining URLs fail with "host
    /// unavailable". By default, 20.
    pub give_up_after_failures: u32,
    /// The first step of a host's backoff after a failed request (doubling, with
    /// jitter, up to 10 minutes), in seconds. By default, 1.
    pub backoff_base_secs: f64,
}

impl Default for PolitenessConfig {
    fn default() -> PolitenessConfig {
        PolitenessConfig {
            user_agent: DEFAULT_USER_AGENT.to_string(),
            rate: 1.0,
            burst: 1,
            adaptive: true,
            politeness_key: PolitenessBy::Host,
            per_host_concurrency: 2,
            concurrency: 64,
            robots: true,
            ignore_crawl_delay: false,
            max_crawl_delay_secs: 30.0,
            allow_private_ips: false,
            pause_after_failures: 5,
            give_up_after_failures: 20,
            backoff_base_secs: 1.0,
        }
    }
}

/// Per-request caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FetchConfig {
    /// Body bytes kept per page, after decompression. By default, 10 MiB.
    pub max_body: u64,
    /// Connect timeout in seconds. By default, 10.
    pub connect_timeout_secs: f64,
    /// Idle read timeout in seconds. By default, 20.
    pub read_timeout_secs: f64,
    /// Total time per attempt in seconds. By default, 60.
    pub total_timeout_secs: f64,
    /// Attempts per URL for timeouts, connection errors, 5xx, 408 and 429. A failed
    /// attempt puts the URL back in its queue while the host cools down (Retry-After,
    /// else exponential backoff); a leased URL cut short by a crash counts as an
    /// attempt too. By default, 3.
    pub max_attempts: u32,
    /// Extra CA certificates (PEM files) to trust for HTTPS, besides the built-in
    /// roots, as curl's `--cacert`. By default, none.
    pub ca_certs: Vec<PathBuf>,
    /// Media ranges (`application/pdf`, `image/*`, `*/*`) whose bodies are downloaded
    /// besides HTML. A page of any other `Content-Type` is closed after its headers:
    /// its record keeps the status and the type, with `skipped` set to
    /// `skipped-content-type`, and the stats count it (`bodies_skipped`). A response
    /// without a `Content-Type` is read (it may be HTML). Sitemaps are read as the
    /// types sitemaps use, and with WARC output every body is kept (the archive needs
    /// it). By default, none: HTML (`text/html`, `application/xhtml+xml`) only.
    pub accept_types: Vec<String>,
    /// Address overrides, `HOST:PORT:ADDR` as curl's `--resolve`: requests for `HOST`
    /// on `PORT` go to `ADDR` (several, comma-separated, are tried in order; IPv6 in
    /// brackets), whatever DNS says; the URL, `Host` and TLS still name `HOST`. The
    /// user named these addresses, so the special-purpose address guard lets them
    /// through. `localhost` and `*.localhost` are loopback without any (RFC 6761).
    /// By default, none.
    pub resolve: Vec<String>,
    /// Idle hosts whose politeness gates and robots.txt verdicts are kept in memory
    /// (the fetcher's `host_cache_capacity`): past it, gates of hosts at rest are
    /// dropped (never one that still holds its host back) and verdicts are read
    /// again from the state directory. By default, 4,096.
    pub host_cache: usize,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            max_body: 10 << 20,
            connect_timeout_secs: 10.0,
            read_timeout_secs: 20.0,
            total_timeout_secs: 60.0,
            max_attempts: 3,
            ca_certs: Vec::new(),
            accept_types: Vec::new(),
            resolve: Vec::new(),
            host_cache: trawl_fetcher::DEFAULT_HOST_CACHE,
        }
    }
}

/// Where records go. Paths are stored absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OutputConfig {
    /// A JSON Lines file, one record per line.
    pub jsonl: Option<PathBuf>,
    /// A CSV file.
    pub csv: Option<PathBuf>,
    /// A WARC 1.1 file (gzip members when the name ends in `.gz`).
    pub warc: Option<PathBuf>,
    /// `fsync` at every checkpoint: survives power loss, not just `kill -9`.
    pub fsync: bool,
}

/// The state directory and its memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StateConfig {
    /// The state directory.
    pub dir: PathBuf,
    /// sled's page cache in bytes: the main term of the crawl's memory. By default,
    /// 8 MiB (BENCHMARKS.md, session 13: at 100,000 hosts the broad crawl peaks about
    /// 20 MiB lower than with 16 MiB, and a 1M-page crawl keeps its speed).
    pub cache_capacity: u64,
    /// Milliseconds between frontier flushes: how much acked work a `kill -9` can
    /// undo (those pages are fetched again, never written twice). By default, 200.
    pub flush_interval_ms: u64,
    /// Seconds that in-flight pages get to finish after a stop request. By default, 10.
    pub grace_secs: f64,
    /// Parses running at once. By default, the number of CPUs.
    pub parse_threads: usize,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            dir: PathBuf::from("trawl-state"),
            cache_capacity: 8 << 20,
            flush_interval_ms: 200,
            grace_secs: 10.0,
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl CrawlConfig {
    /// A polite crawl of `seeds` with every other setting at its default.
    pub fn new(seeds: impl IntoIterator<Item = impl Into<String>>) -> CrawlConfig {
        CrawlConfig {
            seeds: seeds.into_iter().map(Into::into).collect(),
            ..CrawlConfig::default()
        }
    }

    /// What makes two crawls the same: the seeds and the scope. A state directory is
    /// bound to it.
    pub fn identity(&self) -> String {
        // Reading sitemaps or not does not change which URLs belong to the crawl.
        let scope = ScopeConfig {
            no_sitemaps: false,
            ..self.scope.clone()
        };
        let scope = serde_json::to_string(&scope).unwrap_or_default();
        format!("seeds={} scope={scope}", self.seeds.join(" "))
    }
}
