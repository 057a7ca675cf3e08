//! The scheduler: one dedicated thread (the blocking pool's), not a task on the async
//! runtime: a lease is a sled batch, and sled can make a write wait for a flush in
//! progress, which on a runtime worker stalls every fetch that shares it.
//!
//! - Receives: wake-ups (a fetch finished, with its host in `Shared::finished`; a
//!   batch was acked) and the frontier's ready hosts, a bounded scan at a time
//!   (`FrontierStore::ready_scan`, going on from where the last one stopped).
//! - Sends: [`Job`]s to the fetch stage through `FETCH_CHANNEL`, each with a permit of
//!   the global semaphore (`concurrency`) and, for a request, the host gate's permit.
//! - Owns: a slot per host it is serving (a small buffer of leased URLs, the host's
//!   gate, its requests in flight, a timer), the runnable queue, the timers, and the
//!   global semaphore. A host with nothing buffered, nothing in flight and no timer
//!   has no slot, so its state is the frontier's and the fetcher's alone, and each
//!   round costs what it serves, not the number of hosts.
//!
//! It keeps no politeness of its own: a host's [`HostGate`] decides when it may be
//! fetched. A job is dispatched only once the gate has let its request start
//! ([`HostGate::try_acquire`]), so no task waits on a host while holding a global
//! permit, and a host that is rate-limited, in a crawl delay, cooling down or at its
//! concurrency cap never holds up another. Nothing it does waits on one host, not
//! even a DNS lookup: with `--politeness-key ip` a host whose address is not known
//! yet gets its gate from [`Fetcher::try_gate`](trawl_fetcher::Fetcher::try_gate),
//! which looks the name up on the runtime while the host's slot waits
//! ([`RESOLVE_POLL`], at most [`RESOLVING_MAX`] such slots at once).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use trawl_fetcher::{HostGate, HostPermit, NotReady};
use trawl_frontier::{HostId, Lease, Priority};
use url::Url;

use super::slot::{Bits, HostSlot, SlotGate, release, restore_gate};
use super::{CrawlOutcome, LEASE_BATCH, Limit, MAX_LEASES, Shared, host_label, now_ms};
use crate::error::Error;

/// What a fetch task does with a lease.
pub(crate) enum Work {
    /// Fetch it: the host's gate has let the request start.
    Fetch(HostPermit),
    /// Record it at once, without a request (and without a wait for the host).
    Skip(Skip),
}

/// Why a lease is recorded without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The host's circuit breaker gave up on it: it fails.
    HostUnavailable,
    /// Leased [`MAX_LEASES`] times without completing: it fails.
    TooManyAttempts,
    /// A recrawl's revisit that the sitemap's `<lastmod>` says is older than
    /// `--changed-since` (`crate::recrawl::SKIP_FLAG`): `skipped-unchanged`.
    Unchanged,
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
    /// Ask the server to close the connection after this response
    /// ([`RequestOptions::close_connection`](trawl_fetcher::RequestOptions::close_connection)).
    pub(crate) close_connection: bool,
}

/// The most leases one host's buffers hold: leasing goes on past sitemaps that wait for
/// the lane, to reach the pages behind them, up to this.
const HOST_BUFFER_MAX: usize = 1024;

/// Leased sitemaps waiting for the lane past which no new host is taken on (the hosts
/// already served go on).
const LANE_QUEUE_MAX: usize = 4096;

/// Hosts asked of the frontier's ready index per call, and calls per round: a round
/// looks at no more than this many hosts it already serves before it waits.
const ADMIT_SCAN: usize = 256;
const ADMIT_CALLS: usize = 8;

/// How long a host whose gate is busy with no request of ours in flight (its slots
/// held elsewhere) waits before it is looked at again.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// How often a host whose gate waits for an address lookup is looked at again.
const RESOLVE_POLL: Duration = Duration::from_millis(5);

/// Hosts whose gates wait for an address lookup past which no new host is taken on:
/// lookups in parallel, not one name holding up the others, but not one per host of
/// a broad crawl at once either.
const RESOLVING_MAX: usize = 64;

/// How soon a host whose claim in a shared frontier would run out during a request is
/// looked at again.
const CLAIM_RETRY: Duration = Duration::from_millis(250);

