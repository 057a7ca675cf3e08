//! [`RedisFrontier`]: opening, the calls into the scripts, and this process's view of
//! its claims.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Script, Value};
use trawl_frontier::{Error, Fingerprint, HostId, Result};

use crate::codec::{self, number};
use crate::link::{Link, backend};
use crate::options::RedisOptions;
use crate::scripts::Scripts;

mod claims;
mod ops;
mod read;

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
}

impl Drop for RedisFrontier {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _g = self.shared.sleep.0.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.sleep.1.notify_all();
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
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
                leases: HashMap::new(),
            }),
            claims: Mutex::new(HashMap::new()),
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
    /// resend of an ack whose reply was lost does. The server answers it as a retry
    /// and applies nothing.
    pub fn resend_last_ack_for_tests(&self) {
        let mut m = self.shared.main();
        m.seq = m.seq.saturating_sub(1);
    }

    /// For tests: makes the next enqueue, lease or fail_host reuse the last one's op
    /// id, as the resend of a call whose reply was lost does. The server answers it
    /// with the first call's answer and applies nothing.
    pub fn resend_last_op_for_tests(&self) {
        let mut m = self.shared.main();
        m.op = m.op.saturating_sub(1);
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
