//! The frontier's data types and the [`FrontierStore`] seam.

use crate::Result;

/// A 128-bit fingerprint of a canonical URL: the key of its record.
///
/// Long URLs are hashed into short keys (xxh3-128, stable across versions and
/// platforms), so every key is 17 bytes whatever the URL's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// The fingerprint of a canonical URL.
    pub fn of(url: &str) -> Fingerprint {
        Fingerprint(xxhash_rust::xxh3::xxh3_128(url.as_bytes()))
    }
}

/// A host's number inside one frontier. Hosts are numbered as they are first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

/// Which queue class a URL belongs to. Within a host, a lower class is always handed
/// out first; within a class, lower depth first, then first in, first out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Priority {
    /// A robots.txt file.
    Robots = 0,
    /// A sitemap or sitemap index.
    Sitemap = 1,
    /// The target of a redirect.
    Redirect = 2,
    /// A page found by a link, or a seed.
    #[default]
    Page = 3,
}

impl Priority {
    pub(crate) fn from_u8(b: u8) -> Option<Priority> {
        Some(match b {
            0 => Priority::Robots,
            1 => Priority::Sitemap,
            2 => Priority::Redirect,
            3 => Priority::Page,
            _ => return None,
        })
    }
}

/// The state of a known URL. Every known URL is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum UrlState {
    /// Waiting in its host's queue.
    Queued = 0,
    /// Handed out by [`FrontierStore::lease`] and not yet acked.
    Leased = 1,
    /// Fetched and acked.
    Done = 2,
    /// Given up on, with a reason.
    Failed = 3,
}

impl UrlState {
    pub(crate) fn from_u8(b: u8) -> Option<UrlState> {
        Some(match b {
            0 => UrlState::Queued,
            1 => UrlState::Leased,
            2 => UrlState::Done,
            3 => UrlState::Failed,
            _ => return None,
        })
    }
}

/// A URL to add to the frontier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUrl {
    /// The canonical absolute URL (`scheme://host[:port]/...`). The frontier groups by
    /// the part before the path, so give it in canonical form.
    pub url: String,
    /// Link hops from a seed.
    pub depth: u16,
    /// The queue class.
    pub priority: Priority,
    /// Opaque bytes stored with the URL and handed back with its lease (the engine keeps
    /// the parent URL and the discovery kind there). Keep it small.
    pub data: Vec<u8>,
}

impl NewUrl {
    /// A page URL at `depth` with no extra data.
    pub fn page(url: impl Into<String>, depth: u16) -> NewUrl {
        NewUrl {
            url: url.into(),
            depth,
            priority: Priority::Page,
            data: Vec::new(),
        }
    }
}

/// A URL handed out for fetching. Give it back with [`Ack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The URL's fingerprint.
    pub fp: Fingerprint,
    /// The canonical URL.
    pub url: String,
    /// Its host.
    pub host: HostId,
    /// Link hops from a seed.
    pub depth: u16,
    /// Its queue class.
    pub priority: Priority,
    /// How many times it has been leased, this lease included.
    pub attempts: u32,
    /// The bytes given with [`NewUrl::data`].
    pub data: Vec<u8>,
}

/// What became of a leased URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fetched; the record was written.
    Done,
    /// Given up on, with a reason (also a written record).
    Failed(String),
    /// Put it back at the end of its queue class to try again later. Once it has been
    /// leased `max_attempts` times it fails instead, so nothing loops forever.
    Retry,
}

/// The result of one leased URL, handed to [`FrontierStore::ack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The lease being completed.
    pub lease: Lease,
    /// What became of it.
    pub outcome: Outcome,
    /// Links found on the page; unseen ones are enqueued in the same atomic batch.
    pub discovered: Vec<NewUrl>,
}

/// Counts of URLs by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Waiting in a queue.
    pub queued: u64,
    /// Handed out, not yet acked.
    pub leased: u64,
    /// Fetched.
    pub done: u64,
    /// Given up on.
    pub failed: u64,
}

