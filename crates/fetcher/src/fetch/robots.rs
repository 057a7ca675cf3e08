//! The robots.txt path: the verdict for a host's pages from the memory cache, the
//! [`RobotsStore`] or one shared fetch per origin, and [`Fetcher::allowed`],
//! [`Fetcher::sitemaps`] and [`Fetcher::probe`] on it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use url::Url;

use super::Error;
use super::{Fetcher, origin};
use crate::net::classify_send_error;
use crate::robots::Robots;

/// A robots.txt answer as fetched: what a [`RobotsStore`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRobots {
    /// The final HTTP status after redirects; 0 when the server could not be reached.
    pub status: u16,
    /// When it was fetched.
    pub fetched_at: SystemTime,
    /// The body (at most 500 KiB), for a 2xx.
    pub body: Vec<u8>,
}

/// Where robots.txt answers are kept beyond this process, keyed by origin
/// (`scheme://host:port`). The trawl engine keeps them in its frontier, so a resumed
/// crawl does not fetch a fresh robots.txt again. The fetcher still caches verdicts
/// in memory; the store is asked on a miss and told about every fetch.
pub trait RobotsStore: Send + Sync {
    /// The stored answer for `origin`, if any.
    fn load(&self, origin: &str) -> Option<StoredRobots>;
    /// Keeps a fresh answer for `origin`.
    fn save(&self, origin: &str, answer: &StoredRobots);
}

impl std::fmt::Debug for dyn RobotsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RobotsStore")
    }
}

/// What robots.txt says about a host's pages.
#[derive(Debug, Clone)]
pub(super) enum RobotsVerdict {
    Rules(Arc<Robots>),
    AllowAll,
    /// A 5xx or a 429: RFC 9309 says to disallow everything for now.
    DisallowAll,
    /// No HTTP answer (connection failure, timeout, refused address, broken body):
    /// disallow everything as well, kept apart so [`Fetcher::probe`] can tell that
    /// no answer came.
    Unreachable,
    /// The TLS handshake failed: the host's pages fail with [`Error::Tls`], which
    /// says what to fix, instead of [`Error::RobotsUnavailable`].
    Tls(Arc<str>),
    /// The host's own name resolves only to special-purpose addresses: its pages fail
    /// with [`Error::Forbidden`], which is what is wrong, and not worth retrying.
    Forbidden,
}

/// A robots.txt verdict, and for the caller that fetched it, how the fetch went.
pub(super) struct RobotsOutcome {
    pub(super) verdict: RobotsVerdict,
    /// Whether this call sent the robots.txt request (not a cache or store hit).
    pub(super) fetched: bool,
    /// Whether this call waited while another call settled robots.txt (which may have
    /// sent its request meanwhile).
    pub(super) waited: bool,
    /// Why no answer came, for the caller that fetched it.
    pub(super) failure: Option<Error>,
}

/// How long a robots.txt that could not be read (5xx, 429, network error) disallows
/// its host before it is fetched again.
pub(super) const ROBOTS_RETRY: Duration = Duration::from_secs(60);

/// The most redirects followed for robots.txt.
const ROBOTS_REDIRECTS: usize = 5;

