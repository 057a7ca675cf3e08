//! The scheduler: one dedicated thread (the blocking pool's), not a task on the async
//! runtime: a lease is a sled batch, and sled can make a write wait for a flush in
//! progress, which on a runtime worker stalls every fetch that shares it.
//!
//! - Receives: wake-ups (a fetch finished, a batch was acked) and the frontier's
//!   ready hosts.
//! - Sends: [`Job`]s to the fetch stage through `FETCH_CHANNEL`, each with a permit of
//!   the global semaphore (`concurrency`) and, for a request, the host gate's permit.
//! - Owns: a small buffer of leased URLs per host, and the global semaphore.
//!
//! It keeps no politeness of its own: a host's [`HostGate`] decides when it may be
//! fetched. A job is dispatched only once the gate has let its request start
//! ([`HostGate::try_acquire`]), so no task waits on a host while holding a global
//! permit, and a host that is rate-limited, in a crawl delay, cooling down or at its
//! concurrency cap never holds up another. Nothing it does waits on one host.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use trawl_fetcher::{HostGate, HostPermit, NotReady};
use trawl_frontier::{FrontierStore, HostId, Lease, Priority};
use url::Url;

use super::{CrawlOutcome, LEASE_BATCH, Limit, MAX_LEASES, Shared, host_label, now_ms};
use crate::error::Error;

/// What a fetch task does with a lease.
pub(crate) enum Work {
    /// Fetch it: the host's gate has let the request start.
    Fetch(HostPermit),
    /// Fail it at once, without a request.
    Skip(Skip),
}

/// Why a lease fails without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The host's circuit breaker gave up on it.
    HostUnavailable,
    /// Leased [`MAX_LEASES`] times without completing.
    TooManyAttempts,
}

/// A lease on its way to a fetch task, with the permits that bound it.
pub(crate) struct Job {
    pub(crate) lease: Lease,
    pub(crate) work: Work,
    pub(crate) permit: OwnedSemaphorePermit,
    /// A sitemap's permit of the sitemap lane, held until its URLs are enqueued.
    pub(crate) lane: Option<OwnedSemaphorePermit>,
    /// The host's gate, to read its cool-down after the request.
    pub(crate) gate: Arc<HostGate>,
    /// `host[:port]`, for stats.
    pub(crate) host: String,
    /// The host's first page in this run also reads robots.txt's `Sitemap:` lines.
    pub(crate) check_sitemaps: bool,
}

/// Per-host scheduling state, owned by the scheduler.
struct HostSlot {
    label: String,
    gate: Arc<HostGate>,
    /// Leased pages waiting for the gate.
    pages: VecDeque<Lease>,
    /// Leased sitemaps waiting for the gate and the sitemap lane. Apart from the pages,
    /// so that pages go on while the lane is full.
    sitemaps: VecDeque<Lease>,
    sitemaps_checked: bool,
}

impl HostSlot {
    fn buffered(&self) -> usize {
        self.pages.len() + self.sitemaps.len()
    }

    /// Whether a buffered lease could go now, as far as the lane is concerned.
    fn dispatchable(&self, lane: &Semaphore) -> bool {
        !self.pages.is_empty() || (!self.sitemaps.is_empty() && lane.available_permits() > 0)
    }
}

/// The most leases one host's buffers hold: leasing goes on past sitemaps that wait for
/// the lane, to reach the pages behind them, up to this.
const HOST_BUFFER_MAX: usize = 1024;

fn soonest(d: Duration, next: &mut Option<Duration>) {
    *next = Some(next.map_or(d, |n| n.min(d)));
}

/// Wakes a thread that waits for the pipeline: the scheduler (a fetch finished, a
/// batch was acked, the crawl stops) or the sitemap thread (a batch was acked). A
/// wake-up that comes while the thread is busy is kept for its next wait.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    woken: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Wake {
    /// Wakes the scheduler (or makes its next wait return at once).
    pub(crate) fn notify(&self) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Waits for a wake-up, or at most `d`; returns whether it was woken.
    pub(crate) fn wait(&self, d: Duration) -> bool {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        if !*woken {
            woken = self
                .cv
                .wait_timeout(woken, d)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::replace(&mut *woken, false)
    }
}

