//! trawl-frontier-redis: the shared URL frontier of the trawl crawler, on Redis, so that
//! several worker processes (on several machines) share one crawl.
//!
//! - [`RedisFrontier`] implements [`FrontierStore`](trawl_frontier::FrontierStore),
//!   the seam the engine codes against; open it with [`RedisFrontier::open`].
//! - [`RedisOptions`] says where the server is, which crawl, and which worker.
//! - [`testing::RedisServer`] starts a real `redis-server` for tests and benchmarks.
//!
//! It needs one Redis 7 server (not Redis Cluster: the scripts touch keys they do not
//! declare) with `maxmemory-policy noeviction`, which [`RedisFrontier::open`] checks.
//!
//! # Guarantees
//! - **Every change is one Lua script**, so it is atomic: enqueue, lease, ack,
//!   release, fail_host, set_politeness. An ack's outcomes, the deleted leases, the
//!   discovered links (seen-checked and enqueued) and this worker's sink checkpoints
//!   are one script, which checks everything before its first write.
//! - **A host is owned by one worker at a time**, under a claim with a time-to-live
//!   and an epoch (a per-host counter, one more at each new claim). `lease` claims the
//!   host and returns no leases when another worker holds it; a background thread
//!   renews this worker's claims every quarter of the ttl. A claim that ran out is
//!   reaped by whichever worker's script meets it first: the old owner's leases of
//!   that host go back to the queue. Expiry is on the server's clock.
//! - **An ack made without the claim fails whole** with
//!   [`Error::LostOwnership`](trawl_frontier::Error::LostOwnership): when the lease
//!   is gone, the host's claim is not this worker's with the lease's epoch, or the
//!   server lost earlier acks (each ack carries a sequence number, one more than the
//!   last; the server keeps the last applied). An ack resent after a lost reply (the
//!   same number) is answered as before and not applied twice. The worker then cuts
//!   its outputs back to its stored checkpoints and opens the store again.
//! - **A server that lost answered writes is found by the next write**: every
//!   enqueue, lease, fail_host and ack carries the op id and ack number this process
//!   last saw stored, and the script refuses with `LostOwnership` when the worker's
//!   hash holds others (a restart from an AOF that `appendfsync everysec` had not
//!   synced, or another process under the same name), so a worker whose enqueue or
//!   ack was lost cuts back before it writes anything that depends on it.
//! - **A page limit holds for every worker together**
//!   ([`FrontierStore::share_page_limit`](trawl_frontier::FrontierStore::share_page_limit)):
//!   the ack script adds the records each ack wrote to a count of the whole crawl's,
//!   and the lease script leases no more than the limit less that count and every
//!   worker's outstanding leases, so no worker fetches a page past the limit.
//! - **Durability is the server's**: a script's effects are in its AOF when it
//!   returns, on disk at once with `appendfsync always`, within a second with
//!   `everysec`; [`FrontierStore::flush`](trawl_frontier::FrontierStore::flush) is a
//!   no-op. A call that meets a connection error reconnects with backoff for up to
//!   [`RedisOptions::reconnect_for`] (a restarting server) and is sent again; every
//!   call is idempotent, the scripts through the ack sequence number and an op id.
//! - **Opening again with the same worker name recovers a restart**: the worker's
//!   leases go back to their queues (in lease order, attempts kept; those that used up
//!   `max_attempts` are failed) and its hosts are released, as the sled frontier's
//!   reopen does; a host whose claim had not run out yet is not fetched again before
//!   it would have (its politeness' next allowed time is the claim's expiry), since
//!   the earlier run may have just sent it a request and its pace went with it.
//! - **Fairness**: a worker holds at most ceil(H / W) + 1 claims, H being the hosts
//!   with queued or leased URLs and W the live workers (a heartbeat within the ttl).
//! - **Memory**: the seen set costs under 32 bytes per known URL (bucketed hashes of
//!   8-byte binary fields that stay listpack-encoded): 18.3 bytes at 1 million URLs,
//!   13.7 at 8 million. A queued URL costs about 180 bytes more (its record in a
//!   sorted set) until it is leased. See `examples/memory.rs`.
//!
//! # Example
//! ```
//! use trawl_frontier::{Ack, FrontierStore, NewUrl, Outcome};
//! use trawl_frontier_redis::{RedisFrontier, testing::RedisServer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = RedisServer::start()?;
//! let frontier = RedisFrontier::open(server.options("example", "worker-1"))?;
//! frontier.enqueue(vec![NewUrl::page("http://example.com/", 0)])?;
//! let scan = frontier.ready_scan(None, 0, 10)?;
//! let lease = frontier.lease(scan.hosts[0], 10)?.remove(0);
//! let links = vec![NewUrl::page("http://example.com/about", 1)];
//! frontier.ack(vec![Ack { lease, outcome: Outcome::Done, discovered: links }], &[("jsonl", b"1234")])?;
//! assert_eq!(frontier.counts()?.done, 1);
//! assert_eq!(frontier.counts()?.queued, 1);
//! assert_eq!(frontier.checkpoint("jsonl")?, Some(b"1234".to_vec()));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `options`: [`RedisOptions`].
//! - `store`: [`RedisFrontier`]: opening and recovery, the
//!   [`FrontierStore`](trawl_frontier::FrontierStore) calls (`ops`), the reads and the
//!   consistency check (`read`), the claim renewal thread (`claims`).
//! - `scripts`: the key layout and the Lua scripts (`lua/`), with their invariants.
//! - `codec`: the binary records shared with the scripts, and reply decoding.
//! - `link`: a connection that reconnects with backoff.
//! - `status`: [`crawls`] and [`crawl_status`], a crawl and its workers read without
//!   changing anything (`trawl status --frontier`).
//! - [`testing`]: a real `redis-server` per test.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod codec;
mod link;
mod options;
mod scripts;
mod status;
mod store;
pub mod testing;

pub use options::RedisOptions;
pub use status::{CrawlStatus, WorkerStatus, crawl_status, crawls};
pub use store::{RedisFrontier, RedisOpenReport};
