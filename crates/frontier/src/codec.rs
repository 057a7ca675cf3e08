//! The on-disk layout: key prefixes and the binary encoding of records.
//!
//! Everything lives in one sled tree, because only a batch on a single tree is atomic.
//! Keys start with one prefix byte:
//!
//! | key | value |
//! |---|---|
//! | `b` bucket(4) | seen bucket: the state of every URL whose fingerprint starts with these bits |
//! | `q` host(4) class(1) depth(2) seq(8) | queue segment: up to 32 queued entries (URL and data) of that host, class and depth |
//! | `l` lease(8) | lease record: the entries handed out by one `lease` call |
//! | `d` seq(8) | finished log: the full records of the URLs one `ack` call finished |
//! | `h` host(4) | host record: key, politeness |
//! | `H` key | host(4): host key to number |
//! | `r` host(4) | robots entry |
//! | `m` name | meta: schema, config, counters, `c:`sink checkpoints |
//!
//! Integers are big-endian so that keys sort numerically. Decoding never panics: a
//! short or malformed value is an [`Error::Corrupt`].

use crate::types::{Counts, Fingerprint, HostId, Politeness, Priority, RobotsEntry, UrlRecord, UrlState};
use crate::{Error, Result};

pub(crate) const BUCKET: u8 = b'b';
pub(crate) const FINISHED: u8 = b'd';
pub(crate) const QUEUE: u8 = b'q';
pub(crate) const LEASE: u8 = b'l';
pub(crate) const HOST: u8 = b'h';
pub(crate) const HOST_NAME: u8 = b'H';
pub(crate) const ROBOTS: u8 = b'r';
pub(crate) const META: u8 = b'm';

pub(crate) fn bucket_key(bucket: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = BUCKET;
    k[1..].copy_from_slice(&bucket.to_be_bytes());
    k
}

/// A key made of a prefix and a sequence number (lease and finished records).
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

pub(crate) fn queue_key(host: HostId, priority: Priority, depth: u16, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0] = QUEUE;
    k[1..5].copy_from_slice(&host.0.to_be_bytes());
    k[5] = priority as u8;
    k[6..8].copy_from_slice(&depth.to_be_bytes());
    k[8..16].copy_from_slice(&seq.to_be_bytes());
    k
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

/// A cursor over a value that turns every short read into `Error::Corrupt`.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::corrupt(format!("a {} record is truncated", self.what)));
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
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// What the seen set knows of one URL: 28 bytes, plus the reason of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) fp: Fingerprint,
    /// Queued, done or failed: a leased URL is queued here (its lease record says more).
    pub(crate) state: UrlState,
    /// Completed or returned attempts; an unacked lease is one ahead.
    pub(crate) attempts: u32,
    pub(crate) depth: u16,
    pub(crate) priority: Priority,
    pub(crate) host: HostId,
    pub(crate) reason: Option<String>,
}

pub(crate) fn encode_bucket(entries: &[Seen]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * 30);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.fp.0.to_be_bytes());
        let state = if e.state == UrlState::Leased {
            UrlState::Queued
        } else {
            e.state
        };
        out.push(state as u8);
        out.extend_from_slice(&e.attempts.to_be_bytes());
        out.extend_from_slice(&e.depth.to_be_bytes());
        out.push(e.priority as u8);
        out.extend_from_slice(&e.host.0.to_be_bytes());
        put_bytes(&mut out, e.reason.as_deref().unwrap_or("").as_bytes());
    }
    out
}

pub(crate) fn decode_bucket(v: &[u8]) -> Result<Vec<Seen>> {
    let mut r = Reader::new(v, "seen bucket");
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let fp = Fingerprint(r.u128()?);
        let state =
            UrlState::from_u8(r.u8()?).ok_or_else(|| Error::corrupt("a seen entry has an unknown state"))?;
        let attempts = r.u32()?;
        let depth = r.u16()?;
        let priority = Priority::from_u8(r.u8()?)
            .ok_or_else(|| Error::corrupt("a seen entry has an unknown queue class"))?;
        let host = HostId(r.u32()?);
        let reason = r.string()?;
        out.push(Seen {
            fp,
            state,
            attempts,
            depth,
            priority,
            host,
            reason: (!reason.is_empty()).then_some(reason),
        });
    }
    if !r.buf.is_empty() {
        return Err(Error::corrupt("a seen bucket has trailing bytes"));
    }
    Ok(out)
}

/// Encodes the full records of finished URLs, for the finished log.
pub(crate) fn encode_finished(recs: &[UrlRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4 + recs
            .iter()
            .map(|r| 40 + r.url.len() + r.data.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(recs.len() as u32).to_be_bytes());
    for r in recs {
        out.extend_from_slice(&r.fp.0.to_be_bytes());
        out.push(r.state as u8);
        out.extend_from_slice(&r.attempts.to_be_bytes());
        out.extend_from_slice(&r.depth.to_be_bytes());
        out.push(r.priority as u8);
        out.extend_from_slice(&r.host.0.to_be_bytes());
        put_bytes(&mut out, r.url.as_bytes());
        put_bytes(&mut out, r.reason.as_deref().unwrap_or("").as_bytes());
        put_bytes(&mut out, &r.data);
    }
    out
}

pub(crate) fn decode_finished(v: &[u8]) -> Result<Vec<UrlRecord>> {
    let mut r = Reader::new(v, "finished");
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let fp = Fingerprint(r.u128()?);
        let state = UrlState::from_u8(r.u8()?)
            .ok_or_else(|| Error::corrupt("a finished record has an unknown state"))?;
        let attempts = r.u32()?;
        let depth = r.u16()?;
        let priority = Priority::from_u8(r.u8()?)
            .ok_or_else(|| Error::corrupt("a finished record has an unknown class"))?;
        let host = HostId(r.u32()?);
        let url = r.string()?;
        let reason = r.string()?;
        let data = r.bytes()?.to_vec();
        out.push(UrlRecord {
            fp,
            url,
            state,
            attempts,
            depth,
            priority,
            host,
            reason: (!reason.is_empty()).then_some(reason),
            data,
        });
    }
    Ok(out)
}

