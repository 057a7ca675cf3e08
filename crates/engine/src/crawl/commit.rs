//! The commit stage: a dedicated blocking thread.
//!
//! - Receives: batches of [`Done`] from the parse stage (`COMMIT_CHANNEL`).
//! - Sends: nothing down a channel. It writes records to every sink, then acks the
//!   batch in the frontier with the sinks' checkpoints and the engine's counters, in
//!   one atomic batch, and wakes the scheduler.
//! - Owns: the sinks, the broken-link tracker (`sources`), the engine's persisted
//!   counters, the flush clock, and the per-host circuit breaker, whose state is the
//!   frontier's persisted politeness.
//!
//! A record reaches the sinks before its ack, and the ack carries the sinks'
//! checkpoints, so a resume that cuts each output back to its checkpoint leaves a
//! record in the output if and only if its URL is done or failed in the frontier.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use trawl_frontier::{Ack, Fingerprint, NewUrl};
use trawl_sink::Sink;

use super::parse::{Done, ENQUEUE_CHUNK};
use super::{COMMIT_BATCH, CrawlOutcome, Shared, fault, now_ms};
use crate::error::Error;
use crate::state::Persisted;

/// How long the commit thread lingers for more pages after the first of a batch: it
/// turns many small frontier writes into fewer, larger ones.
const COMMIT_LINGER: Duration = Duration::from_millis(5);

