//! [`Crawler`]: the pipeline.
//!
//! ```text
//! frontier ─lease─► scheduler ─FETCH_CHANNEL─► fetch tasks ─PARSE_CHANNEL─► parse (spawn_blocking)
//!    ▲                                                                          │ COMMIT_CHANNEL
//!    └──────── ack(done/failed + discovered links + sink checkpoints) ◄─ commit thread ◄┘
//! ```
//!
//! - The scheduler is one task. It leases only from hosts that may be fetched now
//!   (persisted cool-downs, the fetcher's gate, the per-host cap, limits), so a slow or
//!   cooling host never holds up another.
//! - A global semaphore of `concurrency` permits bounds fetches; a permit is held from
//!   dispatch until the fetched page is in the parse channel, so memory is bounded by
//!   the channels, not by the speed of the stages.
//! - Parsing runs in `spawn_blocking`, at most `parse_threads` at once.
//! - The commit thread writes records to every sink, then acks the batch with the
//!   sinks' checkpoints in one frontier batch, and flushes the frontier every
//!   `flush_interval_ms`. Discovered links go back through that ack, never through a
//!   channel to the fetchers.
//! - Completion is counted: the crawl is over when nothing is in flight and no host
//!   has URLs it may fetch now or later.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use trawl_fetcher::{Fetched, Fetcher, GatePolicy, GateSnapshot, HostGate, RobotsStore, StoredRobots};
use trawl_frontier::{
    Ack, Frontier, FrontierStore, HostId, Lease, NewUrl, Options, Outcome, Politeness, Priority, RobotsEntry,
};
use trawl_parser::{ParseOptions, SitemapKind, SitemapLimits};
use trawl_sink::{
    Checkpoint, CsvSink, Discovery, Durability, FailureInfo, JsonlSink, PageRecord, RobotsFlags, Sink,
    WarcOptions, WarcSink,
};
use url::Url;

use crate::config::CrawlConfig;
use crate::error::Error;
use crate::scope::{Scope, host_key};
use crate::stats::{Stats, StatsSnapshot};

/// Leases waiting for a fetch slot. Small: the scheduler only dispatches a lease once
/// it holds a global permit, so this never holds more than `concurrency` jobs.
pub const FETCH_CHANNEL: usize = 64;
/// Fetched pages waiting for a parse slot. Bounded so that slow parsing slows the
/// fetchers (a fetch task keeps its permit until its page is in here) and the bodies
/// held in memory stay at most this many plus `concurrency`.
pub const PARSE_CHANNEL: usize = 128;
/// Batches of finished pages (records + links, at most [`PARSE_BATCH`] each) waiting
/// for the commit thread: a few ack batches' worth, so the commit thread batches well
/// while a slow disk pushes back.
pub const COMMIT_CHANNEL: usize = 64;
/// The most fetched pages one blocking parse call takes.
pub const PARSE_BATCH: usize = 16;
/// How long the commit thread lingers for more pages after the first of a batch: it
/// turns many small frontier writes into fewer, larger ones.
const COMMIT_LINGER: Duration = Duration::from_millis(5);
/// The most pages one ack batch holds.
pub const COMMIT_BATCH: usize = 256;
/// Links of one page beyond which they are enqueued in batches of this size ahead of
/// the page's ack (sitemaps), instead of inside it.
const ENQUEUE_CHUNK: usize = 1024;
/// The most URLs leased from a host at once (one frontier write per batch).
pub const LEASE_BATCH: usize = 32;
/// The frontier's attempts per URL: leases cut short by a crash or a stop count too,
/// so this is generous; the fetcher retries transient errors itself.
const FRONTIER_ATTEMPTS: u32 = 10;
/// How often the stall monitor wakes, and the lateness it warns about.
const STALL_TICK: Duration = Duration::from_millis(10);
const STALL_WARN: Duration = Duration::from_millis(50);
/// How often `progress.json` is written to the state directory.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How a crawl ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrawlOutcome {
    /// Every in-scope URL found was fetched or failed.
    Completed,
    /// A limit stopped it; resume with a higher limit to go on.
    LimitReached(Limit),
    /// A stop was requested (Ctrl-C, SIGTERM); resume to go on.
    Interrupted,
}

/// Which limit ended a crawl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// `max_pages`.
    Pages,
    /// `max_bytes`.
    Bytes,
    /// `max_time`.
    Time,
    /// `max_pages_per_host`: URLs remain queued on hosts at their limit.
    PagesPerHost,
}

/// The end of a crawl: how it ended and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How it ended.
    pub outcome: CrawlOutcome,
    /// The counters at the end.
    pub stats: StatsSnapshot,
}

/// Counters that limits need across runs, stored with every ack (so they are exact
/// across crashes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    pages: u64,
    bytes: u64,
    elapsed_ms: u64,
    #[serde(default)]
    budgets: HashMap<String, u64>,
}

const ENGINE_CHECKPOINT: &str = "engine";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the engine keeps with a URL in the frontier: how it was found and from where.
fn encode_data(discovery: Discovery, parent: Option<&str>) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + parent.map_or(0, str::len));
    v.push(match discovery {
        Discovery::Seed => 0,
        Discovery::Link => 1,
        Discovery::Redirect => 2,
        Discovery::Sitemap => 3,
    });
    if let Some(p) = parent {
        v.extend_from_slice(p.as_bytes());
    }
    v
}

fn decode_data(data: &[u8]) -> (Discovery, Option<String>) {
    let d = match data.first() {
        Some(1) => Discovery::Link,
        Some(2) => Discovery::Redirect,
        Some(3) => Discovery::Sitemap,
        _ => Discovery::Seed,
    };
    let parent = data
        .get(1..)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    (d, parent)
}

/// Keeps robots.txt answers in the frontier, so a resumed crawl does not fetch them
/// again and they live in the one state directory.
struct FrontierRobots(Arc<Frontier>);

impl RobotsStore for FrontierRobots {
    fn load(&self, origin: &str) -> Option<StoredRobots> {
        let id = self.0.host_id(origin)?;
        let e = self.0.robots(id).ok()??;
        Some(StoredRobots {
            status: e.status,
            fetched_at: UNIX_EPOCH + Duration::from_millis(e.fetched_at_ms),
            body: e.body,
        })
    }

    fn save(&self, origin: &str, answer: &StoredRobots) {
        if let Some(id) = self.0.host_id(origin) {
            let entry = RobotsEntry {
                status: answer.status,
                fetched_at_ms: answer
                    .fetched_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                body: answer.body.clone(),
            };
            if let Err(e) = self.0.set_robots(id, &entry) {
                tracing::warn!(origin, error = %e, "cannot store robots.txt in the frontier");
            }
        }
    }
}

