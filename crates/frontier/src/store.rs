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
use crate::runs::{self, Run, RunWriter};
use crate::seen::{FINISHED, SeenCache, SeenSet};
use crate::tails::Tails;
use crate::types::{
    Ack, Counts, Fingerprint, FrontierStore, HostId, HostInfo, Lease, NewUrl, Outcome, Politeness, ReadyScan,
    RobotsEntry, UrlRecord, UrlState,
};
use crate::{Error, Result};

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

#[derive(Debug)]
struct HostMem {
    key: String,
    counts: Counts,
    politeness: Politeness,
    /// Where the host is in [`ReadyIndex`]: `None` (no queued URL), `Some(0)` (in
    /// `open`) or `Some(t)` (in `timed` at `t`).
    ready_at: Option<u64>,
}

/// The hosts with queued URLs, so that finding hosts to lease from costs what is
/// asked for, not a pass over every host. Hosts whose persisted politeness names no
/// time (or one that has passed, once a scan has seen it pass) are in `open`, the
/// others in `timed` by that time. Derived from the host counts and politeness: never
/// stored, rebuilt on open, kept up to date by every batch and `set_politeness`.
#[derive(Debug, Default)]
struct ReadyIndex {
    open: BTreeSet<u32>,
    timed: BTreeSet<(u64, u32)>,
}

impl ReadyIndex {
    /// Puts host `h` where its counts and politeness say.
    fn place(&mut self, hosts: &mut [HostMem], h: u32) {
        let Some(host) = hosts.get_mut(h as usize) else {
            return;
        };
        let want = (host.counts.queued > 0).then(|| host.politeness.earliest_ms());
        if host.ready_at == want {
            return;
        }
        match host.ready_at {
            Some(0) => {
                self.open.remove(&h);
            }
            Some(t) => {
                self.timed.remove(&(t, h));
            }
            None => {}
        }
        match want {
            Some(0) => {
                self.open.insert(h);
            }
            Some(t) => {
                self.timed.insert((t, h));
            }
            None => {}
        }
        host.ready_at = want;
    }

    /// Moves the hosts whose time has come (at `now_ms`) to `open`.
    fn advance(&mut self, hosts: &mut [HostMem], now_ms: u64) {
        while let Some(&(t, h)) = self.timed.first() {
            if t > now_ms {
                break;
            }
            self.timed.pop_first();
            self.open.insert(h);
            if let Some(host) = hosts.get_mut(h as usize) {
                host.ready_at = Some(0);
            }
        }
    }
}

