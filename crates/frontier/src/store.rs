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

use crate::codec::{self, Counters, HostRecord};
use crate::seen::SeenCache;
use crate::types::{
    Ack, Counts, Fingerprint, FrontierStore, HostId, HostInfo, Lease, NewUrl, Outcome, Politeness, RobotsEntry,
    UrlRecord, UrlState,
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
    /// How many times a URL may be leased before it is failed for good, whether the
    /// earlier leases ended in [`Outcome::Retry`] or in a crash. By default, 3.
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { cache_capacity: 32 << 20, seen_cache_slots: 1 << 18, max_attempts: 3 }
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
    /// Sets [`Options::max_attempts`] (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Options {
        self.max_attempts = n.max(1);
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
}

#[derive(Debug)]
struct State {
    counters: Counters,
    hosts: Vec<HostMem>,
    host_ids: HashMap<String, HostId>,
    seen: SeenCache,
    /// Fingerprints leased by this process and not yet acked: guards against acking a
    /// lease twice, which would skew the counters.
    leased: HashSet<Fingerprint>,
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
struct Change {
    batch: sled::Batch,
    touched: HashSet<u32>,
    /// Fingerprints enqueued by this batch, which sled cannot see until it is applied.
    fresh: HashSet<Fingerprint>,
    new: usize,
}

impl Change {
    fn new() -> Change {
        Change { batch: sled::Batch::default(), touched: HashSet::new(), fresh: HashSet::new(), new: 0 }
    }
}

impl Frontier {
    /// Opens (or creates) the frontier in `path`.
    ///
    /// Leases left by an earlier process go back to their queues, with their attempt
    /// counts kept; the ones that used up `max_attempts` are failed as quarantined.
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
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| Error::from_open(path, e))?;
        let tree = db.open_tree(TREE)?;
        let mut report = OpenReport::default();
        match tree.get(codec::meta_key("schema"))? {
            Some(v) => {
                let found = codec::Reader::new(&v, "schema").u32()?;
                if found != SCHEMA_VERSION {
                    return Err(Error::Schema { found, expected: SCHEMA_VERSION });
                }
            }
            None if tree.is_empty() && db.is_empty() => {
                let mut b = sled::Batch::default();
                b.insert(codec::meta_key("schema"), &SCHEMA_VERSION.to_be_bytes());
                b.insert(codec::meta_key("counters"), codec::encode_counters(&Counters::default()));
                tree.apply_batch(b)?;
                db.flush()?;
                report.created = true;
            }
            None => return Err(Error::Foreign { path: path.to_path_buf() }),
        }
        let counters = match tree.get(codec::meta_key("counters"))? {
            Some(v) => codec::decode_counters(&v)?,
            None => return Err(Error::corrupt("the counters record is missing")),
        };
        let mut hosts = Vec::new();
        let mut host_ids = HashMap::new();
        for item in tree.scan_prefix([codec::HOST]) {
            let (k, v) = item?;
            let id = codec::Reader::new(&k[1..], "host key").u32()?;
            if id as usize != hosts.len() {
                return Err(Error::corrupt(format!("host {id} is out of sequence")));
            }
            let rec = codec::decode_host(&v)?;
            host_ids.insert(rec.key.clone(), HostId(id));
            hosts.push(HostMem { key: rec.key, counts: rec.counts, politeness: rec.politeness });
        }
        if hosts.len() as u64 != u64::from(counters.next_host) {
            return Err(Error::corrupt("the host table does not match the counters"));
        }
        let frontier = Frontier {
            db,
            tree,
            path: path.to_path_buf(),
            report,
            state: Mutex::new(State {
                counters,
                hosts,
                host_ids,
                seen: SeenCache::new(opts.seen_cache_slots),
                leased: HashSet::new(),
                poisoned: false,
            }),
            opts,
        };
        let (requeued, quarantined) = frontier.return_leases()?;
        let mut frontier = frontier;
        frontier.report.requeued = requeued;
        frontier.report.quarantined = quarantined;
        Ok(frontier)
    }

    /// Puts back every lease an earlier process left, and flushes.
    fn return_leases(&self) -> Result<(u64, u64)> {
        let mut st = self.lock()?;
        let mut ch = Change::new();
        let (mut requeued, mut quarantined) = (0, 0);
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, _) = item?;
            ch.batch.remove(k.clone());
            let fp = codec::fp_of_key(&k)?;
            let Some(v) = self.tree.get(codec::fp_key(codec::URL, fp))? else { continue };
            let mut rec = codec::decode_url(fp, &v)?;
            if rec.state != UrlState::Leased {
                continue;
            }
            let host = rec.host.0 as usize;
            if host >= st.hosts.len() {
                return Err(Error::corrupt("a leased URL names an unknown host"));
            }
            if rec.attempts >= self.opts.max_attempts {
                rec.state = UrlState::Failed;
                rec.reason =
                    Some(format!("quarantined: leased {} times without completing (crash loop?)", rec.attempts));
                move_count(&mut st, host, UrlState::Leased, UrlState::Failed);
                quarantined += 1;
            } else {
                rec.state = UrlState::Queued;
                ch.batch.insert(&codec::queue_key(rec.host, rec.priority, rec.depth, rec.seq), &fp.0.to_be_bytes());
                move_count(&mut st, host, UrlState::Leased, UrlState::Queued);
                requeued += 1;
            }
            ch.batch.insert(&codec::fp_key(codec::URL, fp), codec::encode_url(&rec));
            ch.touched.insert(rec.host.0);
        }
        if requeued + quarantined > 0 {
            tracing::info!(requeued, quarantined, "returned the leases of an earlier process");
        }
        self.apply(&mut st, ch)?;
        drop(st);
        self.db.flush()?;
        Ok((requeued, quarantined))
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

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(st)
    }

    /// Writes the touched host records and the counters into the batch and applies it.
    /// A failed write poisons the handle: memory may now be ahead of the disk.
    fn apply(&self, st: &mut State, mut ch: Change) -> Result<usize> {
        for id in &ch.touched {
            let h = &st.hosts[*id as usize];
            let rec = HostRecord { key: h.key.clone(), counts: h.counts, politeness: h.politeness };
            ch.batch.insert(&codec::host_key(codec::HOST, HostId(*id)), codec::encode_host(&rec));
        }
        ch.batch.insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
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
            if st.seen.contains(fp) || ch.fresh.contains(&fp) {
                continue;
            }
            if self.tree.contains_key(codec::fp_key(codec::URL, fp))? {
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
                    st.hosts.push(HostMem {
                        key: host_name.to_string(),
                        counts: Counts::default(),
                        politeness: Politeness::default(),
                    });
                    ch.batch.insert(codec::host_name_key(host_name), &id.0.to_be_bytes());
                    id
                }
            };
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            let rec = UrlRecord {
                fp,
                url: u.url,
                state: UrlState::Queued,
                attempts: 0,
                depth: u.depth,
                priority: u.priority,
                host,
                reason: None,
                data: u.data,
                seq,
            };
            ch.batch.insert(&codec::fp_key(codec::URL, fp), codec::encode_url(&rec));
            ch.batch.insert(&codec::queue_key(host, u.priority, u.depth, seq), &fp.0.to_be_bytes());
            st.counters.counts.queued += 1;
            st.hosts[host.0 as usize].counts.queued += 1;
            ch.touched.insert(host.0);
            ch.fresh.insert(fp);
            st.seen.insert(fp);
            ch.new += 1;
        }
        Ok(())
    }

    /// Stores a meta value (for example the crawl's configuration).
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let _st = self.lock()?;
        self.tree.insert(codec::meta_key(&format!("x:{name}")), value)?;
        Ok(())
    }

    /// Reads a meta value stored with [`Frontier::set_meta`].
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(codec::meta_key(&format!("x:{name}")))?.map(|v| v.to_vec()))
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
            .map(|(i, h)| HostInfo { id: HostId(i as u32), key: h.key.clone(), counts: h.counts, politeness: h.politeness })
            .collect()
    }

    /// The number of a host key (`scheme://host[:port]`), if known.
    pub fn host_id(&self, key: &str) -> Option<HostId> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.host_ids.get(key).copied()
    }

    /// Every URL record, in fingerprint order. A scan: for exports and checks.
    pub fn urls(&self) -> impl Iterator<Item = Result<UrlRecord>> + '_ {
        self.tree.scan_prefix([codec::URL]).map(|item| {
            let (k, v) = item?;
            codec::decode_url(codec::fp_of_key(&k)?, &v)
        })
    }

    /// Bytes the state directory takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Scans the whole store and checks that every URL is in exactly one state: a
    /// queued record has exactly one queue entry, a leased one a lease entry, done and
    /// failed ones neither, and the counters match. Returns the counts found.
    pub fn verify(&self) -> Result<Counts> {
        let st = self.lock()?;
        let mut found = Counts::default();
        let mut per_host: HashMap<u32, Counts> = HashMap::new();
        let mut queued_fps = HashSet::new();
        for item in self.tree.scan_prefix([codec::QUEUE]) {
            let (_, v) = item?;
            if !queued_fps.insert(codec::decode_fp(&v)?) {
                return Err(Error::corrupt("a URL is queued twice"));
            }
        }
        let mut leased_fps = HashSet::new();
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, _) = item?;
            leased_fps.insert(codec::fp_of_key(&k)?);
        }
        for rec in self.urls() {
            let rec = rec?;
            let in_q = queued_fps.remove(&rec.fp);
            let in_l = leased_fps.remove(&rec.fp);
            let ok = match rec.state {
                UrlState::Queued => in_q && !in_l,
                UrlState::Leased => in_l && !in_q,
                UrlState::Done | UrlState::Failed => !in_q && !in_l,
            };
            if !ok {
                return Err(Error::corrupt(format!("{} is {:?} but its index entries disagree", rec.url, rec.state)));
            }
            let c = per_host.entry(rec.host.0).or_default();
            for counts in [&mut found, c] {
                match rec.state {
                    UrlState::Queued => counts.queued += 1,
                    UrlState::Leased => counts.leased += 1,
                    UrlState::Done => counts.done += 1,
                    UrlState::Failed => counts.failed += 1,
                }
            }
        }
        if !queued_fps.is_empty() || !leased_fps.is_empty() {
            return Err(Error::corrupt("queue or lease entries point at no URL record"));
        }
        if found != st.counters.counts {
            return Err(Error::corrupt(format!("counters say {:?}, records say {found:?}", st.counters.counts)));
        }
        for (i, h) in st.hosts.iter().enumerate() {
            if per_host.get(&(i as u32)).copied().unwrap_or_default() != h.counts {
                return Err(Error::corrupt(format!("the counts of host {} disagree with its records", h.key)));
            }
        }
        Ok(found)
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
fn move_count(st: &mut State, host: usize, from: UrlState, to: UrlState) {
    bump(&mut st.counters.counts, from, false);
    bump(&mut st.counters.counts, to, true);
    bump(&mut st.hosts[host].counts, from, false);
    bump(&mut st.hosts[host].counts, to, true);
}

