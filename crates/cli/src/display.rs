//! The progress display while a crawl runs: a spinner line on a terminal, a log line
//! every 10 s otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use trawl_engine::StatsSnapshot;

fn progress_line(s: &StatsSnapshot) -> String {
    format!(
        "{} pages ({:.0}/s), {} queued, {} in flight, {} errors, {} hosts",
        s.pages, s.pages_per_sec, s.queued, s.in_flight, s.failed, s.hosts
    )
}

/// Shows the crawl's progress until aborted.
pub(crate) async fn show_progress(stats: std::sync::Arc<trawl_engine::Stats>) {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
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
