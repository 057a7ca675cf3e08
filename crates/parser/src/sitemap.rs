//! Sitemaps: `<urlset>`, `<sitemapindex>`, gzip-compressed files and plain-text lists,
//! read by a streaming XML parser (quick-xml) that expands no DTD and no entity other
//! than the five predefined ones and character references.
//!
//! The protocol's limits are enforced: at most 50,000 URLs and 50 MB after
//! decompression per file. Following one level of index only is the caller's rule: a
//! [`SitemapKind::Index`] says the entries are sitemaps.
//!
//! Each entry keeps the `<lastmod>` of its `<url>` (or `<sitemap>`) as a [`Lastmod`];
//! one that is not a W3C datetime is ignored, and the entry kept without it.

use std::io::Read;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::lastmod::Lastmod;

/// What kind of sitemap a file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SitemapKind {
    /// A `<urlset>`: the locs are pages.
    UrlSet,
    /// A `<sitemapindex>`: the locs are sitemaps.
    Index,
    /// A plain-text sitemap: one URL per line.
    Text,
}

/// Limits of [`parse_sitemap`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SitemapLimits {
    /// URLs kept per file. By default, 50,000 (the protocol's limit).
    pub max_urls: usize,
    /// Bytes read per file after decompression. By default, 50 MB (the protocol's limit).
    pub max_bytes: usize,
}

impl Default for SitemapLimits {
    fn default() -> SitemapLimits {
        SitemapLimits {
            max_urls: 50_000,
            max_bytes: 50_000_000,
        }
    }
}

/// A parsed sitemap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sitemap {
    /// What the entries are.
    pub kind: SitemapKind,
    /// The `<loc>` values (or lines), as written, in order, each with its `<lastmod>`.
    pub entries: Vec<SitemapEntry>,
    /// A limit was hit and the rest of the file was ignored.
    pub truncated: bool,
}

impl Sitemap {
    /// The `<loc>` values alone, in order.
    pub fn locs(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.loc.as_str())
    }
}

/// One `<url>` of a urlset (or `<sitemap>` of an index, or line of a text sitemap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitemapEntry {
    /// The `<loc>`, as written (entities expanded, whitespace trimmed).
    pub loc: String,
    /// The `<lastmod>` of the same element, when it had one that reads as a W3C
    /// datetime (never for a text sitemap).
    pub lastmod: Option<Lastmod>,
}

/// Why a sitemap could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SitemapError {
    /// The gzip stream is broken.
    #[error("sitemap gzip stream is broken")]
    Gzip(#[source] std::io::Error),
    /// The XML is malformed before any URL could be read.
    #[error("sitemap xml is malformed: {0}")]
    Xml(String),
}