impl FrontierStore for Frontier {
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize> {
        let mut st = self.lock()?;
        let mut ch = Change::new();
        self.enqueue_into(&mut st, &mut ch, urls)?;
        if ch.new == 0 {
            return Ok(0);
        }
        self.apply(&mut st, ch)
    }

    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>> {
        let mut st = self.lock()?;
        if host.0 as usize >= st.hosts.len() || st.hosts[host.0 as usize].counts.queued == 0 || max == 0 {
            return Ok(Vec::new());
        }
        let mut ch = Change::new();
        let mut leases = Vec::with_capacity(max.min(256));
        let prefix = codec::host_key(codec::QUEUE, host);
        for item in self.tree.scan_prefix(prefix).take(max) {
            let (k, v) = item?;
            let fp = codec::decode_fp(&v)?;
            ch.batch.remove(k);
            let Some(v) = self.tree.get(codec::fp_key(codec::URL, fp))? else {
                return Err(Error::corrupt("a queue entry points at no URL record"));
            };
            let mut rec = codec::decode_url(fp, &v)?;
            rec.state = UrlState::Leased;
            rec.attempts += 1;
            ch.batch.insert(&codec::fp_key(codec::URL, fp), codec::encode_url(&rec));
            ch.batch.insert(&codec::fp_key(codec::LEASE, fp), &[]);
            move_count(&mut st, host.0 as usize, UrlState::Queued, UrlState::Leased);
            st.leased.insert(fp);
            leases.push(Lease {
                fp,
                url: rec.url,
                host,
                depth: rec.depth,
                priority: rec.priority,
                attempts: rec.attempts,
                data: rec.data,
                seq: rec.seq,
            });
        }
        ch.touched.insert(host.0);
        self.apply(&mut st, ch)?;
        Ok(leases)
    }

