//! WACZ 1.1.1 (webrecorder's Web Archive Collection Zipped): one ZIP, every entry
//! stored uncompressed (so a replay tool reads a record at its offset without
//! inflating the archive), holding
//!
//! - `archive/*.warc.gz`: the WARC files, each up to the length its crawl acked;
//! - `indexes/index.cdx`: the CDXJ lines of those files, sorted;
//! - `pages/pages.jsonl`: the HTML pages captured (`id`, `url`, `ts`), after its
//!   header line;
//! - `datapackage.json`: every entry's path, size and SHA-256, and the package's
//!   metadata (`wacz_version`, `created`, `software`, `title`, `mainPageURL`);
//! - `datapackage-digest.json`: the SHA-256 of `datapackage.json`.
//!
//! The ZIP is written with ZIP64 records throughout, so a WARC past 4 GiB fits.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What goes into a WACZ.
#[derive(Debug, Clone, Default)]
pub struct WaczInput {
    /// The WARC files with the number of their bytes to take (what was acked: a
    /// crashed crawl may have written more), in order. Their file names must differ.
    pub warcs: Vec<(PathBuf, u64)>,
    /// The CDXJ indexes of those files with the bytes of each to read.
    pub indexes: Vec<(PathBuf, u64)>,
    /// The package's title.
    pub title: String,
    /// The page a replay opens first (a seed) and the date of its capture, if any.
    pub main_page: Option<String>,
    /// `software` in `datapackage.json`.
    pub software: String,
    /// `created`, RFC 3339.
    pub created: String,
}

/// What a WACZ holds, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaczSummary {
    /// WARC files packaged.
    pub warcs: usize,
    /// CDXJ lines in its index.
    pub index_lines: usize,
    /// Pages in its pages list.
    pub pages: usize,
}

/// One entry of the ZIP's central directory.
struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// A ZIP of stored entries, each with ZIP64 sizes and offsets.
struct ZipOut {
    out: BufWriter<File>,
    path: PathBuf,
    pos: u64,
    entries: Vec<Entry>,
}

impl ZipOut {
    fn io(&self, e: std::io::Error) -> Error {
        Error::io(&self.path, e)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes entry `name` from `data` (at most `limit` bytes of it), and returns its
    /// size and SHA-256 (`sha256:hex`).
    fn entry(&mut self, name: &str, data: &mut dyn Read, limit: u64) -> Result<(u64, String)> {
        let offset = self.pos;
        let header = local_header(name, 0, 0);
        self.put(&header)?;
        let mut crc = crc32fast::Hasher::new();
        let mut sha = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let mut data = data.take(limit);
        loop {
            let n = data.read(&mut buf).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            sha.update(&buf[..n]);
            self.put(&buf[..n])?;
            size += n as u64;
        }
        let crc = crc.finalize();
        // Back to the local header: its CRC and (ZIP64) sizes are known now.
        let end = self.pos;
        let patched = local_header(name, crc, size);
        self.out.flush().map_err(|e| self.io(e))?;
        let f = self.out.get_mut();
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(&patched).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(end))
            .map_err(|e| Error::io(&self.path, e))?;
        let sha256 = format!("sha256:{}", hex(&sha.finalize()));
        self.entries.push(Entry {
            name: name.to_string(),
            crc,
            size,
            offset,
        });
        Ok((size, sha256))
    }

