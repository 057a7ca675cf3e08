//! WARC 1.1: a `warcinfo` record at the start of every file, then a `request` and a
//! `response` record per fetch, each record its own gzip member (`.warc.gz`), files
//! rotated at a size limit.
//!
//! Bodies are stored decoded (trawl decompresses as it fetches, to cap the size), so
//! the stored HTTP head is made to agree with the stored body: `Content-Encoding` and
//! `Transfer-Encoding` are renamed to `X-Trawl-Original-*` and `Content-Length` is
//! set to the stored length. `WARC-Block-Digest` and `WARC-Payload-Digest` are SHA-1 in
//! base32, over exactly what is stored.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compress, Compression, FlushCompress, Status};
use sha1::{Digest, Sha1};

use crate::cdxj::{CdxjEntry, CdxjWriter};
use crate::file::OutFile;
use crate::{Checkpoint, Durability, Error, Exchange, PageRecord, Result, RevisitProfile, Sink};

/// Settings of a [`WarcSink`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WarcOptions {
    /// Start a new file once the current one reaches this many bytes. By default,
    /// 1 GiB, the size the WARC community recommends.
    pub max_file_bytes: u64,
    /// The gzip level, 0 to 9. By default, 6.
    pub gzip_level: u32,
    /// The `software` field of the `warcinfo` record. By default, `trawl/VERSION`.
    pub software: String,
    /// How hard a checkpoint pushes data to disk. By default, [`Durability::Os`].
    pub durability: Durability,
}

impl Default for WarcOptions {
    fn default() -> WarcOptions {
        WarcOptions {
            max_file_bytes: 1 << 30,
            gzip_level: 6,
            software: format!("trawl/{}", env!("CARGO_PKG_VERSION")),
            durability: Durability::Os,
        }
    }
}

impl WarcOptions {
    /// Sets [`WarcOptions::max_file_bytes`].
    pub fn max_file_bytes(mut self, n: u64) -> WarcOptions {
        self.max_file_bytes = n.max(1);
        self
    }
    /// Sets [`WarcOptions::gzip_level`].
    pub fn gzip_level(mut self, level: u32) -> WarcOptions {
        self.gzip_level = level.min(9);
        self
    }
    /// Sets [`WarcOptions::durability`].
    pub fn durability(mut self, d: Durability) -> WarcOptions {
        self.durability = d;
        self
    }
}

/// Writes gzipped WARC 1.1 files, exactly-once across crashes.
#[derive(Debug)]
pub struct WarcSink {
    base: PathBuf,
    opts: WarcOptions,
    index: u32,
    file: OutFile,
    warcinfo_id: String,
    gzip: MemberWriter,
    /// The CDXJ index written alongside ([`WarcSink::with_cdxj`]), and its offset at
    /// the last checkpoint.
    cdxj: Option<(CdxjWriter, u64)>,
}

/// The name the CDXJ index's checkpoint is stored under.
pub const CDXJ_CHECKPOINT: &str = "cdxj";

/// Writes one gzip member per call, reusing one deflate state: a fresh encoder per
/// record cost a large allocation and set-up each time, twice per page.
struct MemberWriter {
    deflate: Compress,
    out: Vec<u8>,
}

impl std::fmt::Debug for MemberWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberWriter").finish_non_exhaustive()
    }
}

impl MemberWriter {
    fn new(level: u32) -> MemberWriter {
        MemberWriter {
            deflate: Compress::new(Compression::new(level), false),
            out: Vec::with_capacity(64 * 1024),
        }
    }

    /// A complete gzip member (RFC 1952) holding `parts` in order.
    fn member(&mut self, parts: &[&[u8]]) -> std::io::Result<&[u8]> {
        self.out.clear();
        // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
        self.out
            .extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        self.deflate.reset();
        let mut crc = crc32fast::Hasher::new();
        let mut size = 0u32;
        for part in parts {
            crc.update(part);
            size = size.wrapping_add(part.len() as u32);
            let mut input = *part;
            while !input.is_empty() {
                self.out.reserve(input.len() / 2 + 1024);
                let before = self.deflate.total_in();
                self.deflate
                    .compress_vec(input, &mut self.out, FlushCompress::None)
                    .map_err(std::io::Error::other)?;
                input = &input[(self.deflate.total_in() - before) as usize..];
            }
        }
        loop {
            self.out.reserve(1024);
            match self
                .deflate
                .compress_vec(&[], &mut self.out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?
            {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {}
            }
        }
        self.out.extend_from_slice(&crc.finalize().to_le_bytes());
        self.out.extend_from_slice(&size.to_le_bytes());
        Ok(&self.out)
    }
}

/// The path of file `index` of a rotating output: the first file is `base` itself,
/// the later ones get `-00001` before `.warc.gz` (or before the extension).
pub fn rotated_path(base: &Path, index: u32) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.warc.gz".into());
    let (stem, ext) = match name.find(".warc") {
        Some(i) => name.split_at(i),
        None => match name.rfind('.') {
            Some(i) => name.split_at(i),
            None => (name.as_str(), ""),
        },
    };
    base.with_file_name(format!("{stem}-{index:05}{ext}"))
}

