//! The sled layout: key prefixes and the binary encoding of records.
//!
//! Everything that must change atomically lives in one sled tree, because only a batch
//! on a single tree is atomic. Keys start with one prefix byte:
//!
//! | key | value |
//! |---|---|
//! | `q` host(4) class(1) depth(2) seq(8) | queue segment: [`SEGMENT_CAP`](crate::store) queued entries of that host, class and depth |
//! | `l` lease(8) | lease record: the entries handed out by one `lease` call |
//! | `d` seq(8) | finished log: the records of the URLs one call finished |
//! | `j` seq(8) | journal: what one batch did to the in-memory state (seen set, queue tails, host counts) |
//! | `h` host(4) | host record: key, politeness |
//! | `H` key | host(4): host key to number |
//! | `c` host(4) | host counts as of the last checkpoint |
//! | `r` host(4) | robots entry |
//! | `m` name | meta: schema, counters, the seen set's runs and watermarks, `c:`sink checkpoints, `x:` user values |
//!
//! Integers in keys are big-endian so that keys sort numerically; inside values they
//! are LEB128 varints. A URL is stored without its host key (`scheme://host[:port]`,
//! known from the host number) and its fingerprint is recomputed from it, so a queued
//! URL costs a few bytes beyond its path. Decoding never panics: a short or malformed
//! value is an [`Error::Corrupt`].

use crate::types::{Counts, Fingerprint, HostId, Politeness, Priority, RobotsEntry, UrlRecord, UrlState};
use crate::{Error, Result};

pub(crate) const QUEUE: u8 = b'q';
pub(crate) const LEASE: u8 = b'l';
pub(crate) const FINISHED: u8 = b'd';
pub(crate) const JOURNAL: u8 = b'j';
pub(crate) const HOST: u8 = b'h';
pub(crate) const HOST_NAME: u8 = b'H';
pub(crate) const HOST_COUNTS: u8 = b'c';
pub(crate) const ROBOTS: u8 = b'r';
pub(crate) const META: u8 = b'm';

/// A queue: host, class, depth.
pub(crate) type QueueId = (u32, Priority, u16);

/// A key made of a prefix and a sequence number (lease, finished and journal records).
pub(crate) fn seq_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn host_key(prefix: u8, id: HostId) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = prefix;
    k[1..].copy_from_slice(&id.0.to_be_bytes());
    k
}

pub(crate) fn queue_key(q: QueueId, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0] = QUEUE;
    k[1..5].copy_from_slice(&q.0.to_be_bytes());
    k[5] = q.1 as u8;
    k[6..8].copy_from_slice(&q.2.to_be_bytes());
    k[8..16].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn parse_queue_key(k: &[u8]) -> Result<(QueueId, u64)> {
    let mut r = Reader::new(k.get(1..).unwrap_or_default(), "queue key");
    let host = r.u32()?;
    let priority = priority(r.u8()?)?;
    let depth = r.u16()?;
    let seq = r.u64()?;
    Ok(((host, priority, depth), seq))
}

/// The sequence number inside a `prefix` + seq(8) key.
pub(crate) fn parse_seq_key(k: &[u8]) -> Result<u64> {
    Reader::new(k.get(1..).unwrap_or_default(), "key").u64()
}

pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(META);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn host_name_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(HOST_NAME);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The host number inside a `q`, `h` or `c` key.
pub(crate) fn host_of_key(k: &[u8]) -> Result<HostId> {
    Ok(HostId(Reader::new(k.get(1..).unwrap_or_default(), "key").u32()?))
}

fn priority(b: u8) -> Result<Priority> {
    Priority::from_u8(b).ok_or_else(|| Error::corrupt("a record has an unknown queue class"))
}