/// State shared by the stages.
struct Shared {
    cfg: CrawlConfig,
    frontier: Arc<Frontier>,
    fetcher: Fetcher,
    scope: Scope,
    stats: Arc<Stats>,
    parse_opts: ParseOptions,
    /// Wakes the scheduler: a slot freed, a batch acked.
    wake: Notify,
    /// Stop leasing (a stop request or a limit).
    stop: CancellationToken,
    outcome: Mutex<Option<CrawlOutcome>>,
    /// Hosts whose circuit breaker gave up: their URLs fail without a request.
    dead: Mutex<HashSet<HostId>>,
    /// Counters of earlier runs plus this one's committed work.
    pages_total: AtomicU64,
    bytes_total: AtomicU64,
    elapsed_before_ms: u64,
    started: Instant,
    user_agent: String,
    want_exchange: bool,
}

impl Shared {
    fn end(&self, outcome: CrawlOutcome) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if o.is_none() {
            *o = Some(outcome);
        }
        drop(o);
        self.stop.cancel();
    }

    fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Relaxed)
    }
}

/// A lease on its way to a fetch task, with the permits that bound it.
struct Job {
    lease: Lease,
    permit: OwnedSemaphorePermit,
    fetching: Arc<AtomicUsize>,
    gate: Arc<HostGate>,
    host: String,
    check_sitemaps: bool,
}

/// A fetched (or failed) lease on its way to parsing.
struct FetchedJob {
    lease: Lease,
    host: String,
    result: Result<Fetched, trawl_fetcher::Error>,
    dead: bool,
    cool: Option<GateSnapshot>,
    robots_sitemaps: Vec<String>,
}

/// A finished lease on its way to the commit thread.
struct Done {
    lease: Lease,
    host: String,
    record: Option<PageRecord>,
    exchange: Option<OwnedExchange>,
    outcome: Outcome,
    discovered: Vec<NewUrl>,
    /// This failure counts towards the host's circuit breaker (connection error,
    /// timeout, 5xx); `Some(false)` is a response that resets it.
    host_failure: Option<bool>,
    cool: Option<GateSnapshot>,
    bytes: u64,
}

struct OwnedExchange {
    request_head: String,
    response_head: String,
    body: bytes::Bytes,
    ip: Option<String>,
}

/// One crawl, opened on its state directory. See the crate docs.
pub struct Crawler {
    shared: Arc<Shared>,
    sinks: Vec<Box<dyn Sink>>,
    persisted: Persisted,
}

impl std::fmt::Debug for Crawler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawler")
            .field("state", &self.shared.cfg.state.dir)
            .field("seeds", &self.shared.cfg.seeds)
            .finish_non_exhaustive()
    }
}

/// Opens the frontier of `dir` (off the async threads: reopening reads the whole
/// seen set).
async fn open_frontier(dir: &Path, cache_capacity: u64) -> Result<Arc<Frontier>, Error> {
    let d = dir.to_path_buf();
    let opts = Options::default()
        .cache_capacity(cache_capacity)
        .max_attempts(FRONTIER_ATTEMPTS);
    let frontier = tokio::task::spawn_blocking(move || Frontier::open(&d, opts))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::state(dir, e))?;
    Ok(Arc::new(frontier))
}

/// Reads the configuration stored in a state directory, without crawling. `None` when
/// the directory holds no crawl yet.
///
/// # Errors
/// [`Error::State`] when the directory cannot be opened (locked, damaged, foreign).
pub async fn stored_config(dir: &Path) -> Result<Option<CrawlConfig>, Error> {
    let frontier = open_frontier(dir, 4 << 20).await?;
    let raw = frontier.meta("config").map_err(|e| Error::state(dir, e))?;
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::Config(format!("the stored configuration does not read: {e}"))),
    }
}

fn open_sinks(cfg: &CrawlConfig, frontier: &Frontier, fresh: bool) -> Result<Vec<Box<dyn Sink>>, Error> {
    let durability = if cfg.output.fsync {
        Durability::Fsync
    } else {
        Durability::Os
    };
    let checkpoint = |name: &str| -> Result<Option<Checkpoint>, Error> {
        match frontier
            .checkpoint(name)
            .map_err(|e| Error::state(&cfg.state.dir, e))?
        {
            Some(b) => Ok(Some(Checkpoint::from_bytes(&b)?)),
            None => Ok(None),
        }
    };
    let guard_fresh = |path: &Path| -> Result<(), Error> {
        if fresh && std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(Error::Outputs(format!(
                "{} already exists; remove it or choose another output file (a new crawl never overwrites output)",
                path.display()
            )));
        }
        Ok(())
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(path) = &cfg.output.jsonl {
        sinks.push(match checkpoint("jsonl")? {
            Some(cp) => Box::new(JsonlSink::resume(path, &cp, durability)?),
            None => {
                guard_fresh(path)?;
                Box::new(JsonlSink::create(path, durability)?)
            }
        });
    }
    if let Some(path) = &cfg.output.csv {
        sinks.push(match checkpoint("csv")? {
            Some(cp) => Box::new(CsvSink::resume(path, &cp, durability)?),
            None => {
                guard_fresh(path)?;
                Box::new(CsvSink::create(path, durability)?)
            }
        });
    }
    if let Some(path) = &cfg.output.warc {
        let opts = WarcOptions::default().durability(durability);
        sinks.push(match checkpoint("warc")? {
            Some(cp) => Box::new(WarcSink::resume(path, &cp, opts)?),
            None => {
                guard_fresh(path)?;
                Box::new(WarcSink::create(path, opts)?)
            }
        });
    }
    Ok(sinks)
}