impl Counts {
    /// Every known URL.
    pub fn total(&self) -> u64 {
        self.queued + self.leased + self.done + self.failed
    }
}

/// Per-host politeness state, persisted so that a resumed crawl stays polite.
/// Times are milliseconds since the Unix epoch; 0 means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Politeness {
    /// The earliest time the next request to this host may start.
    pub next_allowed_at_ms: u64,
    /// A Retry-After deadline; no request before it.
    pub retry_after_until_ms: u64,
    /// The current exponential backoff level (0: none).
    pub backoff_level: u32,
    /// Consecutive failures (connection errors, timeouts, 5xx).
    pub consecutive_failures: u32,
    /// The host's adaptive rate while it holds the host below its configured rate,
    /// in thousandths of a request per second; 0: none (the configured rate).
    pub adaptive_millirate: u32,
}

impl Politeness {
    /// The earliest time a request may start, taking every rule into account.
    pub fn earliest_ms(&self) -> u64 {
        self.next_allowed_at_ms.max(self.retry_after_until_ms)
    }
}

/// A host as the frontier knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Its number.
    pub id: HostId,
    /// `scheme://host[:port]`.
    pub key: String,
    /// Its URLs by state.
    pub counts: Counts,
    /// Its persisted politeness state.
    pub politeness: Politeness,
}

/// What [`FrontierStore::ready_scan`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadyScan {
    /// Hosts with queued URLs that may be fetched now, in host order from where the
    /// scan started, wrapping around.
    pub hosts: Vec<HostId>,
    /// How many hosts may be fetched now in all (`hosts` is at most the number
    /// asked for): when it is no more than `hosts.len()`, the scan saw them all.
    pub ready: usize,
    /// The earliest time (ms since the epoch) at which a host with queued URLs that
    /// may not be fetched yet becomes ready, if there is one.
    pub next_ms: Option<u64>,
}

/// A cached robots.txt answer for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotsEntry {
    /// The HTTP status of the final response (0 when the server was unreachable).
    pub status: u16,
    /// When it was fetched, in milliseconds since the Unix epoch.
    pub fetched_at_ms: u64,
    /// The body (at most what the fetcher kept, 500 KiB).
    pub body: Vec<u8>,
}

/// Everything stored about one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRecord {
    /// The URL's fingerprint.
    pub fp: Fingerprint,
    /// The canonical URL.
    pub url: String,
    /// Its state.
    pub state: UrlState,
    /// How many times it was leased.
    pub attempts: u32,
    /// Link hops from a seed.
    pub depth: u16,
    /// Its queue class.
    pub priority: Priority,
    /// Its host.
    pub host: HostId,
    /// Why it failed, for [`UrlState::Failed`].
    pub reason: Option<String>,
    /// The bytes given with [`NewUrl::data`].
    pub data: Vec<u8>,
}

/// The figures behind a page limit shared by the workers of a store
/// ([`FrontierStore::shared_pages`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageTally {
    /// Records written by every worker.
    pub written: u64,
    /// URLs leased by every worker and not acked yet: each may still write a record.
    pub leased: u64,
}

