//! [`Frontier`]: the sled implementation of [`FrontierStore`].
//!
//! One process owns a state directory (sled's file lock enforces it). Inside the process
//! a single mutex serialises every change, so the in-memory state (counters, host
//! table, queue tails, the seen set's memtable) always describes exactly the batches
//! that were applied, in order. Each public change is one `apply_batch` on one tree, so
//! it is atomic on disk as well; its journal record, in the same batch, says what it did
//! to the in-memory state, so that replaying the journal on open rebuilds it.
//!
//! A background thread seals full memtables into run files and merges runs (see
//! `seen` and `runs`); it takes the mutex only to register a finished file.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::codec::{self, Counters, Entry, HostKeys, Journal, Op, QueueId, SeenMeta, SegmentBuf};
use crate::hostnames::HostNames;
use crate::runs::{self, Run, RunWriter};
use crate::seen::{FINISHED, SeenCache, SeenSet};
use crate::tails::Tails;
use crate::types::{
    Ack, Counts, Fingerprint, FrontierStore, HostId, HostInfo, Lease, NewUrl, Outcome, Politeness, ReadyScan,
    RobotsEntry, UrlRecord, UrlState,
};
use crate::{Error, Result};

mod background;
mod hosts;
mod open;
mod ops;
mod read;
mod write;

use hosts::{HostMem, ReadyIndex};
use read::queued_record;

/// The on-disk layout version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 2;

const TREE: &str = "frontier";

/// The seen set's run files live in this subdirectory of the state directory.
const SEEN_DIR: &str = "seen";

/// Entries per queue segment. A queue's new entries collect in its tail in memory and
/// are written as a whole segment, so a queue costs one sled key per 16 URLs however
/// its URLs arrive.
const SEGMENT_CAP: usize = 16;

/// Journal records (and bytes) after which a checkpoint is taken, and records after
/// which the memtable is sealed however small it is: together they bound what opening
/// a directory replays.
const JOURNAL_RECORDS: usize = 32_768;
const JOURNAL_BYTES: usize = 32 << 20;

/// Operations per sled batch where a change may be split. sled 0.34 holds several KiB
/// of memory per operation of a batch until it is applied (a batch deleting 23,000
/// keys took 120 MiB), so long changes go in batches of this many.
const BATCH_OPS: usize = 512;

/// Bits of Bloom filter per run entry, while [`Options::bloom_bytes`] allows.
const BLOOM_BITS: u64 = 10;

/// Runs of one size tier (a factor of 4) merged together once there are this many.
const MERGE_FANIN: usize = 4;
/// Past this many runs, the smallest are merged whatever their sizes.
const MAX_RUNS: usize = 12;

/// Settings for opening a [`Frontier`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// sled's page cache size in bytes: the main term of the frontier's memory. By
    /// default, 32 MiB (sled's own default of 1 GiB would make resident memory grow
    /// with the crawl).
    pub cache_capacity: u64,
    /// Slots of the in-memory cache of recently seen fingerprints (16 bytes each). It
    /// only ever answers "seen" for a URL that really is stored, so it saves disk reads
    /// without turning new URLs away. By default, 262,144 (4 MiB).
    pub seen_cache_slots: usize,
    /// Bytes of Bloom filter for all the seen set's run files together (10 bits per
    /// fingerprint while this allows, fewer after). A filter never misses a stored URL;
    /// a fuller one only lets more lookups read a block. By default, 16 MiB (10 bits
    /// per URL up to about 13 million URLs).
    pub bloom_bytes: usize,
    /// Fingerprints the seen set keeps in memory (about 32 bytes each) before it seals
    /// them into a run file. By default, 200,000.
    pub seen_memtable: usize,
    /// Bytes of queue tails (new queue entries not yet in a whole segment) kept in
    /// memory before the biggest are written as short segments. By default, 8 MiB.
    pub tail_bytes: usize,
    /// Seal and merge the seen set's runs on a background thread (the default); off,
    /// they happen inside the call that fills the memtable, which makes tests
    /// deterministic.
    pub background: bool,
    /// How many times a URL may be leased before it is failed for good, whether the
    /// earlier leases ended in [`Outcome::Retry`] or in a crash. By default, 3.
    pub max_attempts: u32,
    /// Open for reading only: leases left by an earlier process stay as they are
    /// (counted as leased, neither requeued nor quarantined), nothing is repaired or
    /// created, and every call that would change the state returns
    /// [`Error::ReadOnly`]. For tools that report on a crawl without touching it. By
    /// default, off.
    pub read_only: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_capacity: 32 << 20,
            seen_cache_slots: 1 << 18,
            bloom_bytes: 16 << 20,
            seen_memtable: 200_000,
            tail_bytes: 8 << 20,
            background: true,
            max_attempts: 3,
            read_only: false,
        }
    }
}