/// A cursor over a value that turns every short read into `Error::Corrupt`.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }

    fn short(&self) -> Error {
        Error::corrupt(format!("a {} record is truncated", self.what))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.short());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_be_bytes(self.array()?))
    }

    /// A LEB128 varint.
    pub(crate) fn var(&mut self) -> Result<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(Error::corrupt(format!(
            "a {} record holds a bad number",
            self.what
        )))
    }

    fn var_u32(&mut self) -> Result<u32> {
        u32::try_from(self.var()?)
            .map_err(|_| Error::corrupt(format!("a {} record holds a bad number", self.what)))
    }

    fn var_u16(&mut self) -> Result<u16> {
        u16::try_from(self.var()?)
            .map_err(|_| Error::corrupt(format!("a {} record holds a bad number", self.what)))
    }

    fn len(&mut self) -> Result<usize> {
        usize::try_from(self.var()?).map_err(|_| self.short())
    }

    /// Bytes with a varint length.
    pub(crate) fn var_bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// Bytes with a 4-byte length (the fixed-width records: host, robots).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let what = self.what;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::corrupt(format!("a {what} record holds invalid UTF-8")))
    }

    fn var_str(&mut self) -> Result<&'a str> {
        let what = self.what;
        std::str::from_utf8(self.var_bytes()?)
            .map_err(|_| Error::corrupt(format!("a {what} record holds invalid UTF-8")))
    }
}

pub(crate) fn put_var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_var_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_var(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Where host keys come from when a URL is rebuilt from its stored suffix.
pub(crate) trait HostKeys {
    fn host_key(&self, id: HostId) -> Option<&str>;
}

fn key_of<H: HostKeys + ?Sized>(hosts: &H, id: HostId) -> Result<&str> {
    hosts
        .host_key(id)
        .ok_or_else(|| Error::corrupt(format!("a record names unknown host {}", id.0)))
}

/// The part of `url` after its host key. The frontier only stores URLs under the host
/// that `host_of` cut from them, so the prefix is always there; a URL that somehow
/// lacks it is stored whole behind a marker (see [`rebuild`]).
fn suffix_of<'u>(url: &'u str, host_key: &str) -> (bool, &'u str) {
    match url.strip_prefix(host_key) {
        Some(rest) => (true, rest),
        None => (false, url),
    }
}

fn rebuild(host_key: &str, prefixed: bool, suffix: &str) -> String {
    if prefixed {
        let mut s = String::with_capacity(host_key.len() + suffix.len());
        s.push_str(host_key);
        s.push_str(suffix);
        s
    } else {
        suffix.to_string()
    }
}

/// One URL waiting in a queue segment or a tail, or handed out in a lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) fp: Fingerprint,
    pub(crate) host: HostId,
    pub(crate) priority: Priority,
    pub(crate) depth: u16,
    pub(crate) attempts: u32,
    pub(crate) url: String,
    pub(crate) data: Vec<u8>,
}

/// The entries of one queue, encoded as a segment's value is (without the count):
/// each entry is `shared` (bytes its URL suffix shares with the previous entry's),
/// the rest of the suffix, attempts and data. Consecutive URLs of one host and depth
/// share long prefixes, so this front coding roughly halves a segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentBuf {
    pub(crate) bytes: Vec<u8>,
    pub(crate) n: u32,
    last: Vec<u8>,
}

impl SegmentBuf {
    /// Appends an entry. The queue's host key is needed to strip the URL.
    pub(crate) fn push(&mut self, host_key: &str, attempts: u32, url: &str, data: &[u8]) {
        let (prefixed, suffix) = suffix_of(url, host_key);
        let suffix = suffix.as_bytes();
        let shared = if prefixed {
            self.last.iter().zip(suffix).take_while(|(a, b)| a == b).count()
        } else {
            0
        };
        // Bit 0 of the first number says whether the host key was stripped.
        put_var(&mut self.bytes, ((shared as u64) << 1) | u64::from(prefixed));
        put_var_bytes(&mut self.bytes, &suffix[shared..]);
        put_var(&mut self.bytes, u64::from(attempts));
        put_var_bytes(&mut self.bytes, data);
        self.last.clear();
        if prefixed {
            self.last.extend_from_slice(suffix);
        }
        self.n += 1;
    }

    /// Bytes of memory it holds.
    pub(crate) fn footprint(&self) -> usize {
        self.bytes.capacity() + self.last.capacity() + 64
    }

