//! What a page leaves for the sinks: the WARC exchange (the HTTP messages as they were
//! exchanged, made consistent with the decoded body).

use trawl_fetcher::Fetched;

use crate::host::HostKey;

/// The raw HTTP messages of one page, owned, for the WARC sink.
pub(crate) struct OwnedExchange {
    pub(crate) request_head: String,
    pub(crate) response_head: String,
    pub(crate) body: bytes::Bytes,
    pub(crate) ip: Option<String>,
}

impl OwnedExchange {
    /// The exchange of a fetched page, its request as sent with `user_agent`.
    pub(crate) fn of(fetched: &Fetched, user_agent: &str) -> OwnedExchange {
        let path = match fetched.url.query() {
            Some(q) => format!("{}?{q}", fetched.url.path()),
            None => fetched.url.path().to_string(),
        };
        let host = HostKey::of_url(&fetched.url);
        let request_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept-Encoding: gzip, br, zstd, deflate",
            host.as_ref().map_or("", |h| h.authority()),
        );
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
        }
    }

    /// The borrowed form the sinks take.
    pub(crate) fn as_exchange(&self) -> trawl_sink::Exchange<'_> {
        trawl_sink::Exchange {
            request_head: &self.request_head,
            response_head: &self.response_head,
            body: &self.body,
            ip: self.ip.as_deref(),
        }
    }
}