impl Options {
    /// Sets [`Options::cache_capacity`].
    pub fn cache_capacity(mut self, bytes: u64) -> Options {
        self.cache_capacity = bytes;
        self
    }
    /// Sets [`Options::seen_cache_slots`].
    pub fn seen_cache_slots(mut self, slots: usize) -> Options {
        self.seen_cache_slots = slots;
        self
    }
    /// Sets [`Options::bloom_bytes`].
    pub fn bloom_bytes(mut self, bytes: usize) -> Options {
        self.bloom_bytes = bytes;
        self
    }
    /// Sets [`Options::seen_memtable`] (at least 1).
    pub fn seen_memtable(mut self, fingerprints: usize) -> Options {
        self.seen_memtable = fingerprints.max(1);
        self
    }
    /// Sets [`Options::tail_bytes`].
    pub fn tail_bytes(mut self, bytes: usize) -> Options {
        self.tail_bytes = bytes;
        self
    }
    /// Sets [`Options::background`].
    pub fn background(mut self, on: bool) -> Options {
        self.background = on;
        self
    }
    /// Sets [`Options::max_attempts`] (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Options {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets [`Options::read_only`].
    pub fn read_only(mut self, on: bool) -> Options {
        self.read_only = on;
        self
    }
}

/// What opening a directory found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// The directory was new (or empty) and has been initialised.
    pub created: bool,
    /// Leases left by an earlier process that went back to their queues.
    pub requeued: u64,
    /// Leases left by an earlier process that had used up their attempts and were
    /// failed instead.
    pub quarantined: u64,
}

/// A memtable handed to the background thread to be written as a run.
#[derive(Debug)]
struct SealJob {
    entries: Arc<Vec<(u128, u64)>>,
    /// The journal position it covers: records below it are in the run.
    w: u64,
    id: u64,
}

#[derive(Debug)]
struct State {
    counters: Counters,
    hosts: Vec<HostMem>,
    /// The hosts with queued URLs.
    ready: ReadyIndex,
    host_ids: HostNames,
    cache: SeenCache,
    seen: SeenSet,
    meta: SeenMeta,
    tails: Tails,
    /// URLs leased by this process and not yet acked: fingerprint to (lease record,
    /// attempts). It also guards against acking a lease twice.
    leased: HashMap<Fingerprint, (u64, u32)>,
    /// Unacked entries per lease record; the record is deleted with its last ack.
    lease_remaining: HashMap<u64, u32>,
    /// The seqs of the journal records in sled, oldest first.
    journal: VecDeque<u64>,
    /// Journal records and bytes since the last checkpoint, and records since the last
    /// seal.
    since_ckpt: (usize, usize),
    since_seal: usize,
    /// Hosts whose counts changed since the last checkpoint.
    dirty: HashSet<u32>,
    /// A memtable waiting for the background thread.
    seal_job: Option<SealJob>,
    /// The background thread is merging (its inputs must stay).
    merging: bool,
    /// Run files replaced by merges, deleted once a flush has made that durable.
    obsolete: Vec<PathBuf>,
    stop: bool,
    poisoned: bool,
}

impl State {
    fn key(&self, host: u32) -> Result<&str> {
        self.hosts
            .get(host as usize)
            .map(|h| &*h.key)
            .ok_or_else(|| Error::corrupt(format!("a record names unknown host {host}")))
    }
}

#[derive(Debug)]
struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    seen_dir: PathBuf,
    opts: Options,
    state: Mutex<State>,
    /// Wakes the background thread, and writers waiting for it.
    wake: Condvar,
}