/// How often a worker of a shared frontier with nothing to do looks again for work
/// the other workers' links bring, until every worker is done.
const SHARED_IDLE_POLL: Duration = Duration::from_millis(200);

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

/// Why serving a host stopped.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// It has nothing to dispatch now (or waits for its gate, a slot or the lane).
    Done,
    /// The global permits ran out; it is first in line for the next one.
    NoPermits,
    /// The fetch stage is gone: the crawl is stopping.
    Closed,
}

/// The scheduler's state. See the module docs.
struct Scheduler<'a> {
    sh: &'a Shared,
    fetch_tx: mpsc::Sender<Job>,
    /// One permit per fetch in flight in the whole crawl (`concurrency`).
    global: Arc<Semaphore>,
    slots: HashMap<HostId, HostSlot>,
    /// Hosts to look at: a request of theirs finished, their timer fired, the lane
    /// freed, or they are new.
    runnable: VecDeque<HostId>,
    /// Hosts waiting for their gate, soonest first (stale entries are skipped).
    timers: BinaryHeap<Reverse<(Instant, HostId)>>,
    /// Leased sitemaps waiting for the sitemap lane, oldest first. They wait here, not
    /// in their hosts' slots: in a broad crawl every host's robots.txt names a sitemap,
    /// and a slot (with its gate and buffers) kept per waiting sitemap grew with the
    /// hosts. A lease here costs its URL.
    lane_queue: VecDeque<Lease>,
    /// Sitemaps in slots' `sitemaps` buffers (taken from `lane_queue` or leased while
    /// the lane had room), which the lane's free permits are meant for.
    held_sitemaps: usize,
    /// Where the last scan of the frontier's ready hosts stopped.
    cursor: Option<HostId>,
    /// Hosts whose robots.txt `Sitemap:` lines were asked for in this run.
    sitemaps_checked: Bits,
    /// Hosts at `max_pages_per_host` (they stay so: the count only grows).
    at_limit: Bits,
    /// Hosts given a slot in this run, and how many.
    opened: Bits,
    hosts_opened: usize,
    /// Leases in the buffers.
    buffered: u64,
    /// Ready hosts looked at since one was last taken on, and the frontier's counts
    /// when a whole pass took none: no new pass until they change.
    fruitless: usize,
    swept: Option<(u64, u64, u64)>,
    /// Slots whose gate waits for an address lookup ([`SlotGate::Resolving`]).
    resolving: usize,
    /// The longest a request can take (`--timeout`), in ms: a worker of a shared
    /// frontier starts one only when its claim on the host lasts that long.
    request_ms: u64,
}