static RECORD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh `<urn:uuid:…>` (version 4 layout, from SHA-1 of time, process, counter and
/// a seed string).
fn record_id(seed: &str) -> String {
    let n = RECORD_COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha1::new();
    h.update(now.as_nanos().to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(n.to_be_bytes());
    h.update(seed.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// RFC 4648 base32, as WARC digests use it.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sha1_b32(parts: &[&[u8]]) -> String {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    format!("sha1:{}", base32(&h.finalize()))
}

/// Makes a stored response head agree with a stored, decoded body.
fn normalize_head(head: &str, body_len: usize) -> String {
    let mut out = String::with_capacity(head.len() + 64);
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 {
            let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            match name.as_str() {
                "content-length" => continue,
                "content-encoding" | "transfer-encoding" => {
                    let (_, value) = line.split_once(':').unwrap_or((line, ""));
                    let original = if name == "content-encoding" {
                        "Content-Encoding"
                    } else {
                        "Transfer-Encoding"
                    };
                    out.push_str(&format!("X-Trawl-Original-{original}:{value}\r\n"));
                    continue;
                }
                "" => continue,
                _ => {}
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    out
}

impl WarcSink {
    /// Starts a new output at `base` (later files are named after it), replacing what
    /// the first file held and removing later files of an earlier run.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be opened or removed.
    pub fn create(base: &Path, opts: WarcOptions) -> Result<WarcSink> {
        WarcSink::resume(base, &Checkpoint::default(), opts)
    }

    /// Reopens the output at `base`, cut back to `checkpoint`: the checkpoint's file is
    /// truncated to its offset and any later file is removed.
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint, [`Error::Io`]
    /// otherwise.
    pub fn resume(base: &Path, checkpoint: &Checkpoint, opts: WarcOptions) -> Result<WarcSink> {
        let mut later = checkpoint.file + 1;
        loop {
            let p = rotated_path(base, later);
            match std::fs::remove_file(&p) {
                Ok(()) => later += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        let path = rotated_path(base, checkpoint.file);
        let file = OutFile::open(&path, checkpoint.offset, opts.durability)?;
        let gzip = MemberWriter::new(opts.gzip_level);
        Ok(WarcSink {
            base: base.to_path_buf(),
            opts,
            index: checkpoint.file,
            file,
            warcinfo_id: String::new(),
            gzip,
            cdxj: None,
        })
    }

    /// Also writes a CDXJ index of the response and revisit records to `path`
    /// ([`crate::cdxj_path`] names it after the WARC), cut back to `checkpoint` (the
    /// one stored under [`CDXJ_CHECKPOINT`]; `None` starts it empty). Its checkpoint is
    /// taken with the WARC's and returned by [`Sink::side_checkpoints`].
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint, [`Error::Io`]
    /// otherwise.
    pub fn with_cdxj(mut self, path: &Path, checkpoint: Option<&Checkpoint>) -> Result<WarcSink> {
        let cp = checkpoint.copied().unwrap_or_default();
        let w = CdxjWriter::open(path, &cp, self.opts.durability)?;
        self.cdxj = Some((w, cp.offset));
        Ok(self)
    }

    fn gzip_member(&mut self, record: &[&[u8]]) -> Result<()> {
        let member = self
            .gzip
            .member(record)
            .map_err(|e| Error::io(self.file.path(), e))?;
        self.file.write_all(member)
    }

    /// Writes one record as a gzip member; returns the member's offset and length.
    fn write_record(&mut self, headers: &str, block: &[&[u8]]) -> Result<(u64, u64)> {
        let start = self.file.pos();
        let len: usize = block.iter().map(|b| b.len()).sum();
        let head = format!("WARC/1.1\r\n{headers}Content-Length: {len}\r\n\r\n");
        let mut parts: Vec<&[u8]> = Vec::with_capacity(block.len() + 2);
        parts.push(head.as_bytes());
        parts.extend_from_slice(block);
        parts.push(b"\r\n\r\n");
        self.gzip_member(&parts)?;
        Ok((start, self.file.pos() - start))
    }

    /// Rotates when the current file is full, and starts a file with its warcinfo.
    fn prepare(&mut self, date: &str) -> Result<()> {
        if self.file.pos() >= self.opts.max_file_bytes {
            self.file.commit()?;
            self.index += 1;
            let path = rotated_path(&self.base, self.index);
            self.file = OutFile::open(&path, 0, self.opts.durability)?;
        }
        if self.file.pos() == 0 || self.warcinfo_id.is_empty() {
            let filename = self
                .file
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = record_id(&filename);
            if self.file.pos() == 0 {
                let fields = format!(
                    "software: {}\r\nformat: WARC File Format 1.1\r\nconformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n",
                    self.opts.software
                );
                let headers = format!(
                    "WARC-Type: warcinfo\r\nWARC-Record-ID: {id}\r\nWARC-Date: {date}\r\nWARC-Filename: {filename}\r\nContent-Type: application/warc-fields\r\n"
                );
                self.write_record(&headers, &[fields.as_bytes()])?;
            }
            // On a resumed file the original warcinfo keeps its id; later records
            // refer to this process's id, which is only informative.
            self.warcinfo_id = id;
        }
        Ok(())
    }
}

impl Sink for WarcSink {
    fn name(&self) -> &str {
        "warc"
    }

    /// Writes a request and a response record. A record without an exchange (a URL
    /// that failed before any response) has nothing to archive and is skipped.
    fn write(&mut self, record: &PageRecord, exchange: Option<&Exchange<'_>>) -> Result<()> {
        let Some(x) = exchange else { return Ok(()) };
        let date = if record.fetched_at.is_empty() {
            crate::rfc3339_ms(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            )
        } else {
            record.fetched_at.clone()
        };
        self.prepare(&date)?;
        let uri = if record.final_url.is_empty() {
            &record.url
        } else {
            &record.final_url
        };
        let response_id = record_id(uri);
        let request_id = record_id(uri);
        let mut net =
            x.ip.map(|ip| format!("WARC-IP-Address: {ip}\r\n"))
                .unwrap_or_default();
        // WARC-Protocol (proposed for WARC 1.1, iipc/warc-specifications#42, as
        // Browsertrix and warcprox write it): which protocol fetched the record.
        if !x.protocol.is_empty() {
            net.push_str(&format!("WARC-Protocol: {}\r\n", x.protocol));
        }

        let head = normalize_head(x.response_head, x.body.len());
        let payload_digest = sha1_b32(&[x.body]);
        let (kind, (offset, length)) = match x.revisit {
            None => {
                let block_digest = sha1_b32(&[head.as_bytes(), x.body]);
                let headers = format!(
                    "WARC-Type: response\r\nWARC-Record-ID: {response_id}\r\nWARC-Date: {date}\r\nWARC-Target-URI: {uri}\r\n{net}\
                     WARC-Warcinfo-ID: {}\r\nWARC-Block-Digest: {block_digest}\r\nWARC-Payload-Digest: {payload_digest}\r\n\
                     Content-Type: application/http;msgtype=response\r\n",
                    self.warcinfo_id
                );
                (
                    "response",
                    self.write_record(&headers, &[head.as_bytes(), x.body])?,
                )
            }
            Some(r) => {
                // A revisit stores the HTTP head alone (WARC 1.1 section 6.7): the
                // payload is the earlier capture's.
                let block_digest = sha1_b32(&[head.as_bytes()]);
                let payload = match r.profile {
                    RevisitProfile::IdenticalPayloadDigest => {
                        format!("WARC-Payload-Digest: {payload_digest}\r\n")
                    }
                    RevisitProfile::ServerNotModified => String::new(),
                };
                // No reference when no earlier capture is known (a 304 to a page
                // whose first crawl wrote no WARC).
                let refers = if r.refers_to_uri.is_empty() || r.refers_to_date.is_empty() {
                    String::new()
                } else {
                    format!(
                        "WARC-Refers-To-Target-URI: {}\r\nWARC-Refers-To-Date: {}\r\n",
                        r.refers_to_uri, r.refers_to_date
                    )
                };
                let headers = format!(
                    "WARC-Type: revisit\r\nWARC-Record-ID: {response_id}\r\nWARC-Date: {date}\r\nWARC-Target-URI: {uri}\r\n{net}\
                     WARC-Warcinfo-ID: {}\r\nWARC-Profile: {}\r\n{refers}\
                     WARC-Block-Digest: {block_digest}\r\n{payload}Content-Type: application/http;msgtype=response\r\n",
                    self.warcinfo_id,
                    r.profile.uri(),
                );
                ("revisit", self.write_record(&headers, &[head.as_bytes()])?)
            }
        };
        if let Some((cdxj, _)) = &mut self.cdxj {
            let filename = self
                .file
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            cdxj.write(&CdxjEntry {
                url: uri,
                date: &date,
                mime: if kind == "revisit" {
                    Some("warc/revisit")
                } else {
                    record.content_type.as_deref()
                },
                status: record.status.unwrap_or(0),
                // A server-not-modified revisit has no payload, so no digest.
                digest: match x.revisit {
                    Some(r) if r.profile == RevisitProfile::ServerNotModified => None,
                    _ => Some(&payload_digest),
                },
                length,
                offset,
                filename: &filename,
            })?;
        }

        let request = format!("{}\r\n\r\n", x.request_head.trim_end_matches("\r\n"));
        let block_digest = sha1_b32(&[request.as_bytes()]);
        let headers = format!(
            "WARC-Type: request\r\nWARC-Record-ID: {request_id}\r\nWARC-Date: {date}\r\nWARC-Target-URI: {uri}\r\n{net}\
             WARC-Concurrent-To: {response_id}\r\nWARC-Warcinfo-ID: {}\r\nWARC-Block-Digest: {block_digest}\r\n\
             Content-Type: application/http;msgtype=request\r\n",
            self.warcinfo_id
        );
        self.write_record(&headers, &[request.as_bytes()])?;
        Ok(())
    }

    /// Commits the WARC, then its CDXJ index (so the index never names a record the
    /// WARC does not hold).
    fn checkpoint(&mut self) -> Result<Checkpoint> {
        let cp = Checkpoint {
            file: self.index,
            offset: self.file.commit()?,
        };
        if let Some((cdxj, at)) = &mut self.cdxj {
            *at = cdxj.commit()?;
        }
        Ok(cp)
    }

    fn side_checkpoints(&self) -> Vec<(&'static str, Checkpoint)> {
        match &self.cdxj {
            Some((_, at)) => vec![(CDXJ_CHECKPOINT, Checkpoint { file: 0, offset: *at })],
            None => Vec::new(),
        }
    }

    fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (0..=self.index).map(|i| rotated_path(&self.base, i)).collect();
        if let Some((cdxj, _)) = &self.cdxj {
            v.push(cdxj.path().to_path_buf());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_standard_gzip_and_the_writer_is_reusable() {
        use std::io::Read;
        let mut w = MemberWriter::new(6);
        let big = vec![b'z'; 200_000];
        let mut all = Vec::new();
        for parts in [&[&b"hello "[..], &b"world"[..]][..], &[&big[..]][..], &[][..]] {
            all.extend_from_slice(w.member(parts).expect("member"));
        }
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&all[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        let mut want = b"hello world".to_vec();
        want.extend_from_slice(&big);
        assert_eq!(out, want);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY======");
        assert_eq!(base32(b"fo"), "MZXQ====");
        assert_eq!(base32(b"foob"), "MZXW6YQ=");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        // A SHA-1 is 20 bytes: 32 characters, no padding.
        assert_eq!(sha1_b32(&[b"abc"]), "sha1:VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5");
    }

    #[test]
    fn rotated_names() {
        let base = Path::new("/x/crawl.warc.gz");
        assert_eq!(rotated_path(base, 0), Path::new("/x/crawl.warc.gz"));
        assert_eq!(rotated_path(base, 3), Path::new("/x/crawl-00003.warc.gz"));
        assert_eq!(rotated_path(Path::new("out.gz"), 1), Path::new("out-00001.gz"));
    }

    #[test]
    fn heads_agree_with_decoded_bodies() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nContent-Length: 99";
        let h = normalize_head(head, 5);
        assert!(h.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"));
        assert!(h.contains("X-Trawl-Original-Content-Encoding: gzip\r\n"));
        assert!(h.contains("X-Trawl-Original-Transfer-Encoding: chunked\r\n"));
        assert!(h.ends_with("Content-Length: 5\r\n\r\n"));
        assert_eq!(h.matches("Content-Length").count(), 1);
    }
}