impl HostKeys for Vec<HostMem> {
    fn host_key(&self, id: HostId) -> Option<&str> {
        self.get(id.0 as usize).map(|h| h.key.as_str())
    }
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
    host_ids: HashMap<String, HostId>,
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
            .map(|h| h.key.as_str())
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

impl Frontier {
    /// Opens (or creates) the frontier in `path`.
    ///
    /// Leases left by an earlier process go back to their queues, with their attempt
    /// counts kept; the ones that used up `max_attempts` are failed as quarantined.
    /// Opening reads the host table, the seen set's filters and indexes, and the
    /// journal written since the last checkpoint; its time does not grow with the
    /// number of URLs.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has the directory, [`Error::Foreign`] if it
    /// holds something else, [`Error::Schema`] for another layout version,
    /// [`Error::Corrupt`] if sled refuses or panics on it, [`Error::Io`] otherwise.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Frontier> {
        let path = path.as_ref().to_path_buf();
        if path.is_file() {
            return Err(Error::Foreign { path });
        }
        if opts.read_only && !path.is_dir() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            )));
        }
        if path.is_dir() {
            let names: Vec<_> = std::fs::read_dir(&path)
                .map_err(Error::Io)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            if !names.is_empty() && !names.iter().any(|n| n == "db" || n == "conf") {
                return Err(Error::Foreign { path });
            }
        }
        // sled releases its file lock from its I/O threads a moment after the last handle
        // is dropped, so a reopen in the same process can race it. Retry briefly; a
        // directory held by a live process stays locked and is reported within 300 ms.
        let mut tries = 0;
        let opened = loop {
            let opened = catch_unwind(AssertUnwindSafe(|| Frontier::open_inner(&path, opts.clone())));
            match opened {
                Ok(Err(Error::Locked { .. })) if tries < 30 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match opened {
            Ok(r) => r,
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked while opening it".to_string());
                Err(Error::Corrupt { detail })
            }
        }
    }

    fn open_inner(path: &Path, opts: Options) -> Result<Frontier> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(opts.cache_capacity)
            // Durability points are explicit (flush), so that a sink can be made durable
            // first; see the crate docs.
            .flush_every_ms(None)
            .open()
            .map_err(|e| Error::from_open(path, e))?;
        let tree = db.open_tree(TREE)?;
        let mut report = OpenReport::default();
        match tree.get(codec::meta_key("schema"))? {
            Some(v) => {
                let found = codec::Reader::new(&v, "schema").u32()?;
                if found != SCHEMA_VERSION {
                    return Err(Error::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None if tree.is_empty() && db.is_empty() && opts.read_only => {
                report.created = true;
            }
            None if tree.is_empty() && db.is_empty() => {
                let mut b = sled::Batch::default();
                b.insert(codec::meta_key("schema"), &SCHEMA_VERSION.to_be_bytes());
                b.insert(
                    codec::meta_key("counters"),
                    codec::encode_counters(&Counters::default()),
                );
                b.insert(
                    codec::meta_key("seen"),
                    codec::encode_seen_meta(&SeenMeta::default()),
                );
                tree.apply_batch(b)?;
                db.flush()?;
                report.created = true;
            }
            None => {
                return Err(Error::Foreign {
                    path: path.to_path_buf(),
                });
            }
        }
        let counters = match tree.get(codec::meta_key("counters"))? {
            Some(v) => codec::decode_counters(&v)?,
            None if report.created => Counters::default(),
            None => return Err(Error::corrupt("the counters record is missing")),
        };
        let meta = match tree.get(codec::meta_key("seen"))? {
            Some(v) => codec::decode_seen_meta(&v)?,
            None if report.created => SeenMeta::default(),
            None => return Err(Error::corrupt("the seen set's record is missing")),
        };
        let mut hosts = Vec::new();
        let mut host_ids = HashMap::new();
        for item in tree.scan_prefix([codec::HOST]) {
            let (k, v) = item?;
            let id = codec::host_of_key(&k)?;
            if id.0 as usize != hosts.len() {
                return Err(Error::corrupt(format!("host {} is out of sequence", id.0)));
            }
            let (key, politeness) = codec::decode_host(&v)?;
            host_ids.insert(key.clone(), id);
            hosts.push(HostMem {
                key,
                counts: Counts::default(),
                politeness,
                ready_at: None,
            });
        }
        if hosts.len() as u64 != u64::from(counters.next_host) {
            return Err(Error::corrupt("the host table does not match the counters"));
        }
        for item in tree.scan_prefix([codec::HOST_COUNTS]) {
            let (k, v) = item?;
            let id = codec::host_of_key(&k)?;
            let h = hosts
                .get_mut(id.0 as usize)
                .ok_or_else(|| Error::corrupt("counts name an unknown host"))?;
            h.counts = codec::decode_host_counts(&v)?;
        }
        let seen_dir = path.join(SEEN_DIR);
        let runs = Frontier::open_runs(&seen_dir, &meta, opts.read_only)?;
        let seen = SeenSet {
            runs: runs.into_iter().map(Arc::new).collect(),
            ..SeenSet::default()
        };
        let shared = Arc::new(Shared {
            db,
            tree,
            path: path.to_path_buf(),
            seen_dir,
            state: Mutex::new(State {
                counters,
                hosts,
                ready: ReadyIndex::default(),
                host_ids,
                cache: SeenCache::new(opts.seen_cache_slots),
                seen,
                meta,
                tails: Tails::default(),
                leased: HashMap::new(),
                lease_remaining: HashMap::new(),
                journal: VecDeque::new(),
                since_ckpt: (0, 0),
                since_seal: 0,
                dirty: HashSet::new(),
                seal_job: None,
                merging: false,
                obsolete: Vec::new(),
                stop: false,
                poisoned: false,
            }),
            wake: Condvar::new(),
            opts,
        });
        shared.replay()?;
        let mut frontier = Frontier {
            shared,
            report,
            worker: None,
        };
        if frontier.shared.opts.read_only {
            frontier.shared.note_leases()?;
        } else {
            if frontier.shared.opts.background {
                let s = frontier.shared.clone();
                let worker = std::thread::Builder::new()
                    .name("trawl-seen".into())
                    .spawn(move || s.work())
                    .map_err(Error::Io)?;
                frontier.worker = Some(worker);
            }
            let (requeued, quarantined) = frontier.shared.return_leases()?;
            frontier.report.requeued = requeued;
            frontier.report.quarantined = quarantined;
        }
        Ok(frontier)
    }

    /// Opens the registered runs; a writable open also deletes every other file in the
    /// directory (a crash's leftovers: a run written but never registered, a merge's
    /// inputs whose removal was not yet durable, a half-written temporary file).
    fn open_runs(dir: &Path, meta: &SeenMeta, read_only: bool) -> Result<Vec<Run>> {
        if !read_only {
            std::fs::create_dir_all(dir).map_err(Error::Io)?;
            let registered: HashSet<u64> = meta.runs.iter().copied().collect();
            for e in std::fs::read_dir(dir).map_err(Error::Io)? {
                let e = e.map_err(Error::Io)?;
                let name = e.file_name();
                let keep = name
                    .to_str()
                    .and_then(runs::parse_run_name)
                    .is_some_and(|id| registered.contains(&id));
                if !keep {
                    tracing::debug!(file = ?name, "removing a seen-set file that is not registered");
                    std::fs::remove_file(e.path()).map_err(Error::Io)?;
                }
            }
        }
        meta.runs.iter().map(|id| Run::open(dir, *id)).collect()
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Stores a meta value (for example the crawl's configuration).
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let _st = self.shared.write_lock()?;
        self.shared
            .tree
            .insert(codec::meta_key(&format!("x:{name}")), value)?;
        Ok(())
    }

    /// Reads a meta value stored with [`Frontier::set_meta`].
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .shared
            .tree
            .get(codec::meta_key(&format!("x:{name}")))?
            .map(|v| v.to_vec()))
    }

    /// Binds the directory to one crawl. The first call stores `identity` (a short
    /// description of what makes two crawls the same, such as seeds and scope) and
    /// `config`, and flushes; later calls return the stored configuration, or
    /// [`Error::ConfigMismatch`] when the identity differs.
    pub fn bind_config(&self, identity: &str, config: &[u8]) -> Result<Vec<u8>> {
        match self.meta("identity")? {
            Some(stored) if stored != identity.as_bytes() => Err(Error::ConfigMismatch {
                stored: String::from_utf8_lossy(&stored).into_owned(),
            }),
            Some(_) => Ok(self.meta("config")?.unwrap_or_else(|| config.to_vec())),
            None => {
                self.set_meta("identity", identity.as_bytes())?;
                self.set_meta("config", config)?;
                self.flush()?;
                Ok(config.to_vec())
            }
        }
    }

    /// Every host, in id order.
    pub fn hosts(&self) -> Vec<HostInfo> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostInfo {
                id: HostId(i as u32),
                key: h.key.clone(),
                counts: h.counts,
                politeness: h.politeness,
            })
            .collect()
    }

    /// The number of a host key (`scheme://host[:port]`), if known.
    pub fn host_id(&self, key: &str) -> Option<HostId> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.host_ids.get(key).copied()
    }

    /// Every URL with its record: the finished ones in the order they finished, then
    /// the queued ones in queue order, then the ones leased (by this process, or left
    /// leased by an earlier one when read-only). A scan, for exports and checks.
    /// Finished records carry no [`UrlRecord::data`]: the data is for the fetch.
    pub fn urls(&self) -> impl Iterator<Item = Result<UrlRecord>> + '_ {
        let sh = &*self.shared;
        let finished = sh.tree.scan_prefix([codec::FINISHED]).flat_map(move |item| {
            let recs = item.map_err(Error::from).and_then(|(_, v)| {
                let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                codec::decode_finished(&v, &st.hosts)
            });
            match recs {
                Ok(recs) => recs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        let queued = QueuedIter::new(sh);
        let leased = sh.tree.scan_prefix([codec::LEASE]).flat_map(move |item| {
            let recs = item.map_err(Error::from).and_then(|(k, v)| {
                let id = codec::parse_seq_key(&k)?;
                let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                let entries = codec::decode_lease(&v, &st.hosts)?;
                Ok(entries
                    .into_iter()
                    .filter_map(|e| match st.leased.get(&e.fp) {
                        Some(&(lid, attempts)) if lid == id => {
                            let mut rec = finished_record(&e, UrlState::Leased, attempts, None);
                            rec.data = e.data;
                            Some(rec)
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>())
            });
            match recs {
                Ok(recs) => recs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        finished.chain(queued).chain(leased)
    }

    /// Bytes the state directory takes on disk: sled's files and the seen set's runs.
    pub fn size_on_disk(&self) -> Result<u64> {
        let mut n = self.shared.db.size_on_disk()?;
        if let Ok(dir) = std::fs::read_dir(&self.shared.seen_dir) {
            for e in dir.flatten() {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(n)
    }

    /// Scans the whole store and checks that every URL is in exactly one state: a
    /// queued URL sits in exactly one queue segment or tail, a leased one is held by
    /// this process (or, read-only, was left leased) and in no queue, done and failed
    /// ones are in neither and appear once in the finished log, the seen set holds
    /// exactly these URLs (a finished one pointing at its finished record), and the
    /// global and per-host counts match. Returns the counts found. Memory in
    /// proportion to the number of URLs.
    pub fn verify(&self) -> Result<Counts> {
        self.shared.verify()
    }
}

/// The queued URLs in queue order: the segments from sled, each queue's tail after its
/// segments.
struct QueuedIter<'a> {
    sh: &'a Shared,
    iter: sled::Iter,
    tails: std::iter::Peekable<std::vec::IntoIter<(QueueId, Result<Vec<Entry>>)>>,
    pending: VecDeque<Result<UrlRecord>>,
    done: bool,
}

impl<'a> QueuedIter<'a> {
    fn new(sh: &'a Shared) -> QueuedIter<'a> {
        let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let tails: Vec<(QueueId, Result<Vec<Entry>>)> = st
            .tails
            .iter()
            .map(|(q, t)| (*q, st.key(q.0).and_then(|k| t.decode(*q, k))))
            .collect();
        QueuedIter {
            sh,
            iter: sh.tree.scan_prefix([codec::QUEUE]),
            tails: tails.into_iter().peekable(),
            pending: VecDeque::new(),
            done: false,
        }
    }

    fn push_tails_before(&mut self, q: Option<QueueId>) {
        while let Some((tq, _)) = self.tails.peek() {
            if q.is_some_and(|q| *tq >= q) {
                break;
            }
            let Some((_, entries)) = self.tails.next() else {
                break;
            };
            match entries {
                Ok(es) => self.pending.extend(es.into_iter().map(|e| Ok(queued_record(e)))),
                Err(e) => self.pending.push_back(Err(e)),
            }
        }
    }
}

fn queued_record(e: Entry) -> UrlRecord {
    let mut rec = finished_record(&e, UrlState::Queued, e.attempts, None);
    rec.data = e.data;
    rec
}

impl Iterator for QueuedIter<'_> {
    type Item = Result<UrlRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.iter.next() {
                None => {
                    self.done = true;
                    self.push_tails_before(None);
                }
                Some(item) => {
                    let decoded = item.map_err(Error::from).and_then(|(k, v)| {
                        let (q, _) = codec::parse_queue_key(&k)?;
                        let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
                        Ok((q, codec::decode_segment(&v, q, st.key(q.0)?)?))
                    });
                    match decoded {
                        Ok((q, entries)) => {
                            self.push_tails_before(Some(q));
                            self.pending
                                .extend(entries.into_iter().map(|e| Ok(queued_record(e))));
                        }
                        Err(e) => self.pending.push_back(Err(e)),
                    }
                }
            }
        }
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

    /// Rebuilds the in-memory state from the journal (and the finished log since the
    /// last seal): the memtable, the queue tails and the host counts since the last
    /// checkpoint.
    fn replay(&self) -> Result<()> {
        let mut guard = self.lock()?;
        let st = &mut *guard;
        let (w_seen, w_ckpt) = (st.meta.w_seen, st.meta.w_ckpt);
        for item in self.tree.scan_prefix([codec::JOURNAL]) {
            let (k, v) = item?;
            let s = codec::parse_seq_key(&k)?;
            st.journal.push_back(s);
            if s >= w_ckpt {
                st.since_ckpt.0 += 1;
                st.since_ckpt.1 += v.len();
            }
            if s >= w_seen {
                st.since_seal += 1;
            }
            let mut counts: Vec<(u32, Counts)> = Vec::new();
            let State {
                hosts, seen, tails, ..
            } = &mut *st;
            let hosts = &*hosts;
            codec::replay_journal(&v, hosts, |op| {
                match op {
                    Op::Seen(fp, a) if s >= w_seen => seen.mark(fp, u64::from(a)),
                    Op::Append {
                        seen: marks,
                        q,
                        attempts,
                        url,
                        data,
                    } => {
                        if marks && s >= w_seen {
                            seen.mark(Fingerprint::of(&url), u64::from(attempts));
                        }
                        if s >= w_ckpt {
                            let key = hosts
                                .host_key(HostId(q.0))
                                .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                            tails.append(q, key, attempts, &url, data);
                        }
                    }
                    Op::Pop(q, n) if s >= w_ckpt => {
                        let key = hosts
                            .host_key(HostId(q.0))
                            .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                        tails.pop_front(q, n, key)?;
                    }
                    Op::Clear(h) if s >= w_ckpt => {
                        for q in tails.queues_of(h) {
                            tails.take(q);
                        }
                    }
                    Op::Counts(h, c) if s >= w_ckpt => counts.push((h, c)),
                    _ => {}
                }
                Ok(())
            })?;
            for (h, c) in counts {
                let host = st
                    .hosts
                    .get_mut(h as usize)
                    .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                host.counts = c;
                st.dirty.insert(h);
            }
        }
        let from = codec::seq_key(codec::FINISHED, w_seen);
        let to = codec::seq_key(codec::FINISHED, u64::MAX);
        for item in self.tree.range(from..=to) {
            let (k, v) = item?;
            let s = codec::parse_seq_key(&k)?;
            for r in codec::decode_finished(&v, &st.hosts)? {
                st.seen.mark(r.fp, FINISHED | s);
            }
        }
        for h in 0..st.hosts.len() as u32 {
            st.ready.place(&mut st.hosts, h);
        }
        let mut total = Counts::default();
        for h in &st.hosts {
            total.queued += h.counts.queued;
            total.leased += h.counts.leased;
            total.done += h.counts.done;
            total.failed += h.counts.failed;
        }
        if total != st.counters.counts {
            tracing::warn!(stored = ?st.counters.counts, found = ?total, "the frontier's counters disagree with the host counts; using the host counts");
            st.counters.counts = total;
            if !self.opts.read_only {
                self.tree
                    .insert(codec::meta_key("counters"), codec::encode_counters(&st.counters))?;
            }
        }
        Ok(())
    }

    /// Whether an entry of a lease record is still out: not finished and not put back
    /// since. The seen set's value of a URL is the attempts it had when it last went
    /// (back) into a queue, or [`FINISHED`] | seq, so an entry leased with `attempts` is
    /// out exactly when that value is below `attempts`.
    fn outstanding(st: &State, e: &Entry) -> Result<bool> {
        match st.seen.get(e.fp)? {
            Some(v) => Ok(v < u64::from(e.attempts)),
            None => Err(Error::corrupt(format!(
                "leased {} is missing from the seen set",
                e.url
            ))),
        }
    }

    /// Read-only: takes note of the leases an earlier process left (the entries not
    /// acked before it stopped), so that they read as leased, without changing them.
    fn note_leases(&self) -> Result<()> {
        let mut st = self.lock()?;
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            let id = codec::parse_seq_key(&k)?;
            for e in codec::decode_lease(&v, &st.hosts)? {
                if Shared::outstanding(&st, &e)? {
                    st.leased.insert(e.fp, (id, e.attempts));
                }
            }
        }
        Ok(())
    }

    /// Puts back every lease an earlier process left, and flushes.
    fn return_leases(&self) -> Result<(u64, u64)> {
        let mut guard = self.write_lock()?;
        let (requeued, quarantined) = self.guarded(&mut guard, |st| {
            let mut ch = Change::default();
            let (mut requeued, mut quarantined) = (0, 0);
            // One batch per 64 lease records: each record is returned whole or not at
            // all, and a crash in between leaves the rest for the next open.
            let mut records = 0;
            for item in self.tree.scan_prefix([codec::LEASE]) {
                let (k, v) = item?;
                records += 1;
                if records % 64 == 0 {
                    self.apply(st, std::mem::take(&mut ch))?;
                }
                ch.batch.remove(k);
                for e in codec::decode_lease(&v, &st.hosts)? {
                    if !Shared::outstanding(st, &e)? {
                        continue;
                    }
                    if e.attempts >= self.opts.max_attempts {
                        let reason = format!(
                            "quarantined: leased {} times without completing (crash loop?)",
                            e.attempts
                        );
                        count(
                            st,
                            &mut ch,
                            e.host,
                            Some(UrlState::Leased),
                            Some(UrlState::Failed),
                        );
                        ch.finished
                            .push(finished_record(&e, UrlState::Failed, e.attempts, Some(reason)));
                        quarantined += 1;
                    } else {
                        count(st, &mut ch, e.host, Some(UrlState::Leased), None);
                        ch.queue(e);
                        requeued += 1;
                    }
                }
            }
            if requeued + quarantined > 0 {
                tracing::info!(requeued, quarantined, "returned the leases of an earlier process");
            }
            self.apply(st, ch)?;
            Ok((requeued, quarantined))
        })?;
        drop(guard);
        self.db.flush()?;
        Ok((requeued, quarantined))
    }

    /// Writes the new queue entries (whole segments, the rest into the tails), the
    /// finished log, the host counts, the journal record and the counters into the
    /// batch, and applies it.
    fn apply(&self, st: &mut State, mut ch: Change) -> Result<usize> {
        let cap = SEGMENT_CAP;
        for (q, entries) in std::mem::take(&mut ch.groups) {
            for _ in &entries {
                count(st, &mut ch, HostId(q.0), None, Some(UrlState::Queued));
            }
            let State {
                hosts,
                tails,
                seen,
                counters,
                ..
            } = &mut *st;
            let key = hosts
                .get(q.0 as usize)
                .map(|h| h.key.as_str())
                .ok_or_else(|| Error::corrupt("a queue names an unknown host"))?;
            let in_tail = tails.len(q) as usize;
            let mut rest = entries.as_slice();
            if in_tail + rest.len() >= cap {
                let mut seg = tails.take(q).unwrap_or_default();
                if in_tail > 0 {
                    ch.journal.pop(q, in_tail as u32);
                }
                let mut fill = cap - in_tail;
                loop {
                    for e in &rest[..fill] {
                        seg.push(key, e.attempts, &e.url, &e.data);
                        ch.journal.seen(e.fp, e.attempts);
                    }
                    rest = &rest[fill..];
                    let seq = counters.next_seq;
                    counters.next_seq += 1;
                    ch.batch.insert(&codec::queue_key(q, seq), seg.encode());
                    if rest.len() < cap {
                        break;
                    }
                    seg = SegmentBuf::default();
                    fill = cap;
                }
            }
            for e in rest {
                tails.append(q, key, e.attempts, &e.url, &e.data);
                ch.journal.append(true, q, key, e.attempts, &e.url, &e.data);
            }
            for e in &entries {
                seen.mark(e.fp, u64::from(e.attempts));
            }
        }
        if !ch.finished.is_empty() {
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            ch.batch.insert(
                &codec::seq_key(codec::FINISHED, seq),
                codec::encode_finished(&ch.finished, &st.hosts),
            );
            for r in &ch.finished {
                st.seen.mark(r.fp, FINISHED | seq);
            }
        }
        ch.touched.sort_unstable();
        ch.touched.dedup();
        for h in &ch.touched {
            if let Some(host) = st.hosts.get(*h as usize) {
                ch.journal.counts(*h, &host.counts);
                st.dirty.insert(*h);
            }
            st.ready.place(&mut st.hosts, *h);
        }
        if !ch.journal.bytes.is_empty() {
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            st.journal.push_back(seq);
            st.since_ckpt.0 += 1;
            st.since_ckpt.1 += ch.journal.bytes.len();
            st.since_seal += 1;
            ch.batch
                .insert(&codec::seq_key(codec::JOURNAL, seq), ch.journal.bytes);
        }
        ch.batch
            .insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
        self.tree.apply_batch(ch.batch)?;
        Ok(ch.new)
    }

    /// Deletes the journal records that no watermark needs any more, in batches of
    /// [`BATCH_OPS`]. It runs after the batch that moved the watermark, so by sled's
    /// prefix guarantee no deletion survives a crash without the watermark.
    fn truncate_journal(&self, st: &mut State) -> Result<()> {
        let keep_from = st.meta.w_seen.min(st.meta.w_ckpt);
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            while let Some(&s) = st.journal.front() {
                if s >= keep_from || n == BATCH_OPS {
                    break;
                }
                batch.remove(&codec::seq_key(codec::JOURNAL, s));
                st.journal.pop_front();
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
        }
    }

    /// After a change: a checkpoint when the tails or the journal have grown past their
    /// bounds; a seal when the memtable is full (or the journal since the last seal is
    /// long); and, without the background thread, the merges.
    fn maintain(&self, st: &mut State) -> Result<()> {
        if st.tails.footprint() > self.opts.tail_bytes
            || st.since_ckpt.0 >= JOURNAL_RECORDS
            || st.since_ckpt.1 >= JOURNAL_BYTES
        {
            self.checkpoint(st)?;
        }
        if st.seen.frozen.is_none()
            && (st.seen.mem.len() >= self.opts.seen_memtable || st.since_seal >= JOURNAL_RECORDS)
        {
            self.freeze(st)?;
        }
        if !self.opts.background {
            while let Some(inputs) = self.pick_merge(st) {
                let id = st.meta.next_run;
                st.meta.next_run += 1;
                let bloom = self.bloom_for(st, inputs.iter().map(|r| r.len()).sum());
                let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
                let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
                runs::merge_into(&refs, &mut w, || true)?;
                let run = w.finish()?;
                self.register_merge(st, &inputs, run)?;
            }
        }
        Ok(())
    }

    /// Takes a checkpoint, so that the journal before it is no longer needed for the
    /// tails and the host counts:
    ///
    /// 1. while the tails are over [`Options::tail_bytes`], the biggest are written as
    ///    short segments (ordinary journaled batches);
    /// 2. the counts of the hosts changed since the last checkpoint are written. This
    ///    may precede the watermark: if it survives a crash without it, replaying the
    ///    journal from the old watermark overwrites each of those hosts' counts again;
    /// 3. one batch writes a journal record re-journaling the tails and moves the
    ///    watermark to it;
    /// 4. the journal records no watermark needs are deleted.
    fn checkpoint(&self, st: &mut State) -> Result<()> {
        if st.tails.footprint() > self.opts.tail_bytes {
            let mut ch = Change::default();
            let mut n = 0;
            for q in st.tails.largest() {
                if st.tails.footprint() <= self.opts.tail_bytes / 2 {
                    break;
                }
                let Some(t) = st.tails.take(q) else { continue };
                let s = st.counters.next_seq;
                st.counters.next_seq += 1;
                ch.batch.insert(&codec::queue_key(q, s), t.encode());
                ch.journal.pop(q, t.n);
                n += 1;
                if n == BATCH_OPS {
                    self.apply(st, std::mem::take(&mut ch))?;
                    n = 0;
                }
            }
            if n > 0 {
                self.apply(st, ch)?;
            }
        }
        let dirty: Vec<u32> = std::mem::take(&mut st.dirty).into_iter().collect();
        for chunk in dirty.chunks(BATCH_OPS) {
            let mut batch = sled::Batch::default();
            for h in chunk {
                if let Some(host) = st.hosts.get(*h as usize) {
                    batch.insert(
                        &codec::host_key(codec::HOST_COUNTS, HostId(*h)),
                        codec::encode_host_counts(&host.counts),
                    );
                }
            }
            self.tree.apply_batch(batch)?;
        }
        let mut batch = sled::Batch::default();
        let seq = st.counters.next_seq;
        st.counters.next_seq += 1;
        let mut journal = Journal::default();
        for (q, t) in st.tails.iter() {
            let key = st.key(q.0)?;
            for e in t.decode(*q, key)? {
                journal.append(false, *q, key, e.attempts, &e.url, &e.data);
            }
        }
        if !journal.bytes.is_empty() {
            st.journal.push_back(seq);
            batch.insert(&codec::seq_key(codec::JOURNAL, seq), journal.bytes);
        }
        st.meta.w_ckpt = seq;
        st.since_ckpt = (0, 0);
        batch.insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta));
        batch.insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
        self.tree.apply_batch(batch)?;
        self.truncate_journal(st)
    }

    /// Freezes the memtable for sealing: the background thread writes it (or, without
    /// one, it is written now). An empty memtable just moves the watermark.
    fn freeze(&self, st: &mut State) -> Result<()> {
        let w = st.counters.next_seq;
        st.since_seal = 0;
        if st.seen.mem.is_empty() {
            return self.register_seal(st, None, w);
        }
        let mut entries: Vec<(u128, u64)> = st.seen.mem.drain().collect();
        entries.sort_unstable();
        let entries = Arc::new(entries);
        st.seen.frozen = Some(entries.clone());
        let id = st.meta.next_run;
        st.meta.next_run += 1;
        if self.opts.background {
            st.seal_job = Some(SealJob { entries, w, id });
            self.wake.notify_all();
            Ok(())
        } else {
            let run = self.write_run(&entries, id, self.bloom_for(st, entries.len() as u64))?;
            self.register_seal(st, Some(run), w)
        }
    }

    /// Bytes of Bloom filter for a new run of `n` entries: [`BLOOM_BITS`] per entry, or
    /// its share of [`Options::bloom_bytes`] if that is less.
    fn bloom_for(&self, st: &State, n: u64) -> usize {
        let total = (st.seen.run_entries() + n).max(1);
        let budget_bits = (self.opts.bloom_bytes as u64 * 8).saturating_mul(n) / total;
        ((n * BLOOM_BITS).min(budget_bits) / 8) as usize
    }

    fn write_run(&self, entries: &[(u128, u64)], id: u64, bloom: usize) -> Result<Run> {
        let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
        for (fp, v) in entries {
            w.push(*fp, *v)?;
        }
        w.finish()
    }

    /// Registers a sealed run with the new watermark, then deletes the journal records
    /// it covers. The file is already durable, so no flush is needed: if the
    /// registration is lost, the file is an unregistered leftover and the journal is
    /// still there.
    fn register_seal(&self, st: &mut State, run: Option<Run>, w: u64) -> Result<()> {
        if let Some(run) = run {
            st.meta.runs.push(run.id);
            st.seen.runs.push(Arc::new(run));
        }
        st.seen.frozen = None;
        st.meta.w_seen = w;
        self.tree
            .insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta))?;
        self.wake.notify_all();
        self.truncate_journal(st)
    }

    /// The runs to merge next, if any: the lowest size tier (a factor of 4, from the
    /// memtable's size up) with [`MERGE_FANIN`] runs, or the smallest runs when there
    /// are more than [`MAX_RUNS`].
    fn pick_merge(&self, st: &State) -> Option<Vec<Arc<Run>>> {
        if st.merging || st.seen.runs.len() < MERGE_FANIN {
            return None;
        }
        let unit = self.opts.seen_memtable.max(1) as u64;
        let tier = |n: u64| {
            let mut t = 0;
            let mut x = n / unit;
            while x >= 4 {
                x /= 4;
                t += 1;
            }
            t
        };
        let mut by_tier: Vec<(u32, Arc<Run>)> =
            st.seen.runs.iter().map(|r| (tier(r.len()), r.clone())).collect();
        by_tier.sort_by_key(|(t, r)| (*t, r.len()));
        let mut i = 0;
        while i < by_tier.len() {
            let t = by_tier[i].0;
            let same = by_tier[i..].iter().take_while(|(u, _)| *u == t).count();
            if same >= MERGE_FANIN {
                return Some(by_tier[i..i + same].iter().map(|(_, r)| r.clone()).collect());
            }
            i += same;
        }
        if by_tier.len() > MAX_RUNS {
            let mut runs: Vec<Arc<Run>> = by_tier.into_iter().map(|(_, r)| r).collect();
            runs.sort_by_key(|r| r.len());
            runs.truncate(MERGE_FANIN);
            return Some(runs);
        }
        None
    }

    /// Replaces merged runs by their merge, in one batch. The inputs' files are deleted
    /// after the next flush, once no crash can bring back the registry that names them.
    fn register_merge(&self, st: &mut State, inputs: &[Arc<Run>], run: Run) -> Result<()> {
        let gone: HashSet<u64> = inputs.iter().map(|r| r.id).collect();
        st.meta.runs.retain(|id| !gone.contains(id));
        st.meta.runs.push(run.id);
        st.seen.runs.retain(|r| !gone.contains(&r.id));
        st.seen.runs.push(Arc::new(run));
        st.obsolete.extend(inputs.iter().map(|r| r.path().to_path_buf()));
        let mut batch = sled::Batch::default();
        batch.insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta));
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The background thread: seals frozen memtables (first) and merges runs.
    fn work(self: Arc<Shared>) {
        loop {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.stop || st.poisoned {
                    return;
                }
                if st.seal_job.is_some() {
                    break;
                }
                if let Some(inputs) = self.pick_merge(&st) {
                    st.merging = true;
                    let id = st.meta.next_run;
                    st.meta.next_run += 1;
                    let bloom = self.bloom_for(&st, inputs.iter().map(|r| r.len()).sum());
                    drop(st);
                    let merged = self.merge(&inputs, id, bloom);
                    st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.merging = false;
                    let registered = match merged {
                        Ok(Some(run)) => self.register_merge(&mut st, &inputs, run),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = registered {
                        tracing::error!(error = %e, "merging the seen set's runs failed; the frontier stops");
                        st.poisoned = true;
                        self.wake.notify_all();
                        return;
                    }
                    continue;
                }
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            drop(st);
            if !self.seal_pending() {
                return;
            }
        }
    }

    /// Writes and registers the frozen memtable, if one waits. False once the handle is
    /// poisoned or stopping.
    fn seal_pending(&self) -> bool {
        let (job, bloom) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.stop || st.poisoned {
                return false;
            }
            let Some(job) = st.seal_job.take() else {
                return true;
            };
            let bloom = self.bloom_for(&st, job.entries.len() as u64);
            (job, bloom)
        };
        let written = self.write_run(&job.entries, job.id, bloom);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let registered = written.and_then(|run| self.register_seal(&mut st, Some(run), job.w));
        if let Err(e) = registered {
            tracing::error!(error = %e, "sealing the seen set's memtable failed; the frontier stops");
            st.poisoned = true;
            self.wake.notify_all();
            return false;
        }
        !st.stop
    }

    /// Merges runs into a new file; seals waiting memtables as it goes, and gives up
    /// (`None`) when the handle stops.
    fn merge(&self, inputs: &[Arc<Run>], id: u64, bloom: usize) -> Result<Option<Run>> {
        let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
        let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
        let complete = match runs::merge_into(&refs, &mut w, || self.seal_pending()) {
            Ok(c) => c,
            Err(e) => {
                w.abandon();
                return Err(e);
            }
        };
        if !complete {
            w.abandon();
            return Ok(None);
        }
        tracing::debug!(
            id,
            entries = w.entries(),
            inputs = inputs.len(),
            "merged seen-set runs"
        );
        w.finish().map(Some)
    }

    /// Adds the unseen URLs of `urls` to `ch`.
    fn enqueue_into(&self, st: &mut State, ch: &mut Change, urls: Vec<NewUrl>) -> Result<()> {
        for u in urls {
            let fp = Fingerprint::of(&u.url);
            if ch.fresh.contains(&fp) || st.cache.contains(fp) {
                continue;
            }
            if st.seen.contains(fp)? {
                st.cache.insert(fp);
                continue;
            }
            let Some(host_name) = host_of(&u.url) else {
                tracing::warn!(url = %u.url, "not enqueued: no scheme://host in it");
                continue;
            };
            let host = match st.host_ids.get(host_name) {
                Some(id) => *id,
                None => {
                    let id = HostId(st.counters.next_host);
                    st.counters.next_host += 1;
                    st.host_ids.insert(host_name.to_string(), id);
                    ch.batch
                        .insert(codec::host_name_key(host_name), &id.0.to_be_bytes());
                    let p = Politeness::default();
                    ch.batch.insert(
                        &codec::host_key(codec::HOST, id),
                        codec::encode_host(host_name, &p),
                    );
                    st.hosts.push(HostMem {
                        key: host_name.to_string(),
                        counts: Counts::default(),
                        politeness: p,
                        ready_at: None,
                    });
                    id
                }
            };
            ch.queue(Entry {
                fp,
                host,
                priority: u.priority,
                depth: u.depth,
                attempts: 0,
                url: u.url,
                data: u.data,
            });
            ch.fresh.insert(fp);
            st.cache.insert(fp);
            ch.new += 1;
        }
        Ok(())
    }

    fn verify(&self) -> Result<Counts> {
        let st = self.lock()?;
        let mut per_host: HashMap<u32, Counts> = HashMap::new();
        let mut found = Counts::default();
        let mut tally = |host: HostId, s: UrlState, found: &mut Counts| {
            bump(found, s, true);
            bump(per_host.entry(host.0).or_default(), s, true);
        };
        // Where each URL is: queued (segment or tail), leased, or finished at a seq.
        let mut place: HashMap<Fingerprint, (UrlState, u64)> = HashMap::new();
        let mut put = |fp: Fingerprint, url: &str, state: UrlState, seq: u64| -> Result<()> {
            if let Some((other, _)) = place.insert(fp, (state, seq)) {
                return Err(Error::corrupt(format!("{url} is both {other:?} and {state:?}")));
            }
            Ok(())
        };
        for item in self.tree.scan_prefix([codec::QUEUE]) {
            let (k, v) = item?;
            let (q, _) = codec::parse_queue_key(&k)?;
            for e in codec::decode_segment(&v, q, st.key(q.0)?)? {
                put(e.fp, &e.url, UrlState::Queued, 0)?;
                tally(e.host, UrlState::Queued, &mut found);
            }
        }
        for (q, t) in st.tails.iter() {
            for e in t.decode(*q, st.key(q.0)?)? {
                put(e.fp, &e.url, UrlState::Queued, 0)?;
                tally(e.host, UrlState::Queued, &mut found);
            }
        }
        let mut leased_seen = 0usize;
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            let id = codec::parse_seq_key(&k)?;
            for e in codec::decode_lease(&v, &st.hosts)? {
                if st.leased.get(&e.fp).is_some_and(|(lid, _)| *lid == id) {
                    put(e.fp, &e.url, UrlState::Leased, 0)?;
                    tally(e.host, UrlState::Leased, &mut found);
                    leased_seen += 1;
                }
            }
        }
        if leased_seen != st.leased.len() {
            return Err(Error::corrupt(format!(
                "{} URLs are held leased, {leased_seen} of them are in lease records",
                st.leased.len()
            )));
        }
        for item in self.tree.scan_prefix([codec::FINISHED]) {
            let (k, v) = item?;
            let seq = codec::parse_seq_key(&k)?;
            for r in codec::decode_finished(&v, &st.hosts)? {
                if !matches!(r.state, UrlState::Done | UrlState::Failed) {
                    return Err(Error::corrupt(format!("{} is finished as {:?}", r.url, r.state)));
                }
                put(r.fp, &r.url, r.state, seq)?;
                tally(r.host, r.state, &mut found);
            }
        }
        let seen = st.seen.collect_all()?;
        if seen.len() != place.len() {
            return Err(Error::corrupt(format!(
                "the seen set holds {} URLs, the queues, leases and finished log {}",
                seen.len(),
                place.len()
            )));
        }
        for (fp, (state, seq)) in &place {
            let Some(&v) = seen.get(&fp.0) else {
                return Err(Error::corrupt(format!(
                    "{:032x} ({state:?}) is missing from the seen set",
                    fp.0
                )));
            };
            let finished = matches!(state, UrlState::Done | UrlState::Failed);
            if finished != (v & FINISHED != 0) || (finished && v != FINISHED | seq) {
                return Err(Error::corrupt(format!(
                    "{:032x} is {state:?} but its seen-set value is {v:#x}",
                    fp.0
                )));
            }
        }
        if found != st.counters.counts {
            return Err(Error::corrupt(format!(
                "counters say {:?}, records say {found:?}",
                st.counters.counts
            )));
        }
        for (i, h) in st.hosts.iter().enumerate() {
            if per_host.get(&(i as u32)).copied().unwrap_or_default() != h.counts {
                return Err(Error::corrupt(format!(
                    "the counts of host {} disagree with its records",
                    h.key
                )));
            }
            let indexed = match h.ready_at {
                None => !st.ready.open.contains(&(i as u32)) && h.counts.queued == 0,
                Some(0) => st.ready.open.contains(&(i as u32)) && h.counts.queued > 0,
                Some(t) => st.ready.timed.contains(&(t, i as u32)) && h.counts.queued > 0,
            };
            if !indexed {
                return Err(Error::corrupt(format!(
                    "host {} ({} queued) is misplaced in the ready index ({:?})",
                    h.key, h.counts.queued, h.ready_at
                )));
            }
        }
        let (open, timed) = (st.ready.open.len(), st.ready.timed.len());
        let queued_hosts = st.hosts.iter().filter(|h| h.counts.queued > 0).count();
        if open + timed != queued_hosts {
            return Err(Error::corrupt(format!(
                "the ready index holds {open} + {timed} hosts, {queued_hosts} have queued URLs"
            )));
        }
        Ok(found)
    }
}

