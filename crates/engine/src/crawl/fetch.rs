//! The fetch stage.
//!
//! - Receives: [`Job`]s from the scheduler (`FETCH_CHANNEL`).
//! - Sends: [`Fetched`]s to the parse stage (`PARSE_CHANNEL`), sitemaps to the sitemap
//!   thread (`SITEMAP_CHANNEL`).
//! - Owns: one task per job in a `JoinSet`, and the grace period of a stop.
//!
//! A job's global permit is held until its page is in the parse channel, and each
//! body holds its share of the fetcher's body-memory budget ([`super::BODY_BYTES`])
//! from before its download to the end of its parse, so a slow parse stage, or a run
//! of large pages, slows fetching instead of piling bodies up in memory. A skipped job
//! (a dead host, a crash loop) makes no request. Pages are fetched with the fetcher's
//! accepted types (HTML and `--accept-type`, or everything with WARC output); a
//! sitemap asks for the types sitemaps are served as, whatever those are. A recrawl's
//! revisit is a conditional GET with the validators the page sent last time.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use trawl_fetcher::{GateSnapshot, RequestOptions};
use trawl_frontier::Lease;

use super::Shared;
use super::schedule::{Job, Skip, Work};

/// What became of a job's request.
pub(crate) enum Fetch {
    /// The fetcher's answer (boxed: a fetched page is large, a skip small).
    Response(Box<Result<trawl_fetcher::Fetched, trawl_fetcher::Error>>),
    /// No request was made.
    Skipped(Skip),
}

/// A fetched (or failed, or skipped) lease on its way to parsing.
pub(crate) struct Fetched {
    pub(crate) lease: Lease,
    pub(crate) host: String,
    pub(crate) fetch: Fetch,
    /// The host's gate after this request (cool-down, backoff, adaptive rate), when a
    /// cool-down is running or the adaptive rate is on.
    pub(crate) cool: Option<GateSnapshot>,
    /// robots.txt's `Sitemap:` URLs, with the host's first page.
    pub(crate) robots_sitemaps: Vec<String>,
    /// A sitemap's lane permit: it goes to the sitemap thread, not the parse stage.
    pub(crate) lane: Option<tokio::sync::OwnedSemaphorePermit>,
    /// This body's share of the fetcher's body-memory budget, released once the page
    /// is processed.
    pub(crate) budget: Option<trawl_fetcher::MemoryReservation>,
    /// The request asked for its connection to be closed (`Job::close_connection`).
    pub(crate) close_connection: bool,
}

impl Fetched {
    /// The bytes of body this page holds.
    pub(crate) fn body_len(&self) -> usize {
        match &self.fetch {
            Fetch::Response(r) => r.as_ref().as_ref().map_or(0, |f| f.body.len()),
            Fetch::Skipped(_) => 0,
        }
    }
}

/// Runs a fetch task per job; on a stop, gives them the grace period, then drops the
/// rest (their leases go back to the queue when the directory is next opened).
pub(crate) async fn fetch_stage(
    sh: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    parse_tx: mpsc::Sender<Fetched>,
    sitemap_tx: mpsc::Sender<Fetched>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    let tx = if job.lane.is_some() { sitemap_tx.clone() } else { parse_tx.clone() };
                    tasks.spawn(fetch_task(sh.clone(), job, tx));
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(parse_tx);
    drop(sitemap_tx);
    let grace = Duration::from_secs_f64(sh.cfg.state.grace_secs);
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

/// A sitemap body up to this size gives back its lane permit as soon as it is
/// downloaded (see `fetch_task`).
const SMALL_SITEMAP: u64 = 64 << 10;

async fn fetch_task(sh: Arc<Shared>, job: Job, parse_tx: mpsc::Sender<Fetched>) {
    let Job {
        lease,
        work,
        permit,
        lane,
        gate,
        host,
        check_sitemaps,
        close_connection,
    } = job;
    let t0 = Instant::now();
    let (fetch, cool) = match work {
        Work::Skip(why) => (Fetch::Skipped(why), None),
        Work::Fetch(host_permit) => {
            let options = if lane.is_some() {
                super::sitemap::request()
            } else if let Some(prior) = crate::recrawl::decode_prior(&lease.data)
                && !prior.validators().is_empty()
            {
                // A recrawl's revisit: a conditional GET with what the page sent last.
                RequestOptions::new().validators(prior.validators())
            } else {
                RequestOptions::new()
            };
            let options = options.close_connection(close_connection);
            let result = sh
                .fetcher
                .fetch_claimed_with(&lease.url, host_permit, &options)
                .await;
            match &result {
                Ok(f) => {
                    sh.bytes_total.fetch_add(f.body_bytes, Relaxed);
                    sh.live.response(f.status);
                }
                Err(e) => {
                    if let Some(status) = e.status() {
                        sh.live.response(status);
                        if status == 429 {
                            sh.stats.refused(&host);
                        }
                    }
                }
            }
            // With a cool-down running or the adaptive rate on, the commit stage
            // persists what the gate says now.
            let snap = gate.snapshot();
            let cool = (!snap.cool_down.is_zero() || sh.cfg.politeness.adaptive).then_some(snap);
            (Fetch::Response(Box::new(result)), cool)
        }
    };
    let robots_sitemaps = if check_sitemaps {
        sh.fetcher.sitemaps(&lease.url).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    sh.stats
        .fetch_us
        .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
    sh.live.stage("fetch", t0.elapsed().as_secs_f64());
    let host_id = lease.host;
    let mut item = Fetched {
        lease,
        host,
        fetch,
        cool,
        robots_sitemaps,
        lane,
        budget: None,
        close_connection,
    };
    // The body's share of the body-memory budget goes with the page to its parse.
    if let Fetch::Response(r) = &mut item.fetch
        && let Ok(f) = r.as_mut()
    {
        item.budget = f.memory.take();
        if item.lane.is_some() && f.body_bytes <= SMALL_SITEMAP {
            // A small sitemap gives its lane permit back once it is downloaded: the
            // lane bounds the large ones (read and enqueued slowly, holding their
            // bodies), and a broad crawl, one small sitemap per host, would otherwise
            // wait on two downloads at a time. It still waits for the sitemap thread
            // in `SITEMAP_CHANNEL`, holding its fetch permit, so few are held.
            item.lane = None;
            sh.wake.notify();
        }
    }
    let _ = parse_tx.send(item).await;
    drop(permit);
    // The host's request slot and the global permit are free: the scheduler may
    // serve the host again.
    sh.finished
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(host_id);
    sh.wake.notify();
}