impl Crawler {
    /// Opens (or creates) the crawl's state directory, binds it to the configuration's
    /// seeds and scope, cuts the outputs back to their last checkpoints and queues the
    /// seeds. A directory left by a crash is recovered here: its leases go back to
    /// their queues.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::State`] for a directory
    /// that is locked, damaged or bound to another crawl, [`Error::Outputs`] for outputs
    /// that differ from the stored ones, [`Error::Sink`] when an output cannot be
    /// opened.
    pub async fn open(config: CrawlConfig) -> Result<Crawler, Error> {
        let cfg = config;
        if cfg.seeds.is_empty() {
            return Err(Error::Config("no seed URL given".into()));
        }
        if cfg.politeness.concurrency == 0 || cfg.politeness.per_host_concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if !(cfg.politeness.rate >= 0.0 && cfg.politeness.rate.is_finite()) {
            return Err(Error::Config(
                "the rate must be 0 (no limit) or a positive number".into(),
            ));
        }
        let scope = Scope::new(&cfg)?;
        let dir = cfg.state.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::state(
                &dir,
                trawl_frontier::Error::Io(std::io::Error::new(e.kind(), format!("cannot create it: {e}"))),
            )
        })?;
        let frontier = open_frontier(&dir, cfg.state.cache_capacity).await?;
        let json = serde_json::to_vec(&cfg).map_err(|e| Error::Internal(e.to_string()))?;
        let fresh = frontier
            .meta("config")
            .map_err(|e| Error::state(&dir, e))?
            .is_none();
        let stored = frontier
            .bind_config(&cfg.identity(), &json)
            .map_err(|e| Error::state(&dir, e))?;
        if !fresh {
            let stored: CrawlConfig = serde_json::from_slice(&stored)
                .map_err(|e| Error::Config(format!("the stored configuration does not read: {e}")))?;
            let (a, b) = (&stored.output, &cfg.output);
            if a.jsonl != b.jsonl || a.csv != b.csv || a.warc != b.warc {
                return Err(Error::Outputs(format!(
                    "this crawl writes {}; resume it with the same outputs (trawl resume {} keeps them)",
                    describe_outputs(a),
                    dir.display()
                )));
            }
            frontier
                .set_meta("config", &json)
                .map_err(|e| Error::state(&dir, e))?;
        }
        let report = frontier.open_report();
        if report.requeued > 0 || report.quarantined > 0 {
            tracing::info!(
                requeued = report.requeued,
                quarantined = report.quarantined,
                "recovered leases left by an earlier run"
            );
        }
        let sinks = open_sinks(&cfg, &frontier, fresh)?;
        let persisted: Persisted = frontier
            .checkpoint(ENGINE_CHECKPOINT)
            .map_err(|e| Error::state(&dir, e))?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();

        // The seeds (and the sitemaps of their hosts) are queued every time: enqueue
        // is idempotent, so a resumed crawl just finds them known.
        let mut seeds = Vec::new();
        let mut sitemap_hosts = HashSet::new();
        for seed in &cfg.seeds {
            let url =
                Url::parse(seed).map_err(|e| Error::Config(format!("invalid seed URL {seed:?}: {e}")))?;
            let canon = trawl_parser::canonicalize(url.as_str(), None, &ParseOptions::default().canon)
                .unwrap_or_else(|_| url.to_string());
            seeds.push(NewUrl {
                url: canon,
                depth: 0,
                priority: Priority::Page,
                data: encode_data(Discovery::Seed, None),
            });
            if !cfg.scope.no_sitemaps && sitemap_hosts.insert(url.origin().ascii_serialization()) {
                seeds.push(NewUrl {
                    url: format!("{}/sitemap.xml", url.origin().ascii_serialization()),
                    depth: 0,
                    priority: Priority::Sitemap,
                    data: encode_data(Discovery::Sitemap, None),
                });
            }
        }
        frontier.enqueue(seeds).map_err(|e| Error::state(&dir, e))?;

        let p = &cfg.politeness;
        let mut policy = GatePolicy::default();
        policy.rate = (p.rate > 0.0).then_some(p.rate);
        policy.burst = p.burst.max(1);
        policy.concurrency = p.per_host_concurrency;
        policy.backoff_base = Duration::from_secs_f64(p.backoff_base_secs.max(0.0));
        policy.max_crawl_delay = if p.ignore_crawl_delay {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(p.max_crawl_delay_secs.max(0.0))
        };
        let mut builder = Fetcher::builder()
            .user_agent(p.user_agent.clone())
            .politeness(policy)
            .robots(p.robots)
            .allow_private_ips(p.allow_private_ips)
            .max_body(cfg.fetch.max_body)
            // One attempt per lease: retries go through the frontier (see `process`).
            .max_attempts(1)
            .connect_timeout(Duration::from_secs_f64(cfg.fetch.connect_timeout_secs.max(0.001)))
            .read_timeout(Duration::from_secs_f64(cfg.fetch.read_timeout_secs.max(0.001)))
            .total_timeout(Duration::from_secs_f64(cfg.fetch.total_timeout_secs.max(0.001)))
            .robots_store(Arc::new(FrontierRobots(frontier.clone())));
        for h in scope.seed_hosts() {
            builder = builder.allow_host(h);
        }
        let fetcher = builder.build()?;

        // Cool-downs survive a restart: a host in a Retry-After window stays in it.
        let now = now_ms();
        for h in frontier.hosts() {
            let until = h.politeness.earliest_ms();
            if until > now
                && let Ok(url) = Url::parse(&h.key)
            {
                fetcher.gate(&url).restore(GateSnapshot {
                    cool_down: Duration::from_millis(until - now),
                    backoff_level: h.politeness.backoff_level,
                });
            }
        }
        let mut dead = HashSet::new();
        for h in frontier.hosts() {
            if h.politeness.consecutive_failures >= p.give_up_after_failures.max(1) {
                dead.insert(h.id);
            }
        }

        let stats = Arc::new(Stats::new());
        let counts = frontier.counts();
        stats.queued.store(counts.queued, Relaxed);
        stats.done_total.store(counts.done, Relaxed);
        stats.failed_total.store(counts.failed, Relaxed);
        let user_agent = p.user_agent.clone();
        let want_exchange = cfg.output.warc.is_some();
        let shared = Arc::new(Shared {
            frontier,
            fetcher,
            scope,
            stats,
            parse_opts: ParseOptions::default(),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            outcome: Mutex::new(None),
            dead: Mutex::new(dead),
            pages_total: AtomicU64::new(persisted.pages),
            bytes_total: AtomicU64::new(persisted.bytes),
            elapsed_before_ms: persisted.elapsed_ms,
            started: Instant::now(),
            user_agent,
            want_exchange,
            cfg,
        });
        Ok(Crawler {
            shared,
            sinks,
            persisted,
        })
    }

    /// The live counters (for a progress display).
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The configuration this crawl runs with.
    pub fn config(&self) -> &CrawlConfig {
        &self.shared.cfg
    }

    /// The output files, for people.
    pub fn output_paths(&self) -> Vec<std::path::PathBuf> {
        self.sinks.iter().flat_map(|s| s.paths()).collect()
    }

    /// Opens the crawl and runs it: [`Crawler::open`] then [`Crawler::crawl`].
    ///
    /// # Errors
    /// As those two.
    pub async fn run(config: CrawlConfig, shutdown: CancellationToken) -> Result<Summary, Error> {
        Crawler::open(config).await?.crawl(shutdown).await
    }

    /// Crawls until done, a limit, or `shutdown`. On a stop, leasing stops, in-flight
    /// pages get `grace_secs` to finish, and the outputs and the frontier are flushed.
    /// Must run on a multi-threaded tokio runtime.
    ///
    /// # Errors
    /// [`Error::Sink`] when an output cannot be written (a full disk), [`Error::State`]
    /// when the frontier cannot be written. The state directory is resumable after
    /// either.
    pub async fn crawl(self, shutdown: CancellationToken) -> Result<Summary, Error> {
        let Crawler {
            shared: sh,
            sinks,
            persisted,
        } = self;
        let cfg = &sh.cfg;
        tracing::info!(
            seeds = ?cfg.seeds,
            state = %cfg.state.dir.display(),
            queued = sh.frontier.counts().queued,
            "crawl starting"
        );
        if !cfg.politeness.robots {
            tracing::warn!(
                "robots.txt is NOT obeyed (--no-robots): only crawl sites you own or may crawl this way"
            );
        }

        // A stop request, and the time limit, both end leasing.
        let watcher = {
            let sh = sh.clone();
            let shutdown = shutdown.clone();
            let left = cfg
                .limits
                .max_time_secs
                .map(|s| Duration::from_millis(((s * 1000.0) as u64).saturating_sub(sh.elapsed_before_ms)));
            tokio::spawn(async move {
                let limit = async {
                    match left {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => sh.end(CrawlOutcome::Interrupted),
                    _ = limit => {
                        tracing::info!("time limit reached");
                        sh.end(CrawlOutcome::LimitReached(Limit::Time));
                    }
                    _ = sh.stop.cancelled() => {}
                }
            })
        };
        let stall = tokio::spawn(stall_monitor(sh.clone()));
        let progress = tokio::spawn(progress_writer(sh.clone()));

        let (fetch_tx, fetch_rx) = mpsc::channel::<Job>(FETCH_CHANNEL);
        let (parse_tx, parse_rx) = mpsc::channel::<FetchedJob>(PARSE_CHANNEL);
        let (commit_tx, commit_rx) = mpsc::channel::<Vec<Done>>(COMMIT_CHANNEL);

        let commit = {
            let sh = sh.clone();
            tokio::task::spawn_blocking(move || commit_loop(&sh, commit_rx, sinks, persisted))
        };
        let parse = tokio::spawn(parse_stage(sh.clone(), parse_rx, commit_tx));
        let fetch = tokio::spawn(fetch_stage(sh.clone(), fetch_rx, parse_tx));
        // On a worker thread, next to the fetch tasks that wake it.
        let scheduled = tokio::spawn(schedule(sh.clone(), fetch_tx))
            .await
            .unwrap_or_else(|e| Err(Error::Internal(e.to_string())));
        if let Err(e) = &scheduled {
            tracing::error!(error = %e, "the scheduler stopped");
            sh.stop.cancel();
        }
        let _ = fetch.await;
        let _ = parse.await;
        let committed = commit.await.map_err(|e| Error::Internal(e.to_string()))?;
        watcher.abort();
        stall.abort();
        progress.abort();
        let outcome = sh
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(CrawlOutcome::Completed);
        let stats = sh.stats.snapshot();
        write_progress(&sh, &stats, Some(outcome));
        committed?;
        scheduled?;
        tracing::info!(?outcome, pages = stats.pages, "crawl finished");
        Ok(Summary { outcome, stats })
    }
}

