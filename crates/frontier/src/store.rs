//! [`Frontier`]: the sled implementation of [`FrontierStore`].
//!
//! One process owns a state directory (sled's file lock enforces it). Inside the process
//! a single mutex serialises every change, so the in-memory counters and host table
//! always describe exactly the batches that were applied, in order. Each public change
//! is one `apply_batch` on one tree, so it is atomic on disk as well.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::codec::{self, Counters, Entry, Seen};
use crate::seen::{Bloom, SeenCache};
use crate::types::{
    Ack, Counts, Fingerprint, FrontierStore, HostId, HostInfo, Lease, NewUrl, Outcome, Politeness, Priority,
    RobotsEntry, UrlRecord, UrlState,
};
use crate::{Error, Result};

/// The on-disk layout version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

const TREE: &str = "frontier";

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
    /// Bytes of the Bloom filter that lets a new URL skip the sled lookup. It is
    /// rebuilt on open and never misses a stored URL; once it holds many more URLs than
    /// it has bytes it just lets more lookups through. By default, 4 MiB (good to a few
    /// million URLs).
    pub bloom_bytes: usize,
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
            bloom_bytes: 4 << 20,
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

/// The seen set is split into 2^20 buckets by the top bits of the fingerprint. A bucket
/// is one sled key, so the number of keys (and sled's per-page memory) stays bounded
/// however many URLs the crawl knows; at ten million URLs a bucket holds about ten.
const BUCKET_BITS: u32 = 20;

/// Entries per queue segment. New entries fill a host queue's open tail segment up to
/// this, so a queue costs one key per 8 URLs even when every batch spreads over many
/// hosts.
const SEGMENT_CAP: usize = 8;

fn bucket_of(fp: Fingerprint) -> u32 {
    (fp.0 >> (128 - BUCKET_BITS)) as u32
}

fn find(bucket: &[Seen], fp: Fingerprint) -> Option<usize> {
    bucket.iter().position(|s| s.fp == fp)
}

type QueueId = (u32, Priority, u16);

fn parse_queue_key(k: &[u8]) -> Result<(QueueId, u64)> {
    let mut r = codec::Reader::new(k.get(1..).unwrap_or_default(), "queue key");
    let host = r.u32()?;
    let priority =
        Priority::from_u8(r.u8()?).ok_or_else(|| Error::corrupt("a queue key has an unknown class"))?;
    let depth = r.u16()?;
    let seq = r.u64()?;
    Ok(((host, priority, depth), seq))
}

#[derive(Debug)]
struct HostMem {
    key: String,
    counts: Counts,
    politeness: Politeness,
}

#[derive(Debug)]
struct State {
    counters: Counters,
    hosts: Vec<HostMem>,
    host_ids: HashMap<String, HostId>,
    seen: SeenCache,
    bloom: Bloom,
    /// URLs leased by this process and not yet acked: fingerprint to (lease record,
    /// attempts). It also guards against acking a lease twice.
    leased: HashMap<Fingerprint, (u64, u32)>,
    /// Unacked entries per lease record; the record is deleted with its last ack.
    lease_remaining: HashMap<u64, u32>,
    /// The open tail segment of each queue: its seq and entry count.
    tails: HashMap<QueueId, (u64, usize)>,
    poisoned: bool,
}

