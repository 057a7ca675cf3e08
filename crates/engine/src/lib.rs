//! trawl-engine: the crawl pipeline. It wires the frontier (durable URL state), the
//! fetcher (polite HTTP), the parser (links, sitemaps) and the sinks (JSONL, CSV,
//! WARC) into a crawl that can be stopped at any moment and resumed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trawl_engine::Error> {
//! let mut config = trawl_engine::CrawlConfig::new(["https://example.com/"]);
//! config.state.dir = "example-state".into();
//! config.output.jsonl = Some("pages.jsonl".into());
//! config.limits.max_pages = Some(1_000);
//! let shutdown = tokio_util::sync::CancellationToken::new(); // cancel it on Ctrl-C
//! let summary = trawl_engine::Crawler::run(config, shutdown).await?;
//! println!("{:?}\n{}", summary.outcome, summary.stats.to_text());
//! # Ok(()) }
//! ```
//!
//! A program that needs the stored configuration before it decides (as the `trawl`
//! command does, to merge its flags into a resumed crawl) opens the directory once
//! with [`StateDir::open`], reads [`StateDir::stored_config`], validates the final
//! configuration with [`CrawlConfig::validate`] and starts with
//! [`Crawler::open_in`]. Reports read a directory with [`StateReader`], which never
//! changes it.
//!
//! # Guarantees
//! - Every record is written exactly once across crashes: records go to the sinks,
//!   then one frontier batch acks the pages together with the sinks' byte offsets
//!   and the links found; a resume cuts each output back to its stored offset and
//!   fetches the unacked pages again.
//! - Every URL that ends done or failed has a record, including those that fail
//!   without a request (`host-unavailable`, `too-many-attempts`).
//! - Memory is bounded by the channel capacities ([`FETCH_CHANNEL`],
//!   [`PARSE_CHANNEL`], [`COMMIT_CHANNEL`]), `concurrency` and sled's cache, not by
//!   the size of the crawl.
//! - One host's politeness (rate, Crawl-delay, Retry-After, concurrency cap, circuit
//!   breaker) never delays another host. The fetcher's per-host gate alone decides
//!   when a host may be fetched.
//!
//! # Layout
//! - `config`: [`CrawlConfig`] and its parts, with their defaults.
//! - `validate`: [`CrawlConfig::validate`], the one place settings are checked.
//! - `scope`: [`Scope`], which URLs belong to the crawl.
//! - `host`: [`HostKey`], the one name of a host.
//! - `state`: [`StateDir`] (a state directory opened for a crawl) and
//!   [`StateReader`] (opened read-only, for reports).
//! - `crawl/`: [`Crawler`] and the pipeline, one file per stage (`schedule`, `fetch`,
//!   `parse`, `commit`, `progress`).
//! - `stats`: [`Stats`] and [`StatsSnapshot`].
//! - `error`: [`Error`].
//!
//! # Features
//! - `fault-injection`: crash points in the commit path, armed by the `TRAWL_FAULT`
//!   environment variable, for the kill -9 tests. Off by default; never in a release.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod config;
mod crawl;
mod error;
mod host;
mod metrics;
pub mod recrawl;
mod scope;
mod state;
mod stats;
mod validate;

pub use config::{
    CrawlConfig, DEFAULT_MAX_DEPTH, DEFAULT_MAX_PATH_SEGMENTS, DEFAULT_MAX_QUERY_VARIANTS,
    DEFAULT_MAX_REPEATED_SEGMENTS, DEFAULT_USER_AGENT, FetchConfig, Limits, OutputConfig, PathBudget,
    PolitenessBy, PolitenessConfig, RecrawlConfig, ScopeConfig, StateConfig,
};
pub use crawl::{
    COMMIT_BATCH, COMMIT_CHANNEL, CrawlOutcome, Crawler, FETCH_CHANNEL, LEASE_BATCH, Limit, MAX_LEASES,
    PARSE_BATCH, PARSE_CHANNEL, PROGRESS_FILE, Progress, SITEMAP_LANE, Summary,
};
pub use error::Error;
pub use host::HostKey;
pub use metrics::{Metrics, RATE_HOSTS};
pub use scope::{Refusal, Scope};
pub use state::{ArchiveFiles, StateDir, StateReader, read_progress};
pub use stats::{HostSnapshot, StageTimes, Stats, StatsSnapshot};
pub use tokio_util::sync::CancellationToken;
pub use trawl_frontier::{
    Counts, Error as FrontierError, Fingerprint, FrontierStore, HostInfo, Politeness, UrlRecord, UrlState,
};
pub use trawl_sink::{
    BrokenLink, LinkSource, MAX_LINK_SOURCES, WaczInput, WaczSummary, rfc3339_ms, write_wacz,
};
pub use validate::ValidConfig;