fn describe_outputs(o: &crate::config::OutputConfig) -> String {
    let mut v = Vec::new();
    if let Some(p) = &o.jsonl {
        v.push(format!("-o {}", p.display()));
    }
    if let Some(p) = &o.csv {
        v.push(format!("-o {}", p.display()));
    }
    if let Some(p) = &o.warc {
        v.push(format!("--warc {}", p.display()));
    }
    if v.is_empty() {
        "no output".into()
    } else {
        v.join(" ")
    }
}

/// Per-host scheduling state, owned by the scheduler.
struct HostSlot {
    key: String,
    gate: Arc<HostGate>,
    fetching: Arc<AtomicUsize>,
    buffer: VecDeque<Lease>,
    not_before: Option<tokio::time::Instant>,
    sitemaps_checked: bool,
}

/// The scheduler: leases from ready hosts and dispatches to fetch tasks.
async fn schedule(sh: Arc<Shared>, fetch_tx: mpsc::Sender<Job>) -> Result<(), Error> {
    let cfg = &sh.cfg;
    let global = Arc::new(Semaphore::new(cfg.politeness.concurrency));
    let per_host = cfg.politeness.per_host_concurrency;
    let spacing = (cfg.politeness.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.politeness.rate));
    let mut slots: HashMap<HostId, HostSlot> = HashMap::new();
    let dir = &cfg.state.dir;
    loop {
        if sh.stop.is_cancelled() {
            return Ok(());
        }
        let in_flight = sh.in_flight();
        // Global limits: stop leasing once reached; end when the in-flight work is in.
        let pages = sh.pages_total.load(Relaxed);
        let room = match cfg.limits.max_pages {
            Some(max) if pages >= max => {
                if in_flight == 0 {
                    tracing::info!(max, "page limit reached");
                    sh.end(CrawlOutcome::LimitReached(Limit::Pages));
                    return Ok(());
                }
                0
            }
            Some(max) => max.saturating_sub(pages).saturating_sub(in_flight),
            None => u64::MAX,
        };
        if cfg
            .limits
            .max_bytes
            .is_some_and(|m| sh.bytes_total.load(Relaxed) >= m)
        {
            // Leases still in the scheduler's buffers are not fetched: they go back to
            // their queues when the directory is next opened.
            let buffered: u64 = slots.values().map(|s| s.buffer.len() as u64).sum();
            if in_flight <= buffered {
                tracing::info!("byte limit reached");
                sh.end(CrawlOutcome::LimitReached(Limit::Bytes));
                return Ok(());
            }
            wait(&sh, None).await;
            continue;
        }

        let now = now_ms();
        let mut progressed = false;
        let mut waiting = false;
        let mut blocked = false;
        let mut next: Option<Duration> = None;
        let mut candidates: Vec<HostId> = Vec::new();
        for (id, earliest) in sh.frontier.ready_hosts() {
            if earliest > now {
                waiting = true;
                soonest(Duration::from_millis(earliest - now), &mut next);
                continue;
            }
            candidates.push(id);
        }
        for (id, slot) in &slots {
            if !slot.buffer.is_empty() && !candidates.contains(id) {
                candidates.push(*id);
            }
        }
        let mut room = room;
        for id in candidates {
            if global.available_permits() == 0 {
                break;
            }
            if let std::collections::hash_map::Entry::Vacant(vacant) = slots.entry(id) {
                let Some(info) = sh.frontier.host(id) else {
                    continue;
                };
                let Ok(url) = Url::parse(&info.key) else { continue };
                let gate = sh.fetcher.gate(&url);
                let key = host_key(&url).unwrap_or_default();
                vacant.insert(HostSlot {
                    key,
                    gate,
                    fetching: Arc::new(AtomicUsize::new(0)),
                    buffer: VecDeque::new(),
                    not_before: None,
                    sitemaps_checked: false,
                });
            }
            let Some(slot) = slots.get_mut(&id) else { continue };
            let fetching = slot.fetching.load(Relaxed);
            if fetching >= per_host {
                continue;
            }
            let tnow = tokio::time::Instant::now();
            if let Some(nb) = slot.not_before
                && nb > tnow
            {
                waiting = true;
                soonest(nb - tnow, &mut next);
                continue;
            }
            let ready_in = slot.gate.ready_in();
            if !ready_in.is_zero() {
                waiting = true;
                soonest(ready_in, &mut next);
                continue;
            }
            if slot.buffer.is_empty() {
                if room == 0 {
                    continue;
                }
                if let Some(max) = cfg.limits.max_pages_per_host
                    && let Some(info) = sh.frontier.host(id)
                    && info.counts.done + info.counts.failed + info.counts.leased >= max
                {
                    blocked = true;
                    continue;
                }
                let mut n = (per_host * 2).clamp(1, LEASE_BATCH) as u64;
                n = n.min(room);
                if let Some(max) = cfg.limits.max_pages_per_host
                    && let Some(info) = sh.frontier.host(id)
                {
                    n = n.min(max.saturating_sub(info.counts.done + info.counts.failed + info.counts.leased));
                }
                // A lease is one short sled batch, done inline. (Moving it to
                // `spawn_blocking` removed the rare stalls the monitor reports at a
                // million URLs, when it waits on a flush in progress, but cost 8% of the
                // throughput and 10% more memory in an A/B run: see BENCHMARKS.md.)
                let leases = sh
                    .frontier
                    .lease(id, n as usize)
                    .map_err(|e| Error::state(dir, e))?;
                room -= leases.len() as u64;
                sh.stats.in_flight.fetch_add(leases.len() as u64, Relaxed);
                slot.buffer.extend(leases);
                if slot.buffer.is_empty() {
                    continue;
                }
            }
            let take = if spacing.is_some() { 1 } else { per_host - fetching };
            for _ in 0..take {
                let Ok(permit) = global.clone().try_acquire_owned() else {
                    break;
                };
                let Some(lease) = slot.buffer.pop_front() else {
                    break;
                };
                slot.fetching.fetch_add(1, Relaxed);
                let check_sitemaps = !slot.sitemaps_checked && !cfg.scope.no_sitemaps;
                slot.sitemaps_checked = true;
                let job = Job {
                    lease,
                    permit,
                    fetching: slot.fetching.clone(),
                    gate: slot.gate.clone(),
                    host: slot.key.clone(),
                    check_sitemaps,
                };
                if fetch_tx.send(job).await.is_err() {
                    return Ok(());
                }
                progressed = true;
            }
            if let Some(s) = spacing {
                slot.not_before = Some(tokio::time::Instant::now() + s);
            }
        }
        if progressed {
            tokio::task::yield_now().await;
            continue;
        }
        // `in_flight` was read before `ready_hosts`: an ack enqueues its links before it
        // lowers the count, so 0 there means no link can have arrived unseen.
        if in_flight == 0 && !waiting {
            let buffered: usize = slots.values().map(|s| s.buffer.len()).sum();
            if buffered == 0 {
                let outcome = if blocked {
                    tracing::info!("every remaining URL is on a host at its page limit");
                    CrawlOutcome::LimitReached(Limit::PagesPerHost)
                } else if room == 0 && cfg.limits.max_pages.is_some() && sh.frontier.counts().queued > 0 {
                    CrawlOutcome::LimitReached(Limit::Pages)
                } else {
                    CrawlOutcome::Completed
                };
                sh.end(outcome);
                return Ok(());
            }
        }
        wait(&sh, next).await;
    }
}

