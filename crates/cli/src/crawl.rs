//! `trawl crawl`, `trawl resume` and `trawl recrawl`: settle the configuration, open
//! the state directory once, run the crawl with signals and a progress display, and
//! turn its outcome into an exit code.

use std::path::PathBuf;

use trawl_engine::recrawl as rc;
use trawl_engine::{
    CancellationToken, CrawlConfig, CrawlOutcome, Crawler, RecrawlConfig, StateConfig, StateDir, StateReader,
};

use crate::args::{CrawlArgs, RecrawlArgs, ResumeArgs};
use crate::failure::{self, R, usage};
use crate::settings::{self, CrawlSettings};
use crate::shared::Shared;
use crate::{display, exit};

/// Opens `dir` for crawling, with the cache size the flags ask for.
async fn open_state(dir: &std::path::Path, cache: Option<u64>) -> R<StateDir> {
    let cache = cache.unwrap_or(StateConfig::default().cache_capacity);
    StateDir::open(dir, cache).await.map_err(failure::engine)
}

/// How a crawl's state is opened, again after a worker of a shared crawl lost its
/// claim: the state directory's own frontier, or a shared one.
enum Opener {
    Local(Option<u64>),
    Shared(Shared),
}

impl Opener {
    async fn open(&self, dir: &std::path::Path) -> R<StateDir> {
        match self {
            Opener::Local(cache) => open_state(dir, *cache).await,
            Opener::Shared(s) => s.open(dir).await,
        }
    }
}

/// `trawl crawl`: a new crawl, or the same crawl resumed when the state directory
/// holds it.
pub(crate) async fn crawl(mut a: CrawlArgs, quiet: bool) -> R<u8> {
    let frontier = std::mem::take(&mut a.frontier);
    let shared = Shared::from_args(&frontier)?;
    let s = CrawlSettings::new(a)?;
    // Settings are checked before anything is created on disk or asked of the network.
    let mut check = s.fresh.clone();
    settings::apply_tune(&mut check, &s.tune)?;
    let identity = check.identity();
    let valid = check.validate().map_err(failure::engine)?;
    let dir = s.state.clone().unwrap_or_else(|| {
        let d = settings::default_state(&valid.seeds()[0]);
        match &shared {
            // Several workers may run on one machine: each its own directory.
            Some(sh) => std::path::PathBuf::from(format!("{}-{}", d.display(), sh.worker)),
            None => d,
        }
    });
    let opener = match Shared::settle(&dir, shared)? {
        Some(sh) => Opener::Shared(sh.for_crawl(&dir, &identity)?),
        None => Opener::Local(settings::cache_capacity(&s.tune)?),
    };
    let state = opener.open(&dir).await?;
    let mut cfg = match state.stored_config().map_err(failure::engine)? {
        Some(mut stored) => {
            // The seeds, and the scope and outputs when given, are the flags'; the
            // engine refuses a directory that holds another crawl or other outputs.
            // Scope flags and outputs left out mean "as stored".
            let fresh = s.fresh;
            stored.seeds = fresh.seeds;
            if s.scope_given {
                stored.scope = fresh.scope;
            }
            if s.outputs_given {
                let fsync = stored.output.fsync;
                stored.output = fresh.output;
                stored.output.fsync = fsync;
            }
            tracing::info!(state = %dir.display(), "the state directory holds a crawl: resuming it");
            stored
        }
        None => s.fresh,
    };
    cfg.state.dir = dir;
    settings::apply_tune(&mut cfg, &s.tune)?;
    if let Opener::Shared(sh) = &opener {
        sh.check_timeout(cfg.fetch.total_timeout_secs)?;
    }
    run_crawl(&opener, state, cfg, s.tune.stats_json, s.tune.metrics, quiet).await
}

