//! trawl-frontier: the durable, crash-safe URL frontier of the trawl crawler.
//!
//! It is the disk-backed queue and seen set that lets a crawl of millions of URLs run in
//! flat memory and pick up after Ctrl-C, `kill -9` or power loss with nothing lost.
//!
//! - [`Frontier`] is the sled implementation; open it with [`Frontier::open`].
//! - [`FrontierStore`] is the seam the engine codes against, so that a shared backend
//!   can replace sled later.
//! - [`NewUrl`] goes in, [`Lease`] comes out, [`Ack`] completes it.
//!
//! # States
//! Every known URL is in exactly one state: queued, leased, done or failed (with a
//! reason), and its state is where it is: in a queue segment (or its queue's tail), in a
//! lease record, or in the finished log. Enqueueing is idempotent through the seen set,
//! keyed by a 128-bit hash of the canonical URL, which only answers "was this ever
//! enqueued" (and, once a URL is finished, which finished-log record holds it). The seen
//! set lives in sorted run files next to sled with a journal inside sled, and the queues
//! in sled segments of 16 URLs, so neither sled's key count nor any in-memory structure
//! grows one for one with the crawl; see `ARCHITECTURE.md`. URLs are queued per host
//! (`scheme://host[:port]`); within a host, robots.txt, sitemaps and redirects come
//! before pages, then lower depth, then first in, first out.
//!
//! # Durability contract
//! - Every call that changes state ([`FrontierStore::enqueue`], `lease`, `ack`,
//!   `fail_host`) is **one atomic sled batch**: after a crash it either happened
//!   whole or not at all. An ack, its discovered links and the sinks' checkpoints are
//!   in the same batch, so they can never disagree.
//! - A change is **durable once [`FrontierStore::flush`] returns** after it. Changes
//!   made since the last flush may be lost on `kill -9` or power loss; what survives is
//!   always a *prefix* of the changes, never a set with gaps. trawl flushes every
//!   200 ms by default, so that is the window.
//! - The design stays correct with that window: a lost ack leaves its URL leased (or
//!   queued), and opening the directory puts every lease back in its queue, so the URL
//!   is fetched again rather than lost. The sink's checkpoint was lost with the ack, so
//!   the sink is cut back to the older checkpoint and the page is written once.
//! - Each lease counts as an attempt. A URL leased `max_attempts` times without an ack
//!   (a page that crashes the crawler every time) is failed as quarantined on open, so
//!   nothing loops forever.
//! - Only one process can open a directory ([`Error::Locked`]: "another crawl is using
//!   this directory"). A damaged or foreign directory is an error, never a panic.
//!
//! # Example
//! ```
//! use trawl_frontier::{Ack, Frontier, FrontierStore, NewUrl, Options, Outcome};
//!
//! # fn main() -> Result<(), trawl_frontier::Error> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let frontier = Frontier::open(dir.path(), Options::default())?;
//! frontier.enqueue(vec![NewUrl::page("http://example.com/", 0)])?;
//! let (host, _ready_at) = frontier.ready_hosts()?[0];
//! let lease = frontier.lease(host, 10)?.remove(0);
//! let links = vec![NewUrl::page("http://example.com/about", 1)];
//! frontier.ack(vec![Ack { lease, outcome: Outcome::Done, discovered: links }], &[("jsonl", b"1234")])?;
//! frontier.flush()?;
//! assert_eq!(frontier.counts()?.done, 1);
//! assert_eq!(frontier.counts()?.queued, 1);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `types`: the public data types and the [`FrontierStore`] trait.
//! - `store`: [`Frontier`], the sled implementation: open and recovery (journal
//!   replay), enqueue, lease, ack, checkpoints, the background sealer, `verify`.
//! - `codec`: the sled key layout and the record encodings (segments, leases, the
//!   finished log, journal operations).
//! - `seen`: the seen set in memory: recent-fingerprint cache, Bloom filter, memtable.
//! - `runs`: the seen set's run files (write, open, look up, merge).
//! - `tails`: the queues' open tails, in memory.
//! - `error`: [`Error`].

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod codec;
mod error;
mod hostnames;
mod runs;
mod seen;
mod store;
mod tails;
mod types;

pub use error::{Error, Result};
pub use store::{Frontier, OpenReport, Options, SCHEMA_VERSION, host_of};
pub use types::{
    Ack, Counts, Fingerprint, FrontierStore, HostId, HostInfo, Lease, NewUrl, Outcome, PageTally, Politeness,
    Priority, ReadyScan, RobotsEntry, UrlRecord, UrlState,
};