fn soonest(d: Duration, next: &mut Option<Duration>) {
    *next = Some(next.map_or(d, |n| n.min(d)));
}

/// Waits for a wake-up, a stop, or `next` (a host becoming ready).
async fn wait(sh: &Shared, next: Option<Duration>) {
    let d = next
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(1));
    tokio::select! {
        _ = sh.wake.notified() => {}
        _ = tokio::time::sleep(d) => {}
        _ = sh.stop.cancelled() => {}
    }
}

/// Runs a fetch task per job; on a stop, gives them the grace period, then drops the
/// rest (their leases go back to the queue when the directory is next opened).
async fn fetch_stage(sh: Arc<Shared>, mut rx: mpsc::Receiver<Job>, parse_tx: mpsc::Sender<FetchedJob>) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    tasks.spawn(fetch_task(sh.clone(), job, parse_tx.clone()));
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(parse_tx);
    let grace = Duration::from_secs_f64(sh.cfg.state.grace_secs.max(0.0));
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "in-flight fetches did not finish within the grace period; they will be fetched again on resume"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

async fn fetch_task(sh: Arc<Shared>, job: Job, parse_tx: mpsc::Sender<FetchedJob>) {
    let Job {
        lease,
        permit,
        fetching,
        gate,
        host,
        check_sitemaps,
    } = job;
    let dead = sh
        .dead
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&lease.host);
    let t0 = Instant::now();
    let result = if dead {
        Err(trawl_fetcher::Error::InvalidUrl { url: String::new() })
    } else {
        sh.fetcher.fetch(&lease.url).await
    };
    let robots_sitemaps = if check_sitemaps && !dead {
        sh.fetcher.sitemaps(&lease.url).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    sh.stats
        .fetch_us
        .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
    let snap = gate.snapshot();
    let cool = (!snap.cool_down.is_zero()).then_some(snap);
    fetching.fetch_sub(1, Relaxed);
    sh.wake.notify_one();
    let item = FetchedJob {
        lease,
        host,
        result,
        dead,
        cool,
        robots_sitemaps,
    };
    // The permit is held until the page is in the parse channel: a slow parse stage
    // slows fetching instead of piling bodies up in memory.
    let _ = parse_tx.send(item).await;
    drop(permit);
}

