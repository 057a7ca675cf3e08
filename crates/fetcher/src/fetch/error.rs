//! [`Error`]: what went wrong fetching a URL, and how to read it (transient, against
//! the host, its status and URL).

use std::time::Duration;

use url::Url;

/// What went wrong fetching a URL. A failed URL is data for a crawler: inspect the
/// error with the helpers and record it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fetcher was configured wrongly.
    #[error("invalid fetcher configuration: {0}")]
    Config(String),
    /// The URL is not an absolute http(s) URL with a host.
    #[error("invalid url {url}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
    },
    /// robots.txt disallows the URL.
    #[error("{url} is disallowed by robots.txt")]
    RobotsDenied {
        /// The URL.
        url: Url,
    },
    /// The host's robots.txt could not be read (5xx, 429 or unreachable), so RFC 9309
    /// says to disallow everything for now; it is fetched again after a minute. A TLS
    /// failure or a refused address on the way is reported as itself instead
    /// ([`Error::Tls`], [`Error::Forbidden`]): trying again would not help.
    #[error("{url}: robots.txt is unavailable, so the host is off limits for now")]
    RobotsUnavailable {
        /// The URL.
        url: Url,
    },
    /// The URL's host is, or resolves only to, a special-purpose address.
    #[error("{url} is refused: it points at a special-purpose address")]
    Forbidden {
        /// The URL.
        url: Url,
    },
    /// A connect, idle or total timeout fired.
    #[error("{url} timed out")]
    Timeout {
        /// The URL.
        url: Url,
    },
    /// The body arrived more slowly than the minimum transfer speed.
    #[error("{url} is too slow (under {min_bytes_per_sec} bytes/s)")]
    TooSlow {
        /// The URL.
        url: Url,
        /// The minimum speed that was not met.
        min_bytes_per_sec: u64,
    },
    /// The body passed the size cap or the compression-ratio cap.
    #[error("{url} is too large (over {limit} bytes, or compressed more than allowed)")]
    TooLarge {
        /// The URL.
        url: Url,
        /// The cap that was hit.
        limit: u64,
    },
    /// The response's content type is not on the allow list.
    #[error("{url} has content type {content_type:?}, which is not wanted")]
    ContentType {
        /// The URL.
        url: Url,
        /// The `Content-Type` received.
        content_type: String,
    },
    /// The server kept answering with a retryable status (5xx, 408, 429).
    #[error("{url} answered {status} after {attempts} attempts")]
    Status {
        /// The URL.
        url: Url,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The TLS handshake failed: the certificate is not trusted, has expired or names
    /// another host, or the handshake itself broke. Permanent: trying again with the
    /// same settings fails the same way (see [`FetcherBuilder::ca_cert`](crate::FetcherBuilder::ca_cert)). Also the
    /// error of a page whose host's robots.txt could not be fetched for this reason.
    #[error("{url}: tls handshake failed: {detail}")]
    Tls {
        /// The URL.
        url: Url,
        /// rustls's description of the failure, such as
        /// `invalid peer certificate: UnknownIssuer`.
        detail: String,
    },
    /// The connection or the HTTP exchange failed.
    #[error("{url}: request failed")]
    Request {
        /// The URL.
        url: Url,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// More redirects than [`FetcherBuilder::follow_redirects`](crate::FetcherBuilder::follow_redirects) allows, or a loop.
    #[error("{url}: gave up after {hops} redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: Url,
        /// Redirects followed.
        hops: usize,
    },
    /// A request claimed with [`HostGate::try_acquire`](crate::HostGate::try_acquire) was not sent, because the host
    /// began a cool-down after the claim (a 429 or 503 to another of its requests).
    /// Nothing went out; try again once the cool-down is over. Waiting it out here
    /// would hold the caller's slot for up to the longest cool-down.
    #[error("{url} was not sent: the host began a cool-down of {wait:?} after the request was claimed")]
    CoolingDown {
        /// The URL.
        url: Url,
        /// What is left of the cool-down.
        wait: Duration,
    },
    /// The body could not be decoded (a broken gzip stream, say).
    #[error("{url}: the body could not be decoded: {detail}")]
    Body {
        /// The URL.
        url: Url,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// Whether a time cap stopped the fetch: a timeout, or a body slower than the
    /// minimum transfer speed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::TooSlow { .. })
    }
    /// Whether robots.txt disallowed the URL, by its rules or because it could not be
    /// read ([`Error::RobotsUnavailable`]).
    pub fn is_robots_denied(&self) -> bool {
        matches!(self, Error::RobotsDenied { .. } | Error::RobotsUnavailable { .. })
    }
    /// Whether a size or ratio cap stopped the body.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::TooLarge { .. })
    }
    /// Whether the SSRF protection refused the URL.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Forbidden { .. })
    }
    /// Whether trying the same URL again later may succeed: a timeout, a body slower
    /// than the minimum speed, a failed connection or exchange, a retryable status
    /// (5xx, 408, 429), or an unreadable robots.txt. Everything else (robots rules, a
    /// 4xx, a cap, a TLS failure, a refused address, a bad URL) fails the same way
    /// again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::TooSlow { .. }
            | Error::Request { .. }
            | Error::RobotsUnavailable { .. }
            | Error::CoolingDown { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
    /// Whether the failure is a sign that the host itself is failing (down, overloaded
    /// or misconfigured), as opposed to one URL being wrong: a timeout, a too-slow
    /// body, a failed connection or exchange, a 5xx, an unreadable robots.txt, or a
    /// TLS failure. A crawler counts these to give up on a dead host.
    pub fn counts_against_host(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::TooSlow { .. }
            | Error::Request { .. }
            | Error::RobotsUnavailable { .. }
            | Error::Tls { .. } => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
    /// The HTTP status, when the failure was a status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The URL the error is about, when there is one.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Error::RobotsDenied { url }
            | Error::RobotsUnavailable { url }
            | Error::Forbidden { url }
            | Error::Timeout { url }
            | Error::TooSlow { url, .. }
            | Error::TooLarge { url, .. }
            | Error::ContentType { url, .. }
            | Error::Status { url, .. }
            | Error::Request { url, .. }
            | Error::Tls { url, .. }
            | Error::TooManyRedirects { url, .. }
            | Error::CoolingDown { url, .. }
            | Error::Body { url, .. } => Some(url),
            Error::Config(_) | Error::InvalidUrl { .. } => None,
        }
    }
    /// A stable, lower-case kind for records and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidUrl { .. } => "invalid-url",
            Error::RobotsDenied { .. } => "robots-denied",
            Error::RobotsUnavailable { .. } => "robots-unavailable",
            Error::Forbidden { .. } => "forbidden-address",
            Error::Timeout { .. } => "timeout",
            Error::TooSlow { .. } => "too-slow",
            Error::TooLarge { .. } => "too-large",
            Error::ContentType { .. } => "content-type",
            Error::Status { .. } => "http-status",
            Error::Request { .. } => "request",
            Error::Tls { .. } => "tls",
            Error::TooManyRedirects { .. } => "too-many-redirects",
            Error::CoolingDown { .. } => "cooling-down",
            Error::Body { .. } => "body",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::Fetcher;

    #[test]
    fn errors_say_whether_to_try_again_and_whether_the_host_is_failing() {
        let url = Url::parse("http://example.com/a").expect("url");
        let fetcher = Fetcher::builder().user_agent("t/1").build().expect("fetcher");
        let request = Error::Request {
            url: url.clone(),
            source: fetcher.inner.clients[0]
                .get("not a url")
                .build()
                .expect_err("invalid url"),
        };
        let status = |status| Error::Status {
            url: url.clone(),
            status,
            attempts: 3,
        };
        // (error, transient, counts against the host)
        let cases = [
            (Error::Timeout { url: url.clone() }, true, true),
            (
                Error::TooSlow {
                    url: url.clone(),
                    min_bytes_per_sec: 10,
                },
                true,
                true,
            ),
            (request, true, true),
            (status(503), true, true),
            (status(500), true, true),
            (status(429), true, false),
            (status(408), true, false),
            (Error::RobotsUnavailable { url: url.clone() }, true, true),
            (
                Error::Tls {
                    url: url.clone(),
                    detail: "invalid peer certificate: UnknownIssuer".into(),
                },
                false,
                true,
            ),
            (Error::RobotsDenied { url: url.clone() }, false, false),
            (Error::Forbidden { url: url.clone() }, false, false),
            (
                Error::TooLarge {
                    url: url.clone(),
                    limit: 1,
                },
                false,
                false,
            ),
            (
                Error::Body {
                    url: url.clone(),
                    detail: "broken".into(),
                },
                false,
                false,
            ),
            (Error::InvalidUrl { url: "x".into() }, false, false),
            (Error::Config("x".into()), false, false),
        ];
        for (e, transient, against_host) in cases {
            assert_eq!(e.is_transient(), transient, "{e:?}");
            assert_eq!(e.counts_against_host(), against_host, "{e:?}");
        }
    }

    #[test]
    fn a_tls_error_names_its_cause_in_its_message_only() {
        let e = Error::Tls {
            url: Url::parse("https://127.0.0.1:1234/").expect("url"),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert_eq!(e.kind(), "tls");
        assert_eq!(
            e.to_string(),
            "https://127.0.0.1:1234/: tls handshake failed: invalid peer certificate: UnknownIssuer"
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
