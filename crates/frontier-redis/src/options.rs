//! [`RedisOptions`]: where the shared crawl is and who this worker is.

use std::time::Duration;

/// Settings for opening a [`RedisFrontier`](crate::RedisFrontier), built like
/// `trawl_frontier::Options`: [`RedisOptions::new`] and by-value setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The server: `redis://host:port/db` or `redis+unix:///path/to.sock` (a
    /// password and a database go as in the `redis` crate's URLs).
    pub url: String,
    /// The crawl's name: every key is under `trawl:{crawl}:`, so one server can hold
    /// several crawls.
    pub crawl: String,
    /// This worker's name, unique among the crawl's live workers. Opening the store
    /// again with the same name recovers a restart of that worker.
    pub worker: String,
    /// How long a host claim lasts without being renewed. A background thread renews
    /// this worker's claims every quarter of it. By default, 30 s.
    pub claim_ttl: Duration,
    /// How many times a URL may be leased before it is failed for good, as
    /// `trawl_frontier::Options::max_attempts`. Give every worker of a crawl the same.
    /// By default, 3.
    pub max_attempts: u32,
    /// The number of buckets the seen set is spread over. A bucket is a chain of
    /// hashes of at most the server's `hash-max-listpack-entries` fields (512 in Redis
    /// 7's defaults; this store uses at most 512) each, so that every hash stays
    /// listpack-encoded (about 13 bytes a URL); a bucket's second hash starts only
    /// once its first is full. Each hash also costs about 90 bytes of its own: with
    /// 65,536 buckets the seen set measured 18.3 bytes a URL at 1 million URLs and
    /// 13.7 at 8 million (no bucket chained; a bucket holds 122 on average there, so
    /// chains start near 30 million URLs). Fixed when the crawl is first opened; a
    /// different value later is refused. By default, 65,536.
    pub seen_buckets: u32,
    /// How long a call keeps reconnecting (with backoff) after a connection error or
    /// while the server is loading its data after a restart, before it fails with
    /// [`Error::Backend`](trawl_frontier::Error::Backend). By default, 30 s.
    pub reconnect_for: Duration,
    /// The connect, read and write timeout of one call. By default, 10 s.
    pub timeout: Duration,
    /// For tests: milliseconds added to the server's clock in this worker's scripts,
    /// so that a test can see another worker's claim run out without waiting for it.
    /// By default, 0.
    pub clock_offset_ms: i64,
}

impl RedisOptions {
    /// Options for worker `worker` of crawl `crawl` on the server at `url`, with the
    /// defaults for the rest.
    pub fn new(url: impl Into<String>, crawl: impl Into<String>, worker: impl Into<String>) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            crawl: crawl.into(),
            worker: worker.into(),
            claim_ttl: Duration::from_secs(30),
            max_attempts: 3,
            seen_buckets: 65_536,
            reconnect_for: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            clock_offset_ms: 0,
        }
    }
    /// Sets [`RedisOptions::claim_ttl`] (at least 100 ms).
    pub fn claim_ttl(mut self, ttl: Duration) -> RedisOptions {
        self.claim_ttl = ttl.max(Duration::from_millis(100));
        self
    }
    /// Sets [`RedisOptions::max_attempts`] (at least 1).
    pub fn max_attempts(mut self, n: u32) -> RedisOptions {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets [`RedisOptions::seen_buckets`] (at least 1).
    pub fn seen_buckets(mut self, n: u32) -> RedisOptions {
        self.seen_buckets = n.max(1);
        self
    }
    /// Sets [`RedisOptions::reconnect_for`].
    pub fn reconnect_for(mut self, d: Duration) -> RedisOptions {
        self.reconnect_for = d;
        self
    }
    /// Sets [`RedisOptions::timeout`] (at least 10 ms).
    pub fn timeout(mut self, d: Duration) -> RedisOptions {
        self.timeout = d.max(Duration::from_millis(10));
        self
    }
    /// Sets [`RedisOptions::clock_offset_ms`].
    pub fn clock_offset_ms(mut self, ms: i64) -> RedisOptions {
        self.clock_offset_ms = ms;
        self
    }
}
