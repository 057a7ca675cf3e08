//! [`Crawler`]: the pipeline, one file per stage.
//!
//! ```text
//! frontier ─lease─► schedule ─FETCH_CHANNEL─► fetch ─PARSE_CHANNEL─► parse (spawn_blocking)
//!    ▲                                                                    │ COMMIT_CHANNEL
//!    └──────── ack(done/failed + discovered links + sink checkpoints) ◄─ commit thread ◄┘
//! ```
//!
//! - `schedule`: leases only from hosts whose politeness gate lets a request start
//!   now, so a slow or cooling host never holds up another.
//! - `fetch`: one task per lease; a global permit is held from dispatch until the
//!   fetched page is in the parse channel, so memory is bounded by the channels.
//! - `parse`: `spawn_blocking` batches, at most `parse_threads` at once; builds the
//!   records and the links to follow (`record` builds the WARC exchange).
//! - `sitemap`: reads sitemaps on a thread of its own, at most [`SITEMAP_LANE`] at a
//!   time, so that their URLs reach the frontier alongside the crawl.
//! - `commit`: writes records to every sink, then acks the batch with the sinks'
//!   checkpoints in one frontier batch; runs the circuit breaker and (`sources`) the
//!   broken-link tracker. Discovered links go
//!   back through that ack, never through a channel to the fetchers.
//! - `progress`: `progress.json` and the stall monitor.
//! - `fault`: crash points for the kill -9 tests (the `fault-injection` feature).
//!
//! This file wires them: opening a crawl in its state directory, and running it.
//! Completion is counted: the crawl is over when nothing is in flight and no host has
//! URLs it may fetch now or later.

mod commit;
mod fault;
mod fetch;
mod guard;
mod origin;
mod parse;
mod progress;
mod record;
mod schedule;
pub(crate) mod sitemap;
mod slot;
mod sources;

#[cfg(test)]
pub(crate) use origin::decode_data;
pub(crate) use origin::{decode_origin, encode_data, encode_origin};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use trawl_fetcher::{AcceptTypes, Fetcher, GatePolicy, GateSnapshot};
use trawl_frontier::{FrontierStore, NewUrl, Priority};
use trawl_parser::ParseOptions;
use trawl_sink::{Discovery, Sink};
use url::Url;

use crate::config::CrawlConfig;
use crate::error::Error;
use crate::host::HostKey;
use crate::scope::Scope;
use crate::state::{FrontierRobots, Persisted, StateDir, describe_outputs};
use crate::stats::{Stats, StatsSnapshot};
use crate::validate::ValidConfig;

pub use progress::{PROGRESS_FILE, Progress};
pub use sitemap::SITEMAP_LANE;

/// Leases waiting for a fetch slot. Small: the scheduler only dispatches a lease once
/// it holds a global permit, so this never holds more than `concurrency` jobs.
pub const FETCH_CHANNEL: usize = 64;
/// Fetched pages waiting for a parse slot. Bounded so that slow parsing slows the
/// fetchers (a fetch task keeps its permit until its page is in here); the bytes of
/// the bodies held are bounded by [`BODY_BYTES`].
pub const PARSE_CHANNEL: usize = 128;
/// Batches of finished pages (records + links, at most [`PARSE_BATCH`] each) waiting
/// for the commit thread: a few ack batches' worth, so the commit thread batches well
/// while a slow disk pushes back.
pub const COMMIT_CHANNEL: usize = 64;
/// The most fetched pages one blocking parse call takes.
pub const PARSE_BATCH: usize = 16;
/// Bytes of bodies in memory, from their download to the end of their parse: the
/// fetcher's body-memory budget ([`trawl_fetcher::FetcherBuilder::body_memory`]). Each
/// body reserves its `Content-Length` before it is read, and its page keeps the
/// reservation through the parse channel and the parse, so the bodies held stay
/// within this whatever their sizes and the concurrency (bodies without a length
/// may overdraw it; the fetcher counts that).
pub const BODY_BYTES: usize = 16 << 20;
/// Bytes of HTML parsed at once, over all parse threads. A parse batch takes its
/// bodies' share (at most all of it): a document's tree takes about ten times its
/// size, so two 4 MiB pages do not build their trees side by side, while small pages
/// still parse on every thread.
pub const PARSE_BYTES: usize = 4 << 20;
/// The unit of [`PARSE_BYTES`] permits.
const BUDGET_UNIT: usize = 1024;

