//! [`RedisFrontier`]: opening, the calls into the scripts, and this process's view of
//! its claims.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Script, Value};
use trawl_frontier::{Error, Fingerprint, HostId, PageTally, Result};

use crate::codec::{self, number};
use crate::link::{Link, backend};
use crate::options::RedisOptions;
use crate::scripts::Scripts;

mod claims;
mod ops;
pub(crate) mod read;

/// What opening found and repaired: the leases an earlier run of this worker left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedisOpenReport {
    /// Leases that went back to their queues.
    pub requeued: u64,
    /// Leases that had used up their attempts and were failed instead.
    pub quarantined: u64,
}

/// What this process believes about one of its claims.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) epoch: u64,
    /// The claim's expiry as this process last renewed it, on the local monotonic
    /// clock, less the safety margin: the time of sending the call that set it, plus
    /// the ttl, minus [`margin`].
    pub(crate) deadline: Instant,
    /// A renewal found it gone (run out and reaped, or taken over).
    pub(crate) lost: bool,
    /// The last renewal found this worker holding more hosts than its share, this one
    /// among those to give up once its leases are in.
    pub(crate) hand_over: bool,
}

/// The fingerprints this process has sent to the server (in an enqueue or an ack
/// that was answered), so that a link seen again is not sent again: most links of a
/// page lead to URLs already known, and their seen-checks were most of the ack
/// script's work. The seen set only grows, so a fingerprint once stored stays
/// seen; a server that lost writes is found by the next write, and the worker then
/// opens a new store, with an empty cache. Two generations of at most
/// [`KNOWN_PER_GENERATION`] each: when the newer one fills, the older is dropped.
#[derive(Debug, Default)]
pub(crate) struct Known {
    new: std::collections::HashSet<u128>,
    old: std::collections::HashSet<u128>,
}

/// Fingerprints per generation of [`Known`]: two of them take about 8 MiB.
const KNOWN_PER_GENERATION: usize = 1 << 17;