impl Scheduler<'_> {
    fn make_runnable(&mut self, id: HostId) {
        if let Some(slot) = self.slots.get_mut(&id)
            && !slot.runnable
        {
            slot.runnable = true;
            self.runnable.push_back(id);
        }
    }

    /// Takes in what happened since the last round: finished requests, fired timers,
    /// a free lane.
    fn collect_events(&mut self) -> Result<(), Error> {
        let finished = std::mem::take(&mut *self.sh.finished.lock().unwrap_or_else(|e| e.into_inner()));
        for id in finished {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.in_flight = slot.in_flight.saturating_sub(1);
            }
            self.make_runnable(id);
        }
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(slot) = self.slots.get_mut(&id)
                && slot.timer == Some(at)
            {
                slot.timer = None;
                self.make_runnable(id);
            }
        }
        // The lane has room: the oldest waiting sitemaps go back to their hosts' slots.
        while self.held_sitemaps < self.sh.sitemap_lane.available_permits() {
            let Some(lease) = self.lane_queue.pop_front() else {
                break;
            };
            let id = lease.host;
            if !self.slots.contains_key(&id) && !self.open_slot(id) {
                // The frontier named the host of this lease, so this cannot happen.
                // Put back, it would come round again; dropped, the crawl would never
                // see it finish.
                return Err(Error::Internal(format!(
                    "a leased sitemap names an unknown host: {}",
                    lease.url
                )));
            }
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.sitemaps.push_back(lease);
                self.held_sitemaps += 1;
            }
            self.make_runnable(id);
        }
        Ok(())
    }

    /// A slot for a host the frontier named, or `None` for a host it does not know.
    fn open_slot(&mut self, id: HostId) -> bool {
        let info = match self.sh.frontier.host(id) {
            Ok(Some(info)) => info,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(host = id.0, error = %e, "cannot read a host from the frontier");
                return false;
            }
        };
        let Ok(url) = Url::parse(&info.key) else {
            return false;
        };
        // Never a DNS lookup on this thread: it serves every host.
        let gate = match self.sh.fetcher.try_gate(&url) {
            Some(g) => {
                if self.sh.frontier.worker().is_some() {
                    // A shared frontier: the host may come from another worker, with
                    // its cool-down, backoff and adaptive rate.
                    restore_gate(&g, &info.politeness);
                }
                SlotGate::Ready(g)
            }
            None => {
                self.resolving += 1;
                SlotGate::Resolving(url)
            }
        };
        if !self.opened.get(id) {
            self.opened.set(id);
            self.hosts_opened += 1;
        }
        self.slots.insert(
            id,
            HostSlot {
                label: host_label(&info.key),
                gate,
                pages: VecDeque::new(),
                sitemaps: VecDeque::new(),
                in_flight: 0,
                timer: None,
                runnable: false,
                drained: false,
            },
        );
        true
    }

    /// The host's gate, once its address is known; until then `None`, with a timer
    /// to look again.
    fn ready_gate(&mut self, id: HostId) -> Option<Arc<HostGate>> {
        let slot = self.slots.get_mut(&id)?;
        let url = match &slot.gate {
            SlotGate::Ready(g) => return Some(g.clone()),
            SlotGate::Resolving(url) => url,
        };
        if let Some(g) = self.sh.fetcher.try_gate(url) {
            if self.sh.frontier.worker().is_some() {
                // As when the slot opens with its gate at hand: the host may come from
                // another worker, with its cool-down, backoff and adaptive rate.
                match self.sh.frontier.politeness(id) {
                    Ok(Some(p)) => restore_gate(&g, &p),
                    Ok(None) => {}
                    Err(e) => {
                        // Try again shortly; its pace is not known yet.
                        tracing::debug!(host = id.0, error = %e, "cannot read a host's politeness");
                        if slot.timer.is_none() {
                            self.set_timer(id, RESOLVE_POLL);
                        }
                        return None;
                    }
                }
            }
            slot.gate = SlotGate::Ready(g.clone());
            self.resolving -= 1;
            return Some(g);
        }
        if slot.timer.is_none() {
            self.set_timer(id, RESOLVE_POLL);
        }
        None
    }

    fn set_timer(&mut self, id: HostId, d: Duration) {
        let at = Instant::now() + d;
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.timer = Some(at);
            self.timers.push(Reverse((at, id)));
        }
    }

    /// Closes every slot still open, giving its host back to a shared frontier with
    /// the time its next request may start (a claim with leases out goes with their
    /// acks). Best effort: a store that cannot be reached now lets the claims run out.
    fn release_all(&mut self) {
        if self.sh.frontier.worker().is_none() {
            return;
        }
        for (id, slot) in self.slots.drain() {
            if let Err(e) = release(self.sh, id, &slot) {
                tracing::debug!(host = id.0, error = %e, "not released; its claim runs out instead");
                break;
            }
        }
    }

    /// Leases for and dispatches the requests of one host that may go now; then
    /// drops its slot if nothing will bring the scheduler back to it.
    fn serve(&mut self, id: HostId, room: &mut u64, progressed: &mut bool) -> Result<Served, Error> {
        let served = self.serve_inner(id, room, progressed);
        let lane_free = self.sh.sitemap_lane.available_permits() > 0;
        let dead = self.sh.host_dead(id);
        let Some(slot) = self.slots.get_mut(&id) else {
            return served;
        };
        if !lane_free && !dead && !slot.sitemaps.is_empty() {
            // The lane is full: its sitemaps wait in the lane's queue, not in the slot,
            // first in line (they may have come from there).
            self.held_sitemaps -= slot.sitemaps.len();
            while let Some(l) = slot.sitemaps.pop_back() {
                self.lane_queue.push_front(l);
            }
        }
        if slot.buffered() > 0
            && slot.in_flight == 0
            && slot.timer.is_none()
            && matches!(served, Ok(Served::Done))
        {
            // Its gate is busy with none of our requests in flight (its slots are held
            // elsewhere): look again shortly.
            let at = Instant::now() + BUSY_RETRY;
            slot.timer = Some(at);
            self.timers.push(Reverse((at, id)));
        }
        if !slot.busy() {
            if matches!(slot.gate, SlotGate::Resolving(_)) {
                self.resolving -= 1;
            }
            if let Some(slot) = self.slots.remove(&id)
                && let Err(e) = release(self.sh, id, &slot)
            {
                return Err(e);
            }
        }
        served
    }

    fn serve_inner(&mut self, id: HostId, room: &mut u64, progressed: &mut bool) -> Result<Served, Error> {
        let sh = self.sh;
        let cfg = &sh.cfg;
        let per_host = cfg.politeness.per_host_concurrency;
        // A host the breaker gave up on: its URLs fail at once, no gate, no pace.
        let dead = sh.host_dead(id);
        let lane = &sh.sitemap_lane;
        let Some(gate) = self.ready_gate(id) else {
            return Ok(Served::Done);
        };
        loop {
            // More hosts served in this run than fetches at once (not only open now:
            // a broad crawl's tail of sitemaps opens few slots at a time, each for a
            // host of its own): they take turns, and a host with nothing left closes
            // its connection (below).
            let hosts_take_turns = self.hosts_opened > cfg.politeness.concurrency;
            let Some(slot) = self.slots.get_mut(&id) else {
                return Ok(Served::Done);
            };
            if self.global.available_permits() == 0 {
                return Ok(Served::NoPermits);
            }
            // A host is leased from only when its gate would let a request start
            // now, so the buffers stay small however many hosts wait.
            if !dead && !slot.dispatchable(lane) {
                if gate.free_slots() == 0 {
                    return Ok(Served::Done);
                }
                let ready_in = gate.ready_in();
                if !ready_in.is_zero() {
                    self.set_timer(id, ready_in);
                    return Ok(Served::Done);
                }
            }
            if (dead && slot.buffered() == 0) || (!dead && !slot.dispatchable(lane)) {
                // A shared host this worker holds past its share: no more leases; the
                // slot closes, releasing it, once its leases are in.
                if *room == 0 || slot.buffered() >= HOST_BUFFER_MAX || sh.frontier.hand_over(id) {
                    return Ok(Served::Done);
                }
                let mut n = if dead {
                    LEASE_BATCH
                } else {
                    (per_host * 2).clamp(1, LEASE_BATCH)
                } as u64;
                n = n.min(*room);
                if let Some(max) = cfg.limits.max_pages_per_host
                    && let Some(info) = sh.frontier.host(id).map_err(|e| sh.state_error(e))?
                {
                    let used = info.counts.done + info.counts.failed + info.counts.leased;
                    if used >= max {
                        self.at_limit.set(id);
                        return Ok(Served::Done);
                    }
                    n = n.min(max - used);
                }
                // A lease is one short sled batch, done inline on this thread.
                let leases = sh.frontier.lease(id, n as usize).map_err(|e| sh.state_error(e))?;
                slot.drained = (leases.len() as u64) < n;
                if leases.is_empty() {
                    return Ok(Served::Done);
                }
                *room -= leases.len() as u64;
                self.buffered += leases.len() as u64;
                sh.stats.in_flight.fetch_add(leases.len() as u64, Relaxed);
                for l in leases {
                    if l.priority == Priority::Sitemap && !dead && !self.lane_queue.is_empty() {
                        // Others wait for the lane already: behind them.
                        self.lane_queue.push_back(l);
                    } else if l.priority == Priority::Sitemap {
                        slot.sitemaps.push_back(l);
                        self.held_sitemaps += 1;
                    } else {
                        slot.pages.push_back(l);
                    }
                }
                if !dead && !slot.dispatchable(lane) {
                    // Only sitemaps, and the lane is full: lease on, up to the cap,
                    // to reach the pages behind them.
                    continue;
                }
            }
            let Ok(permit) = self.global.clone().try_acquire_owned() else {
                return Ok(Served::NoPermits);
            };
            // A revisit the sitemap says is unchanged makes no request, so it takes
            // nothing from the host's gate: thousands of them cost no politeness wait.
            let unchanged = !dead
                && (slot.sitemaps.is_empty() || lane.available_permits() == 0)
                && slot
                    .pages
                    .front()
                    .is_some_and(|l| crate::recrawl::is_skipped(&l.data));
            let mut work = if dead {
                Work::Skip(Skip::HostUnavailable)
            } else if unchanged {
                Work::Skip(Skip::Unchanged)
            } else if !sh.frontier.may_start(id, self.request_ms) {
                // A shared frontier whose claim on the host would run out before the
                // request could end: no request.
                if sh.frontier.claim_lost(id) {
                    // Gone (this worker was paused or cut off): its leases of the host
                    // cannot be acked, so the crawl stops here and the worker joins
                    // again, cut back to its stored checkpoints.
                    return Err(sh.state_error(trawl_frontier::Error::LostOwnership {
                        reason: format!("the claim on {} ran out", slot.label),
                    }));
                }
                // Not yet renewed: look again shortly.
                self.set_timer(id, CLAIM_RETRY);
                return Ok(Served::Done);
            } else {
                match gate.try_acquire() {
                    Ok(p) => Work::Fetch(p),
                    Err(NotReady::Busy) => return Ok(Served::Done),
                    Err(NotReady::Wait(d)) => {
                        self.set_timer(id, d);
                        return Ok(Served::Done);
                    }
                }
            };
            // A sitemap when the lane has room (its URLs are enqueued by the
            // sitemap thread, one or two at a time, alongside the crawl), else a page.
            let lane_permit = if dead || unchanged || slot.sitemaps.is_empty() {
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
                return Ok(Served::Done);
            };
            if lease.priority == Priority::Sitemap {
                self.held_sitemaps -= 1;
            }
            self.buffered -= 1;
            if !dead && lease.attempts > MAX_LEASES {
                // Its request slot goes unused: a crash loop is rare.
                work = Work::Skip(Skip::TooManyAttempts);
            }
            let check_sitemaps =
                matches!(work, Work::Fetch(_)) && !self.sitemaps_checked.get(id) && !cfg.scope.no_sitemaps;
            if check_sitemaps {
                self.sitemaps_checked.set(id);
            }
            // The host's last known URL, while many hosts take turns: its connection
            // closes after the response instead of idling in the pool, where a broad
            // crawl kept one per host it fetched lately, 65 KB each (BENCHMARKS.md,
            // broad crawl, session 11). A link found on this page opens a new one.
            // Nothing left is known when the last lease came short of what it asked
            // for, or (the embedded store, whose host table is in memory) when none of
            // the host's URLs is queued: a sitemap that waited for the lane comes to
            // its slot without a lease.
            let close_connection = hosts_take_turns
                && matches!(work, Work::Fetch(_))
                && slot.buffered() == 0
                && !check_sitemaps
                && (slot.drained
                    || (sh.frontier.worker().is_none()
                        && sh
                            .frontier
                            .host(id)
                            .ok()
                            .flatten()
                            .is_some_and(|h| h.counts.queued == 0)));
            slot.in_flight += 1;
            let job = Job {
                lease,
                work,
                permit,
                lane: lane_permit,
                gate: gate.clone(),
                host: slot.label.clone(),
                check_sitemaps,
                close_connection,
            };
            if self.fetch_tx.blocking_send(job).is_err() {
                return Ok(Served::Closed);
            }
            *progressed = true;
        }
    }
}

