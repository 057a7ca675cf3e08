//! A bounded cache of recently seen fingerprints, in front of sled's seen check.
//!
//! Most links on a page point at URLs the crawl already knows, so the common enqueue is
//! a repeat. This cache answers those from memory. It is direct-mapped: each
//! fingerprint has one slot, chosen by its low bits, and a newer fingerprint simply
//! takes the slot over. A hit compares all 128 bits, so the cache only ever says "seen"
//! for a fingerprint that was really stored; a miss just falls through to sled. Its
//! memory is fixed at 16 bytes a slot, whatever the size of the crawl.

use crate::types::Fingerprint;

#[derive(Debug)]
pub(crate) struct SeenCache {
    slots: Vec<u128>,
    mask: usize,
}

impl SeenCache {
    /// A cache of at least `slots` slots (rounded up to a power of two; 0 disables it).
    pub(crate) fn new(slots: usize) -> SeenCache {
        let n = if slots == 0 { 0 } else { slots.next_power_of_two() };
        SeenCache { slots: vec![0; n], mask: n.saturating_sub(1) }
    }

    fn slot(&self, fp: Fingerprint) -> usize {
        (fp.0 as usize) & self.mask
    }

    pub(crate) fn contains(&self, fp: Fingerprint) -> bool {
        // 0 marks an empty slot; the fingerprint 0 is simply never cached.
        !self.slots.is_empty() && fp.0 != 0 && self.slots[self.slot(fp)] == fp.0
    }

    pub(crate) fn insert(&mut self, fp: Fingerprint) {
        if !self.slots.is_empty() {
            let i = self.slot(fp);
            self.slots[i] = fp.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_is_exact_and_a_collision_evicts() {
        let mut c = SeenCache::new(4);
        let a = Fingerprint(0x10);
        let b = Fingerprint(0x20); // same slot as a in a 4-slot cache
        assert!(!c.contains(a));
        c.insert(a);
        assert!(c.contains(a));
        assert!(!c.contains(b), "a different fingerprint in the same slot is not seen");
        c.insert(b);
        assert!(c.contains(b) && !c.contains(a));
        let mut off = SeenCache::new(0);
        off.insert(a);
        assert!(!off.contains(a));
        c.insert(Fingerprint(0));
        assert!(!c.contains(Fingerprint(0)));
    }
}
