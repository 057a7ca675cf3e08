//! The seen set's run files: immutable, sorted `(fingerprint, value)` pairs.
//!
//! A run lives in `<state dir>/seen/run-<id>.seen`:
//!
//! | part | content |
//! |---|---|
//! | header (64 bytes) | magic `TRWLSEEN`, version, entry count, block count, filter words |
//! | blocks | 24-byte entries (fingerprint, big-endian; value, little-endian), 170 per 4,080-byte block |
//! | filter | the blocked Bloom filter's words |
//! | index | per block: its first fingerprint and an xxh3 checksum of its bytes |
//! | footer | an xxh3 checksum of the header, the filter and the index |
//!
//! Opening reads the header, the filter and the index (about 1.3 bytes per entry at 10
//! bits per entry) and checks them; a lookup reads one block and checks its checksum.
//! A run is written to a `.tmp` file, synced, renamed and the directory synced, and
//! only then registered in sled (`store`), so a registered run is always whole; files
//! that are not registered are leftovers of a crash and are deleted on open.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::seen::{BLOCK_WORDS, Bloom};
use crate::{Error, Result};

const ENTRY: usize = 24;
const PER_BLOCK: usize = 170;
const BLOCK_BYTES: usize = ENTRY * PER_BLOCK;
const MAGIC: [u8; 8] = *b"TRWLSEEN";
const VERSION: u32 = 1;
const HEADER: usize = 64;
/// Index bytes per block: first fingerprint and checksum.
const INDEX_ENTRY: usize = 24;

pub(crate) fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("run-{id:016x}.seen"))
}

fn tmp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("run-{id:016x}.tmp"))
}

/// The id of a run file name, if it is one.
pub(crate) fn parse_run_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("run-")?.strip_suffix(".seen")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::corrupt(format!("seen-set run {}: {what}", path.display()))
}

/// An open run: its filter and index in memory, its blocks on disk.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) id: u64,
    n: u64,
    file: File,
    path: PathBuf,
    bloom: Bloom,
    first: Vec<u128>,
    sums: Vec<u64>,
}

fn header(n: u64, blocks: u64, bloom_words: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&n.to_le_bytes());
    h[24..32].copy_from_slice(&blocks.to_le_bytes());
    h[32..40].copy_from_slice(&bloom_words.to_le_bytes());
    h
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn be_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}

impl Run {
    pub(crate) fn len(&self) -> u64 {
        self.n
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn open(dir: &Path, id: u64) -> Result<Run> {
        let path = run_path(dir, id);
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => corrupt(&path, "the file is missing"),
            _ => Error::Io(e),
        })?;
        let len = file.metadata().map_err(Error::Io)?.len();
        let mut h = [0u8; HEADER];
        if len < HEADER as u64 {
            return Err(corrupt(&path, "the file is truncated"));
        }
        file.read_exact_at(&mut h, 0).map_err(Error::Io)?;
        if h[..8] != MAGIC || le_u64(&h[8..16]) as u32 != VERSION {
            return Err(corrupt(&path, "not a run file of this version"));
        }
        let (n, blocks, words) = (le_u64(&h[16..24]), le_u64(&h[24..32]), le_u64(&h[32..40]));
        if blocks != n.div_ceil(PER_BLOCK as u64) || words == 0 || !words.is_multiple_of(BLOCK_WORDS as u64) {
            return Err(corrupt(&path, "the header is inconsistent"));
        }
        let meta_at = HEADER as u64 + n * ENTRY as u64;
        let meta_len = words * 8 + blocks * INDEX_ENTRY as u64 + 8;
        if len != meta_at + meta_len {
            return Err(corrupt(&path, "the file has the wrong length"));
        }
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact_at(&mut meta, meta_at).map_err(Error::Io)?;
        let (body, footer) = meta.split_at(meta.len() - 8);
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&h);
        hasher.update(body);
        if hasher.digest() != le_u64(footer) {
            return Err(corrupt(&path, "the filter or index fails its checksum"));
        }
        let (bloom_bytes, index) = body.split_at(words as usize * 8);
        let bloom = Bloom::from_words(bloom_bytes.chunks_exact(8).map(le_u64).collect())
            .ok_or_else(|| corrupt(&path, "the filter is empty"))?;
        let mut first = Vec::with_capacity(blocks as usize);
        let mut sums = Vec::with_capacity(blocks as usize);
        for e in index.chunks_exact(INDEX_ENTRY) {
            first.push(be_u128(e));
            sums.push(le_u64(&e[16..]));
        }
        Ok(Run {
            id,
            n,
            file,
            path,
            bloom,
            first,
            sums,
        })
    }

    fn block_len(&self, b: usize) -> usize {
        let start = b as u64 * PER_BLOCK as u64;
        ((self.n - start).min(PER_BLOCK as u64) as usize) * ENTRY
    }

    fn read_block(&self, b: usize, buf: &mut [u8]) -> Result<()> {
        let at = HEADER as u64 + (b * BLOCK_BYTES) as u64;
        self.file.read_exact_at(buf, at).map_err(Error::Io)?;
        if xxhash_rust::xxh3::xxh3_64(buf) != self.sums[b] {
            return Err(corrupt(&self.path, &format!("block {b} fails its checksum")));
        }
        Ok(())
    }

    /// The value of `fp`, if the run holds it: a filter check, then at most one read.
    pub(crate) fn get(&self, fp: u128) -> Result<Option<u64>> {
        if !self.bloom.maybe_contains(fp) {
            return Ok(None);
        }
        let b = self.first.partition_point(|f| *f <= fp);
        if b == 0 {
            return Ok(None);
        }
        let b = b - 1;
        let mut buf = [0u8; BLOCK_BYTES];
        let buf = &mut buf[..self.block_len(b)];
        self.read_block(b, buf)?;
        let entries = buf.len() / ENTRY;
        let (mut lo, mut hi) = (0, entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = &buf[mid * ENTRY..];
            match be_u128(e).cmp(&fp) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(le_u64(&e[16..]))),
            }
        }
        Ok(None)
    }

    /// Every entry in order, read 64 blocks at a time.
    pub(crate) fn iter(&self) -> RunIter<'_> {
        RunIter {
            run: self,
            next_block: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

/// A sequential reader over a run.
#[derive(Debug)]
pub(crate) struct RunIter<'a> {
    run: &'a Run,
    next_block: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Iterator for RunIter<'_> {
    type Item = Result<(u128, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            let blocks = self.run.first.len();
            if self.next_block >= blocks {
                return None;
            }
            let end = (self.next_block + 64).min(blocks);
            let len = (end - self.next_block - 1) * BLOCK_BYTES + self.run.block_len(end - 1);
            self.buf.resize(len, 0);
            let at = HEADER as u64 + (self.next_block * BLOCK_BYTES) as u64;
            if let Err(e) = self.run.file.read_exact_at(&mut self.buf, at) {
                self.next_block = blocks;
                return Some(Err(Error::Io(e)));
            }
            for (i, block) in self.buf.chunks(BLOCK_BYTES).enumerate() {
                let b = self.next_block + i;
                if xxhash_rust::xxh3::xxh3_64(block) != self.run.sums[b] {
                    self.next_block = blocks;
                    self.buf.clear();
                    return Some(Err(corrupt(
                        &self.run.path,
                        &format!("block {b} fails its checksum"),
                    )));
                }
            }
            self.next_block = end;
            self.pos = 0;
        }
        let e = &self.buf[self.pos..self.pos + ENTRY];
        self.pos += ENTRY;
        Some(Ok((be_u128(e), le_u64(&e[16..]))))
    }
}