    fn ack(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<()> {
        let mut st = self.lock()?;
        let mut ch = Change::new();
        for ack in acks {
            let l = ack.lease;
            if !st.leased.remove(&l.fp) {
                tracing::warn!(url = %l.url, "ack of a URL that is not leased here; ignored");
                continue;
            }
            let (state, reason) = match ack.outcome {
                Outcome::Done => (UrlState::Done, None),
                Outcome::Failed(r) => (UrlState::Failed, Some(r)),
                Outcome::Retry if l.attempts >= self.opts.max_attempts => {
                    (UrlState::Failed, Some(format!("gave up after {} attempts", l.attempts)))
                }
                Outcome::Retry => (UrlState::Queued, None),
            };
            if state == UrlState::Queued {
                ch.batch.insert(&codec::queue_key(l.host, l.priority, l.depth, l.seq), &l.fp.0.to_be_bytes());
            }
            let rec = UrlRecord {
                fp: l.fp,
                url: l.url,
                state,
                attempts: l.attempts,
                depth: l.depth,
                priority: l.priority,
                host: l.host,
                reason,
                data: l.data,
                seq: l.seq,
            };
            ch.batch.insert(&codec::fp_key(codec::URL, l.fp), codec::encode_url(&rec));
            ch.batch.remove(&codec::fp_key(codec::LEASE, l.fp));
            move_count(&mut st, l.host.0 as usize, UrlState::Leased, state);
            ch.touched.insert(l.host.0);
            self.enqueue_into(&mut st, &mut ch, ack.discovered)?;
        }
        for (sink, cp) in checkpoints {
            ch.batch.insert(codec::meta_key(&format!("c:{sink}")), *cp);
        }
        self.apply(&mut st, ch)?;
        Ok(())
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

    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()> {
        let mut st = self.lock()?;
        let Some(h) = st.hosts.get_mut(id.0 as usize) else { return Ok(()) };
        h.politeness = p;
        let rec = HostRecord { key: h.key.clone(), counts: h.counts, politeness: p };
        if let Err(e) = self.tree.insert(codec::host_key(codec::HOST, id), codec::encode_host(&rec)) {
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
        let _st = self.lock()?;
        self.tree.insert(codec::host_key(codec::ROBOTS, id), codec::encode_robots(entry))?;
        Ok(())
    }

    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64> {
        let mut st = self.lock()?;
        if id.0 as usize >= st.hosts.len() {
            return Ok(0);
        }
        let mut ch = Change::new();
        let mut n = 0;
        for item in self.tree.scan_prefix(codec::host_key(codec::QUEUE, id)) {
            let (k, v) = item?;
            let fp = codec::decode_fp(&v)?;
            ch.batch.remove(k);
            let Some(v) = self.tree.get(codec::fp_key(codec::URL, fp))? else { continue };
            let mut rec = codec::decode_url(fp, &v)?;
            rec.state = UrlState::Failed;
            rec.reason = Some(reason.to_string());
            ch.batch.insert(&codec::fp_key(codec::URL, fp), codec::encode_url(&rec));
            move_count(&mut st, id.0 as usize, UrlState::Queued, UrlState::Failed);
            n += 1;
        }
        ch.touched.insert(id.0);
        self.apply(&mut st, ch)?;
        Ok(n)
    }

    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(codec::meta_key(&format!("c:{sink}")))?.map(|v| v.to_vec()))
    }

    fn counts(&self) -> Counts {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).counters.counts
    }

    fn get(&self, url: &str) -> Result<Option<UrlRecord>> {
        let fp = Fingerprint::of(url);
        match self.tree.get(codec::fp_key(codec::URL, fp))? {
            Some(v) => Ok(Some(codec::decode_url(fp, &v)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_keys() {
        assert_eq!(host_of("http://a.example:8080/x?y"), Some("http://a.example:8080"));
        assert_eq!(host_of("https://b.example"), Some("https://b.example"));
        assert_eq!(host_of("http://c.example?q"), Some("http://c.example"));
        assert_eq!(host_of("http:///nohost"), None);
        assert_eq!(host_of("nonsense"), None);
    }
}