/// Reads a sitemap file as fetched (gzip is recognised by its magic bytes).
///
/// # Errors
/// [`SitemapError`] when nothing could be read; a file that breaks off after some
/// URLs returns those URLs with `truncated` set.
pub fn parse_sitemap(bytes: &[u8], limits: &SitemapLimits) -> Result<Sitemap, SitemapError> {
    let mut truncated = false;
    let inflated;
    let mut data: &[u8] = bytes;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut dec = flate2::read::GzDecoder::new(bytes).take(limits.max_bytes as u64 + 1);
        if let Err(e) = dec.read_to_end(&mut out) {
            if out.is_empty() {
                return Err(SitemapError::Gzip(e));
            }
            truncated = true;
        }
        inflated = out;
        data = &inflated;
    }
    if data.len() > limits.max_bytes {
        data = &data[..limits.max_bytes];
        truncated = true;
    }
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    let body = &data[start..];
    if !body.starts_with(b"<") && !body.starts_with(b"\xEF\xBB\xBF<") {
        let text = String::from_utf8_lossy(body);
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if entries.len() >= limits.max_urls {
                truncated = true;
                break;
            }
            entries.push(SitemapEntry {
                loc: line.to_string(),
                lastmod: None,
            });
        }
        return Ok(Sitemap {
            kind: SitemapKind::Text,
            entries,
            truncated,
        });
    }
    let mut reader = Reader::from_reader(data);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut kind = SitemapKind::UrlSet;
    let mut entries = Vec::new();
    // The text of the `<loc>` or `<lastmod>` being read, if one is.
    let mut field: Option<Field> = None;
    let mut text = String::new();
    // What the open `<url>` (or `<sitemap>`) said so far: its locs (one, unless the
    // file repeats the element) and its lastmod, which may come before or after them.
    let mut locs: Vec<String> = Vec::new();
    let mut lastmod: Option<Lastmod> = None;
    // Local names of the open elements: a `<loc>` or `<lastmod>` counts only directly
    // inside `<url>` or `<sitemap>`, so extension elements such as `<image:loc>` are
    // ignored.
    let mut stack: Vec<Vec<u8>> = Vec::new();
    loop {
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) if entries.is_empty() && locs.is_empty() => {
                return Err(SitemapError::Xml(e.to_string()));
            }
            Err(_) => {
                truncated = true;
                break;
            }
        };
        match ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                let in_entry = stack.last().is_some_and(|p| p == b"url" || p == b"sitemap");
                match name.as_slice() {
                    b"sitemapindex" => kind = SitemapKind::Index,
                    b"url" | b"sitemap" => {
                        locs.clear();
                        lastmod = None;
                    }
                    b"loc" if e.name().as_ref() == b"loc" && in_entry => {
                        field = Some(Field::Loc);
                        text.clear();
                    }
                    b"lastmod" if e.name().as_ref() == b"lastmod" && in_entry => {
                        field = Some(Field::Lastmod);
                        text.clear();
                    }
                    _ => {}
                }
                stack.push(name);
            }
            Event::Text(t) if field.is_some() => text.push_str(&t.decode().unwrap_or_default()),
            Event::CData(t) if field.is_some() => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if field.is_some() => {
                let name = r.decode().unwrap_or_default();
                let ch = match name.as_ref() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => n
                        .strip_prefix("#x")
                        .or_else(|| n.strip_prefix("#X"))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                // Any other entity would need a DTD, which is never read.
                if let Some(c) = ch {
                    text.push(c);
                }
            }
            Event::End(_) => {
                let closed = stack.pop();
                match field.take() {
                    Some(Field::Loc) => {
                        let l = text.trim();
                        if !l.is_empty() {
                            locs.push(l.to_string());
                        }
                    }
                    // A date that does not read is ignored; its URL is kept.
                    Some(Field::Lastmod) => lastmod = Lastmod::parse(&text),
                    None => {
                        if matches!(closed.as_deref(), Some(b"url" | b"sitemap"))
                            && !flush(&mut entries, &mut locs, lastmod.take(), limits)
                        {
                            truncated = true;
                            break;
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    // A file that breaks off inside a `<url>` keeps the locs read in it.
    if !flush(&mut entries, &mut locs, lastmod, limits) {
        truncated = true;
    }
    Ok(Sitemap {
        kind,
        entries,
        truncated,
    })
}

/// The element whose text is being read.
#[derive(Debug, Clone, Copy)]
enum Field {
    Loc,
    Lastmod,
}

/// Moves the locs of one `<url>` into `entries`, with its lastmod; `false` when the
/// URL limit cut them.
fn flush(
    entries: &mut Vec<SitemapEntry>,
    locs: &mut Vec<String>,
    lastmod: Option<Lastmod>,
    limits: &SitemapLimits,
) -> bool {
    for loc in locs.drain(..) {
        if entries.len() >= limits.max_urls {
            // The drain drops the rest.
            return false;
        }
        entries.push(SitemapEntry { loc, lastmod });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlset_index_text_and_gzip() {
        let xml = br#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc> http://a.example/1?x=1&amp;y=2 </loc></url><url><loc><![CDATA[http://a.example/2]]></loc></url></urlset>"#;
        let s = parse_sitemap(xml, &SitemapLimits::default()).expect("parses");
        assert_eq!(s.kind, SitemapKind::UrlSet);
        assert_eq!(
            s.locs().collect::<Vec<_>>(),
            ["http://a.example/1?x=1&y=2", "http://a.example/2"]
        );
        let idx = b"<sitemapindex><sitemap><loc>http://a.example/s1.xml</loc></sitemap></sitemapindex>";
        assert_eq!(
            parse_sitemap(idx, &SitemapLimits::default())
                .expect("parses")
                .kind,
            SitemapKind::Index
        );
        let text = b"http://a.example/1\n\n  http://a.example/2  \n";
        let t = parse_sitemap(text, &SitemapLimits::default()).expect("parses");
        assert_eq!((t.kind, t.entries.len()), (SitemapKind::Text, 2));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, xml).expect("gzip");
        let g = parse_sitemap(&gz.finish().expect("gzip"), &SitemapLimits::default()).expect("parses");
        assert_eq!(g.entries.len(), 2);
    }

    #[test]
    fn lastmod_of_each_url_before_or_after_its_loc() {
        let xml = br#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
            <url><loc>http://a.example/1</loc><lastmod>2026-10-21</lastmod></url>
            <url><lastmod> 2026-10-21T12:00:00+02:00 </lastmod><loc>http://a.example/2</loc></url>
            <url><loc>http://a.example/3</loc><lastmod>last tuesday</lastmod></url>
            <url><loc>http://a.example/4</loc><news:lastmod>2026-10-21</news:lastmod></url>
            <url><loc>http://a.example/5</loc></url>
            <url><loc>http://a.example/6</loc><lastmod>2026-10-21T10:00:00Z</lastmod><lastmod>2026-10-22</lastmod></url>
        </urlset>"#;
        let s = parse_sitemap(xml, &SitemapLimits::default()).expect("parses");
        let got: Vec<(&str, Option<Lastmod>)> =
            s.entries.iter().map(|e| (e.loc.as_str(), e.lastmod)).collect();
        let day = Lastmod::parse("2026-10-21");
        assert_eq!(
            got,
            [
                ("http://a.example/1", day),
                ("http://a.example/2", Lastmod::parse("2026-10-21T10:00:00Z")),
                ("http://a.example/3", None),
                ("http://a.example/4", None),
                ("http://a.example/5", None),
                ("http://a.example/6", Lastmod::parse("2026-10-22")),
            ],
            "a bad date keeps its URL; an extension's lastmod is not the URL's; the last lastmod wins"
        );
        assert!(day.is_some_and(|d| d.latest - d.earliest == 86_399));
        // No lastmod leaks from one <url> into the next, and an index's <sitemap>s keep theirs.
        let idx = b"<sitemapindex><sitemap><loc>http://a.example/s1.xml</loc><lastmod>2026-01-02</lastmod></sitemap>\
            <sitemap><loc>http://a.example/s2.xml</loc></sitemap></sitemapindex>";
        let s = parse_sitemap(idx, &SitemapLimits::default()).expect("parses");
        assert_eq!(s.kind, SitemapKind::Index);
        assert_eq!(s.entries[0].lastmod, Lastmod::parse("2026-01-02"));
        assert_eq!(s.entries[1].lastmod, None);
        // A file cut inside a <url> keeps what it read of it.
        let cut = b"<urlset><url><loc>http://a.example/1</loc><lastmod>2026-01-02</lastmod></url><url><loc>http://a.example/2</loc><lastmod>2026-01-03</lastmod>";
        let s = parse_sitemap(cut, &SitemapLimits::default()).expect("parses");
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[1].lastmod, Lastmod::parse("2026-01-03"));
    }

    #[test]
    fn limits_and_entities() {
        let mut xml = String::from("<urlset>");
        for i in 0..100 {
            xml.push_str(&format!("<url><loc>http://a.example/{i}</loc></url>"));
        }
        xml.push_str("</urlset>");
        let limits = SitemapLimits {
            max_urls: 10,
            ..SitemapLimits::default()
        };
        let s = parse_sitemap(xml.as_bytes(), &limits).expect("parses");
        assert_eq!((s.entries.len(), s.truncated), (10, true));
        let evil = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "http://evil.example/">]><urlset><url><loc>&e;ok</loc></url></urlset>"#;
        let s = parse_sitemap(evil, &SitemapLimits::default()).expect("parses");
        assert_eq!(
            s.locs().collect::<Vec<_>>(),
            ["ok"],
            "no entity from a DTD is expanded"
        );
        let bomb = vec![0u8; 10_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &bomb).expect("gzip");
        let small = SitemapLimits {
            max_bytes: 1_000,
            ..SitemapLimits::default()
        };
        let s = parse_sitemap(&gz.finish().expect("gzip"), &small).expect("reads");
        assert!(s.truncated);
    }
}