/// Waits for a wake-up, a stop, or `next` (a host becoming ready).
fn wait(sh: &Shared, next: Option<Duration>) {
    if sh.stop.is_cancelled() {
        return;
    }
    let d = next
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(1));
    sh.wake.wait(d);
}

/// Leases from ready hosts and dispatches to fetch tasks until the crawl is over.
pub(crate) fn schedule(sh: Arc<Shared>, fetch_tx: mpsc::Sender<Job>) -> Result<(), Error> {
    let cfg = &sh.cfg;
    let global = Arc::new(Semaphore::new(cfg.politeness.concurrency));
    let per_host = cfg.politeness.per_host_concurrency;
    let mut slots: HashMap<HostId, HostSlot> = HashMap::new();
    loop {
        if sh.stop.is_cancelled() {
            return Ok(());
        }
        let in_flight = sh.in_flight();
        // Global limits: stop leasing once reached; end when the in-flight work is in.
        let pages = sh.pages_total.load(Relaxed);
        let mut room = match cfg.limits.max_pages {
            Some(max) if pages >= max => {
                if in_flight == 0 {
                    tracing::info!(max, "page limit reached");
                    sh.end(CrawlOutcome::LimitReached(Limit::Pages));
                    return Ok(());
                }
                0
            }
            Some(max) => max.saturating_sub(pages).saturating_sub(in_flight),
            None => u64::MAX,
        };
        if cfg
            .limits
            .max_bytes
            .is_some_and(|m| sh.bytes_total.load(Relaxed) >= m)
        {
            // Leases still in the buffers are not fetched: they go back to their
            // queues when the directory is next opened.
            let buffered: u64 = slots.values().map(|s| s.buffered() as u64).sum();
            if in_flight <= buffered {
                tracing::info!("byte limit reached");
                sh.end(CrawlOutcome::LimitReached(Limit::Bytes));
                return Ok(());
            }
            wait(&sh, None);
            continue;
        }

        let now = now_ms();
        let mut progressed = false;
        let mut waiting = false;
        let mut blocked = false;
        let mut next: Option<Duration> = None;
        let mut candidates: Vec<HostId> = Vec::new();
        for (id, earliest) in sh.frontier.ready_hosts() {
            if earliest > now {
                waiting = true;
                soonest(Duration::from_millis(earliest - now), &mut next);
                continue;
            }
            candidates.push(id);
        }
        for (id, slot) in &slots {
            if slot.buffered() > 0 && !candidates.contains(id) {
                candidates.push(*id);
            }
        }
        'hosts: for id in candidates {
            if global.available_permits() == 0 {
                break;
            }
            if let std::collections::hash_map::Entry::Vacant(vacant) = slots.entry(id) {
                let Some(info) = sh.frontier.host(id) else {
                    continue;
                };
                let Ok(url) = Url::parse(&info.key) else { continue };
                vacant.insert(HostSlot {
                    label: host_label(&info.key),
                    gate: sh.fetcher.gate(&url),
                    pages: VecDeque::new(),
                    sitemaps: VecDeque::new(),
                    sitemaps_checked: false,
                });
            }
            let Some(slot) = slots.get_mut(&id) else { continue };
            // A host the breaker gave up on: its URLs fail at once, no gate, no pace.
            let dead = sh.host_dead(id);
            loop {
                let Ok(permit) = global.clone().try_acquire_owned() else {
                    break 'hosts;
                };
                // A host is leased from only when its gate would let a request start
                // now, so the buffers stay small however many hosts wait.
                let lane = &sh.sitemap_lane;
                if !dead && !slot.dispatchable(lane) {
                    if slot.gate.free_slots() == 0 {
                        break;
                    }
                    let ready_in = slot.gate.ready_in();
                    if !ready_in.is_zero() {
                        waiting = true;
                        soonest(ready_in, &mut next);
                        break;
                    }
                }
                if (dead && slot.buffered() == 0) || (!dead && !slot.dispatchable(lane)) {
                    if room == 0 || slot.buffered() >= HOST_BUFFER_MAX {
                        break;
                    }
                    let mut n = if dead {
                        LEASE_BATCH
                    } else {
                        (per_host * 2).clamp(1, LEASE_BATCH)
                    } as u64;
                    n = n.min(room);
                    if let Some(max) = cfg.limits.max_pages_per_host
                        && let Some(info) = sh.frontier.host(id)
                    {
                        let used = info.counts.done + info.counts.failed + info.counts.leased;
                        if used >= max {
                            blocked = true;
                            break;
                        }
                        n = n.min(max - used);
                    }
                    // A lease is one short sled batch, done inline on this thread.
                    let leases = sh.frontier.lease(id, n as usize).map_err(|e| sh.state_error(e))?;
                    if leases.is_empty() {
                        break;
                    }
                    room -= leases.len() as u64;
                    sh.stats.in_flight.fetch_add(leases.len() as u64, Relaxed);
                    for l in leases {
                        if l.priority == Priority::Sitemap {
                            slot.sitemaps.push_back(l);
                        } else {
                            slot.pages.push_back(l);
                        }
                    }
                    if !dead && !slot.dispatchable(lane) {
                        // Only sitemaps, and the lane is full: lease on next time.
                        waiting = true;
                        continue;
                    }
                }
                let mut work = if dead {
                    Work::Skip(Skip::HostUnavailable)
                } else {
                    match slot.gate.try_acquire() {
                        Ok(p) => Work::Fetch(p),
                        Err(NotReady::Busy) => break,
                        Err(NotReady::Wait(d)) => {
                            waiting = true;
                            soonest(d, &mut next);
                            break;
                        }
                    }
                };
                // A sitemap when the lane has room (its URLs are enqueued by the
                // sitemap thread, one or two at a time, alongside the crawl), else a page.
                let lane_permit = if dead || slot.sitemaps.is_empty() {
                    None
                } else {
                    lane.clone().try_acquire_owned().ok()
                };
                let lease = match (&lane_permit, dead) {
                    (Some(_), _) => slot.sitemaps.pop_front(),
                    (None, true) => slot.sitemaps.pop_front().or_else(|| slot.pages.pop_front()),
                    (None, false) => slot.pages.pop_front(),
                };
                let Some(lease) = lease else {
                    break;
                };
                if !dead && lease.attempts > MAX_LEASES {
                    // Its request slot goes unused: a crash loop is rare.
                    work = Work::Skip(Skip::TooManyAttempts);
                }
                let check_sitemaps =
                    matches!(work, Work::Fetch(_)) && !slot.sitemaps_checked && !cfg.scope.no_sitemaps;
                slot.sitemaps_checked |= check_sitemaps;
                let job = Job {
                    lease,
                    work,
                    permit,
                    lane: lane_permit,
                    gate: slot.gate.clone(),
                    host: slot.label.clone(),
                    check_sitemaps,
                };
                if fetch_tx.blocking_send(job).is_err() {
                    return Ok(());
                }
                progressed = true;
            }
        }
        if progressed {
            continue;
        }
        // `in_flight` was read before `ready_hosts`: an ack enqueues its links before it
        // lowers the count, so 0 there means no link can have arrived unseen.
        if in_flight == 0 && !waiting {
            let buffered: usize = slots.values().map(HostSlot::buffered).sum();
            if buffered == 0 {
                let outcome = if blocked {
                    tracing::info!("every remaining URL is on a host at its page limit");
                    CrawlOutcome::LimitReached(Limit::PagesPerHost)
                } else if room == 0 && cfg.limits.max_pages.is_some() && sh.frontier.counts().queued > 0 {
                    CrawlOutcome::LimitReached(Limit::Pages)
                } else {
                    CrawlOutcome::Completed
                };
                sh.end(outcome);
                return Ok(());
            }
        }
        wait(&sh, next);
    }
}