/// A durable URL frontier in a sled state directory. See the crate docs for the
/// durability contract.
#[derive(Debug)]
pub struct Frontier {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    opts: Options,
    report: OpenReport,
    state: Mutex<State>,
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
    /// Fingerprints enqueued by this batch, which sled cannot see until it is applied.
    fresh: HashSet<Fingerprint>,
    /// Seen buckets read by this batch, and which of them it changed.
    buckets: HashMap<u32, Vec<Seen>>,
    dirty: HashSet<u32>,
    /// New queue entries by queue, in the order the queues appeared.
    groups: Vec<(QueueId, Vec<Entry>)>,
    group_index: HashMap<QueueId, usize>,
    /// Full records of the URLs this batch finished, for the finished log.
    finished: Vec<UrlRecord>,
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

/// Moves one URL of `host` from state `from` to state `to` in the counters.
fn move_count(st: &mut State, host: HostId, from: UrlState, to: UrlState) {
    bump(&mut st.counters.counts, from, false);
    bump(&mut st.counters.counts, to, true);
    if let Some(h) = st.hosts.get_mut(host.0 as usize) {
        bump(&mut h.counts, from, false);
        bump(&mut h.counts, to, true);
    }
}

/// Counts one URL of `host` out of state `from`; `apply` counts it into the queue.
fn leave(st: &mut State, host: HostId, from: UrlState) {
    bump(&mut st.counters.counts, from, false);
    if let Some(h) = st.hosts.get_mut(host.0 as usize) {
        bump(&mut h.counts, from, false);
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
        data: e.data.clone(),
    }
}

impl Frontier {
    /// Opens (or creates) the frontier in `path`.
    ///
    /// Leases left by an earlier process go back to their queues, with their attempt
    /// counts kept; the ones that used up `max_attempts` are failed as quarantined.
    /// Opening reads every seen bucket and queue segment once, to rebuild the Bloom
    /// filter and the per-host counts.
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
            });
        }
        if hosts.len() as u64 != u64::from(counters.next_host) {
            return Err(Error::corrupt("the host table does not match the counters"));
        }
        let mut frontier = Frontier {
            db,
            tree,
            path: path.to_path_buf(),
            report,
            state: Mutex::new(State {
                counters,
                hosts,
                host_ids,
                seen: SeenCache::new(opts.seen_cache_slots),
                bloom: Bloom::new(opts.bloom_bytes),
                leased: HashMap::new(),
                lease_remaining: HashMap::new(),
                tails: HashMap::new(),
                poisoned: false,
            }),
            opts,
        };
        if frontier.opts.read_only {
            frontier.note_leases()?;
        } else {
            let (requeued, quarantined) = frontier.return_leases()?;
            frontier.report.requeued = requeued;
            frontier.report.quarantined = quarantined;
        }
        frontier.recount()?;
        Ok(frontier)
    }

    /// The seen bucket `b`, read through the change (so later reads see its edits).
    fn bucket<'c>(&self, ch: &'c mut Change, b: u32) -> Result<&'c mut Vec<Seen>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = ch.buckets.entry(b) {
            let entries = match self.tree.get(codec::bucket_key(b))? {
                Some(v) => codec::decode_bucket(&v)?,
                None => Vec::new(),
            };
            slot.insert(entries);
        }
        Ok(ch.buckets.get_mut(&b).expect("inserted above"))
    }

    /// Read-only: takes note of the leases an earlier process left (the entries not
    /// acked before it stopped), so that they read as leased, without changing them.
    fn note_leases(&self) -> Result<()> {
        let mut st = self.lock()?;
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            let id = codec::Reader::new(k.get(1..).unwrap_or_default(), "lease key").u64()?;
            for e in codec::decode_entries(&v)? {
                let Some(v) = self.tree.get(codec::bucket_key(bucket_of(e.fp)))? else {
                    continue;
                };
                let bucket = codec::decode_bucket(&v)?;
                let Some(i) = find(&bucket, e.fp) else { continue };
                // As in `return_leases`: an entry acked before the stop is not leased.
                if bucket[i].state == UrlState::Queued && bucket[i].attempts < e.attempts {
                    st.leased.insert(e.fp, (id, e.attempts));
                }
            }
        }
        Ok(())
    }

    /// Puts back every lease an earlier process left, and flushes.
    fn return_leases(&self) -> Result<(u64, u64)> {
        let mut st = self.lock()?;
        let mut ch = Change::default();
        let (mut requeued, mut quarantined) = (0, 0);
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            ch.batch.remove(k);
            for e in codec::decode_entries(&v)? {
                let b = bucket_of(e.fp);
                let max = self.opts.max_attempts;
                let bucket = self.bucket(&mut ch, b)?;
                let Some(i) = find(bucket, e.fp) else { continue };
                let seen = &mut bucket[i];
                // An unacked lease is one attempt ahead of the seen set, which counts
                // only completed attempts; an entry acked before the crash (done,
                // failed, or put back by a retry) is not.
                if seen.state != UrlState::Queued || seen.attempts >= e.attempts {
                    continue;
                }
                seen.attempts = e.attempts;
                let quarantine = e.attempts >= max;
                if quarantine {
                    let reason = format!(
                        "quarantined: leased {} times without completing (crash loop?)",
                        e.attempts
                    );
                    seen.state = UrlState::Failed;
                    seen.reason = Some(reason.clone());
                    ch.finished
                        .push(finished_record(&e, UrlState::Failed, e.attempts, Some(reason)));
                    move_count(&mut st, e.host, UrlState::Leased, UrlState::Failed);
                    quarantined += 1;
                } else {
                    leave(&mut st, e.host, UrlState::Leased);
                    requeued += 1;
                }
                ch.dirty.insert(b);
                if !quarantine {
                    ch.queue(e);
                }
            }
        }
        if requeued + quarantined > 0 {
            tracing::info!(requeued, quarantined, "returned the leases of an earlier process");
        }
        self.apply(&mut st, ch)?;
        drop(st);
        self.db.flush()?;
        Ok((requeued, quarantined))
    }

    /// Rebuilds the per-host counts and the Bloom filter from the stored keys, and
    /// repairs the global counts if they disagree (they only can after a bug).
    fn recount(&self) -> Result<()> {
        let mut st = self.lock()?;
        let mut total = Counts::default();
        for h in st.hosts.iter_mut() {
            h.counts = Counts::default();
        }
        for item in self.tree.scan_prefix([codec::QUEUE]) {
            let (k, v) = item?;
            let host = codec::host_of_key(&k)?;
            let n = u64::from(codec::entry_count(&v)?);
            let h = st
                .hosts
                .get_mut(host.0 as usize)
                .ok_or_else(|| Error::corrupt("a queue names an unknown host"))?;
            h.counts.queued += n;
            total.queued += n;
        }
        for item in self.tree.scan_prefix([codec::BUCKET]) {
            let (_, v) = item?;
            for seen in codec::decode_bucket(&v)? {
                st.bloom.insert(seen.fp);
                let h = st
                    .hosts
                    .get_mut(seen.host.0 as usize)
                    .ok_or_else(|| Error::corrupt("a URL names an unknown host"))?;
                if matches!(seen.state, UrlState::Done | UrlState::Failed) {
                    bump(&mut h.counts, seen.state, true);
                    bump(&mut total, seen.state, true);
                }
            }
        }
        // Read-only, the earlier process's leases are still out: count them.
        let leased: Vec<Fingerprint> = st.leased.keys().copied().collect();
        for fp in leased {
            if let Some(v) = self.tree.get(codec::bucket_key(bucket_of(fp)))?
                && let Some(seen) = codec::decode_bucket(&v)?.into_iter().find(|s| s.fp == fp)
                && let Some(h) = st.hosts.get_mut(seen.host.0 as usize)
            {
                h.counts.leased += 1;
                total.leased += 1;
            }
        }
        if total != st.counters.counts && self.opts.read_only {
            tracing::warn!(stored = ?st.counters.counts, found = ?total, "the frontier's counters disagree with its records (read-only: not repaired)");
            st.counters.counts = total;
        } else if total != st.counters.counts {
            tracing::warn!(stored = ?st.counters.counts, found = ?total, "repaired the frontier's counters");
            st.counters.counts = total;
            let c = codec::encode_counters(&st.counters);
            self.tree.insert(codec::meta_key("counters"), c)?;
        }
        Ok(())
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// [`Frontier::lock`] for a call that changes the state: refused when read-only.
    fn write_lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.opts.read_only {
            return Err(Error::ReadOnly);
        }
        self.lock()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(st)
    }

    /// Writes the changed buckets, the new queue entries (filling open tail segments
    /// first), the finished log and the counters into the batch, and applies it. A
    /// failed write poisons the handle: memory may now be ahead of the disk.
    fn apply(&self, st: &mut State, mut ch: Change) -> Result<usize> {
        for b in &ch.dirty {
            if let Some(entries) = ch.buckets.get(b) {
                ch.batch
                    .insert(&codec::bucket_key(*b), codec::encode_bucket(entries));
            }
        }
        for (qid @ (host, priority, depth), entries) in std::mem::take(&mut ch.groups) {
            for _ in &entries {
                bump(&mut st.counters.counts, UrlState::Queued, true);
                if let Some(h) = st.hosts.get_mut(host as usize) {
                    bump(&mut h.counts, UrlState::Queued, true);
                }
            }
            let mut rest = entries.as_slice();
            if let Some(&(seq, count)) = st.tails.get(&qid)
                && count < SEGMENT_CAP
            {
                let key = codec::queue_key(HostId(host), priority, depth, seq);
                if let Some(v) = self.tree.get(key)? {
                    let mut seg = codec::decode_entries(&v)?;
                    let take = (SEGMENT_CAP - seg.len().min(SEGMENT_CAP)).min(rest.len());
                    seg.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    ch.batch.insert(&key, codec::encode_entries(seg.iter()));
                    st.tails.insert(qid, (seq, seg.len()));
                }
            }
            for chunk in rest.chunks(SEGMENT_CAP) {
                let seq = st.counters.next_seq;
                st.counters.next_seq += 1;
                let key = codec::queue_key(HostId(host), priority, depth, seq);
                ch.batch.insert(&key, codec::encode_entries(chunk.iter()));
                st.tails.insert(qid, (seq, chunk.len()));
            }
        }
        if !ch.finished.is_empty() {
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            ch.batch.insert(
                &codec::seq_key(codec::FINISHED, seq),
                codec::encode_finished(&ch.finished),
            );
        }
        ch.batch
            .insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
        if let Err(e) = self.tree.apply_batch(ch.batch) {
            st.poisoned = true;
            return Err(e.into());
        }
        Ok(ch.new)
    }

    /// Adds the unseen URLs of `urls` to `ch`.
    fn enqueue_into(&self, st: &mut State, ch: &mut Change, urls: Vec<NewUrl>) -> Result<()> {
        for u in urls {
            let fp = Fingerprint::of(&u.url);
            if ch.fresh.contains(&fp) || st.seen.contains(fp) {
                continue;
            }
            let b = bucket_of(fp);
            if st.bloom.maybe_contains(fp) && find(self.bucket(ch, b)?, fp).is_some() {
                st.seen.insert(fp);
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
                    });
                    id
                }
            };
            self.bucket(ch, b)?.push(Seen {
                fp,
                state: UrlState::Queued,
                attempts: 0,
                depth: u.depth,
                priority: u.priority,
                host,
                reason: None,
            });
            ch.dirty.insert(b);
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
            st.seen.insert(fp);
            st.bloom.insert(fp);
            ch.new += 1;
        }
        Ok(())
    }

    /// Stores a meta value (for example the crawl's configuration).
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let _st = self.write_lock()?;
        self.tree.insert(codec::meta_key(&format!("x:{name}")), value)?;
        Ok(())
    }

    /// Reads a meta value stored with [`Frontier::set_meta`].
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
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
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.host_ids.get(key).copied()
    }

    /// Every URL with its full record: the finished ones in the order they finished,
    /// then the queued ones in queue order, then the ones this process holds leased.
    /// A scan, for exports and checks.
    pub fn urls(&self) -> impl Iterator<Item = Result<UrlRecord>> + '_ {
        let finished = self.tree.scan_prefix([codec::FINISHED]).flat_map(|item| {
            match item
                .map_err(Error::from)
                .and_then(|(_, v)| codec::decode_finished(&v))
            {
                Ok(recs) => recs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        // Queue entries are queued; lease entries count only while this process holds
        // the lease (an acked entry can linger in a lease record until its last ack).
        let from_entries = |prefix: u8, leases: bool| {
            self.tree.scan_prefix([prefix]).flat_map(move |item| {
                let entries = item
                    .map_err(Error::from)
                    .and_then(|(_, v)| codec::decode_entries(&v));
                match entries {
                    Err(e) => vec![Err(e)],
                    Ok(entries) => {
                        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                        entries
                            .into_iter()
                            .filter_map(|e| {
                                let lease = st.leased.get(&e.fp).copied();
                                let (state, attempts) = match (leases, lease) {
                                    (false, _) => (UrlState::Queued, e.attempts),
                                    (true, Some((_, attempts))) => (UrlState::Leased, attempts),
                                    (true, None) => return None,
                                };
                                let mut rec = finished_record(&e, state, attempts, None);
                                rec.data = e.data;
                                Some(Ok(rec))
                            })
                            .collect()
                    }
                }
            })
        };
        finished
            .chain(from_entries(codec::QUEUE, false))
            .chain(from_entries(codec::LEASE, true))
    }

    /// Bytes the state directory takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Scans the whole store and checks that every URL is in exactly one state: a
    /// queued URL sits in exactly one queue segment, a leased one is held by this
    /// process and in no segment, done and failed ones are in neither and appear once
    /// in the finished log, and the global and per-host counts match. Returns the
    /// counts found.
    pub fn verify(&self) -> Result<Counts> {
        let st = self.lock()?;
        let mut queued_fps = HashSet::new();
        for item in self.tree.scan_prefix([codec::QUEUE]) {
            let (_, v) = item?;
            for e in codec::decode_entries(&v)? {
                if !queued_fps.insert(e.fp) {
                    return Err(Error::corrupt(format!("{} is queued twice", e.url)));
                }
            }
        }
        let mut finished_fps = HashSet::new();
        for item in self.tree.scan_prefix([codec::FINISHED]) {
            let (_, v) = item?;
            for r in codec::decode_finished(&v)? {
                if !finished_fps.insert(r.fp) {
                    return Err(Error::corrupt(format!("{} finished twice", r.url)));
                }
            }
        }
        let mut found = Counts::default();
        let mut per_host: HashMap<u32, Counts> = HashMap::new();
        for item in self.tree.scan_prefix([codec::BUCKET]) {
            let (k, v) = item?;
            let b = codec::host_of_key(&k)?.0;
            for seen in codec::decode_bucket(&v)? {
                if bucket_of(seen.fp) != b {
                    return Err(Error::corrupt("a fingerprint sits in the wrong bucket"));
                }
                let in_q = queued_fps.remove(&seen.fp);
                let leased = st.leased.contains_key(&seen.fp);
                let finished = finished_fps.remove(&seen.fp);
                let state = match seen.state {
                    UrlState::Queued if in_q && !leased && !finished => UrlState::Queued,
                    UrlState::Queued if leased && !in_q && !finished => UrlState::Leased,
                    UrlState::Done | UrlState::Failed if !in_q && !leased && finished => seen.state,
                    _ => {
                        return Err(Error::corrupt(format!(
                            "{:032x} is {:?} in the seen set, queued={in_q}, leased={leased}, finished={finished}",
                            seen.fp.0, seen.state
                        )));
                    }
                };
                bump(&mut found, state, true);
                bump(per_host.entry(seen.host.0).or_default(), state, true);
            }
        }
        if !queued_fps.is_empty() || !finished_fps.is_empty() {
            return Err(Error::corrupt(
                "queue or finished entries are missing from the seen set",
            ));
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
        }
        Ok(found)
    }
}

impl FrontierStore for Frontier {
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize> {
        let mut st = self.write_lock()?;
        // Any error past this point may leave memory ahead of the disk: poison the
        // handle so that the caller reopens (and recovers) instead of going on.
        #[allow(clippy::redundant_closure_call)]
        let result = (|| -> Result<usize> {
            let mut ch = Change::default();
            self.enqueue_into(&mut st, &mut ch, urls)?;
            if ch.new == 0 {
                return Ok(0);
            }
            self.apply(&mut st, ch)
        })();
        if result.is_err() {
            st.poisoned = true;
        }
        result
    }

    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>> {
        let mut st = self.write_lock()?;
        // Any error past this point may leave memory ahead of the disk: poison the
        // handle so that the caller reopens (and recovers) instead of going on.
        #[allow(clippy::redundant_closure_call)]
        let result = (|| -> Result<Vec<Lease>> {
            if st.hosts.get(host.0 as usize).is_none_or(|h| h.counts.queued == 0) || max == 0 {
                return Ok(Vec::new());
            }
            let mut ch = Change::default();
            let mut taken: Vec<Entry> = Vec::with_capacity(max.min(256));
            for item in self.tree.scan_prefix(codec::host_key(codec::QUEUE, host)) {
                let (k, v) = item?;
                let (qid, seq) = parse_queue_key(&k)?;
                let mut entries = codec::decode_entries(&v)?;
                let want = max - taken.len();
                let is_tail = st.tails.get(&qid).is_some_and(|(s, _)| *s == seq);
                if entries.len() <= want {
                    ch.batch.remove(k);
                    taken.append(&mut entries);
                    if is_tail {
                        st.tails.remove(&qid);
                    }
                } else {
                    let rest = entries.split_off(want);
                    ch.batch.insert(k, codec::encode_entries(rest.iter()));
                    taken.append(&mut entries);
                    if is_tail {
                        st.tails.insert(qid, (seq, rest.len()));
                    }
                }
                if taken.len() >= max {
                    break;
                }
            }
            let id = st.counters.next_lease;
            st.counters.next_lease += 1;
            for e in taken.iter_mut() {
                e.attempts += 1;
                st.leased.insert(e.fp, (id, e.attempts));
                move_count(&mut st, host, UrlState::Queued, UrlState::Leased);
            }
            st.lease_remaining.insert(id, taken.len() as u32);
            ch.batch
                .insert(&codec::lease_key(id), codec::encode_entries(taken.iter()));
            self.apply(&mut st, ch)?;
            Ok(taken
                .into_iter()
                .map(|e| Lease {
                    fp: e.fp,
                    url: e.url,
                    host: e.host,
                    depth: e.depth,
                    priority: e.priority,
                    attempts: e.attempts,
                    data: e.data,
                })
                .collect())
        })();
        if result.is_err() {
            st.poisoned = true;
        }
        result
    }

    fn ack(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<()> {
        let mut st = self.write_lock()?;
        // Any error past this point may leave memory ahead of the disk: poison the
        // handle so that the caller reopens (and recovers) instead of going on.
        #[allow(clippy::redundant_closure_call)]
        let result = (|| -> Result<()> {
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
                        ch.batch.remove(&codec::lease_key(id));
                    }
                }
                let (state, reason) = match ack.outcome {
                    Outcome::Done => (UrlState::Done, None),
                    Outcome::Failed(r) => (UrlState::Failed, Some(r)),
                    Outcome::Retry if attempts >= self.opts.max_attempts => (
                        UrlState::Failed,
                        Some(format!("gave up after {attempts} attempts")),
                    ),
                    Outcome::Retry => (UrlState::Queued, None),
                };
                let b = bucket_of(l.fp);
                let bucket = self.bucket(&mut ch, b)?;
                let i = find(bucket, l.fp)
                    .ok_or_else(|| Error::corrupt("a leased URL is missing from the seen set"))?;
                bucket[i].state = state;
                bucket[i].attempts = attempts;
                bucket[i].reason = reason.clone();
                ch.dirty.insert(b);
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
                    leave(&mut st, l.host, UrlState::Leased);
                    ch.queue(entry);
                } else {
                    move_count(&mut st, l.host, UrlState::Leased, state);
                    ch.finished.push(finished_record(&entry, state, attempts, reason));
                }
                self.enqueue_into(&mut st, &mut ch, ack.discovered)?;
            }
            for (sink, cp) in checkpoints {
                ch.batch.insert(codec::meta_key(&format!("c:{sink}")), *cp);
            }
            self.apply(&mut st, ch)?;
            Ok(())
        })();
        if result.is_err() {
            st.poisoned = true;
        }
        result
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn ready_hosts(&self) -> Vec<(HostId, u64)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(HostId, u64)> = st
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.counts.queued > 0)
            .map(|(i, h)| (HostId(i as u32), h.politeness.earliest_ms()))
            .collect();
        out.sort_by_key(|(id, t)| (*t, *id));
        out
    }

    fn host(&self, id: HostId) -> Option<HostInfo> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hosts.get(id.0 as usize).map(|h| HostInfo {
            id,
            key: h.key.clone(),
            counts: h.counts,
            politeness: h.politeness,
        })
    }

    fn politeness(&self, id: HostId) -> Option<Politeness> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hosts.get(id.0 as usize).map(|h| h.politeness)
    }

    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()> {
        let mut st = self.write_lock()?;
        let Some(h) = st.hosts.get_mut(id.0 as usize) else {
            return Ok(());
        };
        h.politeness = p;
        let value = codec::encode_host(&h.key, &p);
        if let Err(e) = self.tree.insert(codec::host_key(codec::HOST, id), value) {
            st.poisoned = true;
            return Err(e.into());
        }
        Ok(())
    }

    fn robots(&self, id: HostId) -> Result<Option<RobotsEntry>> {
        match self.tree.get(codec::host_key(codec::ROBOTS, id))? {
            Some(v) => Ok(Some(codec::decode_robots(&v)?)),
            None => Ok(None),
        }
    }

    fn set_robots(&self, id: HostId, entry: &RobotsEntry) -> Result<()> {
        let _st = self.write_lock()?;
        self.tree
            .insert(codec::host_key(codec::ROBOTS, id), codec::encode_robots(entry))?;
        Ok(())
    }

    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64> {
        let mut st = self.write_lock()?;
        // Any error past this point may leave memory ahead of the disk: poison the
        // handle so that the caller reopens (and recovers) instead of going on.
        #[allow(clippy::redundant_closure_call)]
        let result = (|| -> Result<u64> {
            if id.0 as usize >= st.hosts.len() {
                return Ok(0);
            }
            let mut ch = Change::default();
            let mut n = 0;
            for item in self.tree.scan_prefix(codec::host_key(codec::QUEUE, id)) {
                let (k, v) = item?;
                ch.batch.remove(k);
                for e in codec::decode_entries(&v)? {
                    let b = bucket_of(e.fp);
                    let bucket = self.bucket(&mut ch, b)?;
                    if let Some(i) = find(bucket, e.fp) {
                        bucket[i].state = UrlState::Failed;
                        bucket[i].reason = Some(reason.to_string());
                        ch.dirty.insert(b);
                    }
                    ch.finished.push(finished_record(
                        &e,
                        UrlState::Failed,
                        e.attempts,
                        Some(reason.to_string()),
                    ));
                    move_count(&mut st, id, UrlState::Queued, UrlState::Failed);
                    n += 1;
                }
            }
            st.tails.retain(|(host, _, _), _| *host != id.0);
            self.apply(&mut st, ch)?;
            Ok(n)
        })();
        if result.is_err() {
            st.poisoned = true;
        }
        result
    }

    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree
            .get(codec::meta_key(&format!("c:{sink}")))?
            .map(|v| v.to_vec()))
    }

    fn counts(&self) -> Counts {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .counts
    }

    /// The record of a URL, from the seen set: its URL (as given), state, attempts,
    /// depth, class, host and failure reason. Its data comes with its lease and with
    /// [`Frontier::urls`], not from here.
    fn get(&self, url: &str) -> Result<Option<UrlRecord>> {
        let fp = Fingerprint::of(url);
        let Some(v) = self.tree.get(codec::bucket_key(bucket_of(fp)))? else {
            return Ok(None);
        };
        let bucket = codec::decode_bucket(&v)?;
        let Some(i) = find(&bucket, fp) else {
            return Ok(None);
        };
        let seen = &bucket[i];
        let mut rec = UrlRecord {
            fp,
            url: url.to_string(),
            state: seen.state,
            attempts: seen.attempts,
            depth: seen.depth,
            priority: seen.priority,
            host: seen.host,
            reason: seen.reason.clone(),
            data: Vec::new(),
        };
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, attempts)) = st.leased.get(&fp) {
            rec.state = UrlState::Leased;
            rec.attempts = *attempts;
        }
        Ok(Some(rec))
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
