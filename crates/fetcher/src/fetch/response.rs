//! What a fetch returns and what one request may set: [`Fetched`], [`Timings`],
//! [`RequestOptions`], [`Validators`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use url::Url;

use crate::accept::AcceptTypes;
use crate::memory::MemoryReservation;

/// Time spent on one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Waiting for the host's politeness gate.
    pub queued: Duration,
    /// From sending the request to the response headers (connect included).
    pub first_byte: Duration,
    /// From sending the request to the end of the body.
    pub total: Duration,
}

/// A fetched response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL requested.
    pub url: Url,
    /// The URL the response came from: the same as `url` unless
    /// [`FetcherBuilder::follow_redirects`](crate::FetcherBuilder::follow_redirects) is on and redirects were followed.
    pub final_url: Url,
    /// The status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body after decompression, capped. Empty when [`Fetched::body_skipped`].
    pub body: Bytes,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The resolved `Location` of a 3xx, for the caller to check and follow.
    pub redirect_to: Option<Url>,
    /// The redirects followed on the way to `final_url`, in order (each hop's target),
    /// when [`FetcherBuilder::follow_redirects`](crate::FetcherBuilder::follow_redirects) is on; otherwise empty.
    pub redirects: Vec<Url>,
    /// Where the time went.
    pub timings: Timings,
    /// Body bytes on the wire.
    pub wire_bytes: u64,
    /// Body bytes after decompression.
    pub body_bytes: u64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The peer address, when known.
    pub remote_addr: Option<SocketAddr>,
    /// The HTTP version the response came over, as its ALPN name: `"h2"`,
    /// `"http/1.1"` or `"http/1.0"` (HTTP/2 is negotiated over TLS only).
    pub protocol: &'static str,
    /// This body's share of the fetcher's body-memory budget, when it has one
    /// ([`FetcherBuilder::body_memory`](crate::FetcherBuilder::body_memory)): hold it while the body is held.
    pub memory: Option<MemoryReservation>,
    /// Whether the body was left unread because its `Content-Type` is not in the
    /// request's [`AcceptTypes`] ([`FetcherBuilder::accept`](crate::FetcherBuilder::accept),
    /// [`RequestOptions::accept`]). The response was dropped after its headers, so
    /// `body` is empty and `wire_bytes` and `body_bytes` are 0; `status`, `headers`
    /// and `content_type` are as received.
    pub body_skipped: bool,
}

impl Fetched {
    /// Whether the server answered 304 Not Modified to a conditional GET (the body is
    /// then empty: the caller's copy is current).
    pub fn not_modified(&self) -> bool {
        self.status == 304
    }

    /// The `ETag` and `Last-Modified` of this response, to give to
    /// [`Fetcher::fetch_conditional`](crate::Fetcher::fetch_conditional) next time.
    pub fn validators(&self) -> Validators {
        let get = |name| {
            self.headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        Validators {
            etag: get(reqwest::header::ETAG),
            last_modified: get(reqwest::header::LAST_MODIFIED),
        }
    }
}

/// Settings of one request, for [`Fetcher::fetch_with`](crate::Fetcher::fetch_with) and
/// [`Fetcher::fetch_claimed_with`](crate::Fetcher::fetch_claimed_with); what is not set here follows the builder.
///
/// ```no_run
/// # async fn demo(fetcher: trawl_fetcher::Fetcher) -> Result<(), trawl_fetcher::Error> {
/// use trawl_fetcher::{AcceptTypes, RequestOptions};
/// let options = RequestOptions::new().accept(AcceptTypes::sitemaps());
/// let sitemap = fetcher.fetch_with("https://example.com/sitemap.xml.gz", &options).await?;
/// assert!(!sitemap.body_skipped || sitemap.content_type.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RequestOptions {
    pub(super) validators: Validators,
    pub(super) accept: Option<AcceptTypes>,
    pub(super) close_connection: bool,
}

impl RequestOptions {
    /// Options that change nothing: the request goes out as [`Fetcher::fetch`](crate::Fetcher::fetch) sends it.
    pub fn new() -> RequestOptions {
        RequestOptions::default()
    }

    /// Makes the request a conditional GET, as [`Fetcher::fetch_conditional`](crate::Fetcher::fetch_conditional). Only
    /// the first request carries them: a redirect hop that
    /// [`FetcherBuilder::follow_redirects`](crate::FetcherBuilder::follow_redirects) follows is another URL. By default, none.
    pub fn validators(mut self, validators: Validators) -> RequestOptions {
        self.validators = validators;
        self
    }

    /// The bodies this request reads, instead of [`FetcherBuilder::accept`](crate::FetcherBuilder::accept)'s; it
    /// also applies to the redirect hops that [`FetcherBuilder::follow_redirects`](crate::FetcherBuilder::follow_redirects)
    /// follows. By default, the builder's.
    pub fn accept(mut self, types: AcceptTypes) -> RequestOptions {
        self.accept = Some(types);
        self
    }

    /// Sends `Connection: close`, so that the connection is closed after the response
    /// instead of going back to the pool: for a host with nothing more to fetch, whose
    /// idle connection would only hold memory (and a socket of the server's) until
    /// [`FetcherBuilder::pool_idle_timeout`](crate::FetcherBuilder::pool_idle_timeout).
    /// Only the first request: a redirect hop keeps its connection. HTTP/2 has no such
    /// header, and its connection stays. By default, off.
    pub fn close_connection(mut self, close: bool) -> RequestOptions {
        self.close_connection = close;
        self
    }
}

/// Validators from an earlier fetch, for a conditional GET: sent as `If-None-Match`
/// and `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` received earlier.
    pub etag: Option<String>,
    /// The `Last-Modified` received earlier (an HTTP date).
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}
