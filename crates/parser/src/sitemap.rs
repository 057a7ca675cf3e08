//! Sitemaps: `<urlset>`, `<sitemapindex>`, gzip-compressed files and plain-text lists,
//! read by a streaming XML parser (quick-xml) that expands no DTD and no entity other
//! than the five predefined ones and character references.
//!
//! The protocol's limits are enforced: at most 50,000 URLs and 50 MB after
//! decompression per file. Following one level of index only is the caller's rule: a
//! [`SitemapKind::Index`] says the `locs` are sitemaps.

use std::io::Read;

use quick_xml::Reader;
use quick_xml::events::Event;

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
    /// What the locs are.
    pub kind: SitemapKind,
    /// The `<loc>` values (or lines), as written, in order.
    pub locs: Vec<String>,
    /// A limit was hit and the rest of the file was ignored.
    pub truncated: bool,
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
        let mut locs = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if locs.len() >= limits.max_urls {
                truncated = true;
                break;
            }
            locs.push(line.to_string());
        }
        return Ok(Sitemap {
            kind: SitemapKind::Text,
            locs,
            truncated,
        });
    }
    let mut reader = Reader::from_reader(data);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut kind = SitemapKind::UrlSet;
    let mut locs = Vec::new();
    let mut in_loc = false;
    let mut loc = String::new();
    // Local names of the open elements: a `<loc>` counts only directly inside `<url>`
    // or `<sitemap>`, so extension elements such as `<image:loc>` are ignored.
    let mut stack: Vec<Vec<u8>> = Vec::new();
    loop {
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) if locs.is_empty() => return Err(SitemapError::Xml(e.to_string())),
            Err(_) => {
                truncated = true;
                break;
            }
        };
        match ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                match name.as_slice() {
                    b"sitemapindex" => kind = SitemapKind::Index,
                    b"loc"
                        if e.name().as_ref() == b"loc"
                            && stack.last().is_some_and(|p| p == b"url" || p == b"sitemap") =>
                    {
                        in_loc = true;
                        loc.clear();
                    }
                    _ => {}
                }
                stack.push(name);
            }
            Event::Text(t) if in_loc => loc.push_str(&t.decode().unwrap_or_default()),
            Event::CData(t) if in_loc => loc.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if in_loc => {
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
                    loc.push(c);
                }
            }
            Event::End(_) => {
                stack.pop();
                if in_loc {
                    in_loc = false;
                    let l = loc.trim();
                    if !l.is_empty() {
                        if locs.len() >= limits.max_urls {
                            truncated = true;
                            break;
                        }
                        locs.push(l.to_string());
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(Sitemap {
        kind,
        locs,
        truncated,
    })
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
        assert_eq!(s.locs, ["http://a.example/1?x=1&y=2", "http://a.example/2"]);
        let idx = b"<sitemapindex><sitemap><loc>http://a.example/s1.xml</loc></sitemap></sitemapindex>";
        assert_eq!(
            parse_sitemap(idx, &SitemapLimits::default())
                .expect("parses")
                .kind,
            SitemapKind::Index
        );
        let text = b"http://a.example/1\n\n  http://a.example/2  \n";
        let t = parse_sitemap(text, &SitemapLimits::default()).expect("parses");
        assert_eq!((t.kind, t.locs.len()), (SitemapKind::Text, 2));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, xml).expect("gzip");
        let g = parse_sitemap(&gz.finish().expect("gzip"), &SitemapLimits::default()).expect("parses");
        assert_eq!(g.locs.len(), 2);
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
        assert_eq!((s.locs.len(), s.truncated), (10, true));
        let evil = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "http://evil.example/">]><urlset><url><loc>&e;ok</loc></url></urlset>"#;
        let s = parse_sitemap(evil, &SitemapLimits::default()).expect("parses");
        assert_eq!(s.locs, ["ok"], "no entity from a DTD is expanded");
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