/// A byte budget (a semaphore counted in KiB). Every body takes at least one unit, and
/// at most the whole budget, so a body larger than the budget waits until it is alone.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    sem: Arc<tokio::sync::Semaphore>,
    units: u32,
}

impl ByteBudget {
    pub(crate) fn new(bytes: usize) -> ByteBudget {
        let units = (bytes / BUDGET_UNIT).max(1) as u32;
        ByteBudget {
            sem: Arc::new(tokio::sync::Semaphore::new(units as usize)),
            units,
        }
    }
    /// Waits for `bytes` of the budget (rounded up to a unit, capped at the budget).
    pub(crate) async fn take(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let n = bytes.div_ceil(BUDGET_UNIT).clamp(1, self.units as usize) as u32;
        self.sem.clone().acquire_many_owned(n).await.ok()
    }
}
/// The most pages one ack batch holds.
pub const COMMIT_BATCH: usize = 256;
/// The most URLs leased from a host at once (one frontier write per batch).
pub const LEASE_BATCH: usize = 32;
/// Leases of one URL that did not complete (a crash or a stop cut them short) after
/// which it fails with `too-many-attempts` instead of being fetched again: a page that
/// crashes the crawler every time must not loop forever. Generous, because a crash or
/// a stop also returns the URLs waiting in the scheduler's lease buffers.
pub const MAX_LEASES: u32 = 10;

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

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// State shared by the stages.
pub(crate) struct Shared {
    pub(crate) cfg: CrawlConfig,
    /// The frontier, through the seam: the embedded sled store or a shared one.
    pub(crate) frontier: Arc<dyn FrontierStore>,
    pub(crate) fetcher: Fetcher,
    pub(crate) scope: Scope,
    pub(crate) stats: Arc<Stats>,
    /// The metrics the stages feed as they go (the rest is read at scrape time).
    pub(crate) live: Arc<crate::metrics::Live>,
    pub(crate) parse_opts: ParseOptions,
    /// Wakes the scheduler thread: a slot freed, a batch acked, a stop.
    pub(crate) wake: schedule::Wake,
    /// The hosts of jobs that finished (their permits dropped) since the scheduler
    /// last looked, one entry per job: at most `concurrency` entries.
    pub(crate) finished: Mutex<Vec<trawl_frontier::HostId>>,
    /// Wakes the sitemap thread when a batch was acked (the queue may have shrunk).
    pub(crate) acked: schedule::Wake,
    /// Stop leasing (a stop request or a limit).
    pub(crate) stop: CancellationToken,
    pub(crate) outcome: Mutex<Option<CrawlOutcome>>,
    /// Permits for sitemaps fetched or read at once ([`SITEMAP_LANE`]).
    pub(crate) sitemap_lane: Arc<tokio::sync::Semaphore>,
    /// HTML being parsed ([`PARSE_BYTES`]).
    pub(crate) parse_budget: ByteBudget,
    /// The query-variant trap guard.
    pub(crate) variants: guard::QueryVariants,
    /// URLs accepted under each path budget (`host prefix`), over the whole crawl.
    /// Every way a URL enters (links, redirects, sitemaps) goes through it; the commit
    /// stage stores it with every ack.
    pub(crate) budgets: Mutex<HashMap<String, u64>>,
    /// Counters of earlier runs plus this one's committed work.
    pub(crate) pages_total: AtomicU64,
    /// Body bytes downloaded: earlier runs' (as acked) plus this run's, counted as each
    /// body arrives, so that the byte limit stops leasing before pages pile up in the
    /// channels behind it.
    pub(crate) bytes_total: AtomicU64,
    pub(crate) elapsed_before_ms: u64,
    pub(crate) started: Instant,
    pub(crate) want_exchange: bool,
}