/// Writes a run from entries given in increasing fingerprint order.
pub(crate) struct RunWriter {
    dir: PathBuf,
    id: u64,
    out: BufWriter<File>,
    n: u64,
    bloom: Bloom,
    first: Vec<u128>,
    sums: Vec<u64>,
    block: Vec<u8>,
    last: Option<u128>,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter")
            .field("id", &self.id)
            .field("n", &self.n)
            .finish()
    }
}

impl RunWriter {
    pub(crate) fn create(dir: &Path, id: u64, bloom_bytes: usize) -> Result<RunWriter> {
        let file = File::create(tmp_path(dir, id)).map_err(Error::Io)?;
        let mut out = BufWriter::with_capacity(256 << 10, file);
        out.write_all(&[0u8; HEADER]).map_err(Error::Io)?;
        Ok(RunWriter {
            dir: dir.to_path_buf(),
            id,
            out,
            n: 0,
            bloom: Bloom::with_bytes(bloom_bytes),
            first: Vec::new(),
            sums: Vec::new(),
            block: Vec::with_capacity(BLOCK_BYTES),
            last: None,
        })
    }

    pub(crate) fn entries(&self) -> u64 {
        self.n
    }

    pub(crate) fn push(&mut self, fp: u128, v: u64) -> Result<()> {
        if self.last.is_some_and(|l| l >= fp) {
            return Err(Error::corrupt("seen-set run entries out of order"));
        }
        self.last = Some(fp);
        if self.block.is_empty() {
            self.first.push(fp);
        }
        self.block.extend_from_slice(&fp.to_be_bytes());
        self.block.extend_from_slice(&v.to_le_bytes());
        self.bloom.insert(fp);
        self.n += 1;
        if self.block.len() == BLOCK_BYTES {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> Result<()> {
        self.sums.push(xxhash_rust::xxh3::xxh3_64(&self.block));
        self.out.write_all(&self.block).map_err(Error::Io)?;
        self.block.clear();
        Ok(())
    }

    /// Writes the filter, index and header, syncs, renames into place, syncs the
    /// directory and opens the result.
    pub(crate) fn finish(mut self) -> Result<Run> {
        if !self.block.is_empty() {
            self.end_block()?;
        }
        let h = header(self.n, self.first.len() as u64, self.bloom.words.len() as u64);
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&h);
        let mut meta = Vec::with_capacity(self.bloom.words.len() * 8 + self.first.len() * INDEX_ENTRY);
        for w in &self.bloom.words {
            meta.extend_from_slice(&w.to_le_bytes());
        }
        for (f, s) in self.first.iter().zip(&self.sums) {
            meta.extend_from_slice(&f.to_be_bytes());
            meta.extend_from_slice(&s.to_le_bytes());
        }
        hasher.update(&meta);
        meta.extend_from_slice(&hasher.digest().to_le_bytes());
        self.out.write_all(&meta).map_err(Error::Io)?;
        let file = self.out.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        file.write_all_at(&h, 0).map_err(Error::Io)?;
        file.sync_all().map_err(Error::Io)?;
        drop(file);
        std::fs::rename(tmp_path(&self.dir, self.id), run_path(&self.dir, self.id)).map_err(Error::Io)?;
        sync_dir(&self.dir)?;
        Run::open(&self.dir, self.id)
    }

    /// Gives up: removes the temporary file.
    pub(crate) fn abandon(self) {
        let (dir, id) = (self.dir.clone(), self.id);
        drop(self);
        let _ = std::fs::remove_file(tmp_path(&dir, id));
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::Io)
}

/// Merges runs into `w`, keeping the largest value of a fingerprint found in several.
/// `between` runs every 64 blocks of output; when it returns false the merge stops and
/// `Ok(false)` is returned.
pub(crate) fn merge_into(
    inputs: &[&Run],
    w: &mut RunWriter,
    mut between: impl FnMut() -> bool,
) -> Result<bool> {
    let mut iters: Vec<RunIter<'_>> = inputs.iter().map(|r| r.iter()).collect();
    let mut heads: Vec<Option<(u128, u64)>> = Vec::with_capacity(iters.len());
    for it in iters.iter_mut() {
        heads.push(it.next().transpose()?);
    }
    let mut since = 0usize;
    loop {
        let Some(fp) = heads.iter().flatten().map(|h| h.0).min() else {
            return Ok(true);
        };
        let mut v = 0u64;
        for (h, it) in heads.iter_mut().zip(iters.iter_mut()) {
            if let Some((f, hv)) = *h
                && f == fp
            {
                v = v.max(hv);
                *h = it.next().transpose()?;
            }
        }
        w.push(fp, v)?;
        since += 1;
        if since >= 64 * PER_BLOCK {
            since = 0;
            if !between() {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Fingerprint;

    fn write(dir: &Path, id: u64, mut entries: Vec<(u128, u64)>) -> Run {
        entries.sort();
        let mut w = RunWriter::create(dir, id, entries.len() * 10 / 8).expect("create");
        for (fp, v) in entries {
            w.push(fp, v).expect("push");
        }
        w.finish().expect("finish")
    }

    #[test]
    fn a_run_finds_what_it_holds_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tmp");
        let entries: Vec<(u128, u64)> = (0..2_000u64)
            .map(|i| (Fingerprint::of(&format!("http://a/{i}")).0, i))
            .collect();
        let run = write(dir.path(), 7, entries.clone());
        assert_eq!(run.len(), 2_000);
        for (fp, v) in &entries {
            assert_eq!(run.get(*fp).expect("get"), Some(*v));
        }
        for i in 0..2_000u64 {
            assert_eq!(
                run.get(Fingerprint::of(&format!("http://b/{i}")).0).expect("get"),
                None
            );
        }
        let mut sorted = entries.clone();
        sorted.sort();
        let listed: Vec<(u128, u64)> = run.iter().map(|e| e.expect("reads")).collect();
        assert_eq!(listed, sorted);
        drop(run);
        let reopened = Run::open(dir.path(), 7).expect("reopens");
        assert_eq!(reopened.get(sorted[1999].0).expect("get"), Some(sorted[1999].1));
        assert_eq!(parse_run_name("run-0000000000000007.seen"), Some(7));
        assert_eq!(parse_run_name("run-7.seen"), None);
    }

    #[test]
    fn merging_keeps_the_largest_value_and_damage_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = write(dir.path(), 1, (0..500u128).map(|i| (i * 3, 0)).collect());
        let b = write(dir.path(), 2, (0..500u128).map(|i| (i * 2, 5)).collect());
        let mut w = RunWriter::create(dir.path(), 3, 1024).expect("create");
        assert!(merge_into(&[&a, &b], &mut w, || true).expect("merge"));
        let m = w.finish().expect("finish");
        assert_eq!(m.get(6).expect("get"), Some(5));
        assert_eq!(m.get(3).expect("get"), Some(0));
        assert_eq!(m.get(4).expect("get"), Some(5));
        assert_eq!(m.len(), 500 + 500 - 167);

        let path = run_path(dir.path(), 3);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[HEADER + 10] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let m = Run::open(dir.path(), 3).expect("the index is intact");
        assert!(matches!(m.get(0), Err(Error::Corrupt { .. })));
        let len = bytes.len();
        bytes[len - 20] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(Run::open(dir.path(), 3), Err(Error::Corrupt { .. })));
        std::fs::write(&path, &bytes[..100]).expect("write");
        assert!(matches!(Run::open(dir.path(), 3), Err(Error::Corrupt { .. })));
    }
}
