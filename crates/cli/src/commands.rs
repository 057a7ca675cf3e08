//! The subcommands.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trawl_engine::{
    CancellationToken, CrawlConfig, CrawlOutcome, Crawler, PathBudget, Progress, StatsSnapshot,
};
use trawl_frontier::{Frontier, FrontierStore, Options, UrlState};
use url::Url;

use crate::args::{
    Cli, Command, CrawlArgs, ExportArgs, FileConfig, Format, LogFormat, ResumeArgs, StateFilter, StatusArgs,
    TuneArgs, What, parse_duration, parse_size,
};
use crate::exit;

/// A command that could not do its job: the exit code and a one-line message.
struct Failure {
    code: u8,
    message: String,
}

type R<T> = Result<T, Failure>;

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
    }
}

/// The message of an error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

fn state_failure(dir: &Path, e: &trawl_frontier::Error) -> Failure {
    let hint = match e {
        trawl_frontier::Error::Locked { .. } => format!(
            "another trawl process is using {}; wait for it to stop or use another --state",
            dir.display()
        ),
        trawl_frontier::Error::ConfigMismatch { stored } => format!(
            "{} holds another crawl ({stored}); use another --state, or `trawl resume {}` to continue that one",
            dir.display(),
            dir.display()
        ),
        trawl_frontier::Error::Corrupt { detail } => format!(
            "{} is damaged ({detail}); run `trawl status {}` to see what can be read, or move it aside and start again",
            dir.display(),
            dir.display()
        ),
        other => format!("{}: {}", dir.display(), chain(other)),
    };
    Failure {
        code: exit::STATE,
        message: hint,
    }
}

fn engine_failure(e: trawl_engine::Error) -> Failure {
    use trawl_engine::Error as E;
    match &e {
        E::Config(_) | E::Outputs(_) | E::Fetcher(_) => usage(chain(&e)),
        E::State { dir, source } => state_failure(dir, source),
        E::Sink(s) => Failure {
            code: exit::OUTPUT,
            message: format!(
                "{}{}; the crawl stopped and can be resumed",
                chain(&e),
                if s.is_disk_full() {
                    " (the disk is full)"
                } else {
                    ""
                }
            ),
        },
        E::Internal(_) => Failure {
            code: exit::INTERNAL,
            message: chain(&e),
        },
        _ => Failure {
            code: exit::INTERNAL,
            message: chain(&e),
        },
    }
}

/// Sets up tracing on stderr from `RUST_LOG`, or from -q / -v.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(match (cli.quiet, cli.verbose) {
            (true, _) => "warn",
            (false, 0) => "warn,trawl=info,trawl_engine=info",
            (false, 1) => "info,trawl=debug,trawl_engine=debug,trawl_fetcher=debug,trawl_frontier=debug",
            _ => "debug,trawl=trace,trawl_engine=trace,trawl_fetcher=trace,trawl_frontier=trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// Runs a command and returns its exit code.
pub fn run(cli: Cli) -> u8 {
    let quiet = cli.quiet;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trawl: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let result = match cli.command {
        Command::Crawl(a) => rt.block_on(crawl(a, quiet)),
        Command::Resume(a) => rt.block_on(resume(a, quiet)),
        Command::Status(a) => status(a),
        Command::Export(a) => export(a),
    };
    // Do not wait for blocking tasks that a stop abandoned.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("trawl: {}", f.message);
            f.code
        }
    }
}

fn load_file(path: &Path) -> R<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        usage(format!(
            "the config file {} is invalid: {}",
            path.display(),
            e.message()
        ))
    })
}