impl Shared {
    pub(crate) fn end(&self, outcome: CrawlOutcome) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if o.is_none() {
            *o = Some(outcome);
        }
        drop(o);
        self.stop.cancel();
        self.wake.notify();
        self.acked.notify();
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Relaxed)
    }

    pub(crate) fn state_error(&self, e: trawl_frontier::Error) -> Error {
        Error::state(&self.cfg.state.dir, e)
    }

    /// Whether the circuit breaker gave up on a host (its state is the frontier's).
    pub(crate) fn host_dead(&self, id: trawl_frontier::HostId) -> bool {
        self.frontier
            .politeness(id)
            .ok()
            .flatten()
            .is_some_and(|p| p.consecutive_failures >= self.cfg.politeness.give_up_after_failures.max(1))
    }
}

/// One crawl, opened on its state directory. See the crate docs.
pub struct Crawler {
    shared: Arc<Shared>,
    sinks: Vec<Box<dyn Sink>>,
    sources: sources::Sources,
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

/// How long an idle connection is kept for reuse at `rate` requests a second per
/// host (`0`: no limit, back to back): twice the spacing, from 0.5 s to 30 s.
fn pool_idle_secs(rate: f64) -> f64 {
    if rate > 0.0 {
        (2.0 / rate).clamp(0.5, 30.0)
    } else {
        0.5
    }
}

/// An error's message followed by its sources', on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The seeds probed before a new crawl starts (at once).
const PREFLIGHT_SEEDS: usize = 8;
/// How long a seed's probe may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that a new crawl's seeds can be reached (connection and TLS handshake, by
/// fetching their robots.txt, which the crawl then reuses): a seed whose certificate is
/// not trusted is an error at once, and so is no seed answering.
async fn preflight(fetcher: &Fetcher, seeds: &[Url]) -> Result<(), Error> {
    let mut probes = tokio::task::JoinSet::new();
    for seed in seeds.iter().take(PREFLIGHT_SEEDS) {
        let (f, seed) = (fetcher.clone(), seed.to_string());
        probes.spawn(async move {
            let r = tokio::time::timeout(PREFLIGHT_TIMEOUT, f.probe(&seed)).await;
            (seed, r)
        });
    }
    let mut reasons = Vec::new();
    let mut reached = false;
    while let Some(joined) = probes.join_next().await {
        let Ok((seed, r)) = joined else { continue };
        match r {
            Ok(Ok(())) => reached = true,
            Ok(Err(e @ trawl_fetcher::Error::Tls { .. })) => {
                return Err(Error::SeedTls {
                    seed,
                    source: Box::new(e),
                });
            }
            Ok(Err(e)) => reasons.push(chain(&e)),
            Err(_) => reasons.push(format!(
                "{seed}: no answer within {} s",
                PREFLIGHT_TIMEOUT.as_secs()
            )),
        }
    }
    if reached || reasons.is_empty() {
        Ok(())
    } else {
        Err(Error::Unreachable { reasons })
    }
}

impl Crawler {
    /// Validates `config`, opens (or creates) its state directory and the crawl in it:
    /// [`CrawlConfig::validate`], [`StateDir::open`], then [`Crawler::open_in`].
    ///
    /// # Errors
    /// As those three.
    pub async fn open(config: CrawlConfig) -> Result<Crawler, Error> {
        let valid = config.validate()?;
        let state = StateDir::open(&valid.config.state.dir, valid.config.state.cache_capacity).await?;
        Crawler::open_in(state, valid).await
    }