    /// The central directory, the ZIP64 end records and the end record.
    fn finish(mut self) -> Result<()> {
        let cd_start = self.pos;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let mut h = Vec::with_capacity(46 + e.name.len() + 28);
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            h.extend_from_slice(&45u16.to_le_bytes()); // made by: 4.5
            h.extend_from_slice(&45u16.to_le_bytes()); // needed: 4.5 (ZIP64)
            h.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u16.to_le_bytes()); // time
            h.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
            h.extend_from_slice(&e.crc.to_le_bytes());
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&28u16.to_le_bytes()); // extra length
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            h.extend_from_slice(&u32::MAX.to_le_bytes()); // offset: in the extra
            h.extend_from_slice(e.name.as_bytes());
            h.extend_from_slice(&1u16.to_le_bytes()); // ZIP64 extra
            h.extend_from_slice(&24u16.to_le_bytes());
            h.extend_from_slice(&e.size.to_le_bytes());
            h.extend_from_slice(&e.size.to_le_bytes());
            h.extend_from_slice(&e.offset.to_le_bytes());
            self.put(&h)?;
        }
        let cd_size = self.pos - cd_start;
        let eocd64 = self.pos;
        let n = entries.len() as u64;
        let mut r = Vec::with_capacity(56 + 20 + 22);
        r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        r.extend_from_slice(&44u64.to_le_bytes());
        r.extend_from_slice(&45u16.to_le_bytes());
        r.extend_from_slice(&45u16.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&n.to_le_bytes());
        r.extend_from_slice(&n.to_le_bytes());
        r.extend_from_slice(&cd_size.to_le_bytes());
        r.extend_from_slice(&cd_start.to_le_bytes());
        // ZIP64 end of central directory locator.
        r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&eocd64.to_le_bytes());
        r.extend_from_slice(&1u32.to_le_bytes());
        // End of central directory, its fields pointing to the ZIP64 ones.
        r.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&u16::MAX.to_le_bytes());
        r.extend_from_slice(&u16::MAX.to_le_bytes());
        r.extend_from_slice(&u32::MAX.to_le_bytes());
        r.extend_from_slice(&u32::MAX.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        self.put(&r)?;
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// A local file header with ZIP64 sizes.
fn local_header(name: &str, crc: u32, size: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(30 + name.len() + 20);
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&45u16.to_le_bytes());
    h.extend_from_slice(&0x0800u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&0x21u16.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&20u16.to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `20261202052241` as `2026-12-02T05:22:41Z`.
fn iso(ts: &str) -> String {
    if ts.len() < 14 {
        return ts.to_string();
    }
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &ts[..4],
        &ts[4..6],
        &ts[6..8],
        &ts[8..10],
        &ts[10..12],
        &ts[12..14]
    )
}

/// Writes the WACZ `out` from `input` (replacing a file there). The CDXJ lines are
/// sorted in memory: about 250 bytes per capture.
///
/// # Errors
/// [`Error::Io`] when a file cannot be read or written, [`Error::Serialize`] for two
/// WARC files of the same name or an index line that does not read.
pub fn write_wacz(out: &Path, input: &WaczInput) -> Result<WaczSummary> {
    let mut names = std::collections::HashSet::new();
    for (p, _) in &input.warcs {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !names.insert(name.clone()) {
            return Err(Error::Serialize(
                format!("two WARC files are named {name}; a WACZ needs distinct names").into(),
            ));
        }
    }
    let mut lines = Vec::new();
    for (p, len) in &input.indexes {
        let f = File::open(p).map_err(|e| Error::io(p, e))?;
        for line in BufReader::new(f.take(*len)).lines() {
            let line = line.map_err(|e| Error::io(p, e))?;
            if !line.trim().is_empty() {
                lines.push(line);
            }
        }
    }
    lines.sort_unstable();
    lines.dedup();
    // The pages: each URL's first HTML capture with status 200.
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut captures: Vec<(&str, String)> = Vec::new();
    for line in &lines {
        let mut parts = line.splitn(3, ' ');
        let (_, ts, json) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("{}"),
        );
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::Serialize(Box::new(e)))?;
        if v["mime"] == "text/html"
            && v["status"] == "200"
            && let Some(url) = v["url"].as_str()
        {
            captures.push((ts, url.to_string()));
        }
    }
    captures.sort();
    for (ts, url) in captures {
        if seen.insert(url.clone()) {
            // Each page has an id (the spec's optional unique id): a table reader
            // (frictionless, in `wacz validate`) takes the header line's keys as
            // columns, and a row without any of them as blank.
            let id = format!("p{}", pages.len());
            pages.push(serde_json::json!({ "id": id, "url": url, "ts": iso(ts) }).to_string());
        }
    }

    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut zip = ZipOut {
        out: BufWriter::with_capacity(256 * 1024, file),
        path: out.to_path_buf(),
        pos: 0,
        entries: Vec::new(),
    };
    let mut resources = Vec::new();
    let mut add = |zip: &mut ZipOut, path: String, data: &mut dyn Read, limit: u64| -> Result<()> {
        let (bytes, hash) = zip.entry(&path, data, limit)?;
        let name = path.rsplit('/').next().unwrap_or(&path).to_ascii_lowercase();
        resources.push(serde_json::json!({ "name": name, "path": path, "hash": hash, "bytes": bytes }));
        Ok(())
    };
    for (p, len) in &input.warcs {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut f = File::open(p).map_err(|e| Error::io(p, e))?;
        add(&mut zip, format!("archive/{name}"), &mut f, *len)?;
    }
    let mut index = lines.join("\n");
    if !index.is_empty() {
        index.push('\n');
    }
    add(
        &mut zip,
        "indexes/index.cdx".into(),
        &mut index.as_bytes(),
        u64::MAX,
    )?;
    let mut list =
        String::from("{\"format\": \"json-pages-1.0\", \"id\": \"pages\", \"title\": \"All Pages\"}\n");
    for p in &pages {
        list.push_str(p);
        list.push('\n');
    }
    add(
        &mut zip,
        "pages/pages.jsonl".into(),
        &mut list.as_bytes(),
        u64::MAX,
    )?;
    let mut package = serde_json::json!({
        "profile": "data-package",
        "resources": resources,
        "wacz_version": "1.1.1",
        "title": input.title,
        "created": input.created,
        "software": input.software,
    });
    if let Some(main) = &input.main_page {
        package["mainPageURL"] = serde_json::Value::String(main.clone());
    }
    let package = serde_json::to_vec_pretty(&package).map_err(|e| Error::Serialize(Box::new(e)))?;
    zip.entry("datapackage.json", &mut &package[..], u64::MAX)?;
    let digest = serde_json::json!({
        "path": "datapackage.json",
        "hash": format!("sha256:{}", hex(&Sha256::digest(&package))),
    });
    let digest = serde_json::to_vec_pretty(&digest).map_err(|e| Error::Serialize(Box::new(e)))?;
    zip.entry("datapackage-digest.json", &mut &digest[..], u64::MAX)?;
    zip.finish()?;
    Ok(WaczSummary {
        warcs: input.warcs.len(),
        index_lines: lines.len(),
        pages: pages.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_zip64_that_reads_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let warc = dir.path().join("a.warc.gz");
        std::fs::write(&warc, b"0123456789-not-acked").expect("write");
        let index = dir.path().join("a.cdxj");
        std::fs::write(
            &index,
            "b,x)/ 20260101000000 {\"url\": \"http://x.b/\", \"mime\": \"text/html\", \"status\": \"200\", \"offset\": \"0\", \"length\": \"10\", \"filename\": \"a.warc.gz\"}\n",
        )
        .expect("write");
        let out = dir.path().join("a.wacz");
        let input = WaczInput {
            warcs: vec![(warc, 10)],
            indexes: vec![(index.clone(), std::fs::metadata(&index).expect("meta").len())],
            title: "t".into(),
            software: "trawl-test".into(),
            created: "2026-01-01T00:00:00Z".into(),
            main_page: Some("http://x.b/".into()),
        };
        let s = write_wacz(&out, &input).expect("wacz");
        assert_eq!(
            s,
            WaczSummary {
                warcs: 1,
                index_lines: 1,
                pages: 1
            }
        );
        let raw = std::fs::read(&out).expect("read");
        // The stored WARC bytes are in the ZIP as they are, cut at the acked length.
        let at = raw.windows(10).position(|w| w == b"0123456789").expect("stored");
        assert_ne!(&raw[at + 10..at + 14], b"-not");
        assert!(raw.ends_with(&[0xff, 0xff, 0xff, 0xff, 0, 0]));
        assert_eq!(iso("20260101020304"), "2026-01-01T02:03:04Z");
    }
}