impl Known {
    /// Whether `fp` is not known to be stored; notes it as stored from now on (the
    /// call it goes out in either succeeds, or fails this store for good).
    pub(crate) fn first(&mut self, fp: u128) -> bool {
        if self.new.contains(&fp) || self.old.contains(&fp) {
            return false;
        }
        if self.new.len() >= KNOWN_PER_GENERATION {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(fp);
        true
    }
}

/// The part of the ttl kept back from a claim's local deadline, for clock drift and
/// the time a renewal takes to reach the server.
pub(crate) fn margin(ttl: Duration) -> Duration {
    ttl / 8
}

/// The state of the main connection. One mutex serialises every call, so the ack
/// sequence numbers and op ids reach the server in the order they were given out.
#[derive(Debug)]
pub(crate) struct Main {
    pub(crate) link: Link,
    /// The sequence number of the last ack sent (the next is one more).
    pub(crate) seq: u64,
    /// The id of the last op sent (enqueue, lease, fail_host).
    pub(crate) op: u64,
    /// The id of the last op the server said it stored (a lease that leased nothing
    /// stores none). With `seq`, every call that writes checks that the server still
    /// holds them, which finds a server that lost writes it had answered.
    pub(crate) applied_op: u64,
    /// The page limit shared by every worker ([`FrontierStore::share_page_limit`]).
    ///
    /// [`FrontierStore::share_page_limit`]: trawl_frontier::FrontierStore::share_page_limit
    pub(crate) page_limit: Option<u64>,
    /// The claim epoch of each URL this process leased and has not acked: an ack
    /// names it, and the script checks it against the host's current claim.
    pub(crate) leases: HashMap<Fingerprint, u64>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: RedisOptions,
    pub(crate) prefix: String,
    /// The fields per hash of a seen-set bucket's chain (see `lua/common.lua`).
    pub(crate) seen_cap: u64,
    pub(crate) scripts: Scripts,
    pub(crate) main: Mutex<Main>,
    /// This process's claims by host id: read by `may_start` without a round trip,
    /// written by `lease`, `ack`, `release` and the renewal thread.
    pub(crate) claims: Mutex<HashMap<u32, Claim>>,
    /// The records written and the URLs leased by every worker, as the last lease,
    /// ack or `finished` heard them; kept once a page limit is shared.
    pub(crate) tally: Mutex<Option<PageTally>>,
    /// The fingerprints sent already ([`Known`]).
    pub(crate) known: Mutex<Known>,
    /// Set when the handle is dropped: the renewal thread stops, and calls stop
    /// reconnecting.
    pub(crate) stop: AtomicBool,
    /// The renewal thread sleeps on it between renewals, so a drop wakes it at once.
    pub(crate) sleep: (Mutex<()>, Condvar),
}

/// A shared URL frontier on a Redis server, used by several worker processes at once.
/// See the crate docs for the data model and the guarantees.
#[derive(Debug)]
pub struct RedisFrontier {
    pub(crate) shared: Arc<Shared>,
    report: RedisOpenReport,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// Whether dropping the handle leaves the crawl (always, but in tests of a crash).
    leave_on_drop: bool,
}

impl Drop for RedisFrontier {
    /// Leaves the crawl: the leases this worker still holds go back to their queues
    /// and its claims end, so other workers take its hosts at once (a worker killed
    /// with -9 cannot, and its claims run out after the ttl instead). Then the
    /// renewal thread stops.
    fn drop(&mut self) {
        let sh = &*self.shared;
        // Stopped first, so that a call meeting a broken connection gives up at once
        // rather than reconnect for up to `reconnect_for`.
        sh.stop.store(true, Ordering::Relaxed);
        if self.leave_on_drop {
            self.leave();
        }
        {
            let _g = self.shared.sleep.0.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.sleep.1.notify_all();
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}

impl RedisFrontier {
    fn leave(&self) {
        let sh = &*self.shared;
        let left = {
            let mut m = sh.main();
            sh.eval(&mut m.link, &sh.scripts.leave, &Vec::new())
        };
        match left {
            Ok(_) => sh.claims().clear(),
            Err(e) => tracing::warn!(
                worker = %sh.opts.worker,
                error = %e,
                "could not hand back this worker's hosts; they return to the others when its claims run out"
            ),
        }
    }

    /// For tests: drops the handle as a crash would, without leaving the crawl: its
    /// leases and claims stay until the claims run out or the worker opens again.
    pub fn crash_for_tests(mut self) {
        self.leave_on_drop = false;
    }
}

/// The most fields per seen-set hash, whatever the server allows: a lookup in a
/// listpack is a linear scan.
const MAX_SEEN_CAP: u64 = 512;

/// An argument list for a script, after the common header.
pub(crate) type Args = Vec<Vec<u8>>;

pub(crate) fn arg(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

impl Shared {
    pub(crate) fn main(&self) -> MutexGuard<'_, Main> {
        self.main.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn claims(&self) -> MutexGuard<'_, HashMap<u32, Claim>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Empties the cache of fingerprints sent ([`Known`]): after a refused write, what
    /// it carried is not stored.
    pub(crate) fn forget_known(&self) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Known::default();
    }

    /// Notes the tally a reply brought.
    pub(crate) fn heard(&self, written: Value, leased: Value) -> Result<()> {
        let t = PageTally {
            written: number(written)?,
            leased: number(leased)?,
        };
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        if tally.is_some() {
            *tally = Some(t);
        }
        Ok(())
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Runs a script on `link` with the common header (see `lua/common.lua`).
    pub(crate) fn eval(&self, link: &mut Link, script: &Script, args: &Args) -> Result<Value> {
        let o = &self.opts;
        let header = [
            arg(&o.worker),
            arg(o.clock_offset_ms),
            arg(o.claim_ttl.as_millis()),
            arg(o.max_attempts),
            arg(format!("{}:{}", o.seen_buckets, self.seen_cap)),
        ];
        link.run(&self.stop, |c| {
            let mut inv = script.prepare_invoke();
            inv.key(&self.prefix);
            for a in header.iter().chain(args) {
                inv.arg(a.as_slice());
            }
            inv.invoke::<Value>(c)
        })
    }

    /// Runs a plain command (or pipeline) on the main connection.
    pub(crate) fn query<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let mut m = self.main();
        m.link.run(&self.stop, &mut f)
    }
}

impl RedisFrontier {
    /// Opens worker `opts.worker` of crawl `opts.crawl` on the server.
    ///
    /// It checks that the server never evicts keys (`maxmemory-policy noeviction`: an
    /// evicted queue or seen-set key would lose or repeat URLs), fixes or checks the
    /// seen set's layout, registers the worker, and recovers an earlier run of a
    /// worker of the same name: every URL it still had leased goes back to its queue
    /// (at the back of its class, in lease order, attempts kept; the ones that used up
    /// `max_attempts` are failed as quarantined) and its hosts are released, each one
    /// whose claim had not run out yet with its next request held back until it would
    /// have (the earlier run's pace for the host went with it). See
    /// [`RedisFrontier::open_report`]. It then starts the thread that renews this
    /// worker's claims.
    ///
    /// # Errors
    /// [`Error::Backend`] when the server cannot be reached (after
    /// [`RedisOptions::reconnect_for`]), refuses a command, evicts keys, or holds the
    /// crawl with another number of seen-set buckets.
    pub fn open(opts: RedisOptions) -> Result<RedisFrontier> {
        if opts.crawl.is_empty() || opts.worker.is_empty() {
            return Err(backend("the crawl and the worker need names"));
        }
        let mut link = Link::new(&opts.url, opts.timeout, opts.reconnect_for)?;
        let never = AtomicBool::new(false);
        let prefix = format!("trawl:{}:", opts.crawl);
        let (policy, listpack): (Vec<String>, Vec<String>) = link.run(&never, |c| {
            redis::pipe()
                .cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .cmd("CONFIG")
                .arg("GET")
                .arg("hash-max-listpack-entries")
                .query(c)
        })?;
        match policy.get(1).map(String::as_str) {
            Some("noeviction") => {}
            Some(p) => {
                return Err(backend(format!(
                    "the server's maxmemory-policy is {p}: the shared frontier needs noeviction, \
                     since an evicted key would lose URLs"
                )));
            }
            None => return Err(backend("the server does not say its maxmemory-policy")),
        }
        // The seen set's layout is the crawl's, fixed by its first open: the number of
        // buckets, and the fields per hash of a bucket's chain (the server's listpack
        // limit then, so that every hash stays listpack-encoded).
        let cap = listpack
            .get(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(128)
            .clamp(1, MAX_SEEN_CAP);
        let config = format!("{prefix}config");
        let buckets = opts.seen_buckets;
        let (stored, seen_cap): (u64, u64) = link.run(&never, |c| {
            redis::pipe()
                .hset_nx(&config, "buckets", buckets)
                .ignore()
                .hset_nx(&config, "cap", cap)
                .ignore()
                .hget(&config, "buckets")
                .hget(&config, "cap")
                .query(c)
        })?;
        if stored != u64::from(buckets) {
            return Err(backend(format!(
                "crawl {:?} was started with {stored} seen-set buckets, not {buckets}",
                opts.crawl
            )));
        }
        if seen_cap < cap {
            tracing::warn!(
                crawl = %opts.crawl,
                seen_cap,
                hash_max_listpack_entries = cap,
                "the seen set's hashes were sized for another server setting"
            );
        }
        let shared = Arc::new(Shared {
            prefix,
            seen_cap: seen_cap.max(1),
            scripts: Scripts::new(),
            main: Mutex::new(Main {
                link,
                seq: 0,
                op: 0,
                applied_op: 0,
                page_limit: None,
                leases: HashMap::new(),
            }),
            claims: Mutex::new(HashMap::new()),
            tally: Mutex::new(None),
            known: Mutex::new(Known::default()),
            stop: AtomicBool::new(false),
            sleep: (Mutex::new(()), Condvar::new()),
            opts,
        });
        let sh = &*shared;
        let reply = {
            let mut m = sh.main();
            let v = sh.eval(&mut m.link, &sh.scripts.open, &Vec::new())?;
            let mut it = codec::array(v)?.into_iter();
            let mut next = || number(it.next().unwrap_or(Value::Nil));
            let report = RedisOpenReport {
                requeued: next()?,
                quarantined: next()?,
            };
            m.seq = next()?;
            m.op = next()?;
            m.applied_op = m.op;
            report
        };
        if reply.requeued + reply.quarantined > 0 {
            tracing::info!(
                worker = %sh.opts.worker,
                requeued = reply.requeued,
                quarantined = reply.quarantined,
                "returned the leases of an earlier run of this worker"
            );
        }
        let renewer = claims::spawn(shared.clone())
            .map_err(|e| backend(format!("cannot start the renewal thread: {e}")))?;
        Ok(RedisFrontier {
            shared,
            report: reply,
            renewer: Some(renewer),
            leave_on_drop: true,
        })
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> RedisOpenReport {
        self.report
    }

    /// The options it was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.opts
    }

    /// For tests: makes the next ack reuse the last ack's sequence number, as the
    /// resend of an ack whose reply was lost does (with the same links: the cache of
    /// those sent is emptied). The server answers it as a retry and applies nothing.
    pub fn resend_last_ack_for_tests(&self) {
        let mut m = self.shared.main();
        m.seq = m.seq.saturating_sub(1);
        self.shared.forget_known();
    }

    /// For tests: makes the next enqueue, lease or fail_host reuse the last one's op
    /// id, as the resend of a call whose reply was lost does (with the same URLs: the
    /// cache of those sent is emptied). The server answers it with the first call's
    /// answer and applies nothing.
    pub fn resend_last_op_for_tests(&self) {
        let mut m = self.shared.main();
        m.op = m.op.saturating_sub(1);
        self.shared.forget_known();
    }

    /// The host ids this process holds a claim on (as far as it knows), in id order.
    pub fn claimed(&self) -> Vec<HostId> {
        let mut v: Vec<HostId> = self
            .shared
            .claims()
            .iter()
            .filter(|(_, c)| !c.lost)
            .map(|(h, _)| HostId(*h))
            .collect();
        v.sort();
        v
    }
}

/// A [`Error::LostOwnership`] for a script's reason.
pub(crate) fn lost(reason: String) -> Error {
    Error::LostOwnership { reason }
}
