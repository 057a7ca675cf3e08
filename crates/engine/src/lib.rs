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
//! # Guarantees
//! - Every record is written exactly once across crashes: records go to the sinks,
//!   then one frontier batch acks the pages together with the sinks' byte offsets
//!   and the links found; a resume cuts each output back to its stored offset and
//!   fetches the unacked pages again.
//! - Memory is bounded by the channel capacities ([`FETCH_CHANNEL`],
//!   [`PARSE_CHANNEL`], [`COMMIT_CHANNEL`]), `concurrency` and sled's cache, not by
//!   the size of the crawl.
//! - One host's politeness (rate, Crawl-delay, Retry-After, concurrency cap, circuit
//!   breaker) never delays another host.
//!
//! # Layout
//! - `config`: [`CrawlConfig`] and its parts, with their defaults.
//! - `scope`: [`Scope`], which URLs belong to the crawl.
//! - `crawl`: [`Crawler`], the scheduler and the stages.
//! - `stats`: [`Stats`] and [`StatsSnapshot`].
//! - `error`: [`Error`].

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod config;
mod crawl;
mod error;
mod scope;
mod stats;

pub use config::{
    CrawlConfig, DEFAULT_USER_AGENT, FetchConfig, Limits, OutputConfig, PathBudget, PolitenessConfig,
    ScopeConfig, StateConfig,
};
pub use crawl::{
    COMMIT_BATCH, COMMIT_CHANNEL, CrawlOutcome, Crawler, FETCH_CHANNEL, LEASE_BATCH, Limit, PARSE_BATCH,
    PARSE_CHANNEL, PROGRESS_FILE, Progress, Summary, stored_config,
};
pub use error::Error;
pub use scope::{Refusal, Scope, host_key};
pub use stats::{HostSnapshot, StageTimes, Stats, StatsSnapshot};
pub use tokio_util::sync::CancellationToken;