/// `trawl resume`: the stored crawl, with the tunable settings given.
pub(crate) async fn resume(a: ResumeArgs, quiet: bool) -> R<u8> {
    if !a.dir.is_dir() {
        return Err(failure::state(format!(
            "{} does not exist; start a crawl with `trawl crawl URL --state DIR`",
            a.dir.display()
        )));
    }
    let opener = match Shared::settle(&a.dir, Shared::from_args(&a.frontier)?)? {
        Some(sh) if sh.crawl.is_some() => Opener::Shared(sh),
        Some(_) => {
            return Err(failure::state(format!(
                "{} has not joined its shared crawl yet; start it with `trawl crawl URL --frontier ...`",
                a.dir.display()
            )));
        }
        None => Opener::Local(settings::cache_capacity(&a.tune)?),
    };
    let state = opener.open(&a.dir).await?;
    let mut cfg = state.stored_config().map_err(failure::engine)?.ok_or_else(|| {
        failure::state(format!(
            "{} holds no crawl yet; start one with `trawl crawl URL --state {}`",
            a.dir.display(),
            a.dir.display()
        ))
    })?;
    cfg.state.dir = a.dir.clone();
    settings::apply_tune(&mut cfg, &a.tune)?;
    if let Opener::Shared(sh) = &opener {
        sh.check_timeout(cfg.fetch.total_timeout_secs)?;
    }
    run_crawl(&opener, state, cfg, a.tune.stats_json, a.tune.metrics, quiet).await
}

/// `trawl recrawl DIR`: the next recrawl generation of the crawl in `DIR`, or the
/// latest one resumed when it did not run to its end.
pub(crate) async fn recrawl(a: RecrawlArgs, quiet: bool) -> R<u8> {
    // Checked before anything is opened or created.
    if let Some(d) = &a.changed_since {
        rc::parse_changed_since(d).map_err(|m| usage(format!("--changed-since: {m}")))?;
    }
    if !a.dir.is_dir() {
        return Err(failure::state(format!(
            "{} does not exist; start a crawl with `trawl crawl URL --state DIR`",
            a.dir.display()
        )));
    }
    let base = StateReader::open(&a.dir)
        .and_then(|r| r.config())
        .map_err(failure::engine)?
        .ok_or_else(|| failure::state(format!("{} holds no crawl to revisit", a.dir.display())))?;
    let (generation, resuming) = match rc::generations(&a.dir).last() {
        Some(&n) if !rc::is_complete(&rc::generation_dir(&a.dir, n)).map_err(failure::engine)? => (n, true),
        Some(&n) => (n + 1, false),
        None => (1, false),
    };
    let dir = rc::generation_dir(&a.dir, generation);
    let opener = Opener::Local(settings::cache_capacity(&a.tune)?);
    let state = opener.open(&dir).await?;
    let mut cfg = match state.stored_config().map_err(failure::engine)? {
        Some(stored) => stored,
        None => {
            let mut cfg = base;
            let mut r = RecrawlConfig::new(generation, rc::source_dir(&a.dir, generation));
            if let Some(d) = &a.changed_since {
                r = r.with_changed_since(d.clone());
            }
            cfg.recrawl = Some(r);
            let out = &mut cfg.output;
            if let Some(o) = &a.output {
                let o = settings::absolute(o);
                let csv = o.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
                (out.jsonl, out.csv) = if csv { (None, Some(o)) } else { (Some(o), None) };
            } else {
                out.jsonl = out.jsonl.as_deref().map(|p| rc::generation_output(p, generation));
                out.csv = out.csv.as_deref().map(|p| rc::generation_output(p, generation));
            }
            out.warc = match &a.warc {
                Some(w) => Some(settings::absolute(w)),
                None => out.warc.as_deref().map(|p| rc::generation_output(p, generation)),
            };
            cfg
        }
    };
    if resuming && (a.output.is_some() || a.warc.is_some()) {
        tracing::warn!(
            "resuming recrawl {generation}: it keeps its outputs, --output and --warc are not used"
        );
    }
    let stored_since = cfg.recrawl.as_ref().and_then(|r| r.changed_since.clone());
    if resuming && a.changed_since.is_some() && a.changed_since != stored_since {
        tracing::warn!(
            "resuming recrawl {generation}: it keeps the --changed-since it started with ({}), the one given is not used",
            stored_since.as_deref().unwrap_or("none")
        );
    }
    if !quiet {
        eprintln!(
            "trawl: {} recrawl {generation} of {} (state {})",
            if resuming { "resuming" } else { "starting" },
            a.dir.display(),
            dir.display()
        );
    }
    cfg.state.dir = dir;
    settings::apply_tune(&mut cfg, &a.tune)?;
    run_crawl(
        &opener,
        state,
        cfg,
        a.tune.stats_json.clone(),
        a.tune.metrics.clone(),
        quiet,
    )
    .await
}

