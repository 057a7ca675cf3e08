//! The sitemap thread: sitemaps are read off the parse stage, one at a time.
//!
//! - Receives: fetched sitemaps from the fetch stage (`SITEMAP_CHANNEL`), each with a
//!   permit of the sitemap lane.
//! - Sends: their outcomes to the commit thread (`COMMIT_CHANNEL`), after their URLs
//!   are in the frontier.
//! - Owns: nothing but its thread.
//!
//! A sitemap lists up to 50,000 URLs and an index can name hundreds of sitemaps. Read
//! in the parse stage, they filled its threads for a minute on a million-URL site while
//! no page was parsed. Here they go through a bounded path alongside the crawl: at most
//! [`SITEMAP_LANE`] are fetched or read at once (the scheduler holds back the rest,
//! out of their hosts' slots, and goes on with the hosts' pages meanwhile), and their
//! URLs are enqueued in batches of 1,024 between the crawl's own frontier writes. A
//! small sitemap (64 KiB or less) leaves the lane once downloaded, so a broad crawl's
//! one small sitemap per host is not held to two downloads at a time; it waits for
//! this thread in `SITEMAP_CHANNEL` like a page for the parse stage.
//!
//! How a sitemap is asked for and read ([`request`], [`read`]) is shared with a
//! recrawl's `--changed-since`, which reads the sitemaps again before its revisits
//! start (`crate::recrawl`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio::sync::mpsc;
use trawl_fetcher::{AcceptTypes, RequestOptions};
use trawl_parser::{Sitemap, SitemapError, SitemapLimits};

use super::Shared;
use super::fetch::Fetched;
use super::parse::{Done, process};

/// Sitemaps fetched or being read at once, for the whole crawl: two, so that one is
/// read while the next one downloads.
pub const SITEMAP_LANE: usize = 2;
/// Fetched sitemaps waiting for the sitemap thread; the lane bounds them already.
pub(crate) const SITEMAP_CHANNEL: usize = SITEMAP_LANE;

/// The request a sitemap is fetched with: it accepts the types sitemaps are served as
/// (XML, gzip, plain text, `application/octet-stream`), whatever the pages accept.
pub(crate) fn request() -> RequestOptions {
    RequestOptions::new().accept(AcceptTypes::sitemaps())
}

/// Reads a fetched sitemap within the protocol's limits (50,000 URLs and 50 MB after
/// decompression per file); the fetcher's body cap bounds what was downloaded.
pub(crate) fn read(body: &[u8]) -> Result<Sitemap, SitemapError> {
    trawl_parser::parse_sitemap(body, &SitemapLimits::default())
}

/// Reads sitemaps until the fetch stage is done.
pub(crate) fn sitemap_loop(
    sh: Arc<Shared>,
    mut rx: mpsc::Receiver<Fetched>,
    commit_tx: mpsc::Sender<Vec<Done>>,
) {
    while let Some(mut item) = rx.blocking_recv() {
        let lane = item.lane.take();
        let t0 = Instant::now();
        let done = process(&sh, item);
        sh.stats
            .parse_us
            .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
        if commit_tx.blocking_send(vec![done]).is_err() {
            return;
        }
        // The lane has room again: the scheduler may send the next sitemap.
        drop(lane);
        sh.wake.notify();
    }
}