impl FrontierStore for Frontier {
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            let mut ch = Change::default();
            sh.enqueue_into(st, &mut ch, urls)?;
            if ch.new == 0 {
                return Ok(0);
            }
            sh.apply(st, ch)
        })
    }

    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            if st.hosts.get(host.0 as usize).is_none_or(|h| h.counts.queued == 0) || max == 0 {
                return Ok(Vec::new());
            }
            let mut ch = Change::default();
            let key = st.key(host.0)?.to_string();
            let tail_queues = st.tails.queues_of(host.0);
            let mut next_tail = 0;
            let mut taken: Vec<Entry> = Vec::with_capacity(max.min(256));
            // A queue's tail comes after its segments: take the tails of the queues
            // before `before` (all of them for `None`).
            let mut take_tails =
                |st: &mut State, ch: &mut Change, taken: &mut Vec<Entry>, before: Option<QueueId>| {
                    while next_tail < tail_queues.len() && taken.len() < max {
                        let q = tail_queues[next_tail];
                        if before.is_some_and(|b| q >= b) {
                            break;
                        }
                        let n = (st.tails.len(q) as usize).min(max - taken.len()) as u32;
                        taken.extend(st.tails.pop_front(q, n, &key)?);
                        ch.journal.pop(q, n);
                        if st.tails.len(q) == 0 {
                            next_tail += 1;
                        }
                    }
                    Ok::<(), Error>(())
                };
            for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, host)) {
                let (k, v) = item?;
                let (q, _) = codec::parse_queue_key(&k)?;
                take_tails(st, &mut ch, &mut taken, Some(q))?;
                if taken.len() >= max {
                    break;
                }
                let mut entries = codec::decode_segment(&v, q, &key)?;
                let want = max - taken.len();
                if entries.len() <= want {
                    ch.batch.remove(k);
                    taken.append(&mut entries);
                } else {
                    let rest = entries.split_off(want);
                    ch.batch.insert(k, codec::encode_segment(&key, rest.iter()));
                    taken.append(&mut entries);
                }
                if taken.len() >= max {
                    break;
                }
            }
            take_tails(st, &mut ch, &mut taken, None)?;
            if taken.is_empty() {
                return Ok(Vec::new());
            }
            let id = st.counters.next_lease;
            st.counters.next_lease += 1;
            for e in taken.iter_mut() {
                e.attempts += 1;
                st.leased.insert(e.fp, (id, e.attempts));
                count(st, &mut ch, host, Some(UrlState::Queued), Some(UrlState::Leased));
            }
            st.lease_remaining.insert(id, taken.len() as u32);
            ch.batch.insert(
                &codec::seq_key(codec::LEASE, id),
                codec::encode_lease(host, &key, &taken),
            );
            sh.apply(st, ch)?;
            Ok(taken.into_iter().map(lease_of).collect())
        })
    }

    fn ack(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<()> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            let mut ch = Change::default();
            for ack in acks {
                let l = ack.lease;
                let Some((id, attempts)) = st.leased.remove(&l.fp) else {
                    tracing::warn!(url = %l.url, "ack of a URL that is not leased here; ignored");
                    continue;
                };
                if let Some(n) = st.lease_remaining.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        st.lease_remaining.remove(&id);
                        ch.batch.remove(&codec::seq_key(codec::LEASE, id));
                    }
                }
                let (state, reason) = match ack.outcome {
                    Outcome::Done => (UrlState::Done, None),
                    Outcome::Failed(r) => (UrlState::Failed, Some(r)),
                    Outcome::Retry if attempts >= sh.opts.max_attempts => (
                        UrlState::Failed,
                        Some(format!("gave up after {attempts} attempts")),
                    ),
                    Outcome::Retry => (UrlState::Queued, None),
                };
                let entry = Entry {
                    fp: l.fp,
                    host: l.host,
                    priority: l.priority,
                    depth: l.depth,
                    attempts,
                    url: l.url,
                    data: l.data,
                };
                if state == UrlState::Queued {
                    count(st, &mut ch, l.host, Some(UrlState::Leased), None);
                    ch.queue(entry);
                } else {
                    count(st, &mut ch, l.host, Some(UrlState::Leased), Some(state));
                    ch.finished.push(finished_record(&entry, state, attempts, reason));
                }
                sh.enqueue_into(st, &mut ch, ack.discovered)?;
            }
            for (sink, cp) in checkpoints {
                ch.batch.insert(codec::meta_key(&format!("c:{sink}")), *cp);
            }
            sh.apply(st, ch)?;
            Ok(())
        })
    }

    fn flush(&self) -> Result<()> {
        let obsolete = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut st.obsolete)
        };
        self.shared.db.flush()?;
        for p in obsolete {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::debug!(file = %p.display(), error = %e, "could not remove a merged run");
            }
        }
        Ok(())
    }

    fn ready_hosts(&self) -> Vec<(HostId, u64)> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = |h: u32| st.hosts.get(h as usize).map_or(0, |h| h.politeness.earliest_ms());
        let mut out: Vec<(HostId, u64)> = st
            .ready
            .open
            .iter()
            .map(|h| (HostId(*h), earliest(*h)))
            .chain(st.ready.timed.iter().map(|(t, h)| (HostId(*h), *t)))
            .collect();
        out.sort_by_key(|(id, t)| (*t, *id));
        out
    }

    fn ready_scan(&self, after: Option<HostId>, now_ms: u64, max: usize) -> ReadyScan {
        let mut guard = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        st.ready.advance(&mut st.hosts, now_ms);
        let open = &st.ready.open;
        let from = after.map_or(0, |a| a.0.saturating_add(1));
        let hosts = open
            .range(from..)
            .chain(open.range(..from))
            .take(max)
            .map(|h| HostId(*h))
            .collect();
        ReadyScan {
            hosts,
            ready: open.len(),
            next_ms: st.ready.timed.first().map(|(t, _)| *t),
        }
    }

    fn host(&self, id: HostId) -> Option<HostInfo> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hosts.get(id.0 as usize).map(|h| HostInfo {
            id,
            key: h.key.clone(),
            counts: h.counts,
            politeness: h.politeness,
        })
    }

    fn politeness(&self, id: HostId) -> Option<Politeness> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hosts.get(id.0 as usize).map(|h| h.politeness)
    }

    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()> {
        let mut st = self.shared.write_lock()?;
        let Some(h) = st.hosts.get_mut(id.0 as usize) else {
            return Ok(());
        };
        h.politeness = p;
        let value = codec::encode_host(&h.key, &p);
        if let Err(e) = self.shared.tree.insert(codec::host_key(codec::HOST, id), value) {
            st.poisoned = true;
            return Err(e.into());
        }
        let st = &mut *st;
        st.ready.place(&mut st.hosts, id.0);
        Ok(())
    }

    fn robots(&self, id: HostId) -> Result<Option<RobotsEntry>> {
        match self.shared.tree.get(codec::host_key(codec::ROBOTS, id))? {
            Some(v) => Ok(Some(codec::decode_robots(&v)?)),
            None => Ok(None),
        }
    }

    fn set_robots(&self, id: HostId, entry: &RobotsEntry) -> Result<()> {
        let _st = self.shared.write_lock()?;
        self.shared
            .tree
            .insert(codec::host_key(codec::ROBOTS, id), codec::encode_robots(entry))?;
        Ok(())
    }

    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            if id.0 as usize >= st.hosts.len() {
                return Ok(0);
            }
            let key = st.key(id.0)?.to_string();
            let mut ch = Change::default();
            let mut n = 0;
            let mut fail = |st: &mut State, ch: &mut Change, e: Entry| {
                ch.finished.push(finished_record(
                    &e,
                    UrlState::Failed,
                    e.attempts,
                    Some(reason.to_string()),
                ));
                count(st, ch, id, Some(UrlState::Queued), Some(UrlState::Failed));
                n += 1;
            };
            // One batch per 256 segments: a crash in between leaves the rest queued.
            let mut segments = 0;
            for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, id)) {
                let (k, v) = item?;
                let (q, _) = codec::parse_queue_key(&k)?;
                segments += 1;
                if segments % 256 == 0 {
                    sh.apply(st, std::mem::take(&mut ch))?;
                }
                ch.batch.remove(k);
                for e in codec::decode_segment(&v, q, &key)? {
                    fail(st, &mut ch, e);
                }
            }
            let queues = st.tails.queues_of(id.0);
            if !queues.is_empty() {
                ch.journal.clear(id.0);
            }
            for q in queues {
                if let Some(t) = st.tails.take(q) {
                    for e in t.decode(q, &key)? {
                        fail(st, &mut ch, e);
                    }
                }
            }
            sh.apply(st, ch)?;
            Ok(n)
        })
    }

    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .shared
            .tree
            .get(codec::meta_key(&format!("c:{sink}")))?
            .map(|v| v.to_vec()))
    }

    fn counts(&self) -> Counts {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .counts
    }

    /// The record of a URL: its state, attempts, depth, class, host and failure reason,
    /// and for a queued or leased URL its data.
    ///
    /// A slower path than the others, for tests and tools (the crawl never needs it):
    /// the seen set says whether the URL is known and, once it is finished, which
    /// finished-log record holds it (one sled read); a queued URL is looked for among
    /// its host's queue segments (a scan of that host's queue).
    fn get(&self, url: &str) -> Result<Option<UrlRecord>> {
        let sh = &*self.shared;
        let fp = Fingerprint::of(url);
        let st = sh.lock()?;
        let Some(v) = st.seen.get(fp)? else {
            return Ok(None);
        };
        let find = |entries: Vec<Entry>| entries.into_iter().find(|e| e.url == url);
        if v & FINISHED != 0 {
            let seq = v & !FINISHED;
            let rec = sh
                .tree
                .get(codec::seq_key(codec::FINISHED, seq))?
                .map(|v| codec::decode_finished(&v, &st.hosts))
                .transpose()?
                .and_then(|recs| recs.into_iter().find(|r| r.url == url));
            return rec
                .map(Some)
                .ok_or_else(|| Error::corrupt(format!("finished {url} is missing from the finished log")));
        }
        if let Some(&(id, attempts)) = st.leased.get(&fp) {
            let entry = sh
                .tree
                .get(codec::seq_key(codec::LEASE, id))?
                .map(|v| codec::decode_lease(&v, &st.hosts))
                .transpose()?
                .and_then(find)
                .ok_or_else(|| Error::corrupt(format!("leased {url} is missing from its lease record")))?;
            let mut rec = finished_record(&entry, UrlState::Leased, attempts, None);
            rec.data = entry.data;
            return Ok(Some(rec));
        }
        let host = host_of(url)
            .and_then(|h| st.host_ids.get(h))
            .copied()
            .ok_or_else(|| Error::corrupt(format!("queued {url} names an unknown host")))?;
        let key = st.key(host.0)?;
        for q in st.tails.queues_of(host.0) {
            if let Some(t) = st.tails.get(q)
                && let Some(e) = find(t.decode(q, key)?)
            {
                return Ok(Some(queued_record(e)));
            }
        }
        for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, host)) {
            let (k, v) = item?;
            let (q, _) = codec::parse_queue_key(&k)?;
            if let Some(e) = find(codec::decode_segment(&v, q, key)?) {
                return Ok(Some(queued_record(e)));
            }
        }
        Err(Error::corrupt(format!("queued {url} is in no queue")))
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
