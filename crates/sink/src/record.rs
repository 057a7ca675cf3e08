//! The page record: what trawl writes for every URL it finishes, fetched or failed.

use serde::{Deserialize, Serialize};

/// How a URL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    /// A seed given on the command line.
    #[default]
    Seed,
    /// A link on a page.
    Link,
    /// The target of a redirect.
    Redirect,
    /// A `<loc>` in a sitemap.
    Sitemap,
    /// A requisite of a page (an image, stylesheet, script), fetched with
    /// `--requisites`; its links are not followed.
    Requisite,
}

impl Discovery {
    /// The lower-case name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Discovery::Seed => "seed",
            Discovery::Link => "link",
            Discovery::Redirect => "redirect",
            Discovery::Sitemap => "sitemap",
            Discovery::Requisite => "requisite",
        }
    }
}

/// Time spent on a fetch, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Waiting for politeness (rate limit, Crawl-delay, concurrency cap).
    pub queued_ms: f64,
    /// From sending the request to the first byte of the response (connect included).
    pub first_byte_ms: f64,
    /// From sending the request to the last byte of the body.
    pub total_ms: f64,
}

/// `noindex` and `nofollow` from `<meta name=robots>` and `X-Robots-Tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RobotsFlags {
    /// The page asks not to be indexed.
    pub noindex: bool,
    /// The page asks that its links not be followed.
    pub nofollow: bool,
}

/// Why a URL failed: a stable kind for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureInfo {
    /// A stable, lower-case, dash-separated kind, for example `timeout`,
    /// `too-large`, `robots-denied`, `http-404`, `host-unavailable`.
    pub kind: String,
    /// A human-readable message.
    pub message: String,
}

/// One output record per finished URL.
///
/// The field names are the JSON Lines keys and (flattened, see [`CSV_HEADER`](crate::CSV_HEADER))
/// the CSV columns. The record is stable: fields are only ever added, at the end.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PageRecord {
    /// The URL that was requested (canonical form).
    pub url: String,
    /// The URL the response came from. It differs from `url` only when the fetcher
    /// followed redirects itself; trawl's engine records each hop as its own record.
    pub final_url: String,
    /// The HTTP status, or `None` when no response arrived.
    pub status: Option<u16>,
    /// Link hops from a seed (a redirect hop counts as one).
    pub depth: u16,
    /// The URL of the page this one was found on, if any.
    pub parent: Option<String>,
    /// How the URL was found.
    pub discovery: Discovery,
    /// When the response finished, as RFC 3339 UTC with milliseconds.
    pub fetched_at: String,
    /// The `Content-Type` header as sent.
    pub content_type: Option<String>,
    /// The redirect target, for a 3xx with a `Location`.
    pub redirect_to: Option<String>,
    /// Body bytes as they came over the wire (compressed, when compressed).
    pub wire_bytes: u64,
    /// Body bytes after decompression.
    pub body_bytes: u64,
    /// Where the time went.
    pub timings: Timings,
    /// The page title.
    pub title: Option<String>,
    /// Links found on the page (after de-duplication within the page).
    pub outlinks: u32,
    /// The page's robots meta flags.
    pub robots: RobotsFlags,
    /// A hash of the body (128-bit xxh3 in hex), for finding duplicate pages.
    pub content_hash: Option<String>,
    /// Why the URL failed, for failed URLs.
    pub error: Option<FailureInfo>,
    /// The decoded body text, when the crawl asks for bodies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub body: Option<String>,
    /// The caps this page hit and what each cut, as `cap: what` (for example
    /// `links: 1234 links past 100000 not followed`); absent when none was hit. No cap
    /// drops data silently.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub limits: Vec<String>,
    /// Why the body was not downloaded, when it was not: [`SKIPPED_CONTENT_TYPE`] for a
    /// response whose `Content-Type` the crawl neither parses nor was asked to keep
    /// (the connection was closed after the headers; `status` and `content_type` are
    /// as received, `wire_bytes` and `body_bytes` are 0). Absent when the body was
    /// read. Such a record is not a failure: `error` stays empty.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skipped: Option<String>,
    /// The protocol the response came over, by its ALPN name: `h2` or `http/1.1`
    /// (`http/1.0` for an old server). Absent when no response arrived.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    /// The response's `ETag`, when it sent one (a recrawl sends it back as
    /// `If-None-Match`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    /// The response's `Last-Modified`, when it sent one (a recrawl sends it back as
    /// `If-Modified-Since`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_modified: Option<String>,
    /// What a recrawl found, compared with the crawl before it: [`RECRAWL_OUTCOMES`].
    /// Absent in a first crawl, and for a URL that failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recrawl: Option<String>,
    /// The text of the link this URL was first found by, on [`PageRecord::parent`]
    /// (a redirect's target keeps the anchor of the link to the redirect). Absent for
    /// seeds and sitemap URLs, and for a link with no text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub anchor: Option<String>,
    /// What a record that stands for an earlier capture without a response of its
    /// own (a recrawl's [`SKIPPED_UNCHANGED`]) carries over from it for the crawl
    /// history, so that the next recrawl revisits from that capture. Written to no
    /// output.
    #[serde(skip)]
    pub carried: Option<Carried>,
}