    /// The segment value: the count, then the entries.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 5);
        put_var(&mut out, u64::from(self.n));
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Decodes the entries of queue `q`.
    pub(crate) fn decode(&self, q: QueueId, host_key: &str) -> Result<Vec<Entry>> {
        decode_entries(&mut Reader::new(&self.bytes, "tail"), self.n, q, host_key)
    }
}

fn decode_entries(r: &mut Reader<'_>, n: u32, q: QueueId, host_key: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity((n as usize).min(4096));
    let mut last: Vec<u8> = Vec::new();
    for _ in 0..n {
        let head = r.var()?;
        let (shared, prefixed) = ((head >> 1) as usize, head & 1 == 1);
        let rest = r.var_bytes()?;
        let attempts = r.var_u32()?;
        let data = r.var_bytes()?.to_vec();
        if shared > last.len() {
            return Err(Error::corrupt("a queue entry shares more than its neighbour has"));
        }
        last.truncate(shared);
        last.extend_from_slice(rest);
        let suffix =
            std::str::from_utf8(&last).map_err(|_| Error::corrupt("a queue entry holds invalid UTF-8"))?;
        let url = rebuild(host_key, prefixed, suffix);
        if !prefixed {
            last.clear();
        }
        out.push(Entry {
            fp: Fingerprint::of(&url),
            host: HostId(q.0),
            priority: q.1,
            depth: q.2,
            attempts,
            url,
            data,
        });
    }
    Ok(out)
}

/// Encodes entries of queue `q` as a segment value.
pub(crate) fn encode_segment<'a>(host_key: &str, entries: impl Iterator<Item = &'a Entry>) -> Vec<u8> {
    let mut b = SegmentBuf::default();
    for e in entries {
        b.push(host_key, e.attempts, &e.url, &e.data);
    }
    b.encode()
}

pub(crate) fn decode_segment(v: &[u8], q: QueueId, host_key: &str) -> Result<Vec<Entry>> {
    let mut r = Reader::new(v, "segment");
    let n = r.var_u32()?;
    let out = decode_entries(&mut r, n, q, host_key)?;
    if !r.is_empty() {
        return Err(Error::corrupt("a queue segment has trailing bytes"));
    }
    Ok(out)
}

/// A lease record: the host, then per entry its class, depth, attempts, URL and data.
pub(crate) fn encode_lease(host: HostId, host_key: &str, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        8 + entries
            .iter()
            .map(|e| 8 + e.url.len() + e.data.len())
            .sum::<usize>(),
    );
    put_var(&mut out, u64::from(host.0));
    put_var(&mut out, entries.len() as u64);
    for e in entries {
        out.push(e.priority as u8);
        put_var(&mut out, u64::from(e.depth));
        put_var(&mut out, u64::from(e.attempts));
        let (prefixed, suffix) = suffix_of(&e.url, host_key);
        out.push(u8::from(prefixed));
        put_var_bytes(&mut out, suffix.as_bytes());
        put_var_bytes(&mut out, &e.data);
    }
    out
}

pub(crate) fn decode_lease<H: HostKeys + ?Sized>(v: &[u8], hosts: &H) -> Result<Vec<Entry>> {
    let mut r = Reader::new(v, "lease");
    let host = HostId(r.var_u32()?);
    let key = key_of(hosts, host)?;
    let n = r.var()?;
    let mut out = Vec::with_capacity((n as usize).min(4096));
    for _ in 0..n {
        let priority = priority(r.u8()?)?;
        let depth = r.var_u16()?;
        let attempts = r.var_u32()?;
        let prefixed = r.u8()? == 1;
        let url = rebuild(key, prefixed, r.var_str()?);
        let data = r.var_bytes()?.to_vec();
        out.push(Entry {
            fp: Fingerprint::of(&url),
            host,
            priority,
            depth,
            attempts,
            url,
            data,
        });
    }
    if !r.is_empty() {
        return Err(Error::corrupt("a lease record has trailing bytes"));
    }
    Ok(out)
}

