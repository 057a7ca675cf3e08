//! `trawl status`: a crawl's state, read without changing it. While a crawl runs (its
//! directory is locked), its `progress.json` is the view.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use trawl_engine::{CrawlConfig, CrawlOutcome, FrontierError, StateReader, UrlState};

use crate::args::StatusArgs;
use crate::exit;
use crate::failure::{self, R, chain};

/// Opens `dir` read-only for `status` and `export`; `Ok(None)` when a crawl is running
/// in it.
pub(crate) fn open_reader(dir: &Path) -> R<Option<StateReader>> {
    if !dir.is_dir() {
        return Err(failure::state(format!("{} does not exist", dir.display())));
    }
    match StateReader::open(dir) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_locked() => Ok(None),
        Err(trawl_engine::Error::State {
            source: FrontierError::Corrupt { detail },
            ..
        }) => Err(failure::state(format!(
            "{} is damaged and cannot be opened ({detail}), so nothing in it can be read; the output files are valid up to their last complete record: keep them, move the directory aside, and start a new crawl with new output files",
            dir.display()
        ))),
        Err(e) => Err(failure::engine(e)),
    }
}

/// The output files of a configuration, by kind.
fn output_list(c: &CrawlConfig) -> Vec<(&'static str, PathBuf)> {
    let o = &c.output;
    [("jsonl", &o.jsonl), ("csv", &o.csv), ("warc", &o.warc)]
        .into_iter()
        .filter_map(|(k, p)| p.clone().map(|p| (k, p)))
        .collect()
}

/// What a running crawl's progress file says.
fn running(dir: &Path, json: bool) -> R<u8> {
    let Some(p) = trawl_engine::read_progress(dir) else {
        return Err(failure::state(format!(
            "another trawl process is using {}, and it has written no progress yet; try again in a few seconds",
            dir.display()
        )));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
        return Ok(exit::OK);
    }
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
    Ok(exit::OK)
}

/// One host's politeness as `status` shows it.
struct HostPoliteness {
    host: String,
    /// Requests per second it is held to (`None`: no rate).
    rate: Option<f64>,
    /// Whether `rate` is the adaptive rate, below the configured one.
    adapted: bool,
    cool_down_s: f64,
    backoff: u32,
    refused_429: u64,
    failure_rate: f64,
}

/// The politeness of the (at most 10) hosts with the most queued work: the rate the
/// host is held to (its persisted adaptive rate, else the configured one), what is
/// left of a cool-down, the backoff level, and the last run's 429s and failure rate.
fn host_politeness(
    hosts: &[trawl_engine::HostInfo],
    cfg: Option<&CrawlConfig>,
    progress: Option<&trawl_engine::Progress>,
) -> Vec<HostPoliteness> {
    let configured = cfg.map_or(1.0, |c| c.politeness.rate);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    hosts
        .iter()
        .filter(|h| h.counts.queued + h.counts.leased > 0)
        .take(10)
        .map(|h| {
            let authority = h.key.split_once("://").map_or(h.key.as_str(), |(_, a)| a);
            let last = progress.and_then(|p| p.stats.top_hosts.iter().find(|t| t.host == authority));
            let p = &h.politeness;
            let adapted = p.adaptive_millirate != 0;
            HostPoliteness {
                host: h.key.clone(),
                rate: if adapted {
                    Some(f64::from(p.adaptive_millirate) / 1000.0)
                } else {
                    (configured > 0.0).then_some(configured)
                },
                adapted,
                cool_down_s: p.earliest_ms().saturating_sub(now) as f64 / 1000.0,
                backoff: p.backoff_level,
                refused_429: last.map_or(0, |t| t.refused_429),
                failure_rate: last.map_or(0.0, |t| t.failure_rate),
            }
        })
        .collect()
}

/// `trawl status`.
pub(crate) fn status(a: StatusArgs) -> R<u8> {
    let dir = match (&a.dir, &a.frontier) {
        (_, Some(url)) => return crate::shared::status(url, a.crawl.as_deref(), a.json),
        (Some(dir), None) => dir,
        (None, None) => return Err(failure::usage("give a state directory, or --frontier URL")),
    };
    if let Some(s) = crate::shared::Shared::load(dir)? {
        if !a.json {
            println!("{} is worker {} of a shared crawl", dir.display(), s.worker);
        }
        return crate::shared::status(&s.url, s.crawl.as_deref(), a.json);
    }
    let Some(reader) = open_reader(dir)? else {
        return running(dir, a.json);
    };
    let counts = reader.counts();
    let cfg = reader.config().ok().flatten();
    let mut hosts = reader.hosts();
    hosts.sort_by(|x, y| y.counts.queued.cmp(&x.counts.queued).then(x.key.cmp(&y.key)));
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut recent: VecDeque<(String, String)> = VecDeque::new();
    let mut unreadable = 0u64;
    for rec in reader.urls() {
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
    let progress = reader.progress();
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
            "politeness": host_politeness(&hosts, cfg.as_ref(), progress.as_ref()).iter().map(|p| serde_json::json!({
                "host": p.host, "rate": p.rate, "adaptive": p.adapted, "cool_down_s": p.cool_down_s,
                "backoff_level": p.backoff, "refused_429": p.refused_429, "failure_rate": p.failure_rate,
            })).collect::<Vec<_>>(),
            "recent_errors": recent.iter().map(|(u, r)| serde_json::json!({"url": u, "reason": r})).collect::<Vec<_>>(),
            "unreadable_records": unreadable,
            "last_run": progress.as_ref().map(|p| serde_json::json!({"outcome": p.outcome, "pages": p.stats.pages})),
            "outputs": cfg.as_ref().map(output_list),
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
        counts.queued + counts.leased,
        counts.done,
        counts.failed,
        counts.total()
    );
    if counts.leased > 0 {
        println!(
            "  of the queued, {} were in flight when the last run stopped; resuming fetches them again",
            counts.leased
        );
    }
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
    let politeness = host_politeness(&hosts, cfg.as_ref(), progress.as_ref());
    if !politeness.is_empty() {
        println!("politeness of the hosts with the most work (429s and failures: last run):");
        println!(
            "  {:<40} {:>9} {:>10} {:>7} {:>6} {:>8}",
            "host", "rate/s", "cool-down", "backoff", "429s", "failed"
        );
        for p in &politeness {
            println!(
                "  {:<40} {:>9} {:>10} {:>7} {:>6} {:>7.1}%",
                p.host,
                p.rate.map_or("none".to_string(), |r| format!(
                    "{r:.2}{}",
                    if p.adapted { "*" } else { "" }
                )),
                if p.cool_down_s > 0.0 {
                    format!("{:.0} s", p.cool_down_s)
                } else {
                    "-".into()
                },
                p.backoff,
                p.refused_429,
                p.failure_rate * 100.0
            );
        }
        if politeness.iter().any(|p| p.adapted) {
            println!("  (* the adaptive rate, lowered after 429s, 503s, timeouts or slow answers)");
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
    match reader.verify() {
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
    if counts.queued + counts.leased > 0 {
        println!("resume with: trawl resume {}", dir.display());
    }
    Ok(exit::OK)
}