/// See [`PageRecord::carried`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Carried {
    /// The status of the earlier response.
    pub status: Option<u16>,
    /// The `WARC-Date` of the WARC record that holds its payload, when one does.
    pub capture: Option<String>,
}

/// The values of [`PageRecord::recrawl`]:
/// - `not-modified`: the server answered 304 to the validators it sent before;
/// - `unchanged`: a 2xx or 3xx whose body (its content hash) and status are as before;
/// - `changed`: a response whose body or status differs;
/// - `gone`: a page that now answers 404 or 410;
/// - `new`: a URL the crawl before did not know;
/// - [`SKIPPED_UNCHANGED`]: not fetched, because the site's sitemap says the page last
///   changed before the recrawl's `--changed-since` time; the record keeps the content
///   hash and validators known before and has no `status`.
pub const RECRAWL_OUTCOMES: [&str; 6] = [
    "not-modified",
    "unchanged",
    "changed",
    "gone",
    "new",
    SKIPPED_UNCHANGED,
];

/// [`PageRecord::recrawl`] of a page a recrawl did not fetch: its sitemap `<lastmod>`
/// is older than `--changed-since`.
pub const SKIPPED_UNCHANGED: &str = "skipped-unchanged";

/// A WARC revisit (WARC 1.1 section 6.7): the response is written as a `revisit`
/// record that refers to the capture holding the payload, instead of a `response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisit<'a> {
    /// Why the payload is not stored again.
    pub profile: RevisitProfile,
    /// `WARC-Refers-To-Target-URI`: the target URI of the earlier capture (empty, with
    /// `refers_to_date`, when none is known: the record then has no reference).
    pub refers_to_uri: &'a str,
    /// `WARC-Refers-To-Date`: the `WARC-Date` of the earlier capture (RFC 3339).
    pub refers_to_date: &'a str,
}

/// The two revisit profiles of WARC 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisitProfile {
    /// The payload is identical to the earlier capture's (same payload digest).
    IdenticalPayloadDigest,
    /// The server answered `304 Not Modified` to a conditional request.
    ServerNotModified,
}

impl RevisitProfile {
    /// The profile's URI, the value of `WARC-Profile`.
    pub fn uri(self) -> &'static str {
        match self {
            RevisitProfile::IdenticalPayloadDigest => {
                "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
            }
            RevisitProfile::ServerNotModified => {
                "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
            }
        }
    }
}

/// [`PageRecord::skipped`] of a body left unread because of its `Content-Type`.
pub const SKIPPED_CONTENT_TYPE: &str = "skipped-content-type";

/// The raw HTTP exchange behind a record, which the WARC writer needs.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The request line and headers, as sent, without the final blank line. For example
    /// `GET /x HTTP/1.1\r\nHost: a.example\r\nUser-Agent: trawl/0.1`.
    pub request_head: &'a str,
    /// The status line and headers as received, without the final blank line.
    pub response_head: &'a str,
    /// The response body after decompression.
    pub body: &'a [u8],
    /// The server's IP address, when known.
    pub ip: Option<&'a str>,
    /// The protocol the response came over (`h2`, `http/1.1`), for `WARC-Protocol`;
    /// empty when unknown.
    pub protocol: &'a str,
    /// Written as a revisit of an earlier capture, instead of a response with its
    /// payload.
    pub revisit: Option<Revisit<'a>>,
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC (`2026-11-22T10:04:05.123Z`).
pub fn rfc3339_ms(ms_since_epoch: u64) -> String {
    let (secs, ms) = (ms_since_epoch / 1000, ms_since_epoch % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_349_045_123), "2026-11-22T12:04:05.123Z");
    }
}