/// What one round of looking for new hosts found.
#[derive(Debug, Default)]
struct Admitted {
    /// Every host that may be fetched now was looked at (or none was left to).
    saw_all: bool,
    /// Hosts that may be fetched now but are at their page limit.
    saw_at_limit: bool,
    /// A host with a persisted wait (a cool-down), by the earliest one's end.
    next_ms: Option<u64>,
    closed: bool,
}

impl Scheduler<'_> {
    /// Takes on hosts from the frontier's ready index that have no slot, in turn
    /// from where the last round stopped, while global permits are free.
    fn admit(&mut self, room: &mut u64, progressed: &mut bool) -> Result<Admitted, Error> {
        let mut out = Admitted::default();
        let state_error = |e| self.sh.state_error(e);
        let counts = self.sh.frontier.counts().map_err(state_error)?;
        let now = now_ms();
        for _ in 0..ADMIT_CALLS {
            let scan = self
                .sh
                .frontier
                .ready_scan(self.cursor, now, ADMIT_SCAN)
                .map_err(state_error)?;
            out.next_ms = scan.next_ms;
            let version = (counts.queued, counts.total(), scan.ready as u64);
            if self.swept == Some(version) {
                // Nothing new since a whole pass took no host.
                out.saw_all = true;
                out.saw_at_limit = scan.ready > 0;
                return Ok(out);
            }
            if scan.hosts.is_empty() {
                out.saw_all = true;
                return Ok(out);
            }
            for id in scan.hosts {
                if self.global.available_permits() == 0 || *room == 0 || self.resolving >= RESOLVING_MAX {
                    return Ok(out);
                }
                self.cursor = Some(id);
                self.fruitless += 1;
                if self.slots.contains_key(&id) {
                    continue;
                }
                if self.at_limit.get(id) {
                    out.saw_at_limit = true;
                    continue;
                }
                // The slots before this host's opened: after serving it, one more
                // means it kept its slot (it had work), as many means it had none.
                let before = self.slots.len();
                if !self.open_slot(id) {
                    continue;
                }
                match self.serve(id, room, progressed)? {
                    Served::Closed => {
                        out.closed = true;
                        return Ok(out);
                    }
                    Served::NoPermits => self.make_runnable(id),
                    Served::Done => {}
                }
                if self.slots.len() == before || self.at_limit.get(id) {
                    // It had nothing to fetch after all (or is at its limit).
                    out.saw_at_limit |= self.at_limit.get(id);
                } else {
                    self.fruitless = 0;
                }
            }
            if self.fruitless >= scan.ready {
                self.fruitless = 0;
                if !*progressed {
                    self.swept = Some(version);
                }
                out.saw_all = true;
                return Ok(out);
            }
        }
        Ok(out)
    }
}

