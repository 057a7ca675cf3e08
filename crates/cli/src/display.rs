//! The progress display while a crawl runs: a spinner line on a terminal, a log line
//! every 10 s otherwise. It shows pages and pages per second (over the last few
//! seconds), the queue, requests in flight, errors, hosts in a cool-down, and an ETA
//! when a page or time limit is set.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use trawl_engine::{Metrics, StatsSnapshot};

/// The limits an ETA can be computed from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// `--max-pages`, counted over the whole crawl, and the pages done before this run.
    pub(crate) max_pages: Option<(u64, u64)>,
    /// `--max-time`, and the time the crawl had run before this run.
    pub(crate) max_time: Option<(Duration, Duration)>,
}

/// The recent rate: pages over the last samples (up to 10 s).
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn push(&mut self, at: Instant, pages: u64) -> f64 {
        self.samples.push_back((at, pages));
        while self.samples.len() > 2 && at.duration_since(self.samples[0].0) > Duration::from_secs(10) {
            self.samples.pop_front();
        }
        let (t0, p0) = self.samples[0];
        let secs = at.duration_since(t0).as_secs_f64();
        if secs > 0.0 {
            (pages - p0) as f64 / secs
        } else {
            0.0
        }
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// How long until the first limit is reached, at `rate` pages per second.
fn eta(s: &StatsSnapshot, rate: f64, limits: Limits) -> Option<Duration> {
    let by_pages = limits.max_pages.and_then(|(max, before)| {
        let left = max.saturating_sub(before + s.pages);
        (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate))
    });
    let by_time = limits
        .max_time
        .map(|(max, before)| max.saturating_sub(before + Duration::from_secs_f64(s.elapsed_secs)));
    match (by_pages, by_time) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn progress_line(s: &StatsSnapshot, rate: f64, cooling: usize, limits: Limits) -> String {
    let mut line = format!(
        "{} pages ({rate:.0}/s) | {} queued | {} in flight | {} errors | {} hosts, {cooling} cooling down",
        s.pages, s.queued, s.in_flight, s.failed, s.hosts
    );
    if let Some(d) = eta(s, rate, limits) {
        line.push_str(&format!(" | ETA {}", short(d)));
    }
    line
}

/// Shows the crawl's progress until aborted.
pub(crate) async fn show_progress(
    stats: std::sync::Arc<trawl_engine::Stats>,
    metrics: Metrics,
    limits: Limits,
) {
    let mut rate = Rate::default();
    let mut line = || {
        let s = stats.snapshot();
        let r = rate.push(Instant::now(), s.pages);
        progress_line(&s, r, metrics.hosts_cooling_down(), limits)
    };
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        // Cleared when the task is aborted, so the summary starts on a clean line.
        struct Clear(indicatif::ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let guard = Clear(bar);
        loop {
            guard.0.set_message(line());
            guard.0.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tracing::info!("{}", line());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_rate_queue_errors_cooling_hosts_and_an_eta() {
        let s = StatsSnapshot {
            pages: 400,
            queued: 1_200,
            in_flight: 3,
            failed: 7,
            hosts: 12,
            elapsed_secs: 40.0,
            ..StatsSnapshot::default()
        };
        let limits = Limits {
            max_pages: Some((1_000, 0)),
            max_time: None,
        };
        assert_eq!(
            progress_line(&s, 10.0, 2, limits),
            "400 pages (10/s) | 1200 queued | 3 in flight | 7 errors | 12 hosts, 2 cooling down | ETA 1m00s"
        );
        let timed = Limits {
            max_pages: None,
            max_time: Some((Duration::from_secs(3_700), Duration::ZERO)),
        };
        assert!(progress_line(&s, 10.0, 0, timed).ends_with("ETA 1h01m"));
        assert!(!progress_line(&s, 10.0, 0, Limits::default()).contains("ETA"));
    }
}