impl Fetcher {
    /// The robots.txt verdict for `url`, without fetching the page itself.
    ///
    /// # Errors
    /// Only for an invalid URL; an unreachable robots.txt is a verdict (disallow).
    pub async fn allowed(&self, url: &str) -> Result<bool, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        if !self.inner.cfg.robots {
            return Ok(true);
        }
        Ok(match self.robots_for(&url, false).await.verdict {
            RobotsVerdict::AllowAll => true,
            RobotsVerdict::DisallowAll
            | RobotsVerdict::Unreachable
            | RobotsVerdict::Tls(_)
            | RobotsVerdict::Forbidden => url.path() == "/robots.txt",
            RobotsVerdict::Rules(r) => r.allowed(url.as_str()),
        })
    }

    /// The `Sitemap:` URLs of the robots.txt of `url`'s host (fetched if needed).
    ///
    /// # Errors
    /// Only for an invalid URL.
    pub async fn sitemaps(&self, url: &str) -> Result<Vec<String>, Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        Ok(match self.robots_for(&url, false).await.verdict {
            RobotsVerdict::Rules(r) => r.sitemaps().to_vec(),
            _ => Vec::new(),
        })
    }

    /// Checks that `url`'s host can be reached with this fetcher's settings (address
    /// checks, resolver, TLS trust, timeouts), as a crawler's preflight for a seed. It
    /// fetches the host's robots.txt through the usual path, so the answer is cached
    /// (and given to the [`RobotsStore`]) and the first page does not fetch it again;
    /// a cached "no answer" is not trusted, so the error says why now. Any HTTP answer,
    /// a 404 or a 503 included, is `Ok`. With robots.txt off it sends one `HEAD`
    /// request to `url` instead. Either way the request waits for the host's time
    /// rules and rate, but takes no request slot.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]; [`Error::Forbidden`] for a special-purpose address;
    /// [`Error::Tls`], [`Error::Timeout`] or [`Error::Request`] when the host could
    /// not be reached or spoken to.
    pub async fn probe(&self, url: &str) -> Result<(), Error> {
        let url = Url::parse(url).map_err(|_| Error::InvalidUrl { url: url.to_string() })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidUrl { url: url.to_string() });
        }
        self.check_address(&url)?;
        if !self.inner.cfg.robots {
            self.gate_for(&url).await.acquire_start().await;
            return match self.client(&url).head(url.clone()).send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(classify_send_error(url, e)),
            };
        }
        let outcome = self.robots_for(&url, true).await;
        match (outcome.failure, outcome.verdict) {
            // A body that broke off or could not be decoded still came from a
            // server that answered.
            (Some(Error::Body { .. } | Error::TooLarge { .. }), _) => Ok(()),
            (Some(e), _) => Err(e),
            // Named like a fresh failure: by the request that failed.
            (None, RobotsVerdict::Tls(detail)) => Err(Error::Tls {
                url: url.join("/robots.txt").unwrap_or(url),
                detail: detail.to_string(),
            }),
            (None, RobotsVerdict::Forbidden) => Err(Error::Forbidden {
                url: url.join("/robots.txt").unwrap_or(url),
            }),
            (None, _) => Ok(()),
        }
    }

    pub(super) fn cached_robots(&self, key: &str) -> Option<RobotsVerdict> {
        let mut cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key)
    }

    /// The robots.txt verdict for `url`'s origin: from the memory cache, the store,
    /// or a fetch. With `refresh_unreachable`, a cached "no answer" is not trusted
    /// and robots.txt is fetched again, so that the caller learns why.
    pub(super) async fn robots_for(&self, url: &Url, refresh_unreachable: bool) -> RobotsOutcome {
        let cached = |v: RobotsVerdict, waited: bool| RobotsOutcome {
            verdict: v,
            fetched: false,
            waited,
            failure: None,
        };
        let usable = |v: &RobotsVerdict| !(refresh_unreachable && matches!(v, RobotsVerdict::Unreachable));
        let key = origin(url);
        if let Some(v) = self.cached_robots(&key).filter(usable) {
            return cached(v, false);
        }
        // One robots.txt request per origin: concurrent first requests wait for it.
        let flight = {
            let mut flights = self
                .inner
                .robots_flights
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let _turn = flight.lock().await;
        if let Some(v) = self.cached_robots(&key).filter(usable) {
            // Another call settled it while this one waited.
            return cached(v, true);
        }
        // A stored answer that is still fresh saves the request (a resumed crawl does
        // not fetch a fresh robots.txt again).
        let stored = self
            .inner
            .cfg
            .robots_store
            .as_ref()
            .and_then(|s| s.load(&key))
            .and_then(|answer| {
                let age = SystemTime::now()
                    .duration_since(answer.fetched_at)
                    .unwrap_or(Duration::ZERO);
                let (verdict, ttl) = self.verdict_of(&answer);
                (age < ttl && usable(&verdict)).then(|| (verdict, ttl - age))
            });
        let (verdict, ttl, fetched, failure) = match stored {
            Some((verdict, ttl)) => (verdict, ttl, false, None),
            None => match self.fetch_robots(url).await {
                Ok(answer) => {
                    if let Some(store) = &self.inner.cfg.robots_store {
                        store.save(&key, &answer);
                    }
                    let (verdict, ttl) = self.verdict_of(&answer);
                    (verdict, ttl, true, None)
                }
                // Not stored: whether a certificate is trusted depends on this
                // fetcher's settings (a CA added next run fixes it), not on the host.
                Err(Error::Tls { detail, .. }) => {
                    (RobotsVerdict::Tls(detail.into()), ROBOTS_RETRY, true, None)
                }
                // Not stored either, for the same reason (`allow_host`). Only for the
                // host's own robots.txt: a redirect to a refused address elsewhere
                // leaves this host's robots.txt merely unavailable.
                Err(Error::Forbidden { url: refused }) if origin(&refused) == key => {
                    (RobotsVerdict::Forbidden, ROBOTS_RETRY, true, None)
                }
                Err(e) => {
                    // Stored as status 0, so a resumed crawl also waits out the minute.
                    let answer = StoredRobots {
                        status: 0,
                        fetched_at: SystemTime::now(),
                        body: Vec::new(),
                    };
                    if let Some(store) = &self.inner.cfg.robots_store {
                        store.save(&key, &answer);
                    }
                    (RobotsVerdict::Unreachable, ROBOTS_RETRY, true, Some(e))
                }
            },
        };
        if let RobotsVerdict::Rules(r) = &verdict {
            self.gate_for(url).await.set_crawl_delay_of(&key, r.crawl_delay());
        }
        let mut cache = self.inner.robots.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), ttl, verdict.clone(), self.inner.cfg.host_cache);
        drop(cache);
        self.inner
            .robots_flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        RobotsOutcome {
            verdict,
            fetched,
            waited: false,
            failure,
        }
    }

    /// Fetches the robots.txt of `page`'s host, following up to 5 redirects: the
    /// final status and body, or why no HTTP answer came. The requests wait for each
    /// host's time rules and rate but take no request slot: the page request waiting
    /// for this answer may hold the host's only slot.
    pub(super) async fn fetch_robots(&self, page: &Url) -> Result<StoredRobots, Error> {
        let answer = |status: u16, body: Vec<u8>| StoredRobots {
            status,
            fetched_at: SystemTime::now(),
            body,
        };
        let Ok(mut url) = page.join("/robots.txt") else {
            return Ok(answer(404, Vec::new()));
        };
        for _ in 0..=ROBOTS_REDIRECTS {
            self.check_address(&url)?;
            self.gate_for(&url).await.acquire_start().await;
            let resp = match self.client(&url).get(url.clone()).send().await {
                Ok(resp) => resp,
                Err(e) => return Err(classify_send_error(url, e)),
            };
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                match next {
                    Some(n) => {
                        url = n;
                        continue;
                    }
                    None => return Ok(answer(404, Vec::new())),
                }
            }
            if status >= 400 {
                return Ok(answer(status, Vec::new()));
            }
            let (bytes, _) = self
                .read_body(&url, resp, crate::robots::MAX_ROBOTS_BYTES as u64, true, None)
                .await?;
            return Ok(answer(status, bytes));
        }
        // Too many redirects: RFC 9309 treats that like an unavailable file.
        Ok(answer(404, Vec::new()))
    }

    /// The verdict of a robots.txt answer, and how long it stays valid.
    pub(super) fn verdict_of(&self, answer: &StoredRobots) -> (RobotsVerdict, Duration) {
        match answer.status {
            200..=299 => (
                RobotsVerdict::Rules(Arc::new(Robots::parse(&answer.body, &self.inner.cfg.user_agent))),
                self.inner.cfg.robots_ttl,
            ),
            0 => (RobotsVerdict::Unreachable, ROBOTS_RETRY),
            429 | 500.. => (RobotsVerdict::DisallowAll, ROBOTS_RETRY),
            _ => (RobotsVerdict::AllowAll, self.inner.cfg.robots_ttl),
        }
    }
}