    /// Opens the crawl `valid` describes in its already opened state directory: binds
    /// the directory to the crawl's seeds and scope, queues the seeds, checks that a
    /// new crawl's seeds can be reached, and opens the outputs at their last
    /// checkpoints. A new crawl that cannot start leaves no directory behind.
    ///
    /// # Errors
    /// [`Error::State`] for a directory bound to another crawl or damaged,
    /// [`Error::Outputs`] for outputs that differ from the stored ones or would
    /// overwrite a file, [`Error::Unreachable`] or [`Error::SeedTls`] when a new
    /// crawl's seeds cannot be reached, [`Error::Sink`] when an output cannot be
    /// opened.
    pub async fn open_in(state: StateDir, valid: ValidConfig) -> Result<Crawler, Error> {
        let fresh = state.stored_config()?.is_none();
        match Crawler::open_inner(&state, valid, fresh).await {
            Ok(c) => Ok(c),
            Err(e) => {
                if fresh {
                    state.discard_if_new();
                }
                Err(e)
            }
        }
    }

    async fn open_inner(state: &StateDir, valid: ValidConfig, fresh: bool) -> Result<Crawler, Error> {
        let ValidConfig {
            config: mut cfg,
            seeds,
            scope,
            ca_pems,
            accept,
            resolves,
        } = valid;
        let dir = state.dir.clone();
        cfg.state.dir = dir.clone();
        cfg.state.cache_capacity = state.cache_capacity;
        let frontier = state.frontier.clone();
        let json = serde_json::to_vec(&cfg).map_err(|e| Error::Internal(e.to_string()))?;
        if let Some(stored) = state.stored_config()? {
            if stored.identity() != cfg.identity() {
                let scope = if stored.scope == cfg.scope {
                    String::new()
                } else {
                    " with another scope".to_string()
                };
                return Err(Error::state(
                    &dir,
                    trawl_frontier::Error::ConfigMismatch {
                        stored: format!("seeds {}{scope}", stored.seeds.join(" ")),
                    },
                ));
            }
            let (a, b) = (&stored.output, &cfg.output);
            if a.jsonl != b.jsonl || a.csv != b.csv || a.warc != b.warc {
                return Err(Error::Outputs(format!(
                    "this crawl writes {}; resume it with the same outputs (trawl resume {} keeps them)",
                    describe_outputs(a),
                    dir.display()
                )));
            }
        }
        frontier
            .bind_config(&cfg.identity(), &json)
            .map_err(|e| Error::state(&dir, e))?;
        if !fresh {
            frontier
                .set_meta("config", &json)
                .map_err(|e| Error::state(&dir, e))?;
        }
        // A shared store holds every worker's leases to the page limit together.
        if let Some(max) = cfg.limits.max_pages {
            frontier
                .share_page_limit(max)
                .map_err(|e| Error::state(&dir, e))?;
        }
        let persisted = state.persisted()?;
        let fetcher = build_fetcher(&cfg, &scope, ca_pems, accept, &resolves, &frontier)?;
        // Not for a worker of a shared crawl: a probe would be a request to a host that
        // another worker may own, outside its pace (and robots.txt read once more).
        if fresh && frontier.worker().is_none() {
            preflight(&fetcher, &seeds).await?;
        }
        // Cool-downs survive a restart: a host in a Retry-After window stays in it,
        // and a host the adaptive rate holds back starts again at that rate.
        let now = now_ms();
        for h in frontier.hosts().map_err(|e| Error::state(&dir, e))? {
            let until = h.politeness.earliest_ms();
            if (until > now || h.politeness.adaptive_millirate != 0)
                && let Ok(url) = Url::parse(&h.key)
            {
                fetcher.gate_for(&url).await.restore(GateSnapshot {
                    cool_down: Duration::from_millis(until.saturating_sub(now)),
                    backoff_level: h.politeness.backoff_level,
                    adaptive_millirate: h.politeness.adaptive_millirate,
                });
            }
        }
        // A recrawl queues every URL its source knew, with what it was, before the
        // seeds and anything found: they are revisits, not new URLs. With
        // `--changed-since`, the sitemaps are read first, for their `<lastmod>`s.
        let mut changed_since = None;
        if let Some(r) = &cfg.recrawl {
            // A recrawl reads its source generation's sled directory.
            let sled = state.sled.clone().ok_or_else(|| Error::Config {
                setting: Some("frontier"),
                message: "a recrawl runs on the embedded frontier, not on a shared one".into(),
            })?;
            let lastmods = match &r.changed_since {
                Some(d) if !crate::recrawl::is_seeded(&sled, &dir)? => {
                    let since = crate::recrawl::parse_changed_since(d).map_err(|message| Error::Config {
                        setting: Some("changed-since"),
                        message,
                    })?;
                    Some(crate::recrawl::read_lastmods(&fetcher, &scope, &cfg, &r.source, since).await?)
                }
                _ => None,
            };
            let (dir, source) = (dir.clone(), r.source.clone());
            changed_since = tokio::task::spawn_blocking(move || {
                crate::recrawl::seed(&sled, &dir, &source, lastmods)?;
                crate::recrawl::changed_since(&sled, &dir)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        }

        // The seeds (and the sitemaps of their hosts) are queued every time: enqueue
        // is idempotent, so a resumed crawl just finds them known.
        let mut queued = Vec::new();
        let mut sitemap_hosts = HashSet::new();
        for url in &seeds {
            let canon = trawl_parser::canonicalize(url.as_str(), None, &cfg.limits.parse_options().canon)
                .unwrap_or_else(|_| url.to_string());
            queued.push(NewUrl {
                url: canon,
                depth: 0,
                priority: Priority::Page,
                data: encode_data(Discovery::Seed, None),
            });
            let origin = url.origin().ascii_serialization();
            if !cfg.scope.no_sitemaps && sitemap_hosts.insert(origin.clone()) {
                queued.push(NewUrl {
                    url: format!("{origin}/sitemap.xml"),
                    depth: 0,
                    priority: Priority::Sitemap,
                    data: encode_data(Discovery::Sitemap, None),
                });
            }
        }
        frontier.enqueue(queued).map_err(|e| Error::state(&dir, e))?;

        for h in &cfg.scope.extra_hosts {
            let h = h.trim();
            if scope.check_str(&format!("http://{h}/")).is_err()
                && scope.check_str(&format!("https://{h}/")).is_err()
            {
                tracing::warn!(
                    host = h,
                    "--allow-host names a host that the include/exclude patterns keep out of scope"
                );
            }
        }
        let sinks = state.open_sinks(&cfg, fresh)?;
        let (broken_log, broken_lines) = state.open_broken(&cfg)?;
        let counts = frontier.counts().map_err(|e| Error::state(&dir, e))?;
        let sources = sources::Sources::new(broken_log, broken_lines, counts.queued > 0 && !fresh);

        let stats = Arc::new(Stats::new());
        *stats.changed_since.lock().unwrap_or_else(|e| e.into_inner()) = changed_since;
        stats.queued.store(counts.queued, Relaxed);
        stats.done_total.store(counts.done, Relaxed);
        stats.failed_total.store(counts.failed, Relaxed);
        let want_exchange = cfg.output.warc.is_some();
        let shared = Arc::new(Shared {
            frontier,
            fetcher,
            scope,
            stats,
            live: Arc::default(),
            parse_opts: cfg.limits.parse_options(),
            variants: guard::QueryVariants::new(cfg.limits.max_query_variants),
            wake: schedule::Wake::default(),
            finished: Mutex::new(Vec::new()),
            acked: schedule::Wake::default(),
            stop: CancellationToken::new(),
            outcome: Mutex::new(None),
            sitemap_lane: Arc::new(tokio::sync::Semaphore::new(SITEMAP_LANE)),
            parse_budget: ByteBudget::new(PARSE_BYTES),
            budgets: Mutex::new(persisted.budgets.clone()),
            pages_total: AtomicU64::new(persisted.pages),
            bytes_total: AtomicU64::new(persisted.bytes),
            elapsed_before_ms: persisted.elapsed_ms,
            started: Instant::now(),
            want_exchange,
            cfg,
        });
        Ok(Crawler {
            shared,
            sinks,
            sources,
            persisted,
        })
    }

    /// The live counters (for a progress display).
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The crawl's live metrics, to serve in the Prometheus text format while it runs
    /// (`trawl crawl --metrics ADDR`): pages by outcome, bytes, requests in flight,
    /// queue depth, per-stage latency histograms, 429 and 5xx responses, hosts in a
    /// cool-down, the adaptive rate of the busiest hosts and stall-monitor events.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(
            &self.shared.live,
            self.shared.stats.clone(),
            self.shared.fetcher.clone(),
            self.shared.cfg.politeness.rate,
        )
    }