/// Runs the crawl, and once more each time a worker of a shared crawl loses its claim
/// on part of it (it was paused or cut off past its claims' time-to-live, or the
/// server lost its acks): opening the state again cuts the outputs back to the
/// checkpoints the store holds and gives its URLs back, so each page is still
/// written once.
async fn run_crawl(
    opener: &Opener,
    mut state: StateDir,
    cfg: CrawlConfig,
    stats_json: Option<PathBuf>,
    metrics: Option<String>,
    quiet: bool,
) -> R<u8> {
    let dir = cfg.state.dir.clone();
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(shutdown.clone(), cfg.state.grace_secs));
    let result = loop {
        match run_once(state, &cfg, shutdown.clone(), metrics.as_deref(), quiet).await {
            Err(e) if e.is_lost_ownership() && !shutdown.is_cancelled() => {
                tracing::warn!(
                    error = %failure::chain(&e),
                    "this worker lost its claim on the shared crawl: cutting its outputs back to the stored checkpoints and joining again"
                );
                state = opener.open(&dir).await?;
            }
            r => break r,
        }
    };
    signals.abort();
    let summary = result.map_err(failure::engine)?;
    finish(summary, &dir, stats_json, quiet)
}

/// One run of the crawl on an opened state, with metrics and the progress display.
async fn run_once(
    state: StateDir,
    cfg: &CrawlConfig,
    shutdown: CancellationToken,
    metrics: Option<&str>,
    quiet: bool,
) -> Result<trawl_engine::Summary, trawl_engine::Error> {
    let valid = cfg.clone().validate()?;
    let listener = match metrics {
        Some(addr) => Some(
            crate::metrics::bind(addr)
                .await
                .map_err(|f| trawl_engine::Error::Config {
                    setting: Some("metrics"),
                    message: f.message,
                })?,
        ),
        None => None,
    };
    let crawler = Crawler::open_in(state, valid).await?;
    let stats = crawler.stats();
    let metrics = listener.map(|l| tokio::spawn(crate::metrics::serve(l, crawler.metrics())));
    let limits = display::Limits {
        max_pages: crawler
            .config()
            .limits
            .max_pages
            .map(|m| (m, crawler.pages_before())),
        max_time: crawler
            .config()
            .limits
            .max_time_secs
            .map(|t| (std::time::Duration::from_secs_f64(t), crawler.elapsed_before())),
    };
    let progress =
        (!quiet).then(|| tokio::spawn(display::show_progress(stats.clone(), crawler.metrics(), limits)));
    let result = crawler.crawl(shutdown).await;
    if let Some(m) = metrics {
        m.abort();
        let _ = m.await;
    }
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
    result
}

/// Prints the summary, writes `--stats-json`, and gives the exit code.
fn finish(
    summary: trawl_engine::Summary,
    dir: &std::path::Path,
    stats_json: Option<PathBuf>,
    quiet: bool,
) -> R<u8> {
    if !quiet {
        eprintln!("{}", summary.stats.to_text());
    }
    if let Some(path) = stats_json {
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        std::fs::write(&path, json)
            .map_err(|e| usage(format!("cannot write --stats-json {}: {e}", path.display())))?;
    }
    let d = dir.display();
    Ok(match summary.outcome {
        CrawlOutcome::Completed => exit::OK,
        CrawlOutcome::LimitReached(limit) => {
            if !quiet {
                eprintln!(
                    "trawl: stopped at the {} limit; raise it and run `trawl resume {d}` to go on",
                    match limit {
                        trawl_engine::Limit::Pages => "--max-pages",
                        trawl_engine::Limit::Bytes => "--max-bytes",
                        trawl_engine::Limit::Time => "--max-time",
                        trawl_engine::Limit::PagesPerHost => "--max-pages-per-host",
                    }
                );
            }
            exit::LIMIT
        }
        CrawlOutcome::Interrupted => {
            eprintln!("trawl: interrupted; run `trawl resume {d}` to go on");
            exit::INTERRUPTED
        }
    })
}

/// First Ctrl-C or SIGTERM: a graceful stop. Second: exit at once (the state directory
/// is still resumable, as after a crash).
async fn watch_signals(shutdown: CancellationToken, grace: f64) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    next_signal(&mut term).await;
    eprintln!(
        "trawl: stopping: in-flight pages get up to {grace:.0} s, then everything is flushed (press Ctrl-C again to exit at once)"
    );
    shutdown.cancel();
    next_signal(&mut term).await;
    eprintln!("trawl: exiting at once; the state directory is still resumable");
    std::process::exit(i32::from(exit::INTERRUPTED));
}

/// The next Ctrl-C or SIGTERM.
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    match term.as_mut() {
        Some(t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = t.recv() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
