//! The binary encodings shared with the scripts: URL records, seen-set locations,
//! politeness and robots.txt entries, and the decoding of script replies.

use redis::Value;
use trawl_frontier::{
    Error, Fingerprint, HostId, Lease, Politeness, Priority, Result, RobotsEntry, UrlRecord, UrlState,
};

/// Bytes before the URL in a record: fingerprint 16, priority 1, depth 2, attempts 4,
/// URL length 4. The scripts read the first four fields at these offsets
/// (`src/lua/common.lua`), so they are fixed.
const HEADER: usize = 27;

/// A queued or leased URL as the scripts store it: the member of its host's queue, and
/// (after 16 bytes of lease order and epoch) the value of its lease.
pub(crate) fn encode_record(
    fp: Fingerprint,
    priority: Priority,
    depth: u16,
    url: &str,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + url.len() + data.len());
    out.extend_from_slice(&fp.0.to_be_bytes());
    out.push(priority as u8);
    out.extend_from_slice(&depth.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(url.len() as u32).to_be_bytes());
    out.extend_from_slice(url.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A record's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) fp: Fingerprint,
    pub(crate) priority: Priority,
    pub(crate) depth: u16,
    pub(crate) attempts: u32,
    pub(crate) url: String,
    pub(crate) data: Vec<u8>,
}

fn be<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N]> {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| corrupt("a URL record is truncated"))
}

pub(crate) fn decode_record(b: &[u8]) -> Result<Record> {
    let fp = Fingerprint(u128::from_be_bytes(be::<16>(b, 0)?));
    let priority = match b.get(16) {
        Some(0) => Priority::Robots,
        Some(1) => Priority::Sitemap,
        Some(2) => Priority::Redirect,
        Some(3) => Priority::Page,
        _ => return Err(corrupt("a URL record has an unknown queue class")),
    };
    let depth = u16::from_be_bytes(be::<2>(b, 17)?);
    let attempts = u32::from_be_bytes(be::<4>(b, 19)?);
    let len = u32::from_be_bytes(be::<4>(b, 23)?) as usize;
    let url = b
        .get(HEADER..HEADER + len)
        .ok_or_else(|| corrupt("a URL record is truncated"))?;
    let url = String::from_utf8(url.to_vec()).map_err(|_| corrupt("a URL record's URL is not UTF-8"))?;
    Ok(Record {
        fp,
        priority,
        depth,
        attempts,
        url,
        data: b[HEADER + len..].to_vec(),
    })
}

impl Record {
    pub(crate) fn into_lease(self, host: HostId) -> Lease {
        Lease {
            fp: self.fp,
            url: self.url,
            host,
            depth: self.depth,
            priority: self.priority,
            attempts: self.attempts,
            data: self.data,
        }
    }

    pub(crate) fn into_url_record(self, host: HostId, state: UrlState) -> UrlRecord {
        UrlRecord {
            fp: self.fp,
            url: self.url,
            state,
            attempts: self.attempts,
            depth: self.depth,
            priority: self.priority,
            host,
            reason: None,
            data: self.data,
        }
    }
}

/// Where the seen set keeps a fingerprint: the bucket (its top 32 bits modulo the
/// number of buckets) and the field (its low 8 bytes). The scripts compute the same.
pub(crate) fn seen_at(fp: Fingerprint, buckets: u32) -> (u32, [u8; 8]) {
    let hi = (fp.0 >> 96) as u32;
    (hi % buckets.max(1), (fp.0 as u64).to_be_bytes())
}

/// A seen-set value: attempts * 4 + state.
pub(crate) fn decode_seen(v: u64) -> Result<(UrlState, u32)> {
    let state = match v % 4 {
        0 => UrlState::Queued,
        1 => UrlState::Leased,
        2 => UrlState::Done,
        _ => UrlState::Failed,
    };
    let attempts = u32::try_from(v / 4).map_err(|_| corrupt("a seen-set value is out of range"))?;
    Ok((state, attempts))
}

pub(crate) fn encode_robots(e: &RobotsEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + e.body.len());
    out.extend_from_slice(&e.status.to_be_bytes());
    out.extend_from_slice(&e.fetched_at_ms.to_be_bytes());
    out.extend_from_slice(&e.body);
    out
}

pub(crate) fn decode_robots(b: &[u8]) -> Result<RobotsEntry> {
    Ok(RobotsEntry {
        status: u16::from_be_bytes(be::<2>(b, 0).map_err(|_| corrupt("a robots.txt entry is truncated"))?),
        fetched_at_ms: u64::from_be_bytes(
            be::<8>(b, 2).map_err(|_| corrupt("a robots.txt entry is truncated"))?,
        ),
        body: b[10..].to_vec(),
    })
}

/// The politeness fields of a host hash, in the order the scripts store them.
pub(crate) const POLITENESS_FIELDS: [&str; 5] = ["pn", "pr", "pb", "pc", "pa"];

pub(crate) fn politeness_args(p: &Politeness) -> [String; 5] {
    [
        p.next_allowed_at_ms.to_string(),
        p.retry_after_until_ms.to_string(),
        p.backoff_level.to_string(),
        p.consecutive_failures.to_string(),
        p.adaptive_millirate.to_string(),
    ]
}

pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

// Script replies.

pub(crate) fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format!(
            "the server answered {other:?} where a list was expected"
        ))),
    }
}

pub(crate) fn bytes(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(corrupt(format!(
            "the server answered {other:?} where a string was expected"
        ))),
    }
}

pub(crate) fn opt_bytes(v: Value) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        v => bytes(v).map(Some),
    }
}

pub(crate) fn text(v: Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|_| corrupt("the server answered a string that is not UTF-8"))
}

/// A number: an integer reply, or a string holding one (a hash field). Decimal strings
/// of floats (a sorted-set score) are rounded down; a missing value is 0.
pub(crate) fn number(v: Value) -> Result<u64> {
    match v {
        Value::Int(i) => Ok(i.max(0) as u64),
        Value::Nil => Ok(0),
        v => {
            let s = text(v)?;
            s.parse::<u64>()
                .or_else(|_| s.parse::<f64>().map(|f| f.max(0.0) as u64))
                .map_err(|_| corrupt(format!("the server answered {s:?} where a number was expected")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let fp = Fingerprint::of("http://a.test/x");
        let b = encode_record(fp, Priority::Sitemap, 7, "http://a.test/x", b"data");
        let r = decode_record(&b).expect("decodes");
        assert_eq!(r.fp, fp);
        assert_eq!(r.priority, Priority::Sitemap);
        assert_eq!((r.depth, r.attempts), (7, 0));
        assert_eq!(r.url, "http://a.test/x");
        assert_eq!(r.data, b"data");
        assert!(decode_record(&b[..20]).is_err());
    }

    #[test]
    fn seen_values_and_buckets() {
        assert_eq!(decode_seen(3 * 4 + 2).expect("ok"), (UrlState::Done, 3));
        assert_eq!(decode_seen(1).expect("ok"), (UrlState::Leased, 0));
        let (b, f) = seen_at(Fingerprint(0xdead_beef_u128 << 96 | 0x0102), 65_536);
        assert_eq!(b, 0xdead_beef % 65_536);
        assert_eq!(f, 0x0102u64.to_be_bytes());
    }

    #[test]
    fn robots_round_trip() {
        let e = RobotsEntry {
            status: 200,
            fetched_at_ms: 1_700_000_000_000,
            body: b"User-agent: *".to_vec(),
        };
        assert_eq!(decode_robots(&encode_robots(&e)).expect("decodes"), e);
        assert!(decode_robots(b"x").is_err());
    }
}
