//! The in-memory fronts of the seen set, both bounded by configuration:
//!
//! - [`SeenCache`] remembers recently seen fingerprints and answers the common repeat
//!   ("this link is known") without touching sled. It is 4-way set-associative: each
//!   fingerprint maps to one set of four slots, and a newcomer pushes out the oldest.
//!   A hit compares all 128 bits, so it only ever says "seen" for a fingerprint that
//!   really is stored.
//! - [`Bloom`] holds every stored fingerprint approximately. When it says "absent" the
//!   URL is certainly new, and the sled lookup is skipped; when it says "maybe", sled
//!   decides. It is rebuilt from the stored keys on open, so it never misses a stored
//!   URL; a full filter only costs more sled lookups, never a wrong answer.
//!
//! Neither ever turns a new URL away, and neither grows with the crawl.

use crate::types::Fingerprint;

const WAYS: usize = 4;

#[derive(Debug)]
pub(crate) struct SeenCache {
    slots: Vec<u128>,
    set_mask: usize,
}

impl SeenCache {
    /// A cache of about `slots` slots (16 bytes each); 0 disables it.
    pub(crate) fn new(slots: usize) -> SeenCache {
        if slots == 0 {
            return SeenCache {
                slots: Vec::new(),
                set_mask: 0,
            };
        }
        let sets = slots.div_ceil(WAYS).next_power_of_two();
        SeenCache {
            slots: vec![0; sets * WAYS],
            set_mask: sets - 1,
        }
    }

    fn set(&self, fp: Fingerprint) -> usize {
        ((fp.0 as usize) & self.set_mask) * WAYS
    }

    pub(crate) fn contains(&self, fp: Fingerprint) -> bool {
        // 0 marks an empty slot; the fingerprint 0 is simply never cached.
        if self.slots.is_empty() || fp.0 == 0 {
            return false;
        }
        let base = self.set(fp);
        self.slots[base..base + WAYS].contains(&fp.0)
    }

    pub(crate) fn insert(&mut self, fp: Fingerprint) {
        if self.slots.is_empty() || fp.0 == 0 || self.contains(fp) {
            return;
        }
        let base = self.set(fp);
        self.slots.copy_within(base..base + WAYS - 1, base + 1);
        self.slots[base] = fp.0;
    }
}

/// A Bloom filter over fingerprints, with `k` probes derived from the fingerprint's two
/// halves (the fingerprint is already a strong hash).
#[derive(Debug)]
pub(crate) struct Bloom {
    words: Vec<u64>,
    bit_mask: u64,
}

const PROBES: u64 = 4;

impl Bloom {
    /// A filter of about `bytes` bytes (rounded to a power of two); 0 disables it, and a
    /// disabled filter answers "maybe" to everything.
    pub(crate) fn new(bytes: usize) -> Bloom {
        if bytes < 8 {
            return Bloom {
                words: Vec::new(),
                bit_mask: 0,
            };
        }
        let words = (bytes / 8).next_power_of_two();
        Bloom {
            words: vec![0; words],
            bit_mask: (words as u64 * 64) - 1,
        }
    }

    fn probes(&self, fp: Fingerprint) -> impl Iterator<Item = u64> + '_ {
        let (h1, h2) = (fp.0 as u64, ((fp.0 >> 64) as u64) | 1);
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & self.bit_mask)
    }

    pub(crate) fn maybe_contains(&self, fp: Fingerprint) -> bool {
        self.words.is_empty()
            || self
                .probes(fp)
                .all(|b| self.words[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    pub(crate) fn insert(&mut self, fp: Fingerprint) {
        if self.words.is_empty() {
            return;
        }
        let bits: Vec<u64> = self.probes(fp).collect();
        for b in bits {
            self.words[(b / 64) as usize] |= 1 << (b % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_exact_and_evicts_the_oldest_of_a_set() {
        let mut c = SeenCache::new(4); // one set of four
        let fps: Vec<Fingerprint> = (1..=5).map(|i| Fingerprint(i << 8)).collect();
        for fp in &fps[..4] {
            c.insert(*fp);
        }
        assert!(fps[..4].iter().all(|fp| c.contains(*fp)));
        assert!(!c.contains(fps[4]), "never inserted");
        c.insert(fps[4]);
        assert!(c.contains(fps[4]) && !c.contains(fps[0]), "the oldest left");
        let mut off = SeenCache::new(0);
        off.insert(fps[0]);
        assert!(!off.contains(fps[0]));
        c.insert(Fingerprint(0));
        assert!(!c.contains(Fingerprint(0)));
    }

    #[test]
    fn the_bloom_filter_never_misses_and_rarely_lies() {
        let mut b = Bloom::new(1 << 16);
        let inserted: Vec<Fingerprint> = (0..10_000u64)
            .map(|i| Fingerprint::of(&format!("http://a/{i}")))
            .collect();
        for fp in &inserted {
            b.insert(*fp);
        }
        assert!(inserted.iter().all(|fp| b.maybe_contains(*fp)));
        let false_positives = (0..10_000u64)
            .filter(|i| b.maybe_contains(Fingerprint::of(&format!("http://b/{i}"))))
            .count();
        assert!(
            false_positives < 200,
            "{false_positives} false positives in 10,000"
        );
        assert!(
            Bloom::new(0).maybe_contains(inserted[0]),
            "a disabled filter says maybe"
        );
    }
}
