//! What a running crawl shows of itself: `progress.json` in the state directory every
//! [`PROGRESS_EVERY`], and the stall monitor.
//!
//! - Receives: the shared counters.
//! - Sends: nothing; writes a file and log lines.
//! - Owns: the progress file.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CrawlOutcome, Shared, now_ms};
use crate::stats::StatsSnapshot;

/// How often the stall monitor wakes, and the lateness it warns about.
const STALL_TICK: Duration = Duration::from_millis(10);
const STALL_WARN: Duration = Duration::from_millis(50);
/// How often `progress.json` is written to the state directory.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

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

/// Writes `progress.json` (through a temporary file, so a reader never sees half).
pub(crate) fn write_progress(sh: &Shared, stats: &StatsSnapshot, outcome: Option<CrawlOutcome>) {
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

/// Rewrites the progress file every [`PROGRESS_EVERY`], off the async threads.
pub(crate) async fn progress_writer(sh: Arc<Shared>) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let snap = sh.stats.snapshot();
        let sh2 = sh.clone();
        let _ = tokio::task::spawn_blocking(move || write_progress(&sh2, &snap, None)).await;
    }
}

/// Measures how late the runtime wakes a timer: blocking work on the async threads.
pub(crate) async fn stall_monitor(sh: Arc<Shared>) {
    loop {
        let t = tokio::time::Instant::now();
        tokio::time::sleep(STALL_TICK).await;
        let late = t.elapsed().saturating_sub(STALL_TICK);
        sh.stats.stall(late.as_micros() as u64);
        if late >= STALL_WARN {
            sh.live.stall();
            tracing::warn!(
                late_ms = late.as_millis() as u64,
                "the async runtime was blocked (a stage is doing blocking work on its threads)"
            );
        }
    }
}
