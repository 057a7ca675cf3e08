//! The open tails of the queues, in memory.
//!
//! New entries of a queue collect in its tail until there are enough for a whole
//! segment, which is then written to sled once and never rewritten (until leases take
//! from it). The tail's durable copy is the journal: every append, and every pop of a
//! tail into a segment or a lease, is an operation in the journal record of its batch,
//! and a checkpoint re-journals the tails so that older records can go (see `store`).
//! So a URL that arrives on a host one at a time costs one journal write and one
//! segment write, not a rewrite of its segment per URL.

use std::collections::BTreeMap;

use crate::codec::{Entry, QueueId, SegmentBuf};
use crate::types::Priority;
use crate::{Error, Result};

#[derive(Debug, Default)]
pub(crate) struct Tails {
    map: BTreeMap<QueueId, SegmentBuf>,
    bytes: usize,
}

impl Tails {
    pub(crate) fn len(&self, q: QueueId) -> u32 {
        self.map.get(&q).map_or(0, |t| t.n)
    }

    /// Bytes of memory the tails hold (approximately).
    pub(crate) fn footprint(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn append(&mut self, q: QueueId, host_key: &str, attempts: u32, url: &str, data: &[u8]) {
        let t = self.map.entry(q).or_default();
        let before = if t.n == 0 { 0 } else { t.footprint() };
        t.push(host_key, attempts, url, data);
        self.bytes = self.bytes + t.footprint() - before;
    }

    /// Removes a whole tail.
    pub(crate) fn take(&mut self, q: QueueId) -> Option<SegmentBuf> {
        let t = self.map.remove(&q)?;
        self.bytes -= t.footprint();
        Some(t)
    }

    /// Removes and returns the first `n` entries of a tail.
    pub(crate) fn pop_front(&mut self, q: QueueId, n: u32, host_key: &str) -> Result<Vec<Entry>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > self.len(q) {
            return Err(Error::corrupt("the journal pops more than a queue tail holds"));
        }
        let Some(t) = self.take(q) else {
            return Err(Error::corrupt("the journal pops from an empty queue tail"));
        };
        let mut entries = t.decode(q, host_key)?;
        let rest = entries.split_off(n as usize);
        if !rest.is_empty() {
            let mut b = SegmentBuf::default();
            for e in &rest {
                b.push(host_key, e.attempts, &e.url, &e.data);
            }
            self.bytes += b.footprint();
            self.map.insert(q, b);
        }
        Ok(entries)
    }

    /// The queues of `host` that have a tail, in queue order.
    pub(crate) fn queues_of(&self, host: u32) -> Vec<QueueId> {
        self.map
            .range((host, Priority::Robots, 0)..=(host, Priority::Page, u16::MAX))
            .map(|(q, _)| *q)
            .collect()
    }

    pub(crate) fn get(&self, q: QueueId) -> Option<&SegmentBuf> {
        self.map.get(&q)
    }

    /// Every tail, in queue order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&QueueId, &SegmentBuf)> {
        self.map.iter()
    }

    /// The queues with the largest tails first.
    pub(crate) fn largest(&self) -> Vec<QueueId> {
        let mut v: Vec<(usize, QueueId)> = self.map.iter().map(|(q, t)| (t.bytes.len(), *q)).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, q)| q).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_append_pop_and_account_for_memory() {
        let mut t = Tails::default();
        let q = (3, Priority::Page, 1);
        let key = "http://a.test";
        for i in 0..5 {
            t.append(q, key, i, &format!("http://a.test/p/{i}"), b"");
        }
        t.append((3, Priority::Robots, 0), key, 0, "http://a.test/robots.txt", b"");
        t.append((4, Priority::Page, 0), "http://b.test", 0, "http://b.test/", b"");
        assert_eq!(t.len(q), 5);
        assert_eq!(t.queues_of(3), vec![(3, Priority::Robots, 0), q]);
        let popped = t.pop_front(q, 2, key).expect("pop");
        assert_eq!(popped.iter().map(|e| e.attempts).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(popped[1].url, "http://a.test/p/1");
        assert_eq!(t.len(q), 3);
        assert!(t.pop_front(q, 4, key).is_err());
        let before = t.footprint();
        assert!(before > 0);
        let whole = t.take(q).expect("there");
        assert_eq!(whole.n, 3);
        assert!(t.footprint() < before);
        t.take((3, Priority::Robots, 0));
        t.take((4, Priority::Page, 0));
        assert_eq!(t.footprint(), 0);
        assert!(t.is_empty());
    }
}