/// `trawl-<host>` (with `-<port>` for a non-default port), for the first seed.
fn default_state(seed: &Url) -> PathBuf {
    let host = seed.host_str().unwrap_or("crawl").replace([':', '[', ']'], "_");
    PathBuf::from(match seed.port() {
        Some(p) => format!("trawl-{host}-{p}"),
        None => format!("trawl-{host}"),
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn merge_tune(flags: TuneArgs, file: TuneArgs) -> TuneArgs {
    TuneArgs {
        concurrency: flags.concurrency.or(file.concurrency),
        per_host_concurrency: flags.per_host_concurrency.or(file.per_host_concurrency),
        rate: flags.rate.or(file.rate),
        burst: flags.burst.or(file.burst),
        ignore_crawl_delay: flags.ignore_crawl_delay || file.ignore_crawl_delay,
        max_depth: flags.max_depth.or(file.max_depth),
        max_pages: flags.max_pages.or(file.max_pages),
        max_bytes: flags.max_bytes.or(file.max_bytes),
        max_time: flags.max_time.or(file.max_time),
        max_pages_per_host: flags.max_pages_per_host.or(file.max_pages_per_host),
        budgets: if flags.budgets.is_empty() {
            file.budgets
        } else {
            flags.budgets
        },
        user_agent: flags.user_agent.or(file.user_agent),
        allow_private_ips: flags.allow_private_ips || file.allow_private_ips,
        no_robots: flags.no_robots || file.no_robots,
        max_body: flags.max_body.or(file.max_body),
        timeout: flags.timeout.or(file.timeout),
        cache_capacity: flags.cache_capacity.or(file.cache_capacity),
        grace: flags.grace.or(file.grace),
        fsync: flags.fsync || file.fsync,
        stats_json: flags.stats_json.or(file.stats_json),
    }
}

/// Applies the tunable settings that were given (others keep their stored or default
/// values).
fn apply_tune(cfg: &mut CrawlConfig, t: &TuneArgs) -> R<()> {
    let p = &mut cfg.politeness;
    if let Some(n) = t.concurrency {
        if n == 0 {
            return Err(usage("--concurrency must be at least 1"));
        }
        p.concurrency = n;
    }
    if let Some(n) = t.per_host_concurrency {
        if n == 0 {
            return Err(usage("--per-host-concurrency must be at least 1"));
        }
        p.per_host_concurrency = n;
    }
    if let Some(r) = t.rate {
        if !(r >= 0.0 && r.is_finite()) {
            return Err(usage(
                "--rate must be 0 (no limit) or a positive number of requests per second",
            ));
        }
        p.rate = r;
    }
    if let Some(b) = t.burst {
        p.burst = b.max(1);
    }
    if t.ignore_crawl_delay {
        p.ignore_crawl_delay = true;
    }
    if let Some(ua) = &t.user_agent {
        if ua.trim().is_empty() {
            return Err(usage("--user-agent must not be empty"));
        }
        p.user_agent = ua.clone();
    }
    if t.allow_private_ips {
        p.allow_private_ips = true;
    }
    if t.no_robots {
        p.robots = false;
    }
    let l = &mut cfg.limits;
    if let Some(d) = t.max_depth {
        l.max_depth = Some(d);
    }
    if let Some(n) = t.max_pages {
        l.max_pages = Some(n);
    }
    if let Some(s) = &t.max_bytes {
        l.max_bytes = Some(parse_size(s).map_err(|e| usage(format!("--max-bytes: {e}")))?);
    }
    if let Some(s) = &t.max_time {
        l.max_time_secs = Some(
            parse_duration(s)
                .map_err(|e| usage(format!("--max-time: {e}")))?
                .as_secs_f64(),
        );
    }
    if let Some(n) = t.max_pages_per_host {
        l.max_pages_per_host = Some(n);
    }
    if !t.budgets.is_empty() {
        l.budgets = t
            .budgets
            .iter()
            .map(|b| {
                let (prefix, n) = b.rsplit_once('=').ok_or_else(|| {
                    usage(format!("--budget {b:?}: expected PREFIX=N, like /calendar/=100"))
                })?;
                let max = n
                    .trim()
                    .parse()
                    .map_err(|_| usage(format!("--budget {b:?}: {n:?} is not a number")))?;
                if !prefix.starts_with('/') {
                    return Err(usage(format!("--budget {b:?}: the prefix must start with /")));
                }
                Ok(PathBudget {
                    prefix: prefix.to_string(),
                    max,
                })
            })
            .collect::<R<Vec<_>>>()?;
    }
    if let Some(s) = &t.max_body {
        cfg.fetch.max_body = parse_size(s).map_err(|e| usage(format!("--max-body: {e}")))?;
    }
    if let Some(s) = &t.timeout {
        cfg.fetch.total_timeout_secs = parse_duration(s)
            .map_err(|e| usage(format!("--timeout: {e}")))?
            .as_secs_f64();
    }
    if let Some(s) = &t.cache_capacity {
        cfg.state.cache_capacity = parse_size(s).map_err(|e| usage(format!("--cache-capacity: {e}")))?;
    }
    if let Some(s) = &t.grace {
        cfg.state.grace_secs = parse_duration(s)
            .map_err(|e| usage(format!("--grace: {e}")))?
            .as_secs_f64();
    }
    if t.fsync {
        cfg.output.fsync = true;
    }
    Ok(())
}

/// The configuration stored in `dir`, if it holds a crawl.
async fn stored(dir: &Path) -> R<Option<CrawlConfig>> {
    if !dir.exists() {
        return Ok(None);
    }
    trawl_engine::stored_config(dir).await.map_err(engine_failure)
}

/// Tries a TCP connection to each seed; fails when none answers.
async fn preflight(seeds: &[Url]) -> R<()> {
    let mut reasons = Vec::new();
    for seed in seeds {
        let (Some(host), Some(port)) = (seed.host_str(), seed.port_or_known_default()) else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let attempt = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => reasons.push(format!("{seed}: {e}")),
            Err(_) => reasons.push(format!("{seed}: no answer within 10 s")),
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: exit::UNREACHABLE,
        message: format!(
            "cannot reach any seed ({}); check the URL and the network",
            reasons.join("; ")
        ),
    })
}

async fn crawl(a: CrawlArgs, quiet: bool) -> R<u8> {
    let file = match &a.config {
        Some(p) => load_file(p)?,
        None => FileConfig::default(),
    };
    let seeds = if a.seeds.is_empty() { file.seeds } else { a.seeds };
    if seeds.is_empty() {
        return Err(usage(
            "no seed URL given; for example: trawl crawl https://example.com/ -o pages.jsonl",
        ));
    }
    let mut parsed = Vec::new();
    for s in &seeds {
        let u = Url::parse(s).map_err(|e| usage(format!("invalid seed URL {s:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(usage(format!(
                "invalid seed URL {s:?}: only http:// and https:// URLs can be crawled"
            )));
        }
        parsed.push(u);
    }
    let dir = a
        .state
        .or(file.state)
        .unwrap_or_else(|| default_state(&parsed[0]));

    let mut fresh = CrawlConfig::new(seeds);
    let given = |s: &crate::args::ScopeArgs| {
        s.subdomains
            || s.domain
            || !s.allow_hosts.is_empty()
            || !s.include.is_empty()
            || !s.exclude.is_empty()
            || s.no_sitemaps
    };
    let sc = if given(&a.scope) { a.scope } else { file.scope };
    let scope_given = given(&sc);
    fresh.scope.subdomains = sc.subdomains;
    fresh.scope.registrable_domain = sc.domain;
    fresh.scope.extra_hosts = sc.allow_hosts;
    fresh.scope.include = sc.include;
    fresh.scope.exclude = sc.exclude;
    fresh.scope.no_sitemaps = sc.no_sitemaps;

    let output = a.output.or(file.output).map(|p| absolute(&p));
    let format = a.format.or(file.format);
    let warc = a.warc.or(file.warc).map(|p| absolute(&p));
    let mut outputs = trawl_engine::OutputConfig::default();
    if let Some(o) = output {
        let csv = match format {
            Some(Format::Csv) => true,
            Some(Format::Jsonl) => false,
            None => o.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        };
        if csv {
            outputs.csv = Some(o);
        } else {
            outputs.jsonl = Some(o);
        }
    } else if format.is_some() {
        return Err(usage("--format needs --output FILE"));
    }
    outputs.warc = warc;

    let stored = stored(&dir).await?;
    let is_new = stored.is_none();
    let mut cfg = match stored {
        Some(s) => {
            // Scope flags left out mean "as stored"; given ones must match.
            if !scope_given {
                fresh.scope = s.scope.clone();
            }
            if s.identity() != fresh.identity() {
                return Err(Failure {
                    code: exit::STATE,
                    message: format!(
                        "{} holds another crawl (seeds {}); use another --state, or `trawl resume {}` to continue that one",
                        dir.display(),
                        s.seeds.join(" "),
                        dir.display()
                    ),
                });
            }
            let given = outputs.jsonl.is_some() || outputs.csv.is_some() || outputs.warc.is_some();
            if given
                && (outputs.jsonl != s.output.jsonl
                    || outputs.csv != s.output.csv
                    || outputs.warc != s.output.warc)
            {
                return Err(usage(format!(
                    "{} holds this crawl with other outputs; run `trawl resume {}` to keep them",
                    dir.display(),
                    dir.display()
                )));
            }
            tracing::info!(state = %dir.display(), "the state directory holds this crawl: resuming it");
            s
        }
        None => {
            let mut c = fresh;
            c.output = outputs;
            c
        }
    };
    cfg.state.dir = dir.clone();
    let tune = merge_tune(a.tune, file.tune);
    apply_tune(&mut cfg, &tune)?;
    if is_new {
        // Settings are checked before the network is.
        trawl_engine::Scope::new(&cfg).map_err(engine_failure)?;
        preflight(&parsed).await?;
    }
    run_crawl(cfg, tune.stats_json, quiet).await
}

async fn resume(a: ResumeArgs, quiet: bool) -> R<u8> {
    if !a.dir.is_dir() {
        return Err(Failure {
            code: exit::STATE,
            message: format!(
                "{} does not exist; start a crawl with `trawl crawl URL --state DIR`",
                a.dir.display()
            ),
        });
    }
    let mut cfg = stored(&a.dir).await?.ok_or_else(|| Failure {
        code: exit::STATE,
        message: format!(
            "{} holds no crawl yet; start one with `trawl crawl URL --state {}`",
            a.dir.display(),
            a.dir.display()
        ),
    })?;
    cfg.state.dir = a.dir.clone();
    apply_tune(&mut cfg, &a.tune)?;
    run_crawl(cfg, a.tune.stats_json, quiet).await
}

async fn run_crawl(cfg: CrawlConfig, stats_json: Option<PathBuf>, quiet: bool) -> R<u8> {
    let dir = cfg.state.dir.clone();
    let grace = cfg.state.grace_secs;
    let crawler = Crawler::open(cfg).await.map_err(engine_failure)?;
    let stats = crawler.stats();
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(shutdown.clone(), grace));
    let progress = (!quiet).then(|| tokio::spawn(show_progress(stats.clone())));
    let result = crawler.crawl(shutdown).await;
    signals.abort();
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
    let summary = result.map_err(engine_failure)?;
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

fn progress_line(s: &StatsSnapshot) -> String {
    format!(
        "{} pages ({:.0}/s), {} queued, {} in flight, {} errors, {} hosts",
        s.pages, s.pages_per_sec, s.queued, s.in_flight, s.failed, s.hosts
    )
}

/// A spinner on a terminal, a log line every 10 s otherwise.
async fn show_progress(stats: std::sync::Arc<trawl_engine::Stats>) {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        struct Clear(indicatif::ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let guard = Clear(bar);
        loop {
            guard.0.set_message(progress_line(&stats.snapshot()));
            guard.0.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tracing::info!("{}", progress_line(&stats.snapshot()));
        }
    }
}

fn open_for_reading(dir: &Path) -> R<Frontier> {
    if !dir.is_dir() {
        return Err(Failure {
            code: exit::STATE,
            message: format!("{} does not exist", dir.display()),
        });
    }
    Frontier::open(dir, Options::default().cache_capacity(8 << 20)).map_err(|e| state_failure(dir, &e))
}

fn read_progress(dir: &Path) -> Option<Progress> {
    let raw = std::fs::read(dir.join(trawl_engine::PROGRESS_FILE)).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn status(a: StatusArgs) -> R<u8> {
    let dir = &a.dir;
    let opened = Frontier::open(dir, Options::default().cache_capacity(8 << 20));
    if let Err(trawl_frontier::Error::Corrupt { detail }) = &opened {
        return Err(Failure {
            code: exit::STATE,
            message: format!(
                "{} is damaged and cannot be opened ({detail}), so nothing in it can be read; the output files are valid up to their last complete record: keep them, move the directory aside, and start a new crawl with new output files",
                dir.display()
            ),
        });
    }
    drop(opened);
    let frontier = match open_for_reading(dir) {
        Ok(f) => f,
        Err(f) if f.message.contains("another trawl process") => {
            // A crawl is running: its progress file is the safe, read-only view.
            let Some(p) = read_progress(dir) else {
                return Err(f);
            };
            if a.json {
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            } else {
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
                    .saturating_sub(p.updated_ms);
                println!(
                    "a crawl is running in {} (pid {}); as of {:.1} s ago:",
                    dir.display(),
                    p.pid,
                    age as f64 / 1000.0
                );
                println!("{}", p.stats.to_text());
                for o in &p.outputs {
                    println!("output: {}", o.display());
                }
            }
            return Ok(exit::OK);
        }
        Err(f) => return Err(f),
    };
    let counts = frontier.counts();
    let cfg: Option<CrawlConfig> = frontier
        .meta("config")
        .ok()
        .flatten()
        .and_then(|raw| serde_json::from_slice(&raw).ok());
    let mut hosts = frontier.hosts();
    hosts.sort_by(|x, y| y.counts.queued.cmp(&x.counts.queued).then(x.key.cmp(&y.key)));
    let mut errors: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut recent: std::collections::VecDeque<(String, String)> = std::collections::VecDeque::new();
    let mut unreadable = 0u64;
    for rec in frontier.urls() {
        match rec {
            Ok(r) if r.state == UrlState::Failed => {
                let reason = r.reason.unwrap_or_default();
                let kind = reason.split(':').next().unwrap_or("").trim().to_string();
                *errors.entry(kind).or_default() += 1;
                recent.push_back((r.url, reason));
                if recent.len() > 5 {
                    recent.pop_front();
                }
            }
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    let progress = read_progress(dir);
    if a.json {
        let v = serde_json::json!({
            "state": dir,
            "seeds": cfg.as_ref().map(|c| c.seeds.clone()),
            "counts": {"queued": counts.queued, "leased": counts.leased, "done": counts.done, "failed": counts.failed},
            "top_hosts": hosts.iter().take(10).map(|h| serde_json::json!({
                "host": h.key, "queued": h.counts.queued, "done": h.counts.done, "failed": h.counts.failed,
                "cooling_until_ms": h.politeness.earliest_ms(),
            })).collect::<Vec<_>>(),
            "errors": errors,
            "recent_errors": recent.iter().map(|(u, r)| serde_json::json!({"url": u, "reason": r})).collect::<Vec<_>>(),
            "unreadable_records": unreadable,
            "last_run": progress.as_ref().map(|p| serde_json::json!({"outcome": p.outcome, "pages": p.stats.pages})),
            "outputs": cfg.as_ref().map(|c| output_list(c)),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!("state: {}", dir.display());
    if let Some(c) = &cfg {
        println!("seeds: {}", c.seeds.join(" "));
    }
    println!(
        "urls: {} queued, {} done, {} failed ({} known)",
        counts.queued,
        counts.done,
        counts.failed,
        counts.total()
    );
    if let Some(p) = &progress {
        println!(
            "last run: {} ({} pages)",
            match p.outcome {
                Some(CrawlOutcome::Completed) => "completed".to_string(),
                Some(CrawlOutcome::LimitReached(l)) => format!("stopped at a limit ({l:?})"),
                Some(CrawlOutcome::Interrupted) => "interrupted".to_string(),
                None => "did not finish (crashed or killed)".to_string(),
            },
            p.stats.pages
        );
    }
    let with_queue: Vec<_> = hosts.iter().filter(|h| h.counts.queued > 0).take(10).collect();
    if !with_queue.is_empty() {
        println!("top hosts by queue:");
        for h in with_queue {
            println!(
                "  {:<40} {:>8} queued {:>8} done {:>6} failed",
                h.key, h.counts.queued, h.counts.done, h.counts.failed
            );
        }
    }
    if !errors.is_empty() {
        let e: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("errors: {}", e.join(", "));
        println!("recent errors:");
        for (u, r) in &recent {
            println!("  {u}: {r}");
        }
    }
    if unreadable > 0 {
        println!(
            "warning: {unreadable} records could not be read; `trawl export {}` writes what can be read",
            dir.display()
        );
    }
    match frontier.verify() {
        Ok(_) => println!("consistency: ok"),
        Err(e) => println!(
            "consistency: damaged ({}); `trawl export {} --what outcomes` writes what can be read, and a new crawl can start from those URLs",
            chain(&e),
            dir.display()
        ),
    }
    if let Some(c) = &cfg {
        for (kind, path) in output_list(c) {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!("output ({kind}): {} ({size} bytes)", path.display());
        }
    }
    if counts.queued > 0 {
        println!("resume with: trawl resume {}", dir.display());
    }
    Ok(exit::OK)
}

fn output_list(c: &CrawlConfig) -> Vec<(&'static str, PathBuf)> {
    let o = &c.output;
    [("jsonl", &o.jsonl), ("csv", &o.csv), ("warc", &o.warc)]
        .into_iter()
        .filter_map(|(k, p)| p.clone().map(|p| (k, p)))
        .collect()
}

fn export(a: ExportArgs) -> R<u8> {
    let frontier = open_for_reading(&a.dir).map_err(|f| {
        if f.message.contains("another trawl process") {
            Failure {
                code: f.code,
                message: format!(
                    "a crawl is running in {}; export it after it stops",
                    a.dir.display()
                ),
            }
        } else {
            f
        }
    })?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Failure {
                code: exit::OUTPUT,
                message: format!("cannot create {}: {e}", p.display()),
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut unreadable = 0u64;
    let mut written = 0u64;
    for rec in frontier.urls() {
        let Ok(r) = rec else {
            unreadable += 1;
            continue;
        };
        let keep = match a.state {
            StateFilter::All => true,
            StateFilter::Queued => matches!(r.state, UrlState::Queued | UrlState::Leased),
            StateFilter::Done => r.state == UrlState::Done,
            StateFilter::Failed => r.state == UrlState::Failed,
        };
        if !keep {
            continue;
        }
        let line = match a.what {
            What::Urls => r.url.clone(),
            What::Outcomes => serde_json::json!({
                "url": r.url,
                "state": match r.state {
                    UrlState::Queued | UrlState::Leased => "queued",
                    UrlState::Done => "done",
                    UrlState::Failed => "failed",
                },
                "depth": r.depth,
                "attempts": r.attempts,
                "reason": r.reason,
            })
            .to_string(),
        };
        let w = writeln!(out, "{line}");
        if let Err(e) = w {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(exit::OK);
            }
            return Err(Failure {
                code: exit::OUTPUT,
                message: format!("cannot write the export: {e}"),
            });
        }
        written += 1;
    }
    let _ = out.flush();
    if unreadable > 0 {
        eprintln!(
            "trawl: {written} URLs written; {unreadable} records could not be read (the directory is damaged)"
        );
    }
    Ok(exit::OK)
}