/// The operations the engine needs from a frontier. [`Frontier`](crate::Frontier) is
/// the embedded sled implementation; `trawl-frontier-redis` is the shared one, which
/// several worker processes use at once.
///
/// Every method is synchronous and short (a few sled operations, or one round trip to
/// a server); the engine calls the ones that write from a blocking-friendly task.
/// Every read can fail, since a networked store can be unreachable.
///
/// # Workers
/// A shared store is used by several workers, each with its own outputs. For it:
/// - [`FrontierStore::worker`] names this worker;
/// - a host is owned by one worker at a time: [`FrontierStore::lease`] claims it and
///   [`FrontierStore::release`] gives it back;
/// - an ack or lease made after this worker lost its claim fails with
///   [`Error::LostOwnership`](crate::Error::LostOwnership), and nothing of it is
///   applied; the worker then cuts its outputs back to its stored checkpoints and
///   opens the store again;
/// - [`FrontierStore::finished`] judges completion across every worker.
///
/// An embedded store has a single worker, and those methods have trivial defaults.
pub trait FrontierStore: Send + Sync + std::fmt::Debug {
    /// Adds URLs not seen before, in one atomic batch; returns how many were new.
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize>;
    /// Leases up to `max` queued URLs of `host`, in queue order, in one atomic batch.
    /// A shared store claims the host for this worker first, and returns no leases
    /// when another worker owns it.
    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>>;
    /// Completes leases, enqueues their discovered links and stores the sinks'
    /// checkpoints `(sink name, checkpoint)`, all in one atomic batch.
    fn ack(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<()> {
        self.ack_new(acks, checkpoints).map(|_| ())
    }
    /// As [`FrontierStore::ack`], and returns the fingerprints of the discovered URLs
    /// that this call enqueued: those never seen before (the engine's broken-link
    /// tracker follows only these, so it never holds a URL that is already done).
    fn ack_new(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<Vec<Fingerprint>>;
    /// As [`FrontierStore::ack_new`], where `records` of the acks wrote a record (a
    /// page or a failure the outputs hold; a retry or a sitemap writes none). A store
    /// that shares a page limit ([`FrontierStore::share_page_limit`]) counts them in
    /// the same atomic batch; the others ignore the number.
    fn ack_records(
        &self,
        acks: Vec<Ack>,
        checkpoints: &[(&str, &[u8])],
        records: u64,
    ) -> Result<Vec<Fingerprint>> {
        let _ = records;
        self.ack_new(acks, checkpoints)
    }
    /// Makes everything acked so far durable. See the crate docs for the window.
    fn flush(&self) -> Result<()>;
    /// Hosts with queued URLs, with the earliest time (ms since the epoch) each may be
    /// fetched, soonest first.
    fn ready_hosts(&self) -> Result<Vec<(HostId, u64)>>;
    /// Up to `max` hosts with queued URLs whose persisted politeness lets them be
    /// fetched at `now_ms`, in host order starting after `after` and wrapping around,
    /// so that a scheduler that goes on from the last host it got serves every host
    /// in turn. Its cost is in proportion to `max`, not to the number of hosts (the
    /// default implementation, on [`FrontierStore::ready_hosts`], is not; the sled
    /// frontier keeps an index). A shared store leaves out hosts that other workers
    /// own.
    fn ready_scan(&self, after: Option<HostId>, now_ms: u64, max: usize) -> Result<ReadyScan> {
        let all = self.ready_hosts()?;
        let next_ms = all.iter().map(|(_, t)| *t).filter(|t| *t > now_ms).min();
        let mut open: Vec<HostId> = all
            .iter()
            .filter(|(_, t)| *t <= now_ms)
            .map(|(h, _)| *h)
            .collect();
        open.sort();
        let start = after.map_or(0, |a| open.partition_point(|h| *h <= a));
        let hosts = open[start..]
            .iter()
            .chain(&open[..start])
            .take(max)
            .copied()
            .collect();
        Ok(ReadyScan {
            hosts,
            ready: open.len(),
            next_ms,
        })
    }
    /// One host's details.
    fn host(&self, id: HostId) -> Result<Option<HostInfo>>;
    /// The number of a host key (`scheme://host[:port]`), if known.
    fn host_id(&self, key: &str) -> Result<Option<HostId>>;
    /// Every host, in id order.
    fn hosts(&self) -> Result<Vec<HostInfo>>;
    /// One host's persisted politeness state (a cheap read from memory).
    fn politeness(&self, id: HostId) -> Result<Option<Politeness>> {
        Ok(self.host(id)?.map(|h| h.politeness))
    }
    /// Stores a host's politeness state.
    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()>;
    /// The cached robots.txt of a host.
    fn robots(&self, id: HostId) -> Result<Option<RobotsEntry>>;
    /// Caches the robots.txt of a host.
    fn set_robots(&self, id: HostId, entry: &RobotsEntry) -> Result<()>;
    /// Fails every queued URL of a host with `reason`; returns how many.
    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64>;
    /// The last checkpoint stored for a sink (of this worker, in a shared store).
    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>>;
    /// Counts by state, without a scan (across every worker, in a shared store).
    fn counts(&self) -> Result<Counts>;
    /// The record of a URL, if known.
    fn get(&self, url: &str) -> Result<Option<UrlRecord>>;
    /// Stores a meta value (for example the crawl's configuration); in a shared store
    /// it is this worker's own.
    fn set_meta(&self, name: &str, value: &[u8]) -> Result<()>;
    /// Reads a meta value stored with [`FrontierStore::set_meta`].
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Binds the store to one crawl. The first call stores `identity` (a short
    /// description of what makes two crawls the same, such as seeds and scope) and
    /// `config`, and flushes; later calls return the stored configuration, or
    /// [`Error::ConfigMismatch`](crate::Error::ConfigMismatch) when the identity differs.
    fn bind_config(&self, identity: &str, config: &[u8]) -> Result<Vec<u8>> {
        match self.meta("identity")? {
            Some(stored) if stored != identity.as_bytes() => Err(crate::Error::ConfigMismatch {
                stored: String::from_utf8_lossy(&stored).into_owned(),
            }),
            Some(_) => Ok(self.meta("config")?.unwrap_or_else(|| config.to_vec())),
            None => {
                self.set_meta("identity", identity.as_bytes())?;
                self.set_meta("config", config)?;
                self.flush()?;
                Ok(config.to_vec())
            }
        }
    }
    /// This worker's name in a shared store; `None` for an embedded one.
    fn worker(&self) -> Option<&str> {
        None
    }
    /// Whether a request to `host` that starts now and takes up to `within_ms` ends
    /// before this worker's claim on the host runs out (always, in an embedded store,
    /// where claims do not run out).
    fn may_start(&self, host: HostId, within_ms: u64) -> bool {
        let _ = (host, within_ms);
        true
    }
    /// Whether this worker's claim on a host is gone: it ran out (the worker was paused
    /// or cut off past its time-to-live) or was found taken. Leases of the host it
    /// still holds can then not be acked, and the worker must open the store again
    /// (never, in an embedded store).
    fn claim_lost(&self, host: HostId) -> bool {
        let _ = host;
        false
    }
    /// Whether this worker should give `host` up: it holds more hosts than its share
    /// of the crawl's (workers joined since it claimed them). The engine then leases
    /// no more of it and, once the leases it has are in, releases it (never, in an
    /// embedded store).
    fn hand_over(&self, host: HostId) -> bool {
        let _ = host;
        false
    }
    /// Gives up this worker's claim on a host it has no leases of, so that another
    /// worker may take it (a no-op in an embedded store).
    fn release(&self, host: HostId) -> Result<()> {
        let _ = host;
        Ok(())
    }
    /// Makes `max` records a limit for every worker of a shared store together:
    /// [`FrontierStore::lease`] then hands out no more URLs than `max`, less the
    /// records every worker wrote ([`FrontierStore::ack_records`]), less the URLs
    /// leased and not yet acked, so no record past the limit is ever fetched. Returns
    /// whether the store does so; an embedded store (the default) does not, and the
    /// engine keeps the count itself.
    fn share_page_limit(&self, max: u64) -> Result<bool> {
        let _ = max;
        Ok(false)
    }
    /// The records written by every worker and the URLs leased by every worker, as
    /// this worker last heard from a store that shares a page limit (each lease and
    /// ack brings the figures, and so does [`FrontierStore::finished`]); `None` for
    /// any other store.
    fn shared_pages(&self) -> Option<PageTally> {
        None
    }
    /// Whether the crawl is over: nothing queued and nothing leased, by any worker.
    fn finished(&self) -> Result<bool> {
        let c = self.counts()?;
        Ok(c.queued == 0 && c.leased == 0)
    }
}