/// Encodes the records of finished URLs, for the finished log. The data given with
/// [`NewUrl::data`](crate::NewUrl) is not kept: it was for the fetch.
pub(crate) fn encode_finished<H: HostKeys + ?Sized>(recs: &[UrlRecord], hosts: &H) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + recs.iter().map(|r| 12 + r.url.len()).sum::<usize>());
    put_var(&mut out, recs.len() as u64);
    for r in recs {
        put_var(&mut out, u64::from(r.host.0));
        out.push(r.state as u8);
        put_var(&mut out, u64::from(r.attempts));
        put_var(&mut out, u64::from(r.depth));
        out.push(r.priority as u8);
        let (prefixed, suffix) = suffix_of(&r.url, hosts.host_key(r.host).unwrap_or(""));
        out.push(u8::from(prefixed));
        put_var_bytes(&mut out, suffix.as_bytes());
        put_var_bytes(&mut out, r.reason.as_deref().unwrap_or("").as_bytes());
    }
    out
}

pub(crate) fn decode_finished<H: HostKeys + ?Sized>(v: &[u8], hosts: &H) -> Result<Vec<UrlRecord>> {
    let mut r = Reader::new(v, "finished");
    let n = r.var()?;
    let mut out = Vec::with_capacity((n as usize).min(4096));
    for _ in 0..n {
        let host = HostId(r.var_u32()?);
        let state = UrlState::from_u8(r.u8()?)
            .ok_or_else(|| Error::corrupt("a finished record has an unknown state"))?;
        let attempts = r.var_u32()?;
        let depth = r.var_u16()?;
        let priority = priority(r.u8()?)?;
        let prefixed = r.u8()? == 1;
        let url = rebuild(key_of(hosts, host)?, prefixed, r.var_str()?);
        let reason = r.var_str()?;
        out.push(UrlRecord {
            fp: Fingerprint::of(&url),
            url,
            state,
            attempts,
            depth,
            priority,
            host,
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            data: Vec::new(),
        });
    }
    if !r.is_empty() {
        return Err(Error::corrupt("a finished record has trailing bytes"));
    }
    Ok(out)
}

/// One operation of a journal record. Replaying the records in order rebuilds what the
/// process kept in memory: the seen set's memtable, the queue tails and the host counts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// A fingerprint was queued (straight into a segment) with these attempts.
    Seen(Fingerprint, u32),
    /// An entry was appended to a queue's tail; `seen` says whether it also marks the
    /// seen set (a checkpoint re-journals tails without marking).
    Append {
        seen: bool,
        q: QueueId,
        attempts: u32,
        url: String,
        data: &'a [u8],
    },
    /// The first `n` entries of a queue's tail went into a segment or a lease record.
    Pop(QueueId, u32),
    /// Every tail of a host was dropped (`fail_host`).
    Clear(u32),
    /// A host's counts after the batch.
    Counts(u32, Counts),
}

const OP_SEEN: u8 = b'N';
const OP_APPEND: u8 = b'A';
const OP_TAIL: u8 = b'T';
const OP_POP: u8 = b'P';
const OP_CLEAR: u8 = b'C';
const OP_COUNTS: u8 = b'H';

/// Builds a journal record.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) bytes: Vec<u8>,
}

impl Journal {
    pub(crate) fn seen(&mut self, fp: Fingerprint, attempts: u32) {
        self.bytes.push(OP_SEEN);
        self.bytes.extend_from_slice(&fp.0.to_be_bytes());
        put_var(&mut self.bytes, u64::from(attempts));
    }

    fn queue(&mut self, q: QueueId) {
        put_var(&mut self.bytes, u64::from(q.0));
        self.bytes.push(q.1 as u8);
        put_var(&mut self.bytes, u64::from(q.2));
    }

    pub(crate) fn append(
        &mut self,
        seen: bool,
        q: QueueId,
        host_key: &str,
        attempts: u32,
        url: &str,
        data: &[u8],
    ) {
        self.bytes.push(if seen { OP_APPEND } else { OP_TAIL });
        self.queue(q);
        put_var(&mut self.bytes, u64::from(attempts));
        let (prefixed, suffix) = suffix_of(url, host_key);
        self.bytes.push(u8::from(prefixed));
        put_var_bytes(&mut self.bytes, suffix.as_bytes());
        put_var_bytes(&mut self.bytes, data);
    }

