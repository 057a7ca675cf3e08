//! What a page leaves for the sinks: the WARC exchange (the HTTP messages as they were
//! exchanged, made consistent with the decoded body).

use trawl_fetcher::{Fetched, Validators};
use trawl_sink::RevisitProfile;

use crate::host::HostKey;

/// The raw HTTP messages of one page, owned, for the WARC sink.
pub(crate) struct OwnedExchange {
    pub(crate) request_head: String,
    pub(crate) response_head: String,
    pub(crate) body: bytes::Bytes,
    pub(crate) ip: Option<String>,
    pub(crate) protocol: &'static str,
    /// Written as a revisit: the profile, and the URI and date of the capture it
    /// refers to (empty when no capture is known).
    pub(crate) revisit: Option<(RevisitProfile, String, String)>,
}

impl OwnedExchange {
    /// The exchange of a fetched page, its request as sent with `user_agent` (and
    /// `validators`, for a conditional GET; `Connection: close` when it was asked for
    /// on HTTP/1, which HTTP/2 does not send).
    pub(crate) fn of(
        fetched: &Fetched,
        user_agent: &str,
        validators: Option<&Validators>,
        close_connection: bool,
    ) -> OwnedExchange {
        let path = match fetched.url.query() {
            Some(q) => format!("{}?{q}", fetched.url.path()),
            None => fetched.url.path().to_string(),
        };
        let host = HostKey::of_url(&fetched.url);
        let mut request_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept-Encoding: gzip, br, zstd, deflate",
            host.as_ref().map_or("", |h| h.authority()),
        );
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                request_head.push_str(&format!("\r\nIf-None-Match: {etag}"));
            }
            if let Some(lm) = &v.last_modified {
                request_head.push_str(&format!("\r\nIf-Modified-Since: {lm}"));
            }
        }
        if close_connection && fetched.protocol.starts_with("http/1") {
            request_head.push_str("\r\nConnection: close");
        }
        let reason = http::StatusCode::from_u16(fetched.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut response_head = format!("HTTP/1.1 {} {reason}", fetched.status);
        for (k, v) in fetched.headers.iter() {
            response_head.push_str("\r\n");
            response_head.push_str(k.as_str());
            response_head.push_str(": ");
            response_head.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        OwnedExchange {
            request_head,
            response_head,
            body: fetched.body.clone(),
            ip: fetched.remote_addr.map(|a| a.ip().to_string()),
            protocol: fetched.protocol,
            revisit: None,
        }
    }

    /// The borrowed form the sinks take.
    pub(crate) fn as_exchange(&self) -> trawl_sink::Exchange<'_> {
        trawl_sink::Exchange {
            request_head: &self.request_head,
            response_head: &self.response_head,
            body: &self.body,
            ip: self.ip.as_deref(),
            protocol: self.protocol,
            revisit: self
                .revisit
                .as_ref()
                .map(|(profile, uri, date)| trawl_sink::Revisit {
                    profile: *profile,
                    refers_to_uri: uri,
                    refers_to_date: date,
                }),
        }
    }
}
