//! The CDXJ index of a WARC output: one line per `response` and `revisit` record, as
//! the WARC sink writes them, in the format of webrecorder's `cdxj-indexer` (what pywb
//! and WACZ read):
//!
//! ```text
//! org,example)/page 20261202052241 {"url": "http://example.org/page", "mime": "text/html", "status": "200", "digest": "sha1:…", "length": "1043", "offset": "0", "filename": "crawl.warc.gz"}
//! ```
//!
//! The key is the URL's SURT (as the Python `surt` package makes it by default), the
//! timestamp the record's `WARC-Date` to the second, and `length` and `offset` locate
//! the record's gzip member in `filename`. Lines are in the order the records were
//! written, not sorted (`trawl export --wacz` sorts them); the file is cut back to its
//! checkpoint with the WARC, so it holds exactly the records of acked pages.

use std::path::{Path, PathBuf};

use crate::file::OutFile;
use crate::{Checkpoint, Durability, Result};

/// The path of the CDXJ index that goes with the WARC output `warc`: its name with
/// `.warc.gz` (or `.warc`) replaced by `.cdxj`, or `.cdxj` appended.
pub fn cdxj_path(warc: &Path) -> PathBuf {
    let name = warc
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let stem = name
        .strip_suffix(".warc.gz")
        .or_else(|| name.strip_suffix(".warc"))
        .unwrap_or(&name);
    warc.with_file_name(format!("{stem}.cdxj"))
}

/// One CDXJ line's fields.
pub(crate) struct CdxjEntry<'a> {
    pub(crate) url: &'a str,
    /// The record's `WARC-Date` (RFC 3339).
    pub(crate) date: &'a str,
    /// The HTTP `Content-Type`, for a response; revisits are `warc/revisit`.
    pub(crate) mime: Option<&'a str>,
    pub(crate) status: u16,
    /// The payload digest; none for a server-not-modified revisit, which has no
    /// payload (cdxj-indexer leaves the field out then).
    pub(crate) digest: Option<&'a str>,
    pub(crate) length: u64,
    pub(crate) offset: u64,
    pub(crate) filename: &'a str,
}

/// Writes the CDXJ lines of a WARC output, cut back with it.
#[derive(Debug)]
pub(crate) struct CdxjWriter {
    file: OutFile,
    line: String,
}

impl CdxjWriter {
    /// Opens the index at `path`, cut back to `checkpoint` (offset 0 for a new one).
    pub(crate) fn open(path: &Path, checkpoint: &Checkpoint, durability: Durability) -> Result<CdxjWriter> {
        Ok(CdxjWriter {
            file: OutFile::open(path, checkpoint.offset, durability)?,
            line: String::with_capacity(512),
        })
    }

    pub(crate) fn write(&mut self, e: &CdxjEntry<'_>) -> Result<()> {
        use std::fmt::Write as _;
        let l = &mut self.line;
        l.clear();
        l.push_str(&surt(e.url));
        l.push(' ');
        l.push_str(&timestamp14(e.date));
        l.push_str(" {\"url\": ");
        json_str(l, e.url);
        if let Some(m) = e.mime {
            // As cdxj-indexer: the media type without its parameters.
            let m = m.split([';', ' ', '\t']).next().unwrap_or("").trim();
            if !m.is_empty() {
                l.push_str(", \"mime\": ");
                json_str(l, m);
            }
        }
        let _ = write!(l, ", \"status\": \"{}\"", e.status);
        if let Some(d) = e.digest {
            l.push_str(", \"digest\": ");
            json_str(l, d);
        }
        let _ = write!(
            l,
            ", \"length\": \"{}\", \"offset\": \"{}\", \"filename\": ",
            e.length, e.offset
        );
        json_str(l, e.filename);
        l.push_str("}\n");
        let line = std::mem::take(&mut self.line);
        let r = self.file.write_all(line.as_bytes());
        self.line = line;
        r
    }

    /// Hands the lines to the OS (and the disk, with `Fsync`); the offset to store.
    pub(crate) fn commit(&mut self) -> Result<u64> {
        self.file.commit()
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// `2026-12-02T05:22:41.123Z` as `20261202052241`: the 14-digit timestamp of CDX.
fn timestamp14(date: &str) -> String {
    date.chars().filter(char::is_ascii_digit).take(14).collect()
}

/// A JSON string as Python's `json.dumps` writes it (non-ASCII as `\uXXXX`).
fn json_str(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The SURT of a URL, as the Python `surt` package makes it with its defaults (which
/// cdxj-indexer and pywb use): scheme, user info, fragment and a default port dropped;
/// the host lowercased, a leading `www.` (or `www2.`…) dropped, its labels reversed
/// and comma-joined (an IPv4 address too); the path and query lowercased; a trailing
/// slash dropped unless the path is `/`; the query's arguments sorted, an empty query
/// dropped. (The package also strips session ids from paths and queries; trawl's
/// URLs are canonical, and that rule is not repeated here.)
pub fn surt(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), url),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains('[') || h.ends_with(']')) => {
            (h, Some(p))
        }
        _ => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    let host = match host.strip_prefix("www") {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            match r[digits..].strip_prefix('.') {
                Some(h) => h.to_string(),
                None => host.clone(),
            }
        }
        None => host.clone(),
    };
    let default_port = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    let port = port.filter(|p| !p.is_empty() && Some(*p) != default_port);
    let mut out: String = if host.starts_with('[') {
        host.clone()
    } else {
        host.split('.').rev().collect::<Vec<_>>().join(",")
    };
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    out.push(')');
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut path = path.to_lowercase();
    if path.is_empty() {
        path.push('/');
    }
    if path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    out.push_str(&path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let q = q.to_lowercase();
        let mut args: Vec<(&str, Option<&str>)> = q
            .split('&')
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (a, None),
            })
            .collect();
        args.sort();
        out.push('?');
        for (i, (k, v)) in args.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            if let Some(v) = v {
                out.push('=');
                out.push_str(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surts_as_the_python_package_makes_them() {
        assert_eq!(surt("http://www.Example.com/"), "com,example)/");
        assert_eq!(surt("https://example.com"), "com,example)/");
        assert_eq!(surt("http://127.0.0.1:8080/page/3"), "1,0,0,127:8080)/page/3");
        assert_eq!(
            surt("http://a.example:80/Dir/?b=2&a=1#x"),
            "example,a)/dir?a=1&b=2"
        );
        assert_eq!(surt("https://www2.example.org:443/x?"), "org,example)/x");
        assert_eq!(surt("http://user:pw@h.test/q?z&y=1"), "test,h)/q?y=1&z");
    }

    #[test]
    fn names_and_timestamps() {
        assert_eq!(
            cdxj_path(Path::new("/x/crawl.warc.gz")),
            Path::new("/x/crawl.cdxj")
        );
        assert_eq!(cdxj_path(Path::new("a.warc")), Path::new("a.cdxj"));
        assert_eq!(cdxj_path(Path::new("a.gz")), Path::new("a.gz.cdxj"));
        assert_eq!(timestamp14("2026-12-02T05:22:41.123Z"), "20261202052241");
        let mut s = String::new();
        json_str(&mut s, "a\"é\n");
        assert_eq!(s, "\"a\\\"\\u00e9\\n\"");
    }
}