    /// Pages written by earlier runs of this crawl (what `--max-pages` counts on from).
    pub fn pages_before(&self) -> u64 {
        self.persisted.pages
    }

    /// How long earlier runs of this crawl ran (what `--max-time` counts on from).
    pub fn elapsed_before(&self) -> Duration {
        Duration::from_millis(self.persisted.elapsed_ms)
    }

    /// The configuration this crawl runs with.
    pub fn config(&self) -> &CrawlConfig {
        &self.shared.cfg
    }

    /// The output files, for people.
    pub fn output_paths(&self) -> Vec<std::path::PathBuf> {
        self.sinks
            .iter()
            .filter(|s| s.name() != "history")
            .flat_map(|s| s.paths())
            .collect()
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
            sources,
            persisted,
        } = self;
        let cfg = &sh.cfg;
        tracing::info!(
            seeds = ?cfg.seeds,
            state = %cfg.state.dir.display(),
            queued = sh.stats.queued.load(Relaxed),
            "crawl starting"
        );
        if !cfg.politeness.robots {
            tracing::warn!(
                "robots.txt is NOT obeyed (--no-robots): only crawl sites you own or may crawl this way"
            );
        }
        let watcher = tokio::spawn(watch_stop(sh.clone(), shutdown));
        let stall = tokio::spawn(progress::stall_monitor(sh.clone()));
        let writer = tokio::spawn(progress::progress_writer(sh.clone()));

