//! A crawl shared by several workers through Redis (`--frontier redis://…`): this
//! worker's settings, kept in its state directory so that `trawl resume DIR` needs no
//! flags, and the opening of the shared store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trawl_engine::{FrontierStore, StateDir};
use trawl_frontier_redis::{CrawlStatus, RedisFrontier, RedisOptions};

use crate::args::FrontierArgs;
use crate::exit;
use crate::failure::{self, R, usage};

/// The file in a worker's state directory that names its shared frontier.
const FILE: &str = "frontier.json";

/// The claim time-to-live when none is given: longer than a request may take by
/// default (`--timeout` 60s), since a worker starts a request only when its claim on
/// the host lasts until the request's end.
const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(150);

/// Where a worker's frontier is and who the worker is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Shared {
    /// The Redis URL.
    pub(crate) url: String,
    /// This worker's name.
    pub(crate) worker: String,
    /// The claim time-to-live, in milliseconds.
    pub(crate) claim_ttl_ms: u64,
    /// The shared crawl's name (from its seeds and scope), once it has joined one.
    #[serde(default)]
    pub(crate) crawl: Option<String>,
}

impl Shared {
    /// The shared frontier the flags name, if any.
    pub(crate) fn from_args(a: &FrontierArgs) -> R<Option<Shared>> {
        let Some(url) = &a.frontier else {
            return Ok(None);
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://"))
        {
            return Err(usage(format!(
                "--frontier {url}: give a Redis URL, redis://HOST:PORT/DB or redis+unix:///PATH"
            )));
        }
        let worker = match &a.worker {
            Some(w) => w.clone(),
            None => host_name(),
        };
        if worker.is_empty() || worker.len() > 64 || !worker.chars().all(|c| c.is_ascii_graphic()) {
            return Err(usage(format!(
                "--worker {worker:?}: a name of 1 to 64 visible ASCII characters"
            )));
        }
        let ttl = match &a.claim_ttl {
            Some(t) => humantime::parse_duration(t).map_err(|e| usage(format!("--claim-ttl {t}: {e}")))?,
            None => DEFAULT_CLAIM_TTL,
        };
        if ttl < Duration::from_secs(1) {
            return Err(usage(format!(
                "--claim-ttl {}: at least 1s",
                a.claim_ttl.as_deref().unwrap_or("")
            )));
        }
        Ok(Some(Shared {
            url: url.clone(),
            worker,
            claim_ttl_ms: ttl.as_millis() as u64,
            crawl: None,
        }))
    }

    /// Refuses a claim time-to-live no longer than a request may take: no request
    /// could then start.
    pub(crate) fn check_timeout(&self, total_timeout_secs: f64) -> R<()> {
        if (self.claim_ttl_ms as f64) < 2.0 * total_timeout_secs * 1000.0 {
            return Err(usage(format!(
                "--claim-ttl ({} ms) must be at least twice --timeout ({total_timeout_secs} s): a worker starts a request only when its claim on the host, renewed every quarter of the ttl, lasts until the request's end",
                self.claim_ttl_ms
            )));
        }
        Ok(())
    }

    /// What a worker's state directory says of its shared frontier, if it has one.
    pub(crate) fn load(dir: &Path) -> R<Option<Shared>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                failure::state(format!("{} does not read ({e}); move it aside", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failure::state(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// The settings for `dir`: those given, which must agree with those it holds, or
    /// else those it holds.
    pub(crate) fn settle(dir: &Path, given: Option<Shared>) -> R<Option<Shared>> {
        let stored = Shared::load(dir)?;
        match (given, stored) {
            (Some(g), Some(s)) if g.url != s.url || g.worker != s.worker => Err(usage(format!(
                "{} is worker {} of the crawl at {}; give the same --frontier and --worker, or another --state",
                dir.display(),
                s.worker,
                s.url
            ))),
            (Some(g), s) => Ok(Some(Shared {
                crawl: s.and_then(|s| s.crawl),
                ..g
            })),
            (None, s) => Ok(s),
        }
    }

    /// These settings for the crawl that `identity` (its seeds and scope) names; a
    /// worker's directory stays with the crawl it joined first.
    pub(crate) fn for_crawl(self, dir: &Path, identity: &str) -> R<Shared> {
        let name = crawl_name(identity);
        if let Some(joined) = &self.crawl
            && *joined != name
        {
            return Err(usage(format!(
                "{} is a worker of another shared crawl (other seeds or scope); give the seeds and scope it was started with, or another --state",
                dir.display()
            )));
        }
        Ok(Shared {
            crawl: Some(name),
            ..self
        })
    }

    /// Connects to the shared frontier as this worker, and opens `dir` for this
    /// worker's own files. Opening gives back to their queues the URLs this worker
    /// held when it last stopped.
    pub(crate) async fn open(&self, dir: &Path) -> R<StateDir> {
        let crawl = self
            .crawl
            .clone()
            .ok_or_else(|| failure::state(format!("{} names no shared crawl", dir.display())))?;
        let opts = RedisOptions::new(self.url.clone(), crawl, self.worker.clone())
            .claim_ttl(Duration::from_millis(self.claim_ttl_ms))
            // The engine fails a URL leased too often itself, with a record.
            .max_attempts(u32::MAX);
        let url = self.url.clone();
        let store = tokio::task::spawn_blocking(move || RedisFrontier::open(opts))
            .await
            .map_err(|e| failure::state(format!("cannot open the shared frontier: {e}")))?
            .map_err(|e| failure::state(format!("--frontier {url}: {}", failure::chain(&e))))?;
        let state =
            StateDir::open_shared(dir, Arc::new(store) as Arc<dyn FrontierStore>).map_err(failure::engine)?;
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        std::fs::write(dir.join(FILE), json)
            .map_err(|e| failure::state(format!("cannot write {}: {e}", dir.join(FILE).display())))?;
        Ok(state)
    }
}

/// The name of the shared crawl that a crawl's identity (its seeds and scope) makes:
/// every worker given the same seeds and scope joins the same crawl.
pub(crate) fn crawl_name(identity: &str) -> String {
    format!("{:016x}", trawl_engine::Fingerprint::of(identity).0 as u64)
}

/// This machine's host name, the default worker name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// `trawl status --frontier URL [--crawl NAME]`, and `trawl status DIR` of a worker: the
/// shared crawls on the server (or the one named), each with its workers. Read-only.
pub(crate) fn status(url: &str, crawl: Option<&str>, json: bool) -> R<u8> {
    let shown = redact(url);
    let fail = |e: trawl_engine::FrontierError| {
        failure::state(format!("--frontier {shown}: {}", failure::chain(&e)))
    };
    let names = match crawl {
        Some(c) => vec![c.to_string()],
        None => trawl_frontier_redis::crawls(url).map_err(fail)?,
    };
    let mut found = Vec::with_capacity(names.len());
    for name in &names {
        match trawl_frontier_redis::crawl_status(url, name).map_err(fail)? {
            Some(s) => found.push(s),
            None => return Err(failure::state(format!("{shown} holds no crawl {name}"))),
        }
    }
    if json {
        let v: Vec<serde_json::Value> = found.iter().map(status_json).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    if found.is_empty() {
        println!("{shown} holds no shared crawl");
    }
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_status(&shown, s);
    }
    Ok(exit::OK)
}

/// A Redis URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// How long ago `ms` was, on the server's clock `now`: "3.2 s ago", "4 min ago".
fn ago(now: u64, ms: u64) -> String {
    let s = now.saturating_sub(ms) as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1} s ago")
    } else if s < 7200.0 {
        format!("{:.0} min ago", s / 60.0)
    } else {
        format!("{:.1} h ago", s / 3600.0)
    }
}

/// The most host keys shown per worker in text.
const HOSTS_SHOWN: usize = 6;

fn print_status(url: &str, s: &CrawlStatus) {
    let c = &s.counts;
    println!("shared crawl {} on {url}", s.crawl);
    if let Some(id) = &s.identity {
        println!("crawl of: {id}");
    }
    println!(
        "urls: {} queued, {} leased, {} done, {} failed ({} known); {} records written",
        c.queued,
        c.leased,
        c.done,
        c.failed,
        c.total(),
        s.records
    );
    println!(
        "hosts: {} known, {} with work, {} claimed",
        s.hosts, s.hosts_with_work, s.hosts_claimed
    );
    let live = s.workers.iter().filter(|w| w.live).count();
    println!("workers: {} ({live} live)", s.workers.len());
    println!(
        "  {:<20} {:>5} {:>6} {:>7} {:>9} {:>8}  {:<14} last ack",
        "name", "live", "hosts", "leased", "records", "pages/s", "last seen"
    );
    for w in &s.workers {
        println!(
            "  {:<20} {:>5} {:>6} {:>7} {:>9} {:>8.1}  {:<14} {}",
            w.name,
            if w.live { "yes" } else { "no" },
            w.hosts.len(),
            w.leased,
            w.records,
            w.rate,
            ago(s.now_ms, w.last_seen_ms),
            w.last_ack_ms
                .map_or_else(|| "none".to_string(), |t| ago(s.now_ms, t)),
        );
    }
    for w in s.workers.iter().filter(|w| !w.hosts.is_empty()) {
        let more = w.hosts.len().saturating_sub(HOSTS_SHOWN);
        let mut list = w.hosts[..w.hosts.len().min(HOSTS_SHOWN)].join(" ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        println!("{} holds: {list}", w.name);
    }
}

fn status_json(s: &CrawlStatus) -> serde_json::Value {
    let c = &s.counts;
    serde_json::json!({
        "crawl": s.crawl,
        "identity": s.identity,
        "now_ms": s.now_ms,
        "counts": {"queued": c.queued, "leased": c.leased, "done": c.done, "failed": c.failed},
        "records": s.records,
        "hosts": {"known": s.hosts, "with_work": s.hosts_with_work, "claimed": s.hosts_claimed},
        "workers": s.workers.iter().map(|w| serde_json::json!({
            "name": w.name,
            "live": w.live,
            "last_seen_ms": w.last_seen_ms,
            "claim_ttl_ms": w.claim_ttl_ms,
            "hosts": w.hosts,
            "leased": w.leased,
            "records": w.records,
            "pages_per_s": w.rate,
            "last_ack_ms": w.last_ack_ms,
        })).collect::<Vec<_>>(),
    })
}
