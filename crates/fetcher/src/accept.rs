//! [`AcceptTypes`]: which response bodies a [`Fetcher`](crate::Fetcher) downloads, decided
//! on the `Content-Type` header before any byte of the body is read.
//!
//! A body that is not accepted is not read at all: the response is dropped after its
//! headers, which closes its HTTP/1.1 connection (or resets its HTTP/2 stream), and
//! the [`Fetched`](crate::Fetched) comes back with an empty body and
//! [`Fetched::body_skipped`](crate::Fetched::body_skipped) set. That costs the next
//! request to the host a new connection, which is cheap next to downloading a
//! 10 MiB file nobody parses.

use std::fmt;
use std::str::FromStr;

use crate::fetch::Error;

/// One media range: `type/subtype`, `type/*` or `*/*`, as in an HTTP `Accept` header
/// but without parameters. Compared case-insensitively; parse one with
/// [`str::parse`].
///
/// ```
/// let pdf: trawl_fetcher::MediaRange = "application/pdf".parse().expect("a media range");
/// assert!(pdf.matches("Application/PDF; version=1.7"));
/// let images: trawl_fetcher::MediaRange = "image/*".parse().expect("a media range");
/// assert!(images.matches("image/png") && !images.matches("text/html"));
/// assert!("pdf".parse::<trawl_fetcher::MediaRange>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaRange {
    /// The type, lower case; `*` for any.
    kind: String,
    /// The subtype, lower case; `*` for any.
    subtype: String,
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2), as a media type's parts must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The essence of a `Content-Type` value: `type/subtype`, lower case, without
/// parameters; `None` when the value is not a media type at all.
fn essence(content_type: &str) -> Option<(String, String)> {
    let value = content_type.split(';').next().unwrap_or("").trim();
    let (kind, subtype) = value.split_once('/')?;
    let (kind, subtype) = (kind.trim(), subtype.trim());
    (is_token(kind) && is_token(subtype)).then(|| (kind.to_ascii_lowercase(), subtype.to_ascii_lowercase()))
}

impl MediaRange {
    /// Whether a `Content-Type` value (parameters allowed) falls in this range. A value
    /// that is not a media type matches only `*/*`.
    pub fn matches(&self, content_type: &str) -> bool {
        if self.kind == "*" {
            return true;
        }
        match essence(content_type) {
            Some((kind, subtype)) => kind == self.kind && (self.subtype == "*" || subtype == self.subtype),
            None => false,
        }
    }

    fn of(kind: &str, subtype: &str) -> MediaRange {
        MediaRange {
            kind: kind.to_string(),
            subtype: subtype.to_string(),
        }
    }
}

impl FromStr for MediaRange {
    type Err = Error;

    /// Parses `type/subtype`, `type/*` or `*/*` (surrounding spaces allowed, no
    /// parameters).
    ///
    /// # Errors
    /// [`Error::Config`] for anything else, such as `pdf`, `*/html` or `text/html; q=1`.
    fn from_str(s: &str) -> Result<MediaRange, Error> {
        let bad = || {
            Error::Config(format!(
                "{s:?} is not a media range: give type/subtype, type/* or */*"
            ))
        };
        let (kind, subtype) = s.trim().split_once('/').ok_or_else(bad)?;
        if !is_token(kind) || !is_token(subtype) || (kind == "*" && subtype != "*") {
            return Err(bad());
        }
        // `*` is a token character too: only a whole part of `*` is a wildcard.
        Ok(MediaRange::of(
            &kind.to_ascii_lowercase(),
            &subtype.to_ascii_lowercase(),
        ))
    }
}

impl fmt::Display for MediaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.subtype)
    }
}

/// Which response bodies are downloaded, by `Content-Type`: a set of
/// [`MediaRange`]s. A body whose type is in none of them is not read (see
/// [`Fetched::body_skipped`](crate::Fetched::body_skipped)).
///
/// A response with no `Content-Type`, or one that is not a media type at all (empty,
/// `html`), is always read: it may well be HTML, and only its bytes can tell (browsers
/// sniff such bodies too).
///
/// Give a fetcher its default with [`FetcherBuilder::accept`](crate::FetcherBuilder::accept),
/// and one request its own with [`RequestOptions::accept`](crate::RequestOptions::accept).
///
/// ```
/// use trawl_fetcher::AcceptTypes;
///
/// let pages = AcceptTypes::html().with("application/pdf".parse().expect("a media range"));
/// assert!(pages.accepts(Some("text/html; charset=utf-8")));
/// assert!(pages.accepts(Some("application/pdf")));
/// assert!(!pages.accepts(Some("application/octet-stream")));
/// assert!(pages.accepts(None), "no Content-Type: read it, it may be HTML");
/// assert!(AcceptTypes::sitemaps().accepts(Some("application/x-gzip")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptTypes {
    ranges: Vec<MediaRange>,
}