/// Hands fetched pages to `spawn_blocking` parses, at most `parse_threads` at once.
async fn parse_stage(
    sh: Arc<Shared>,
    mut rx: mpsc::Receiver<FetchedJob>,
    commit_tx: mpsc::Sender<Vec<Done>>,
) {
    let permits = Arc::new(Semaphore::new(sh.cfg.state.parse_threads.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Whatever else is waiting goes in the same blocking call: one thread hand-off
        // per batch instead of per page.
        let mut batch = vec![first];
        while batch.len() < PARSE_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let sh = sh.clone();
        let tx = commit_tx.clone();
        tasks.spawn_blocking(move || {
            let t0 = Instant::now();
            let done: Vec<Done> = batch.into_iter().map(|item| process(&sh, item)).collect();
            sh.stats
                .parse_us
                .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
            drop(permit);
            let _ = tx.blocking_send(done);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Checks a discovered URL (canonical) against scope and depth; `None` when it is not
/// followed.
fn follow(sh: &Shared, url: String, depth: u16) -> Option<String> {
    if sh.scope.check_str(&url).is_err() {
        sh.stats.refused.fetch_add(1, Relaxed);
        return None;
    }
    if sh.cfg.limits.max_depth.is_some_and(|m| depth > m) {
        sh.stats.beyond_depth.fetch_add(1, Relaxed);
        return None;
    }
    Some(url)
}

fn failure(kind: &str, message: String) -> Option<FailureInfo> {
    Some(FailureInfo {
        kind: kind.to_string(),
        message,
    })
}

/// Turns a fetched lease into a record, an outcome and discovered links. Runs on a
/// blocking thread.
fn process(sh: &Shared, item: FetchedJob) -> Done {
    let FetchedJob {
        lease,
        host,
        result,
        dead,
        cool,
        robots_sitemaps,
    } = item;
    let (discovery, parent) = decode_data(&lease.data);
    let child_depth = lease.depth.saturating_add(1);
    let mut discovered = Vec::new();
    // Sitemaps named by robots.txt: found with the host's first page.
    for sm in robots_sitemaps {
        let Ok(c) = trawl_parser::canonicalize(sm.trim(), None, &sh.parse_opts.canon) else {
            continue;
        };
        if let Some(u) = follow(sh, c, 0) {
            discovered.push(NewUrl {
                url: u,
                depth: 0,
                priority: Priority::Sitemap,
                data: encode_data(Discovery::Sitemap, None),
            });
        }
    }
    let mut record = PageRecord {
        url: lease.url.clone(),
        final_url: lease.url.clone(),
        depth: lease.depth,
        parent,
        discovery,
        fetched_at: trawl_sink::rfc3339_ms(now_ms()),
        ..PageRecord::default()
    };
    let is_sitemap = lease.priority == Priority::Sitemap;
    let fetched = match result {
        Ok(f) => f,
        Err(e) => {
            let (kind, message) = if dead {
                (
                    "host-unavailable",
                    "host unavailable: too many consecutive failures".to_string(),
                )
            } else {
                (e.kind(), e.to_string())
            };
            let host_failure = match &e {
                trawl_fetcher::Error::Timeout { .. }
                | trawl_fetcher::Error::TooSlow { .. }
                | trawl_fetcher::Error::Request { .. } => Some(true),
                trawl_fetcher::Error::Status { status, .. } => Some(*status >= 500),
                _ => None,
            };
            // Transient failures go back to the frontier's queue (the host's gate is
            // cooling down meanwhile), so no task sits out a Retry-After holding a
            // fetch slot, and a cool-down is persisted the moment it starts.
            let transient = matches!(
                &e,
                trawl_fetcher::Error::Timeout { .. }
                    | trawl_fetcher::Error::TooSlow { .. }
                    | trawl_fetcher::Error::Request { .. }
            ) || matches!(&e, trawl_fetcher::Error::Status { status, .. } if *status >= 500 || *status == 408 || *status == 429);
            // robots.txt unreadable (5xx, 429, down): the fetcher disallows the host
            // for a minute; try again after that, and count it against the host.
            let robots_down = matches!(&e, trawl_fetcher::Error::RobotsUnavailable { .. });
            let host_failure = if robots_down { Some(true) } else { host_failure };
            let cool = match Url::parse(&lease.url) {
                Ok(u) if robots_down => {
                    let gate = sh.fetcher.gate(&u);
                    gate.cool_down(Some(ROBOTS_UNAVAILABLE_WAIT));
                    Some(gate.snapshot())
                }
                _ => cool,
            };
            let transient = transient || robots_down;
            if !dead && transient && lease.attempts < sh.cfg.fetch.max_attempts.max(1) {
                return Done {
                    lease,
                    host,
                    record: None,
                    exchange: None,
                    outcome: Outcome::Retry,
                    discovered,
                    host_failure,
                    cool,
                    bytes: 0,
                };
            }
            record.status = e.status();
            record.error = failure(kind, message.clone());
            return Done {
                lease,
                host,
                record: (!is_sitemap).then_some(record),
                exchange: None,
                outcome: Outcome::Failed(format!("{kind}: {message}")),
                discovered,
                host_failure: if dead { None } else { host_failure },
                cool,
                bytes: 0,
            };
        }
    };
    record.status = Some(fetched.status);
    record.content_type = fetched.content_type.clone();
    record.wire_bytes = fetched.wire_bytes;
    record.body_bytes = fetched.body_bytes;
    record.timings = trawl_sink::Timings {
        queued_ms: fetched.timings.queued.as_secs_f64() * 1000.0,
        first_byte_ms: fetched.timings.first_byte.as_secs_f64() * 1000.0,
        total_ms: fetched.timings.total.as_secs_f64() * 1000.0,
    };
    if !fetched.body.is_empty() {
        record.content_hash = Some(format!(
            "xxh3:{:032x}",
            xxhash_rust::xxh3::xxh3_128(&fetched.body)
        ));
    }
    let ct = fetched.content_type.as_deref().unwrap_or("").to_ascii_lowercase();
    if let Some(target) = &fetched.redirect_to {
        record.redirect_to = Some(target.to_string());
        let canon = trawl_parser::canonicalize(target.as_str(), None, &sh.parse_opts.canon);
        match canon {
            Ok(c) => {
                if let Some(u) = follow(sh, c, child_depth) {
                    discovered.push(NewUrl {
                        url: u,
                        depth: child_depth,
                        priority: if is_sitemap {
                            Priority::Sitemap
                        } else {
                            Priority::Redirect
                        },
                        data: encode_data(Discovery::Redirect, Some(&lease.url)),
                    });
                }
            }
            Err(_) => {
                sh.stats.refused.fetch_add(1, Relaxed);
            }
        }
    } else if is_sitemap && (200..300).contains(&fetched.status) {
        sh.stats.sitemaps.fetch_add(1, Relaxed);
        match trawl_parser::parse_sitemap(&fetched.body, &SitemapLimits::default()) {
            Ok(map) => {
                for loc in map.locs {
                    let Ok(c) = trawl_parser::canonicalize(loc.trim(), None, &sh.parse_opts.canon) else {
                        continue;
                    };
                    let (priority, depth, disc) = match map.kind {
                        SitemapKind::Index => (Priority::Sitemap, lease.depth, Discovery::Sitemap),
                        _ => (Priority::Page, child_depth, Discovery::Sitemap),
                    };
                    if let Some(u) = follow(sh, c, depth) {
                        discovered.push(NewUrl {
                            url: u,
                            depth,
                            priority,
                            // No parent: a sitemap lists thousands, and the discovery says enough.
                            data: encode_data(disc, None),
                        });
                    }
                    // A sitemap lists up to 50,000 URLs: enqueue them as they come, in
                    // batches, ahead of the sitemap's ack (enqueue is idempotent, so a
                    // crash in between only means the sitemap is read again). Memory
                    // holds one batch, not the whole file's worth.
                    if discovered.len() >= ENQUEUE_CHUNK {
                        let chunk = std::mem::take(&mut discovered);
                        if let Err(e) = sh.frontier.enqueue(chunk) {
                            // The frontier is now poisoned: the ack reports it and stops.
                            tracing::error!(error = %e, "cannot enqueue sitemap URLs");
                        }
                        fault("enqueue-chunk");
                    }
                }
            }
            Err(e) => tracing::debug!(url = %lease.url, error = %e, "sitemap does not read"),
        }
    } else if (200..300).contains(&fetched.status) && (ct.contains("html") || ct.is_empty()) {
        let x_robots = fetched
            .headers
            .get("x-robots-tag")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let page = trawl_parser::parse_page(
            &fetched.body,
            fetched.content_type.as_deref(),
            &fetched.final_url,
            x_robots.as_deref(),
            &sh.parse_opts,
        );
        record.title = page.title;
        record.outlinks = page.links.len() as u32;
        record.robots = RobotsFlags {
            noindex: page.robots.noindex,
            nofollow: page.robots.nofollow,
        };
        sh.stats.links.fetch_add(page.links.len() as u64, Relaxed);
        if !page.robots.nofollow {
            for link in page.links {
                if let Some(u) = follow(sh, link.url, child_depth) {
                    discovered.push(NewUrl {
                        url: u,
                        depth: child_depth,
                        priority: Priority::Page,
                        data: encode_data(Discovery::Link, Some(&lease.url)),
                    });
                }
            }
        }
    }
    let exchange = (sh.want_exchange && !is_sitemap).then(|| {
        let path = match fetched.url.query() {
            Some(q) => format!("{}?{q}", fetched.url.path()),
            None => fetched.url.path().to_string(),
        };
        let request_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept-Encoding: gzip, br, zstd, deflate",
            host_key(&fetched.url).unwrap_or_default(),
            sh.user_agent
        );
        let reason = http::StatusCode::from_u16(fetched.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut response_head = format!("HTTP/1.1 {} {reason}", fetched.status);
        for (k, v) in fetched.headers.iter() {
            response_head.push_str("\r\n");
            response_head.push_str(k.as_str());
            response_head.push_str(": ");
            response_head.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        OwnedExchange {
            request_head,
            response_head,
            body: fetched.body.clone(),
            ip: fetched.remote_addr.map(|a| a.ip().to_string()),
        }
    });
    let bytes = fetched.body_bytes;
    sh.stats.wire_bytes.fetch_add(fetched.wire_bytes, Relaxed);
    Done {
        lease,
        host,
        record: (!is_sitemap).then_some(record),
        exchange,
        outcome: Outcome::Done,
        discovered,
        host_failure: Some(fetched.status >= 500),
        cool,
        bytes,
    }
}

/// The commit thread: sinks first, then one ack batch with their checkpoints.
fn commit_loop(
    sh: &Shared,
    mut rx: mpsc::Receiver<Vec<Done>>,
    mut sinks: Vec<Box<dyn Sink>>,
    mut persisted: Persisted,
) -> Result<(), Error> {
    let dir = &sh.cfg.state.dir;
    let flush_every = Duration::from_millis(sh.cfg.state.flush_interval_ms);
    let mut last_flush = Instant::now();
    let p = &sh.cfg.politeness;
    let mut politeness: HashMap<HostId, Politeness> = sh
        .frontier
        .hosts()
        .into_iter()
        .filter(|h| h.politeness != Politeness::default())
        .map(|h| (h.id, h.politeness))
        .collect();
    let result = (|| -> Result<(), Error> {
        while let Some(mut batch) = rx.blocking_recv() {
            if batch.len() < COMMIT_BATCH / 4 && !sh.stop.is_cancelled() {
                std::thread::sleep(COMMIT_LINGER);
            }
            let t0 = Instant::now();
            while batch.len() < COMMIT_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let mut acks = Vec::with_capacity(batch.len());
            let mut records = 0u64;
            let mut bytes = 0u64;
            for mut d in batch {
                if !sh.cfg.limits.budgets.is_empty() {
                    apply_budgets(sh, &mut persisted, &mut d.discovered);
                }
                // A sitemap can bring 50,000 URLs: enqueue them ahead of the ack in
                // modest batches (enqueue is idempotent, so a crash in between only
                // means the sitemap is read again), keeping sled's batches small.
                if d.discovered.len() > ENQUEUE_CHUNK {
                    let links = std::mem::take(&mut d.discovered);
                    let mut it = links.into_iter().peekable();
                    let mut chunks = 0;
                    while it.peek().is_some() {
                        let chunk: Vec<NewUrl> = it.by_ref().take(ENQUEUE_CHUNK).collect();
                        sh.frontier.enqueue(chunk).map_err(|e| Error::state(dir, e))?;
                        fault("enqueue-chunk");
                        chunks += 1;
                        // sled holds written pages in memory until a flush: bound it.
                        if chunks % 8 == 0 {
                            sh.frontier.flush().map_err(|e| Error::state(dir, e))?;
                        }
                    }
                }
                if let Some(rec) = &d.record {
                    let x = d.exchange.as_ref().map(|x| trawl_sink::Exchange {
                        request_head: &x.request_head,
                        response_head: &x.response_head,
                        body: &x.body,
                        ip: x.ip.as_deref(),
                    });
                    for s in sinks.iter_mut() {
                        s.write(rec, x.as_ref())?;
                    }
                    records += 1;
                    if records == 2 {
                        fault("mid-sink-write");
                    }
                    sh.stats
                        .record(&d.host, rec.status, rec.error.as_ref().map(|e| e.kind.as_str()));
                }
                bytes += d.bytes;
                breaker(
                    sh,
                    &mut politeness,
                    &d,
                    p.pause_after_failures,
                    p.give_up_after_failures,
                )?;
                acks.push(Ack {
                    lease: d.lease,
                    outcome: d.outcome,
                    discovered: d.discovered,
                });
            }
            let n = acks.len() as u64;
            persisted.pages += records;
            persisted.bytes += bytes;
            persisted.elapsed_ms = sh.elapsed_before_ms + sh.started.elapsed().as_millis() as u64;
            let mut cps: Vec<(String, Vec<u8>)> = Vec::with_capacity(sinks.len() + 1);
            for s in sinks.iter_mut() {
                cps.push((s.name().to_string(), s.checkpoint()?.to_bytes().to_vec()));
            }
            cps.push((
                ENGINE_CHECKPOINT.to_string(),
                serde_json::to_vec(&persisted).unwrap_or_default(),
            ));
            let refs: Vec<(&str, &[u8])> = cps.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
            fault("before-ack");
            sh.frontier.ack(acks, &refs).map_err(|e| Error::state(dir, e))?;
            fault("after-ack");
            sh.pages_total.store(persisted.pages, Relaxed);
            sh.bytes_total.store(persisted.bytes, Relaxed);
            sh.stats.bytes.fetch_add(bytes, Relaxed);
            sh.stats.in_flight.fetch_sub(n, Relaxed);
            let counts = sh.frontier.counts();
            sh.stats.queued.store(counts.queued, Relaxed);
            sh.stats.done_total.store(counts.done, Relaxed);
            sh.stats.failed_total.store(counts.failed, Relaxed);
            sh.wake.notify_one();
            if last_flush.elapsed() >= flush_every {
                sh.frontier.flush().map_err(|e| Error::state(dir, e))?;
                fault("after-flush");
                last_flush = Instant::now();
            }
            sh.stats
                .commit_us
                .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
        }
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::error!(error = %e, "cannot commit; stopping (the state directory stays resumable)");
        sh.end(CrawlOutcome::Interrupted);
        rx.close();
        while rx.blocking_recv().is_some() {}
    }
    // Whatever happened, what was acked is made durable.
    let flushed = sh.frontier.flush().map_err(|e| Error::state(dir, e));
    result.and(flushed)
}

/// How long a host whose robots.txt could not be read waits before its URLs are tried
/// again (the fetcher keeps that verdict for a minute).
const ROBOTS_UNAVAILABLE_WAIT: Duration = Duration::from_secs(61);

/// A testing hook for crash tests: with `TRAWL_FAULT=<point>:<n>` in the environment,
/// the process aborts (no destructors, no flush: like `kill -9`) the `n`th time the
/// commit path reaches `<point>`: `enqueue-chunk` (between the batches of a large
/// link set), `mid-sink-write` (after the second record of a batch), `before-ack`
/// (records handed to the OS, ack not written), `after-ack` (acked, not flushed) or
/// `after-flush`. Without the variable it costs one atomic load.
fn fault(point: &str) {
    static FAULT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let spec = FAULT.get_or_init(|| {
        let v = std::env::var("TRAWL_FAULT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = spec
        && p == point
        && SEEN.fetch_add(1, Relaxed) + 1 == *n
    {
        eprintln!("trawl: TRAWL_FAULT: crashing at {point} ({n})");
        std::process::abort();
    }
}

/// Drops discovered links over a path budget, counting the rest.
fn apply_budgets(sh: &Shared, persisted: &mut Persisted, links: &mut Vec<NewUrl>) {
    links.retain(|l| {
        let Ok(u) = Url::parse(&l.url) else { return true };
        let path = u.path();
        let Some(b) = sh.cfg.limits.budgets.iter().find(|b| path.starts_with(&b.prefix)) else {
            return true;
        };
        let key = format!("{} {}", host_key(&u).unwrap_or_default(), b.prefix);
        let used = persisted.budgets.entry(key).or_default();
        if *used >= b.max {
            sh.stats.over_budget.fetch_add(1, Relaxed);
            false
        } else {
            *used += 1;
            true
        }
    });
}

/// The per-host circuit breaker and persisted cool-downs.
fn breaker(
    sh: &Shared,
    politeness: &mut HashMap<HostId, Politeness>,
    d: &Done,
    pause_after: u32,
    give_up_after: u32,
) -> Result<(), Error> {
    let id = d.lease.host;
    let before = politeness.get(&id).copied().unwrap_or_default();
    let mut p = before;
    let now = now_ms();
    match d.host_failure {
        Some(true) => {
            p.consecutive_failures += 1;
            let n = p.consecutive_failures;
            if n >= give_up_after.max(1) {
                if sh.dead.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
                    tracing::warn!(
                        host = %d.host,
                        failures = n,
                        failure_rate = sh.stats.host_failure_rate(&d.host),
                        "host unavailable: its remaining URLs fail without a request"
                    );
                }
            } else if n >= pause_after.max(1) {
                let step = (n - pause_after).min(6);
                let pause = Duration::from_secs(10 << step).min(Duration::from_secs(600));
                p.backoff_level = step + 1;
                p.retry_after_until_ms = p.retry_after_until_ms.max(now + pause.as_millis() as u64);
                tracing::warn!(host = %d.host, failures = n, pause_s = pause.as_secs(), "host paused after consecutive failures");
            }
        }
        Some(false) => {
            p.consecutive_failures = 0;
            p.backoff_level = 0;
        }
        None => {}
    }
    if let Some(c) = d.cool {
        p.retry_after_until_ms = p.retry_after_until_ms.max(now + c.cool_down.as_millis() as u64);
        p.backoff_level = p.backoff_level.max(c.backoff_level);
    } else if d.host_failure == Some(false) && p.retry_after_until_ms <= now {
        p.retry_after_until_ms = 0;
    }
    if p != before {
        sh.frontier
            .set_politeness(id, p)
            .map_err(|e| Error::state(&sh.cfg.state.dir, e))?;
        if p.retry_after_until_ms > before.retry_after_until_ms {
            // Durable at once (it is rare): a crash now must not forget the wait.
            sh.frontier
                .flush()
                .map_err(|e| Error::state(&sh.cfg.state.dir, e))?;
            tracing::info!(
                host = %d.host,
                wait_ms = p.retry_after_until_ms.saturating_sub(now),
                "host cooling down"
            );
        }
        if p == Politeness::default() {
            politeness.remove(&id);
        } else {
            politeness.insert(id, p);
        }
    }
    Ok(())
}

/// Measures how late the runtime wakes a timer: blocking work on the async threads.
async fn stall_monitor(sh: Arc<Shared>) {
    loop {
        let t = tokio::time::Instant::now();
        tokio::time::sleep(STALL_TICK).await;
        let late = t.elapsed().saturating_sub(STALL_TICK);
        sh.stats.stall(late.as_micros() as u64);
        if late >= STALL_WARN {
            tracing::warn!(
                late_ms = late.as_millis() as u64,
                "the async runtime was blocked (a stage is doing blocking work on its threads)"
            );
        }
    }
}

/// What `progress.json` holds: a running crawl's picture for `trawl status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// The process writing it.
    pub pid: u32,
    /// When it was written, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// How the crawl ended, once it has.
    pub outcome: Option<CrawlOutcome>,
    /// The output files.
    pub outputs: Vec<std::path::PathBuf>,
    /// The counters.
    pub stats: StatsSnapshot,
}

/// The name of the progress file in the state directory.
pub const PROGRESS_FILE: &str = "progress.json";

fn write_progress(sh: &Shared, stats: &StatsSnapshot, outcome: Option<CrawlOutcome>) {
    let o = &sh.cfg.output;
    let outputs = [&o.jsonl, &o.csv, &o.warc]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let p = Progress {
        pid: std::process::id(),
        updated_ms: now_ms(),
        outcome,
        outputs,
        stats: stats.clone(),
    };
    let path = sh.cfg.state.dir.join(PROGRESS_FILE);
    let tmp = sh.cfg.state.dir.join("progress.json.tmp");
    if let Ok(json) = serde_json::to_vec_pretty(&p)
        && std::fs::write(&tmp, json).is_ok()
    {
        let _ = std::fs::rename(&tmp, &path);
    }
}

async fn progress_writer(sh: Arc<Shared>) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let snap = sh.stats.snapshot();
        let sh2 = sh.clone();
        let _ = tokio::task::spawn_blocking(move || write_progress(&sh2, &snap, None)).await;
    }
}