/// The commit thread: sinks first, then one ack batch with their checkpoints.
pub(crate) fn commit_loop(
    sh: &Shared,
    mut rx: mpsc::Receiver<Vec<Done>>,
    mut sinks: Vec<Box<dyn Sink>>,
    mut sources: super::sources::Sources,
    mut persisted: Persisted,
) -> Result<(), Error> {
    let flush_every = Duration::from_millis(sh.cfg.state.flush_interval_ms);
    let mut last_flush = Instant::now();
    let result = (|| -> Result<(), Error> {
        while let Some(mut batch) = rx.blocking_recv() {
            if batch.len() < COMMIT_BATCH / 4 && !sh.stop.is_cancelled() {
                std::thread::sleep(COMMIT_LINGER);
            }
            let t0 = Instant::now();
            while batch.len() < COMMIT_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            sources.before_ack(&batch)?;
            // The budget units this batch's links took, to give back for the URLs the
            // frontier had seen already.
            let mut charged: Vec<(u128, String)> = Vec::new();
            let mut acks = Vec::with_capacity(batch.len());
            let mut records = 0u64;
            let mut bytes = 0u64;
            for mut d in batch {
                // A page with a huge link set: enqueue it ahead of the ack in modest
                // batches (enqueue is idempotent, so a crash in between only means the
                // page is read again), keeping sled's batches small.
                if d.discovered.len() > ENQUEUE_CHUNK {
                    sources.untracked_links();
                    enqueue_ahead(sh, std::mem::take(&mut d.discovered))?;
                }
                if !sh.cfg.limits.budgets.is_empty() {
                    for u in &d.discovered {
                        if let Some((key, _)) = super::parse::budget_of(sh, &u.url) {
                            charged.push((Fingerprint::of(&u.url).0, key));
                        }
                    }
                }
                if let Some(rec) = &d.record {
                    let x = d.exchange.as_ref().map(|x| x.as_exchange());
                    for s in sinks.iter_mut() {
                        s.write(rec, x.as_ref())?;
                    }
                    records += 1;
                    if records == 2 {
                        fault::point("mid-sink-write");
                    }
                    sh.stats.record(
                        d.lease.host.0,
                        &d.host,
                        rec.status,
                        rec.error.as_ref().map(|e| e.kind.as_str()),
                    );
                }
                bytes += d.bytes;
                breaker(sh, &d)?;
                acks.push(Ack {
                    lease: d.lease,
                    outcome: d.outcome,
                    discovered: d.discovered,
                });
            }
            let n = acks.len() as u64;
            persisted.pages += records;
            persisted.bytes += bytes;
            persisted.elapsed_ms = sh.elapsed_before_ms + sh.started.elapsed().as_millis() as u64;
            persisted
                .budgets
                .clone_from(&sh.budgets.lock().unwrap_or_else(|e| e.into_inner()));
            let mut cps: Vec<(String, Vec<u8>)> = Vec::with_capacity(sinks.len() + 1);
            for s in sinks.iter_mut() {
                cps.push((s.name().to_string(), s.checkpoint()?.to_bytes().to_vec()));
                for (name, cp) in s.side_checkpoints() {
                    cps.push((name.to_string(), cp.to_bytes().to_vec()));
                }
            }
            cps.push((
                trawl_sink::BROKEN_CHECKPOINT.to_string(),
                sources.checkpoint()?.to_bytes().to_vec(),
            ));
            cps.push(persisted.checkpoint());
            let refs: Vec<(&str, &[u8])> = cps.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
            fault::point("before-ack");
            let new = sh
                .frontier
                .ack_records(acks, &refs, records)
                .map_err(|e| sh.state_error(e))?;
            sources.after_ack(&new);
            refund_budgets(sh, charged, &new);
            fault::point("after-ack");
            sh.pages_total.store(persisted.pages, Relaxed);
            sh.stats.bytes.fetch_add(bytes, Relaxed);
            sh.stats.in_flight.fetch_sub(n, Relaxed);
            let counts = sh.frontier.counts().map_err(|e| sh.state_error(e))?;
            sh.stats.queued.store(counts.queued, Relaxed);
            sh.stats.done_total.store(counts.done, Relaxed);
            sh.stats.failed_total.store(counts.failed, Relaxed);
            sh.wake.notify();
            sh.acked.notify();
            if last_flush.elapsed() >= flush_every {
                sh.frontier.flush().map_err(|e| sh.state_error(e))?;
                fault::point("after-flush");
                last_flush = Instant::now();
            }
            sh.stats
                .commit_us
                .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
            sh.live.stage("commit", t0.elapsed().as_secs_f64());
        }
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::error!(error = %super::chain(e), "cannot commit; stopping (the state directory stays resumable)");
        sh.end(CrawlOutcome::Interrupted);
        rx.close();
        while rx.blocking_recv().is_some() {}
    }
    // Whatever happened, what was acked is made durable.
    let flushed = sh.frontier.flush().map_err(|e| sh.state_error(e));
    result.and(flushed)
}

/// Gives back the budget units of the URLs in `charged` that the ack did not enqueue
/// (`new` holds those it did; a URL charged twice in one batch is new once). The
/// budgets are stored with the next ack: a crash before it only leaves them high.
fn refund_budgets(sh: &Shared, charged: Vec<(u128, String)>, new: &[Fingerprint]) {
    if charged.is_empty() {
        return;
    }
    let mut fresh: HashSet<u128> = new.iter().map(|f| f.0).collect();
    let mut used = sh.budgets.lock().unwrap_or_else(|e| e.into_inner());
    for (fp, key) in charged {
        if fresh.remove(&fp) {
            continue;
        }
        if let Some(n) = used.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Enqueues a large link set in chunks ahead of its page's ack.
fn enqueue_ahead(sh: &Shared, links: Vec<NewUrl>) -> Result<(), Error> {
    let mut it = links.into_iter().peekable();
    let mut chunks = 0;
    while it.peek().is_some() {
        let chunk: Vec<NewUrl> = it.by_ref().take(ENQUEUE_CHUNK).collect();
        sh.frontier.enqueue(chunk).map_err(|e| sh.state_error(e))?;
        fault::point("enqueue-chunk");
        chunks += 1;
        // sled holds written pages in memory until a flush: bound it.
        if chunks % 8 == 0 {
            sh.frontier.flush().map_err(|e| sh.state_error(e))?;
        }
    }
    Ok(())
}

/// The adaptive rate to persist: the gate's, unless it moved by under 2% from the
/// stored one (it moves on every response while it recovers; a write per page for
/// a change no one would notice after a restart is not worth it).
fn persisted_rate(stored: u32, live: u32) -> u32 {
    let moved = (i64::from(live) - i64::from(stored)).unsigned_abs();
    if stored == 0 || live == 0 || moved * 50 >= u64::from(stored) {
        live
    } else {
        stored
    }
}

/// The per-host circuit breaker and persisted cool-downs. Its state is the host's
/// persisted politeness in the frontier; the scheduler reads the verdict from there.
fn breaker(sh: &Shared, d: &Done) -> Result<(), Error> {
    let p_cfg = &sh.cfg.politeness;
    let (pause_after, give_up_after) = (
        p_cfg.pause_after_failures.max(1),
        p_cfg.give_up_after_failures.max(1),
    );
    let id = d.lease.host;
    let before = sh
        .frontier
        .politeness(id)
        .map_err(|e| sh.state_error(e))?
        .unwrap_or_default();
    let mut p = before;
    let now = now_ms();
    match d.host_failure {
        Some(true) => {
            p.consecutive_failures += 1;
            let n = p.consecutive_failures;
            if n == give_up_after {
                tracing::warn!(
                    host = %d.host,
                    failures = n,
                    failure_rate = sh.stats.host_failure_rate(&d.host),
                    "host unavailable: its remaining URLs fail without a request"
                );
            } else if n >= pause_after && n < give_up_after {
                let step = (n - pause_after).min(6);
                let pause = Duration::from_secs(10 << step).min(Duration::from_secs(600));
                p.backoff_level = step + 1;
                p.retry_after_until_ms = p.retry_after_until_ms.max(now + pause.as_millis() as u64);
                tracing::warn!(host = %d.host, failures = n, pause_s = pause.as_secs(), "host paused after consecutive failures");
            }
        }
        Some(false) => {
            p.consecutive_failures = 0;
            p.backoff_level = 0;
        }
        None => {}
    }
    if let Some(c) = d.cool.filter(|c| !c.cool_down.is_zero()) {
        p.retry_after_until_ms = p.retry_after_until_ms.max(now + c.cool_down.as_millis() as u64);
        p.backoff_level = p.backoff_level.max(c.backoff_level);
    } else if d.host_failure == Some(false) && p.retry_after_until_ms <= now {
        p.retry_after_until_ms = 0;
    }
    if let Some(c) = d.cool {
        p.adaptive_millirate = persisted_rate(before.adaptive_millirate, c.adaptive_millirate);
    }
    if p != before {
        sh.frontier.set_politeness(id, p).map_err(|e| sh.state_error(e))?;
        if p.retry_after_until_ms > before.retry_after_until_ms {
            // Durable at once (it is rare): a crash now must not forget the wait.
            sh.frontier.flush().map_err(|e| sh.state_error(e))?;
            tracing::info!(
                host = %d.host,
                wait_ms = p.retry_after_until_ms.saturating_sub(now),
                "host cooling down"
            );
        }
    }
    Ok(())
}