/// Leases from ready hosts and dispatches to fetch tasks until the crawl is over.
pub(crate) fn schedule(sh: Arc<Shared>, fetch_tx: mpsc::Sender<Job>) -> Result<(), Error> {
    let cfg = &sh.cfg;
    let mut sched = Scheduler {
        sh: &sh,
        fetch_tx,
        global: Arc::new(Semaphore::new(cfg.politeness.concurrency)),
        slots: HashMap::new(),
        runnable: VecDeque::new(),
        timers: BinaryHeap::new(),
        lane_queue: VecDeque::new(),
        held_sitemaps: 0,
        cursor: None,
        sitemaps_checked: Bits::default(),
        opened: Bits::default(),
        hosts_opened: 0,
        at_limit: Bits::default(),
        buffered: 0,
        fruitless: 0,
        swept: None,
        resolving: 0,
        request_ms: (cfg.fetch.total_timeout_secs * 1000.0) as u64,
    };
    let run = (|| -> Result<(), Error> {
        loop {
            if sh.stop.is_cancelled() {
                return Ok(());
            }
            let in_flight = sh.in_flight();
            // Global limits: stop leasing once reached; end when the in-flight work is in.
            // A shared store counts every worker's records and leases.
            let tally = sh.frontier.shared_pages();
            let pages = tally.map_or_else(|| sh.pages_total.load(Relaxed), |t| t.written);
            let mut room = match cfg.limits.max_pages {
                Some(max) if pages >= max => {
                    if in_flight == 0 {
                        tracing::info!(max, "page limit reached");
                        sh.end(CrawlOutcome::LimitReached(Limit::Pages));
                        return Ok(());
                    }
                    0
                }
                Some(max) => max
                    .saturating_sub(pages)
                    .saturating_sub(tally.map_or(in_flight, |t| t.leased.max(in_flight))),
                None => u64::MAX,
            };
            if cfg
                .limits
                .max_bytes
                .is_some_and(|m| sh.bytes_total.load(Relaxed) >= m)
            {
                // Leases still in the buffers are not fetched: they go back to their
                // queues when the directory is next opened.
                if in_flight <= sched.buffered {
                    tracing::info!("byte limit reached");
                    sh.end(CrawlOutcome::LimitReached(Limit::Bytes));
                    return Ok(());
                }
                sched.collect_events()?;
                wait(&sh, None);
                continue;
            }

            sched.collect_events()?;
            let mut progressed = false;
            // The hosts already served first: their requests finished or their time came.
            while sched.global.available_permits() > 0 {
                let Some(id) = sched.runnable.pop_front() else {
                    break;
                };
                if let Some(slot) = sched.slots.get_mut(&id) {
                    slot.runnable = false;
                }
                match sched.serve(id, &mut room, &mut progressed)? {
                    Served::Closed => return Ok(()),
                    Served::NoPermits => {
                        // First in line when a permit frees.
                        if let Some(slot) = sched.slots.get_mut(&id) {
                            slot.runnable = true;
                            sched.runnable.push_front(id);
                        }
                        break;
                    }
                    Served::Done => {}
                }
            }
            // Then hosts not served yet, from the frontier's ready index, unless sitemaps
            // have piled up waiting for the lane: every new host brings its own (a broad
            // crawl), so taking on hosts faster than the lane reads them only moves them
            // from the frontier's queues on disk into memory.
            let admitted = if sched.global.available_permits() > 0
                && room > 0
                && sched.lane_queue.len() < LANE_QUEUE_MAX
                && sched.resolving < RESOLVING_MAX
            {
                let a = sched.admit(&mut room, &mut progressed)?;
                if a.closed {
                    return Ok(());
                }
                Some(a)
            } else {
                None
            };
            if progressed {
                continue;
            }
            let now = Instant::now();
            let mut next: Option<Duration> = sched
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(now));
            // A host with a persisted wait (a cool-down) comes back at its time.
            let next_ms = match &admitted {
                Some(a) => a.next_ms,
                None => {
                    sh.frontier
                        .ready_scan(None, now_ms(), 0)
                        .map_err(|e| sh.state_error(e))?
                        .next_ms
                }
            };
            if let Some(t) = next_ms {
                soonest(Duration::from_millis(t.saturating_sub(now_ms())), &mut next);
            }
            let waiting = next.is_some() || !sched.lane_queue.is_empty();
            // `in_flight` was read before the ready hosts were: an ack enqueues its links
            // before it lowers the count, so 0 there means no link can have arrived unseen.
            // With nothing in flight, nothing is buffered and every permit is free.
            if in_flight == 0 && !waiting {
                match &admitted {
                    // Every host that may be fetched now was looked at and none was
                    // taken on: only hosts at their page limit are left, if any.
                    Some(a)
                        if a.saw_all
                            && sh.frontier.worker().is_some()
                            && !sh.frontier.finished().map_err(|e| sh.state_error(e))? =>
                    {
                        // A shared frontier: other workers hold URLs whose links may
                        // bring more work, or hosts this one may take when they let go.
                        sched.swept = None;
                        wait(&sh, Some(SHARED_IDLE_POLL));
                        continue;
                    }
                    Some(a) if a.saw_all => {
                        let outcome = if a.saw_at_limit {
                            tracing::info!("every remaining URL is on a host at its page limit");
                            CrawlOutcome::LimitReached(Limit::PagesPerHost)
                        } else {
                            CrawlOutcome::Completed
                        };
                        sh.end(outcome);
                        return Ok(());
                    }
                    // The pass did not get round every ready host: go on at once.
                    Some(_) => continue,
                    // No room left under the page limit, for now: other workers' leases
                    // hold it, and those that write no record give it back.
                    None if tally.is_some_and(|t| cfg.limits.max_pages.is_some_and(|m| t.written < m))
                        && !sh.frontier.finished().map_err(|e| sh.state_error(e))? =>
                    {
                        wait(&sh, Some(SHARED_IDLE_POLL));
                        continue;
                    }
                    // No room left under the page limit.
                    None => {
                        let queued = sh.frontier.counts().map_err(|e| sh.state_error(e))?.queued;
                        let outcome = if cfg.limits.max_pages.is_some() && queued > 0 {
                            CrawlOutcome::LimitReached(Limit::Pages)
                        } else {
                            CrawlOutcome::Completed
                        };
                        sh.end(outcome);
                        return Ok(());
                    }
                }
            }
            if admitted.as_ref().is_some_and(|a| !a.saw_all) {
                // More ready hosts to look at while permits are free.
                continue;
            }
            wait(&sh, next);
        }
    })();
    // The hosts still claimed go back to a shared frontier with their pace, so the
    // workers that take them next keep it (a no-op for an embedded one).
    sched.release_all();
    run
}