    pub(crate) fn pop(&mut self, q: QueueId, n: u32) {
        self.bytes.push(OP_POP);
        self.queue(q);
        put_var(&mut self.bytes, u64::from(n));
    }

    pub(crate) fn clear(&mut self, host: u32) {
        self.bytes.push(OP_CLEAR);
        put_var(&mut self.bytes, u64::from(host));
    }

    pub(crate) fn counts(&mut self, host: u32, c: &Counts) {
        self.bytes.push(OP_COUNTS);
        put_var(&mut self.bytes, u64::from(host));
        put_counts(&mut self.bytes, c);
    }
}

fn put_counts(out: &mut Vec<u8>, c: &Counts) {
    for n in [c.queued, c.leased, c.done, c.failed] {
        put_var(out, n);
    }
}

fn read_counts(r: &mut Reader<'_>) -> Result<Counts> {
    Ok(Counts {
        queued: r.var()?,
        leased: r.var()?,
        done: r.var()?,
        failed: r.var()?,
    })
}

/// Decodes a journal record, calling `f` for each operation in order.
pub(crate) fn replay_journal<H: HostKeys + ?Sized>(
    v: &[u8],
    hosts: &H,
    mut f: impl FnMut(Op<'_>) -> Result<()>,
) -> Result<()> {
    let mut r = Reader::new(v, "journal");
    let queue =
        |r: &mut Reader<'_>| -> Result<QueueId> { Ok((r.var_u32()?, priority(r.u8()?)?, r.var_u16()?)) };
    while !r.is_empty() {
        let op = match r.u8()? {
            OP_SEEN => Op::Seen(Fingerprint(r.u128()?), r.var_u32()?),
            tag @ (OP_APPEND | OP_TAIL) => {
                let q = queue(&mut r)?;
                let attempts = r.var_u32()?;
                let prefixed = r.u8()? == 1;
                let url = rebuild(key_of(hosts, HostId(q.0))?, prefixed, r.var_str()?);
                Op::Append {
                    seen: tag == OP_APPEND,
                    q,
                    attempts,
                    url,
                    data: r.var_bytes()?,
                }
            }
            OP_POP => Op::Pop(queue(&mut r)?, r.var_u32()?),
            OP_CLEAR => Op::Clear(r.var_u32()?),
            OP_COUNTS => Op::Counts(r.var_u32()?, read_counts(&mut r)?),
            other => {
                return Err(Error::corrupt(format!(
                    "a journal record holds unknown operation {other}"
                )));
            }
        };
        f(op)?;
    }
    Ok(())
}

pub(crate) fn encode_host_counts(c: &Counts) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_counts(&mut out, c);
    out
}

pub(crate) fn decode_host_counts(v: &[u8]) -> Result<Counts> {
    read_counts(&mut Reader::new(v, "host counts"))
}

/// The seen set's persistent state: its registered run files and the journal
/// watermarks (journal records below `w_seen` are covered by the runs, those below
/// `w_ckpt` by the host counts and the queue segments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeenMeta {
    pub(crate) w_seen: u64,
    pub(crate) w_ckpt: u64,
    pub(crate) next_run: u64,
    pub(crate) runs: Vec<u64>,
}

pub(crate) fn encode_seen_meta(m: &SeenMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + m.runs.len() * 4);
    for n in [m.w_seen, m.w_ckpt, m.next_run, m.runs.len() as u64] {
        put_var(&mut out, n);
    }
    for r in &m.runs {
        put_var(&mut out, *r);
    }
    out
}

pub(crate) fn decode_seen_meta(v: &[u8]) -> Result<SeenMeta> {
    let mut r = Reader::new(v, "seen set");
    let (w_seen, w_ckpt, next_run, n) = (r.var()?, r.var()?, r.var()?, r.var()?);
    let mut runs = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        runs.push(r.var()?);
    }
    Ok(SeenMeta {
        w_seen,
        w_ckpt,
        next_run,
        runs,
    })
}

