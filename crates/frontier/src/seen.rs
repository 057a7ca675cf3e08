//! The seen set: which fingerprints were ever enqueued, and a small value for each.
//!
//! It is a little LSM tree next to sled, all of it bounded by configuration:
//!
//! - [`SeenCache`] remembers recently seen fingerprints and answers the common repeat
//!   ("this link is known") without any further lookup. It is 4-way set-associative: each
//!   fingerprint maps to one set of four slots, and a newcomer pushes out the oldest.
//!   A hit compares all 128 bits, so it only ever says "seen" for a fingerprint that
//!   really is in the set.
//! - The *memtable* holds the fingerprints added since the last seal, in memory. Its
//!   durable copy is the journal in sled (see `store`), written in the same batch as the
//!   change that added them.
//! - Sealed *runs* ([`crate::runs::Run`]) are immutable sorted files, each with its
//!   Bloom filter and a sparse index, so that a lookup costs at most one `pread` per run
//!   whose filter says "maybe".
//!
//! The value of a fingerprint is [`FINISHED`] | the finished-log record that holds it
//! once the URL is done or failed, and before that the attempts it had when it was last
//! put (back) into a queue. Values only grow, so merging keeps the largest and the order
//! of the runs does not matter.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::Result;
use crate::runs::Run;
use crate::types::Fingerprint;

/// Marks the value of a finished fingerprint; the low bits are its finished-log seq.
pub(crate) const FINISHED: u64 = 1 << 63;

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

/// A blocked Bloom filter over fingerprints: each fingerprint sets [`PROBES`] bits in
/// one 512-bit block chosen by its low half, so a lookup touches one cache line. The
/// fingerprint is already a strong hash, so no further hashing is needed.
#[derive(Debug, Clone)]
pub(crate) struct Bloom {
    pub(crate) words: Vec<u64>,
}

const PROBES: u32 = 7;
/// u64 words per block (64 bytes).
pub(crate) const BLOCK_WORDS: usize = 8;

impl Bloom {
    /// A filter of `bytes` bytes rounded down to whole 64-byte blocks (at least one).
    pub(crate) fn with_bytes(bytes: usize) -> Bloom {
        let blocks = (bytes / 64).max(1);
        Bloom {
            words: vec![0; blocks * BLOCK_WORDS],
        }
    }

    pub(crate) fn from_words(words: Vec<u64>) -> Option<Bloom> {
        (!words.is_empty() && words.len().is_multiple_of(BLOCK_WORDS)).then_some(Bloom { words })
    }

    fn block(&self, fp: u128) -> usize {
        let blocks = (self.words.len() / BLOCK_WORDS) as u128;
        ((u128::from(fp as u64) * blocks) >> 64) as usize * BLOCK_WORDS
    }

    pub(crate) fn maybe_contains(&self, fp: u128) -> bool {
        let base = self.block(fp);
        let mut h = (fp >> 64) as u64;
        for _ in 0..PROBES {
            let bit = (h & 511) as usize;
            if self.words[base + bit / 64] & (1 << (bit % 64)) == 0 {
                return false;
            }
            h >>= 9;
        }
        true
    }

    pub(crate) fn insert(&mut self, fp: u128) {
        let base = self.block(fp);
        let mut h = (fp >> 64) as u64;
        for _ in 0..PROBES {
            let bit = (h & 511) as usize;
            self.words[base + bit / 64] |= 1 << (bit % 64);
            h >>= 9;
        }
    }
}

/// Hashes a fingerprint by its low 64 bits: it is already a uniform hash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FpHasher(u64);

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

pub(crate) type FpMap<V> = HashMap<u128, V, BuildHasherDefault<FpHasher>>;

/// The seen set in memory: the memtable, a memtable being sealed, and the runs.
#[derive(Debug, Default)]
pub(crate) struct SeenSet {
    pub(crate) mem: FpMap<u64>,
    /// The memtable being written to a run, sorted by fingerprint.
    pub(crate) frozen: Option<Arc<Vec<(u128, u64)>>>,
    pub(crate) runs: Vec<Arc<Run>>,
}

impl SeenSet {
    /// Raises the value of `fp` to at least `v` (adding it if new).
    pub(crate) fn mark(&mut self, fp: Fingerprint, v: u64) {
        let slot = self.mem.entry(fp.0).or_insert(v);
        *slot = (*slot).max(v);
    }

    /// Whether `fp` was ever added. At most one `pread` per run whose filter says maybe.
    pub(crate) fn contains(&self, fp: Fingerprint) -> Result<bool> {
        if self.mem.contains_key(&fp.0) {
            return Ok(true);
        }
        if let Some(f) = &self.frozen
            && f.binary_search_by_key(&fp.0, |e| e.0).is_ok()
        {
            return Ok(true);
        }
        for run in self.runs.iter().rev() {
            if run.get(fp.0)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The value of `fp` (the largest anywhere), if it was ever added.
    pub(crate) fn get(&self, fp: Fingerprint) -> Result<Option<u64>> {
        let mut out = self.mem.get(&fp.0).copied();
        if let Some(f) = &self.frozen
            && let Ok(i) = f.binary_search_by_key(&fp.0, |e| e.0)
        {
            out = out.max(Some(f[i].1));
        }
        for run in &self.runs {
            if let Some(v) = run.get(fp.0)? {
                out = out.max(Some(v));
            }
        }
        Ok(out)
    }

    /// Every fingerprint with its value, for `verify` (memory in proportion to the set).
    pub(crate) fn collect_all(&self) -> Result<FpMap<u64>> {
        let mut out: FpMap<u64> = self.mem.clone();
        let mut add = |fp: u128, v: u64| {
            let slot = out.entry(fp).or_insert(v);
            *slot = (*slot).max(v);
        };
        if let Some(f) = &self.frozen {
            for &(fp, v) in f.iter() {
                add(fp, v);
            }
        }
        for run in &self.runs {
            for item in run.iter() {
                let (fp, v) = item?;
                add(fp, v);
            }
        }
        Ok(out)
    }

    /// Entries stored in runs (a fingerprint in several runs counts in each).
    pub(crate) fn run_entries(&self) -> u64 {
        self.runs.iter().map(|r| r.len()).sum()
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
        // 10 bits per fingerprint.
        let mut b = Bloom::with_bytes(10_000 * 10 / 8);
        let inserted: Vec<u128> = (0..10_000u64)
            .map(|i| Fingerprint::of(&format!("http://a/{i}")).0)
            .collect();
        for fp in &inserted {
            b.insert(*fp);
        }
        assert!(inserted.iter().all(|fp| b.maybe_contains(*fp)));
        let false_positives = (0..10_000u64)
            .filter(|i| b.maybe_contains(Fingerprint::of(&format!("http://b/{i}")).0))
            .count();
        assert!(
            false_positives < 250,
            "{false_positives} false positives in 10,000"
        );
    }

    #[test]
    fn marks_keep_the_largest_value() {
        let mut s = SeenSet::default();
        let fp = Fingerprint::of("http://a/");
        s.mark(fp, 0);
        s.mark(fp, FINISHED | 5);
        s.mark(fp, 2);
        assert_eq!(s.get(fp).expect("get"), Some(FINISHED | 5));
        assert!(s.contains(fp).expect("contains"));
        assert!(!s.contains(Fingerprint::of("http://b/")).expect("contains"));
    }
}
