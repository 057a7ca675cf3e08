//! The on-disk layout: key prefixes and the binary encoding of records.
//!
//! Everything lives in one sled tree, because only a batch on a single tree is atomic.
//! Keys start with one prefix byte:
//!
//! | key | value |
//! |---|---|
//! | `u` fp(16) | URL record: state, attempts, depth, class, host, seq, url, reason, data |
//! | `q` host(4) class(1) depth(2) seq(8) | fp(16): the host queues, in hand-out order |
//! | `l` fp(16) | empty: the lease index, scanned on open to return leases |
//! | `h` host(4) | host record: key, counts, politeness |
//! | `H` key | host(4): host key to number |
//! | `r` host(4) | robots entry |
//! | `m` name | meta: schema, config, counters, `c:`sink checkpoints |
//!
//! Integers are big-endian so that keys sort numerically. Decoding never panics: a
//! short or malformed value is an [`Error::Corrupt`].

use crate::types::{Counts, Fingerprint, HostId, Politeness, Priority, RobotsEntry, UrlRecord, UrlState};
use crate::{Error, Result};

pub(crate) const URL: u8 = b'u';
pub(crate) const QUEUE: u8 = b'q';
pub(crate) const LEASE: u8 = b'l';
pub(crate) const HOST: u8 = b'h';
pub(crate) const HOST_NAME: u8 = b'H';
pub(crate) const ROBOTS: u8 = b'r';
pub(crate) const META: u8 = b'm';

pub(crate) fn fp_key(prefix: u8, fp: Fingerprint) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = prefix;
    k[1..].copy_from_slice(&fp.0.to_be_bytes());
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

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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
        String::from_utf8(b.to_vec()).map_err(|_| Error::corrupt(format!("a {what} record holds invalid UTF-8")))
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

pub(crate) fn encode_url(r: &UrlRecord) -> Vec<u8> {
    let reason = r.reason.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(32 + r.url.len() + reason.len() + r.data.len());
    out.push(r.state as u8);
    out.extend_from_slice(&r.attempts.to_be_bytes());
    out.extend_from_slice(&r.depth.to_be_bytes());
    out.push(r.priority as u8);
    out.extend_from_slice(&r.host.0.to_be_bytes());
    out.extend_from_slice(&r.seq.to_be_bytes());
    put_bytes(&mut out, r.url.as_bytes());
    put_bytes(&mut out, reason.as_bytes());
    put_bytes(&mut out, &r.data);
    out
}

pub(crate) fn decode_url(fp: Fingerprint, v: &[u8]) -> Result<UrlRecord> {
    let mut r = Reader::new(v, "URL");
    let state = UrlState::from_u8(r.u8()?).ok_or_else(|| Error::corrupt("a URL record has an unknown state"))?;
    let attempts = r.u32()?;
    let depth = r.u16()?;
    let priority =
        Priority::from_u8(r.u8()?).ok_or_else(|| Error::corrupt("a URL record has an unknown queue class"))?;
    let host = HostId(r.u32()?);
    let seq = r.u64()?;
    let url = r.string()?;
    let reason = r.string()?;
    let data = r.bytes()?.to_vec();
    Ok(UrlRecord {
        fp,
        url,
        state,
        attempts,
        depth,
        priority,
        host,
        reason: (!reason.is_empty()).then_some(reason),
        data,
        seq,
    })
}

/// A host record: its key, counts and politeness state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRecord {
    pub(crate) key: String,
    pub(crate) counts: Counts,
    pub(crate) politeness: Politeness,
}

pub(crate) fn encode_host(h: &HostRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + h.key.len());
    put_bytes(&mut out, h.key.as_bytes());
    for n in [h.counts.queued, h.counts.leased, h.counts.done, h.counts.failed] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&h.politeness.next_allowed_at_ms.to_be_bytes());
    out.extend_from_slice(&h.politeness.retry_after_until_ms.to_be_bytes());
    out.extend_from_slice(&h.politeness.backoff_level.to_be_bytes());
    out.extend_from_slice(&h.politeness.consecutive_failures.to_be_bytes());
    out
}

pub(crate) fn decode_host(v: &[u8]) -> Result<HostRecord> {
    let mut r = Reader::new(v, "host");
    let key = r.string()?;
    let counts = Counts { queued: r.u64()?, leased: r.u64()?, done: r.u64()?, failed: r.u64()? };
    let politeness = Politeness {
        next_allowed_at_ms: r.u64()?,
        retry_after_until_ms: r.u64()?,
        backoff_level: r.u32()?,
        consecutive_failures: r.u32()?,
    };
    Ok(HostRecord { key, counts, politeness })
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
    Ok(RobotsEntry { status: r.u16()?, fetched_at_ms: r.u64()?, body: r.bytes()?.to_vec() })
}

/// The global counters and id generators, rewritten in every batch that changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    pub(crate) counts: Counts,
    pub(crate) next_seq: u64,
    pub(crate) next_host: u32,
}

pub(crate) fn encode_counters(c: &Counters) -> Vec<u8> {
    let mut out = Vec::with_capacity(52);
    for n in [c.counts.queued, c.counts.leased, c.counts.done, c.counts.failed, c.next_seq] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&c.next_host.to_be_bytes());
    out
}

pub(crate) fn decode_counters(v: &[u8]) -> Result<Counters> {
    let mut r = Reader::new(v, "counters");
    let counts = Counts { queued: r.u64()?, leased: r.u64()?, done: r.u64()?, failed: r.u64()? };
    Ok(Counters { counts, next_seq: r.u64()?, next_host: r.u32()? })
}

/// The fingerprint stored under a queue or lease key.
pub(crate) fn decode_fp(v: &[u8]) -> Result<Fingerprint> {
    Ok(Fingerprint(Reader::new(v, "queue").u128()?))
}

/// The fingerprint inside a `u` or `l` key.
pub(crate) fn fp_of_key(k: &[u8]) -> Result<Fingerprint> {
    Ok(Fingerprint(Reader::new(k.get(1..).unwrap_or_default(), "key").u128()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_records_round_trip_and_truncation_is_an_error() {
        let r = UrlRecord {
            fp: Fingerprint::of("http://a/"),
            url: "http://a/".into(),
            state: UrlState::Failed,
            attempts: 3,
            depth: 7,
            priority: Priority::Redirect,
            host: HostId(9),
            reason: Some("timeout".into()),
            data: vec![1, 2, 3],
            seq: 42,
        };
        let v = encode_url(&r);
        assert_eq!(decode_url(r.fp, &v).expect("decodes"), r);
        for cut in 0..v.len() {
            assert!(decode_url(r.fp, &v[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut bad = v.clone();
        bad[0] = 9;
        assert!(matches!(decode_url(r.fp, &bad), Err(Error::Corrupt { .. })));
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