/// One URL waiting in a queue segment, or handed out in a lease record.
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

/// Encodes entries. In a queue segment the host, class and depth are in the key, but
/// they are stored per entry anyway so that lease records use the same format.
pub(crate) fn encode_entries<'a>(entries: impl ExactSizeIterator<Item = &'a Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * 96);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.fp.0.to_be_bytes());
        out.extend_from_slice(&e.host.0.to_be_bytes());
        out.push(e.priority as u8);
        out.extend_from_slice(&e.depth.to_be_bytes());
        out.extend_from_slice(&e.attempts.to_be_bytes());
        put_bytes(&mut out, e.url.as_bytes());
        put_bytes(&mut out, &e.data);
    }
    out
}

/// The number of entries in an encoded list, without decoding them.
pub(crate) fn entry_count(v: &[u8]) -> Result<u32> {
    Reader::new(v, "segment").u32()
}

pub(crate) fn decode_entries(v: &[u8]) -> Result<Vec<Entry>> {
    let mut r = Reader::new(v, "segment");
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let fp = Fingerprint(r.u128()?);
        let host = HostId(r.u32()?);
        let priority =
            Priority::from_u8(r.u8()?).ok_or_else(|| Error::corrupt("a queue entry has an unknown class"))?;
        let depth = r.u16()?;
        let attempts = r.u32()?;
        let url = r.string()?;
        let data = r.bytes()?.to_vec();
        out.push(Entry {
            fp,
            host,
            priority,
            depth,
            attempts,
            url,
            data,
        });
    }
    Ok(out)
}

pub(crate) fn encode_host(key: &str, p: &Politeness) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + key.len());
    put_bytes(&mut out, key.as_bytes());
    out.extend_from_slice(&p.next_allowed_at_ms.to_be_bytes());
    out.extend_from_slice(&p.retry_after_until_ms.to_be_bytes());
    out.extend_from_slice(&p.backoff_level.to_be_bytes());
    out.extend_from_slice(&p.consecutive_failures.to_be_bytes());
    out
}

pub(crate) fn decode_host(v: &[u8]) -> Result<(String, Politeness)> {
    let mut r = Reader::new(v, "host");
    let key = r.string()?;
    let p = Politeness {
        next_allowed_at_ms: r.u64()?,
        retry_after_until_ms: r.u64()?,
        backoff_level: r.u32()?,
        consecutive_failures: r.u32()?,
    };
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

/// The host number inside a `q` or `h` key.
pub(crate) fn host_of_key(k: &[u8]) -> Result<HostId> {
    Ok(HostId(Reader::new(k.get(1..).unwrap_or_default(), "key").u32()?))
}

pub(crate) fn lease_key(id: u64) -> [u8; 9] {
    seq_key(LEASE, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_finished_records_round_trip_and_truncation_is_an_error() {
        let seen = vec![
            Seen {
                fp: Fingerprint(1),
                state: UrlState::Queued,
                attempts: 2,
                depth: 7,
                priority: Priority::Redirect,
                host: HostId(9),
                reason: None,
            },
            Seen {
                fp: Fingerprint(2),
                state: UrlState::Failed,
                attempts: 1,
                depth: 0,
                priority: Priority::Page,
                host: HostId(1),
                reason: Some("timeout".into()),
            },
        ];
        let v = encode_bucket(&seen);
        assert_eq!(decode_bucket(&v).expect("decodes"), seen);
        for cut in 0..v.len() {
            assert!(decode_bucket(&v[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut bad = v.clone();
        bad[4 + 16] = 9;
        assert!(matches!(decode_bucket(&bad), Err(Error::Corrupt { .. })));

        let r = UrlRecord {
            fp: Fingerprint::of("http://a/"),
            url: "http://a/".into(),
            state: UrlState::Done,
            attempts: 3,
            depth: 7,
            priority: Priority::Page,
            host: HostId(9),
            reason: None,
            data: vec![1, 2, 3],
        };
        let v = encode_finished(std::slice::from_ref(&r));
        assert_eq!(decode_finished(&v).expect("decodes"), vec![r]);
        assert!(decode_finished(&v[..v.len() - 1]).is_err());
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            fp: Fingerprint(5),
            host: HostId(2),
            priority: Priority::Page,
            depth: 3,
            attempts: 1,
            url: "http://a/x".into(),
            data: vec![9],
        };
        let v = encode_entries([e.clone(), e.clone()].iter());
        assert_eq!(entry_count(&v).expect("count"), 2);
        assert_eq!(decode_entries(&v).expect("decodes"), vec![e.clone(), e]);
        assert!(decode_entries(&v[..v.len() - 1]).is_err());
    }

    #[test]
    fn queue_keys_sort_by_class_then_depth_then_seq() {
        let h = HostId(1);
        let mut keys = [
            queue_key(h, Priority::Page, 0, 1),
            queue_key(h, Priority::Robots, 5, 9),
            queue_key(h, Priority::Page, 1, 0),
            queue_key(h, Priority::Page, 0, 0),
        ];
        keys.sort();
        assert_eq!(keys[0], queue_key(h, Priority::Robots, 5, 9));
        assert_eq!(keys[1], queue_key(h, Priority::Page, 0, 0));
        assert_eq!(keys[2], queue_key(h, Priority::Page, 0, 1));
        assert_eq!(keys[3], queue_key(h, Priority::Page, 1, 0));
    }
}