        let (fetch_tx, fetch_rx) = mpsc::channel(FETCH_CHANNEL);
        let (parse_tx, parse_rx) = mpsc::channel(PARSE_CHANNEL);
        let (commit_tx, commit_rx) = mpsc::channel(COMMIT_CHANNEL);

        let commit = {
            let sh = sh.clone();
            tokio::task::spawn_blocking(move || {
                commit::commit_loop(&sh, commit_rx, sinks, sources, persisted)
            })
        };
        let (sitemap_tx, sitemap_rx) = mpsc::channel(sitemap::SITEMAP_CHANNEL);
        let sitemaps = {
            let (sh, tx) = (sh.clone(), commit_tx.clone());
            tokio::task::spawn_blocking(move || sitemap::sitemap_loop(sh, sitemap_rx, tx))
        };
        let parse = tokio::spawn(parse::parse_stage(sh.clone(), parse_rx, commit_tx));
        let fetch = tokio::spawn(fetch::fetch_stage(sh.clone(), fetch_rx, parse_tx, sitemap_tx));
        // A thread of its own: its leases are sled batches (see `schedule`).
        let scheduled = {
            let sh = sh.clone();
            tokio::task::spawn_blocking(move || schedule::schedule(sh, fetch_tx))
                .await
                .unwrap_or_else(|e| Err(Error::Internal(e.to_string())))
        };
        if let Err(e) = &scheduled {
            tracing::error!(error = %chain(e), "the scheduler stopped");
            sh.stop.cancel();
        }
        let _ = fetch.await;
        let _ = parse.await;
        let _ = sitemaps.await;
        let committed = commit.await.map_err(|e| Error::Internal(e.to_string()))?;
        watcher.abort();
        stall.abort();
        writer.abort();
        let outcome = sh
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(CrawlOutcome::Completed);
        let stats = sh.stats.snapshot();
        progress::write_progress(&sh, &stats, Some(outcome));
        committed?;
        scheduled?;
        tracing::info!(?outcome, pages = stats.pages, "crawl finished");
        Ok(Summary { outcome, stats })
    }
}

