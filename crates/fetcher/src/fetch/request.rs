//! The request loop: [`Fetcher::fetch`] and its variants, one URL through robots.txt,
//! the address checks, the host's gate and retries, and the body read under the caps.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;
use url::Url;

use super::Error;
use super::robots::RobotsVerdict;
use super::{Fetched, Fetcher, RequestOptions, Timings, Validators};
use crate::accept::AcceptTypes;
use crate::adaptive::Signal;
use crate::body::{BodyDecoder, BodyError, ContentEncoding};
use crate::gate::HostPermit;
use crate::memory::MemoryReservation;
use crate::net::{DisplayChain, classify_send_error, protocol_name};
use crate::ssrf::is_special;

/// A `Retry-After` value: seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

impl Fetcher {
    /// Reads a body under the caps. With `keep_prefix`, hitting the size cap keeps what
    /// was read (robots.txt is read up to 500 KiB and the rest ignored).
    pub(super) async fn read_body(
        &self,
        url: &Url,
        mut resp: reqwest::Response,
        max_body: u64,
        keep_prefix: bool,
        mut memory: Option<&mut MemoryReservation>,
    ) -> Result<(Vec<u8>, u64), Error> {
        let encoding = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map_or(Some(ContentEncoding::Identity), ContentEncoding::from_header)
            .ok_or_else(|| Error::Body {
                url: url.clone(),
                detail: "unsupported content-encoding".into(),
            })?;
        let mut dec =
            BodyDecoder::new(encoding, max_body, self.inner.cfg.max_ratio).map_err(|e| Error::Body {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let started = Instant::now();
        loop {
            let next = resp.chunk();
            let result = match self.inner.cfg.min_speed {
                // The next byte must arrive before the average would fall under the
                // minimum (and never before the grace period is over).
                Some((min, grace)) => {
                    let need = Duration::from_secs_f64((dec.wire_bytes() as f64 + 1.0) / min.max(1) as f64);
                    match tokio::time::timeout_at(started + need.max(grace), next).await {
                        Ok(r) => r,
                        Err(_) => {
                            return Err(Error::TooSlow {
                                url: url.clone(),
                                min_bytes_per_sec: min,
                            });
                        }
                    }
                }
                None => next.await,
            };
            let chunk = match result {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(classify_send_error(url.clone(), e)),
            };
            let pushed = dec.push(&chunk);
            if let Some(m) = memory.as_deref_mut() {
                m.grow_to(dec.decoded_bytes());
            }
            match pushed {
                Ok(()) => {}
                Err(BodyError::TooLarge { .. }) if keep_prefix => {
                    let wire = dec.wire_bytes();
                    return Ok((dec.into_prefix(), wire));
                }
                Err(BodyError::TooLarge { limit } | BodyError::Ratio { limit }) => {
                    return Err(Error::TooLarge {
                        url: url.clone(),
                        limit,
                    });
                }
                Err(BodyError::Corrupt(detail)) => {
                    return Err(Error::Body {
                        url: url.clone(),
                        detail,
                    });
                }
            }
        }
        let wire = dec.wire_bytes();
        let body = dec.finish().map_err(|e| match e {
            BodyError::TooLarge { limit } | BodyError::Ratio { limit } => Error::TooLarge {
                url: url.clone(),
                limit,
            },
            BodyError::Corrupt(detail) => Error::Body {
                url: url.clone(),
                detail,
            },
        })?;
        if let Some(m) = memory {
            // A decoder may hold output back until the end.
            m.grow_to(body.len() as u64);
        }
        Ok((body, wire))
    }

    /// Fetches `url` politely: robots.txt, the host's gate, timeouts, caps and
    /// retries. Redirects are not followed: a 3xx comes back with
    /// [`Fetched::redirect_to`] for the caller to check and fetch.
    ///
    /// # Errors
    /// See [`Error`]: every failure names its URL and kind.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, Error> {
        self.fetch_traced(url, &RequestOptions::default(), None).await
    }

    /// Like [`Fetcher::fetch`], with per-request settings ([`RequestOptions`]): a
    /// conditional GET, other accepted body types.
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_with(&self, url: &str, options: &RequestOptions) -> Result<Fetched, Error> {
        self.fetch_traced(url, options, None).await
    }

    /// Like [`Fetcher::fetch`], with a conditional GET: `If-None-Match` and
    /// `If-Modified-Since` from `validators`. A `304 Not Modified` comes back as a
    /// [`Fetched`] with status 304 and an empty body ([`Fetched::not_modified`]).
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_conditional(&self, url: &str, validators: &Validators) -> Result<Fetched, Error> {
        let options = RequestOptions::new().validators(validators.clone());
        self.fetch_traced(url, &options, None).await
    }

    /// Like [`Fetcher::fetch`], for a request whose start was already claimed with
    /// `fetcher.gate(&url).try_acquire()`: the first attempt goes out under `permit`
    /// instead of waiting in [`HostGate::acquire`](crate::HostGate::acquire), so a scheduler that claims
    /// without blocking keeps no spacing of its own. When a cool-down began after the
    /// claim (a 429 to another request, say), nothing is sent and it returns
    /// [`Error::CoolingDown`]; when this call had to fetch the host's robots.txt first,
    /// or waited while another call did, it waits for the time rules again so that the
    /// requests are spaced too.
    /// Retries acquire as usual.
    ///
    /// # Errors
    /// As [`Fetcher::fetch`], and [`Error::CoolingDown`].
    pub async fn fetch_claimed(&self, url: &str, permit: HostPermit) -> Result<Fetched, Error> {
        self.fetch_traced(url, &RequestOptions::default(), Some(permit))
            .await
    }

    /// [`Fetcher::fetch_claimed`] with per-request settings, as
    /// [`Fetcher::fetch_with`].
    ///
    /// # Errors
    /// As [`Fetcher::fetch_claimed`].
    pub async fn fetch_claimed_with(
        &self,
        url: &str,
        permit: HostPermit,
        options: &RequestOptions,
    ) -> Result<Fetched, Error> {
        self.fetch_traced(url, options, Some(permit)).await
    }

    /// [`Fetcher::fetch_claimed`] with a conditional GET, as
    /// [`Fetcher::fetch_conditional`].
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    pub async fn fetch_claimed_conditional(
        &self,
        url: &str,
        validators: &Validators,
        permit: HostPermit,
    ) -> Result<Fetched, Error> {
        let options = RequestOptions::new().validators(validators.clone());
        self.fetch_traced(url, &options, Some(permit)).await
    }

    /// A fetch in its `tracing` span, with the outcome logged.
    pub(super) async fn fetch_traced(
        &self,
        url: &str,
        options: &RequestOptions,
        permit: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        let span = tracing::debug_span!("fetch", url = %url, host = tracing::field::Empty, status = tracing::field::Empty, attempts = tracing::field::Empty, ms = tracing::field::Empty);
        let result =
            tracing::Instrument::instrument(self.fetch_following(url, options, permit), span.clone()).await;
        match &result {
            Ok(f) => {
                span.record("status", f.status);
                span.record("attempts", f.attempts);
                span.record("ms", f.timings.total.as_millis() as u64);
                tracing::debug!(parent: &span, status = f.status, bytes = f.body_bytes, body_skipped = f.body_skipped, "fetched");
            }
            Err(e) => tracing::debug!(parent: &span, kind = e.kind(), error = %e, "fetch failed"),
        }
        result
    }

    /// [`Fetcher::fetch_one`], then each redirect hop through the same, when following.
    pub(super) async fn fetch_following(
        &self,
        url: &str,
        options: &RequestOptions,
        permit: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        tracing::Span::current().record("host", url.host_str().unwrap_or(""));
        let accept = options.accept.as_ref().unwrap_or(&self.inner.cfg.accept);
        let mut fetched = self
            .fetch_one(
                url.clone(),
                &options.validators,
                options.close_connection,
                accept,
                permit,
            )
            .await?;
        let max = self.inner.cfg.follow_redirects;
        if max == 0 {
            return Ok(fetched);
        }
        let mut chain: Vec<Url> = Vec::new();
        let mut attempts = fetched.attempts;
        while let Some(next) = fetched.redirect_to.take() {
            if chain.len() >= max || next == url || chain.contains(&next) {
                return Err(Error::TooManyRedirects {
                    url,
                    hops: chain.len(),
                });
            }
            tracing::debug!(from = %fetched.final_url, to = %next, "following a redirect");
            chain.push(next.clone());
            fetched = self
                .fetch_one(next, &Validators::default(), false, accept, None)
                .await?;
            attempts += fetched.attempts;
        }
        fetched.url = url;
        fetched.redirects = chain;
        fetched.attempts = attempts;
        Ok(fetched)
    }

    /// One URL, no redirects followed: robots, address checks, the gate, retries; the
    /// body is read only when `accept` takes its type. `claimed` is a permit of the
    /// URL's host claimed by the caller, for the first attempt; `close` sends
    /// `Connection: close` ([`RequestOptions::close_connection`]).
    pub(super) async fn fetch_one(
        &self,
        url: Url,
        validators: &Validators,
        close: bool,
        accept: &AcceptTypes,
        mut claimed: Option<HostPermit>,
    ) -> Result<Fetched, Error> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidUrl { url: url.to_string() });
        }
        self.check_address(&url)?;
        let mut robots_fetched = false;
        if self.inner.cfg.robots && url.path() != "/robots.txt" {
            let outcome = self.robots_for(&url, false).await;
            // A robots.txt request may have gone out since the claim: this call's own,
            // or that of another call this one waited for (two requests claimed before
            // the host's robots.txt was read: the second one's start came before the
            // robots.txt request's, and sent now it would follow it at once).
            robots_fetched = outcome.fetched || outcome.waited;
            let ok = match outcome.verdict {
                RobotsVerdict::AllowAll => true,
                RobotsVerdict::DisallowAll | RobotsVerdict::Unreachable => {
                    return Err(Error::RobotsUnavailable { url });
                }
                RobotsVerdict::Tls(detail) => {
                    return Err(Error::Tls {
                        url,
                        detail: detail.to_string(),
                    });
                }
                RobotsVerdict::Forbidden => return Err(Error::Forbidden { url }),
                RobotsVerdict::Rules(r) => r.allowed(url.as_str()),
            };
            if !ok {
                return Err(Error::RobotsDenied { url });
            }
        }
        let gate = self.gate_for(&url).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let queued_at = Instant::now();
            let permit = match claimed.take() {
                Some(permit) => {
                    let cooling = gate.snapshot().cool_down;
                    if !cooling.is_zero() {
                        return Err(Error::CoolingDown { url, wait: cooling });
                    }
                    if robots_fetched {
                        // A robots.txt request started after this claim: claim a
                        // start after it.
                        gate.acquire_start().await;
                    }
                    permit
                }
                None => gate.acquire().await,
            };
            let queued = queued_at.elapsed();
            let sent_at = Instant::now();
            let mut request = self.client(&url).get(url.clone());
            if let Some(etag) = &validators.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
            if close {
                request = request.header(reqwest::header::CONNECTION, "close");
            }
            let result = request.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    let err = classify_send_error(url.clone(), e);
                    // Trying again fails the same way: no retry, and no cool-down
                    // that would hold back the host's other URLs for nothing.
                    if matches!(err, Error::Tls { .. } | Error::Forbidden { .. }) {
                        return Err(err);
                    }
                    if err.is_timeout() {
                        gate.adapt_overloaded(sent_at, Signal::Timeout);
                    }
                    let wait = gate.cool_down(None);
                    if attempts < self.inner.cfg.max_attempts {
                        tracing::debug!(attempt = attempts, error = %DisplayChain(&err), ?wait, "retrying after a failed request");
                        continue;
                    }
                    return Err(err);
                }
            };
            let first_byte = sent_at.elapsed();
            let status = resp.status().as_u16();
            let protocol = protocol_name(resp.version());
            let remote_addr = resp.remote_addr();
            if let Some(addr) = remote_addr
                && is_special(addr.ip())
            {
                self.check_address(&url)?;
                if !self.inner.cfg.allow_private_ips
                    && url.host_str().is_some_and(|h| h.parse::<IpAddr>().is_err())
                    && !self.vouched(&url)
                {
                    return Err(Error::Forbidden { url });
                }
            }
            if status == 429 || status == 503 || status == 408 || (status >= 500 && status != 501) {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                drop(permit);
                let wait = gate.answered_retryable(sent_at, status, retry_after);
                if attempts < self.inner.cfg.max_attempts {
                    tracing::debug!(
                        attempt = attempts,
                        status,
                        ?wait,
                        "retrying after a retryable status"
                    );
                    continue;
                }
                return Err(Error::Status {
                    url,
                    status,
                    attempts,
                });
            }
            let headers = resp.headers().clone();
            let content_type = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            if let (Some(allowed), true) = (&self.inner.cfg.content_types, (200..300).contains(&status)) {
                let ct = content_type.clone().unwrap_or_default().to_ascii_lowercase();
                if !allowed.iter().any(|a| ct.starts_with(a.as_str())) {
                    return Err(Error::ContentType {
                        url,
                        content_type: ct,
                    });
                }
            }
            let redirect_to = if (300..400).contains(&status) {
                headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
            } else {
                None
            };
            let timings = |total| Timings {
                queued,
                first_byte,
                total,
            };
            if !accept.accepts(content_type.as_deref()) {
                // Not a body the caller wants: dropping the response unread closes the
                // connection (HTTP/1.1) or resets the stream (h2), so nothing more of
                // it is downloaded.
                drop(resp);
                drop(permit);
                gate.answered(sent_at, first_byte);
                return Ok(Fetched {
                    final_url: url.clone(),
                    url,
                    status,
                    headers,
                    body: Bytes::new(),
                    content_type,
                    redirect_to,
                    redirects: Vec::new(),
                    timings: timings(sent_at.elapsed()),
                    wire_bytes: 0,
                    body_bytes: 0,
                    attempts,
                    remote_addr,
                    protocol,
                    body_skipped: true,
                    memory: None,
                });
            }
            let mut memory = match &self.inner.memory {
                Some(m) => {
                    let len = resp.content_length().unwrap_or(0).min(self.inner.cfg.max_body);
                    Some(m.reserve(len).await)
                }
                None => None,
            };
            let read = self
                .read_body(&url, resp, self.inner.cfg.max_body, false, memory.as_mut())
                .await;
            drop(permit);
            let (body, wire_bytes) = match read {
                Ok(b) => b,
                Err(Error::Timeout { url }) if attempts < self.inner.cfg.max_attempts => {
                    let _ = url;
                    gate.adapt_overloaded(sent_at, Signal::Timeout);
                    gate.cool_down(None);
                    continue;
                }
                Err(e) => {
                    if e.is_timeout() {
                        gate.adapt_overloaded(sent_at, Signal::Timeout);
                    }
                    return Err(e);
                }
            };
            gate.answered(sent_at, first_byte);
            let body_bytes = body.len() as u64;
            return Ok(Fetched {
                final_url: url.clone(),
                url,
                status,
                headers,
                body: Bytes::from(body),
                content_type,
                redirect_to,
                redirects: Vec::new(),
                timings: timings(sent_at.elapsed()),
                wire_bytes,
                body_bytes,
                attempts,
                remote_addr,
                protocol,
                memory,
                body_skipped: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&soon).expect("a date");
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