pub(crate) fn encode_host(key: &str, p: &Politeness) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + key.len());
    put_bytes(&mut out, key.as_bytes());
    out.extend_from_slice(&p.next_allowed_at_ms.to_be_bytes());
    out.extend_from_slice(&p.retry_after_until_ms.to_be_bytes());
    out.extend_from_slice(&p.backoff_level.to_be_bytes());
    out.extend_from_slice(&p.consecutive_failures.to_be_bytes());
    // Written only when set, so a host record without one keeps its old encoding.
    if p.adaptive_millirate != 0 {
        out.extend_from_slice(&p.adaptive_millirate.to_be_bytes());
    }
    out
}

pub(crate) fn decode_host(v: &[u8]) -> Result<(String, Politeness)> {
    let mut r = Reader::new(v, "host");
    let key = r.string()?;
    let mut p = Politeness {
        next_allowed_at_ms: r.u64()?,
        retry_after_until_ms: r.u64()?,
        backoff_level: r.u32()?,
        consecutive_failures: r.u32()?,
        adaptive_millirate: 0,
    };
    if !r.is_empty() {
        p.adaptive_millirate = r.u32()?;
    }
    Ok((key, p))
}

pub(crate) fn encode_robots(e: &RobotsEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + e.body.len());
    out.extend_from_slice(&e.status.to_be_bytes());
    out.extend_from_slice(&e.fetched_at_ms.to_be_bytes());
    put_bytes(&mut out, &e.body);
    out
}

pub(crate) fn decode_robots(v: &[u8]) -> Result<RobotsEntry> {
    let mut r = Reader::new(v, "robots");
    Ok(RobotsEntry {
        status: r.u16()?,
        fetched_at_ms: r.u64()?,
        body: r.bytes()?.to_vec(),
    })
}

/// The global counters and id generators, rewritten in every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    pub(crate) counts: Counts,
    pub(crate) next_seq: u64,
    pub(crate) next_lease: u64,
    pub(crate) next_host: u32,
}

pub(crate) fn encode_counters(c: &Counters) -> Vec<u8> {
    let mut out = Vec::with_capacity(60);
    for n in [
        c.counts.queued,
        c.counts.leased,
        c.counts.done,
        c.counts.failed,
        c.next_seq,
        c.next_lease,
    ] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&c.next_host.to_be_bytes());
    out
}