/// A stop request and the time limit both end leasing.
async fn watch_stop(sh: Arc<Shared>, shutdown: CancellationToken) {
    let left = sh
        .cfg
        .limits
        .max_time_secs
        .map(|s| Duration::from_millis(((s * 1000.0) as u64).saturating_sub(sh.elapsed_before_ms)));
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
}

/// The fetcher of a crawl: its politeness policy, caps, the bodies pages are
/// downloaded for (sitemap requests ask for theirs, see `fetch`), the hosts the user
/// named (trusted on special-purpose addresses, like the seeds), and robots.txt answers
/// kept in the frontier.
fn build_fetcher(
    cfg: &CrawlConfig,
    scope: &Scope,
    ca_pems: Vec<Vec<u8>>,
    accept: AcceptTypes,
    resolves: &[crate::validate::Resolve],
    frontier: &Arc<dyn FrontierStore>,
) -> Result<Fetcher, Error> {
    let p = &cfg.politeness;
    let mut policy = GatePolicy::default();
    policy.rate = (p.rate > 0.0).then_some(p.rate);
    policy.burst = p.burst.max(1);
    policy.adaptive = p.adaptive;
    policy.concurrency = p.per_host_concurrency;
    policy.backoff_base = Duration::from_secs_f64(p.backoff_base_secs);
    policy.max_crawl_delay = if p.ignore_crawl_delay {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(p.max_crawl_delay_secs)
    };
    let mut builder = Fetcher::builder()
        .user_agent(p.user_agent.clone())
        .politeness(policy)
        .politeness_key(match p.politeness_key {
            crate::PolitenessBy::Host => trawl_fetcher::PolitenessKey::Host,
            crate::PolitenessBy::Ip => trawl_fetcher::PolitenessKey::Ip,
        })
        .robots(p.robots)
        .allow_private_ips(p.allow_private_ips)
        .max_body(cfg.fetch.max_body)
        .body_memory(BODY_BYTES as u64)
        .accept(accept)
        // One attempt per lease: retries go through the frontier (see `parse`).
        .max_attempts(1)
        .connect_timeout(Duration::from_secs_f64(cfg.fetch.connect_timeout_secs))
        .read_timeout(Duration::from_secs_f64(cfg.fetch.read_timeout_secs))
        .total_timeout(Duration::from_secs_f64(cfg.fetch.total_timeout_secs))
        .robots_store(Arc::new(FrontierRobots(frontier.clone())))
        .host_cache_capacity(cfg.fetch.host_cache)
        // Long enough to reuse a host's connection at its rate (twice its spacing),
        // short enough that a broad crawl does not keep one per host it fetched
        // lately: every idle connection holds about 65 KB (hyper's dispatch channel
        // and buffers), and at 1,500 requests a second to distinct hosts a 2 s
        // timeout kept 3,000 of them (BENCHMARKS.md, broad crawl, session 7).
        .pool_idle_timeout(Duration::from_secs_f64(pool_idle_secs(p.rate)));
    for h in scope.named_hosts() {
        builder = builder.allow_host(h);
    }
    for r in resolves {
        for addr in &r.addrs {
            builder = builder.resolve(r.host.clone(), r.port, *addr);
        }
    }
    for pem in ca_pems {
        builder = builder.ca_cert(pem);
    }
    Ok(builder.build()?)
}

/// The host key of a lease's URL, for stats and budgets.
pub(crate) fn host_label(url: &str) -> String {
    HostKey::of_canonical(url).map_or_else(String::new, |k| k.authority().to_string())
}