/// A durable URL frontier in a sled state directory. See the crate docs for the
/// durability contract.
#[derive(Debug)]
pub struct Frontier {
    shared: Arc<Shared>,
    report: OpenReport,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Frontier {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            {
                let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
                st.stop = true;
            }
            self.shared.wake.notify_all();
            let _ = worker.join();
        }
    }
}

/// The part of a URL that names its host: `scheme://host[:port]`.
pub fn host_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme_end + 3 + end])
}

/// Changes gathered for one atomic batch.
#[derive(Default)]
struct Change {
    batch: sled::Batch,
    /// Fingerprints enqueued by this batch, which the seen set cannot see until it is
    /// applied.
    fresh: HashSet<Fingerprint>,
    /// New queue entries (new URLs and URLs put back) by queue, in the order the queues
    /// appeared.
    groups: Vec<(QueueId, Vec<Entry>)>,
    group_index: HashMap<QueueId, usize>,
    /// Records of the URLs this batch finished, for the finished log.
    finished: Vec<UrlRecord>,
    journal: Journal,
    /// Hosts whose counts this batch changed.
    touched: Vec<u32>,
    new: usize,
}

impl Change {
    fn queue(&mut self, e: Entry) {
        let key = (e.host.0, e.priority, e.depth);
        let i = *self.group_index.entry(key).or_insert_with(|| {
            self.groups.push((key, Vec::new()));
            self.groups.len() - 1
        });
        self.groups[i].1.push(e);
    }
}

fn bump(c: &mut Counts, s: UrlState, up: bool) {
    let slot = match s {
        UrlState::Queued => &mut c.queued,
        UrlState::Leased => &mut c.leased,
        UrlState::Done => &mut c.done,
        UrlState::Failed => &mut c.failed,
    };
    *slot = if up { *slot + 1 } else { slot.saturating_sub(1) };
}

/// Moves one URL of `host` out of state `from` (if any) and into `to` (if any), in the
/// global and the host's counts.
fn count(st: &mut State, ch: &mut Change, host: HostId, from: Option<UrlState>, to: Option<UrlState>) {
    for (s, up) in [(from, false), (to, true)] {
        if let Some(s) = s {
            bump(&mut st.counters.counts, s, up);
            if let Some(h) = st.hosts.get_mut(host.0 as usize) {
                bump(&mut h.counts, s, up);
            }
        }
    }
    if ch.touched.last() != Some(&host.0) {
        ch.touched.push(host.0);
    }
}

fn finished_record(e: &Entry, state: UrlState, attempts: u32, reason: Option<String>) -> UrlRecord {
    UrlRecord {
        fp: e.fp,
        url: e.url.clone(),
        state,
        attempts,
        depth: e.depth,
        priority: e.priority,
        host: e.host,
        reason,
        data: Vec::new(),
    }
}

fn lease_of(e: Entry) -> Lease {
    Lease {
        fp: e.fp,
        url: e.url,
        host: e.host,
        depth: e.depth,
        priority: e.priority,
        attempts: e.attempts,
        data: e.data,
    }
}

impl Shared {
    /// The state lock for a call that changes the state: refused when read-only or
    /// poisoned. It waits while the memtable is twice its size and the background
    /// thread is still sealing the previous one, so memory stays bounded.
    fn write_lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.opts.read_only {
            return Err(Error::ReadOnly);
        }
        let mut st = self.lock()?;
        while !st.poisoned
            && !st.stop
            && st.seen.frozen.is_some()
            && st.seen.mem.len() >= 2 * self.opts.seen_memtable
        {
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(st)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(st)
    }

    /// Runs `f` and poisons the handle if it fails: memory may now be ahead of the disk,
    /// so the caller must reopen (and recover) instead of going on.
    fn guarded<T>(&self, st: &mut State, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let r = f(st).and_then(|v| {
            self.maintain(st)?;
            Ok(v)
        });
        if r.is_err() {
            st.poisoned = true;
            self.wake.notify_all();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_keys() {
        assert_eq!(
            host_of("http://a.example:8080/x?y"),
            Some("http://a.example:8080")
        );
        assert_eq!(host_of("https://b.example"), Some("https://b.example"));
        assert_eq!(host_of("http://c.example?q"), Some("http://c.example"));
        assert_eq!(host_of("http:///nohost"), None);
        assert_eq!(host_of("nonsense"), None);
    }
}