impl Default for AcceptTypes {
    /// [`AcceptTypes::any`].
    fn default() -> AcceptTypes {
        AcceptTypes::any()
    }
}

impl AcceptTypes {
    /// Every body (`*/*`).
    pub fn any() -> AcceptTypes {
        AcceptTypes {
            ranges: vec![MediaRange::of("*", "*")],
        }
    }

    /// No body with a media type: only responses without a usable `Content-Type` are
    /// read. A start for a set built with [`AcceptTypes::with`].
    pub fn none() -> AcceptTypes {
        AcceptTypes { ranges: Vec::new() }
    }

    /// HTML: `text/html` and `application/xhtml+xml`.
    pub fn html() -> AcceptTypes {
        AcceptTypes {
            ranges: vec![
                MediaRange::of("text", "html"),
                MediaRange::of("application", "xhtml+xml"),
            ],
        }
    }

    /// The types sitemaps are served as: XML (`application/xml`, `text/xml`), gzip
    /// (`application/gzip`, `application/x-gzip`), plain-text lists (`text/plain`),
    /// and `application/octet-stream`, which is what common servers (nginx's default
    /// `mime.types`, for one) call a `sitemap.xml.gz`.
    pub fn sitemaps() -> AcceptTypes {
        AcceptTypes {
            ranges: vec![
                MediaRange::of("application", "xml"),
                MediaRange::of("text", "xml"),
                MediaRange::of("application", "gzip"),
                MediaRange::of("application", "x-gzip"),
                MediaRange::of("text", "plain"),
                MediaRange::of("application", "octet-stream"),
            ],
        }
    }

    /// This set and `range` too.
    #[must_use]
    pub fn with(mut self, range: MediaRange) -> AcceptTypes {
        if !self.ranges.contains(&range) {
            self.ranges.push(range);
        }
        self
    }

    /// The ranges of the set.
    pub fn ranges(&self) -> &[MediaRange] {
        &self.ranges
    }

    /// Whether a body with this `Content-Type` header is read: when the header is
    /// missing or not a media type, or when a range of the set matches it.
    pub fn accepts(&self, content_type: Option<&str>) -> bool {
        match content_type {
            Some(ct) if essence(ct).is_some() => self.ranges.iter().any(|r| r.matches(ct)),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> MediaRange {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn media_ranges_parse_and_match() {
        assert_eq!(range(" Image/* ").to_string(), "image/*");
        assert_eq!(range("*/*").to_string(), "*/*");
        for bad in [
            "pdf",
            "",
            "/",
            "text/",
            "*/html",
            "text/html; q=1",
            "a b/c",
            "text/html/x",
        ] {
            assert!(bad.parse::<MediaRange>().is_err(), "{bad:?}");
        }
        assert!(range("application/pdf").matches("APPLICATION/pdf ; x=1"));
        assert!(!range("application/pdf").matches("application/pdfx"));
        assert!(range("image/*").matches("image/svg+xml"));
        assert!(!range("image/*").matches("imagex/png"));
        assert!(range("*/*").matches("garbage"));
        assert!(!range("text/*").matches("garbage"));
    }

    #[test]
    fn a_missing_or_broken_content_type_is_read() {
        let html = AcceptTypes::html();
        for ct in [None, Some(""), Some("  "), Some("html"), Some(";charset=utf-8")] {
            assert!(html.accepts(ct), "{ct:?}");
        }
        assert!(AcceptTypes::none().accepts(None));
        assert!(!AcceptTypes::none().accepts(Some("text/html")));
    }

    #[test]
    fn the_sets() {
        let html = AcceptTypes::html();
        assert!(html.accepts(Some("text/html; charset=utf-8")));
        assert!(html.accepts(Some("application/xhtml+xml")));
        assert!(!html.accepts(Some("application/octet-stream")));
        assert!(!html.accepts(Some("text/plain")));
        assert!(AcceptTypes::any().accepts(Some("application/octet-stream")));
        let sm = AcceptTypes::sitemaps();
        for ct in [
            "application/xml",
            "text/xml; charset=utf-8",
            "application/gzip",
            "text/plain",
        ] {
            assert!(sm.accepts(Some(ct)), "{ct}");
        }
        assert!(!sm.accepts(Some("text/html")));
        let more = html.clone().with(range("image/*")).with(range("image/*"));
        assert_eq!(more.ranges().len(), 3);
        assert!(more.accepts(Some("image/png")));
    }
}