pub(crate) fn decode_counters(v: &[u8]) -> Result<Counters> {
    let mut r = Reader::new(v, "counters");
    let counts = Counts {
        queued: r.u64()?,
        leased: r.u64()?,
        done: r.u64()?,
        failed: r.u64()?,
    };
    Ok(Counters {
        counts,
        next_seq: r.u64()?,
        next_lease: r.u64()?,
        next_host: r.u32()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Keys(Vec<String>);
    impl HostKeys for Keys {
        fn host_key(&self, id: HostId) -> Option<&str> {
            self.0.get(id.0 as usize).map(|s| s.as_str())
        }
    }

    fn entry(url: &str, attempts: u32, data: &[u8]) -> Entry {
        Entry {
            fp: Fingerprint::of(url),
            host: HostId(0),
            priority: Priority::Page,
            depth: 3,
            attempts,
            url: url.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn varints_round_trip() {
        for n in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut v = Vec::new();
            put_var(&mut v, n);
            let mut r = Reader::new(&v, "t");
            assert_eq!(r.var().expect("decodes"), n);
            assert!(r.is_empty());
        }
        assert!(Reader::new(&[0x80], "t").var().is_err());
        assert!(Reader::new(&[0xff; 11], "t").var().is_err());
    }

    #[test]
    fn segments_round_trip_with_front_coding_and_truncation_is_an_error() {
        let q = (0, Priority::Page, 3);
        let es = vec![
            entry("http://a.test/section/1/page-1", 0, b""),
            entry("http://a.test/section/1/page-2", 2, b"xy"),
            entry("http://a.test/", 0, b""),
            entry("http://b.test/elsewhere", 1, b""),
            entry("http://a.test/section/1/page-2", 0, b"z"),
        ];
        let v = encode_segment("http://a.test", es.iter());
        assert_eq!(decode_segment(&v, q, "http://a.test").expect("decodes"), es);
        for cut in 0..v.len() {
            assert!(
                decode_segment(&v[..cut], q, "http://a.test").is_err(),
                "cut at {cut}"
            );
        }
        let plain: usize = es.iter().map(|e| e.url.len()).sum();
        assert!(v.len() < plain, "{} bytes for {plain} bytes of URLs", v.len());
    }

    #[test]
    fn lease_finished_and_journal_records_round_trip() {
        let hosts = Keys(vec!["http://a.test".into(), "http://b.test".into()]);
        let es = vec![
            entry("http://a.test/x", 1, b"d"),
            entry("http://a.test/y", 2, b""),
        ];
        let v = encode_lease(HostId(0), "http://a.test", &es);
        assert_eq!(decode_lease(&v, &hosts).expect("decodes"), es);
        assert!(decode_lease(&v[..v.len() - 1], &hosts).is_err());

        let r = UrlRecord {
            fp: Fingerprint::of("http://b.test/z"),
            url: "http://b.test/z".into(),
            state: UrlState::Failed,
            attempts: 3,
            depth: 7,
            priority: Priority::Redirect,
            host: HostId(1),
            reason: Some("timeout".into()),
            data: Vec::new(),
        };
        let v = encode_finished(std::slice::from_ref(&r), &hosts);
        assert_eq!(decode_finished(&v, &hosts).expect("decodes"), vec![r]);
        for cut in 0..v.len() {
            assert!(decode_finished(&v[..cut], &hosts).is_err(), "cut at {cut}");
        }

        let mut j = Journal::default();
        let q = (1, Priority::Sitemap, 2);
        j.seen(Fingerprint(7), 0);
        j.append(true, q, "http://b.test", 1, "http://b.test/s.xml", b"k");
        j.pop(q, 1);
        j.clear(1);
        let c = Counts {
            queued: 1,
            leased: 2,
            done: 300,
            failed: 4,
        };
        j.counts(1, &c);
        let mut ops = Vec::new();
        replay_journal(&j.bytes, &hosts, |op| {
            ops.push(format!("{op:?}"));
            Ok(())
        })
        .expect("replays");
        assert_eq!(ops.len(), 5);
        assert!(ops[1].contains("http://b.test/s.xml"), "{ops:?}");
        assert!(replay_journal(&j.bytes[..j.bytes.len() - 1], &hosts, |_| Ok(())).is_err());
    }

    #[test]
    fn queue_keys_sort_by_class_then_depth_then_seq() {
        let mut keys = [
            queue_key((1, Priority::Page, 0), 1),
            queue_key((1, Priority::Robots, 5), 9),
            queue_key((1, Priority::Page, 1), 0),
            queue_key((1, Priority::Page, 0), 0),
        ];
        keys.sort();
        assert_eq!(keys[0], queue_key((1, Priority::Robots, 5), 9));
        assert_eq!(keys[1], queue_key((1, Priority::Page, 0), 0));
        assert_eq!(keys[2], queue_key((1, Priority::Page, 0), 1));
        assert_eq!(keys[3], queue_key((1, Priority::Page, 1), 0));
        let (q, seq) = parse_queue_key(&keys[3]).expect("parses");
        assert_eq!((q, seq), ((1, Priority::Page, 1), 0));
    }

    #[test]
    fn a_host_record_keeps_its_adaptive_rate_and_reads_the_old_encoding() {
        let p = Politeness {
            backoff_level: 1,
            adaptive_millirate: 750,
            ..Politeness::default()
        };
        assert_eq!(
            decode_host(&encode_host("http://a.test", &p)).expect("decodes"),
            ("http://a.test".to_string(), p)
        );
        let plain = Politeness {
            backoff_level: 1,
            ..Politeness::default()
        };
        let old = encode_host("http://a.test", &plain);
        assert_eq!(
            old.len() + 4,
            encode_host("http://a.test", &p).len(),
            "no field written when unset"
        );
        assert_eq!(decode_host(&old).expect("decodes").1, plain);
    }
}
