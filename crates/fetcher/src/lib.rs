//! trawl-fetcher: a polite, pooled HTTP fetcher that works as a library on its own.
//!
//! - [`Fetcher`] (built by [`Fetcher::builder`]) is cheap to clone and shares one
//!   connection pool, the per-host gates and the robots.txt cache. [`Fetcher::fetch`]
//!   returns a [`Fetched`] or an inspectable [`Error`] (`is_timeout`,
//!   `is_robots_denied`, `is_too_large`, `is_forbidden`, `status`, `url`, `kind`).
//! - Before a request: the special-purpose address check ([`is_special`]) on IP
//!   literals, robots.txt ([`Robots`], fetched once per host and cached for 24 h; a
//!   4xx allows all, a 5xx, 429 or network error disallows all for a minute), and the
//!   host's politeness gate ([`HostGate`]: rate, concurrency, Crawl-delay, cool-down).
//! - During it: a DNS resolver that drops special-purpose addresses, connect, idle and
//!   total timeouts, the body read in a stream through [`BodyDecoder`] (size cap after
//!   decompression, ratio cap), a content-type allow list checked on the headers.
//! - After it: 5xx, 408 and 429 are retried (Retry-After honoured, else jittered
//!   exponential backoff), other 4xx are final; redirects are returned in
//!   [`Fetched::redirect_to`], never followed, so the caller checks each hop.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), trawl_fetcher::Error> {
//! let fetcher = trawl_fetcher::Fetcher::builder().user_agent("mybot/1.0 (+https://example.com/bot)").build()?;
//! let page = fetcher.fetch("https://example.com/").await?;
//! println!("{} {} bytes, {} on the wire", page.status, page.body_bytes, page.wire_bytes);
//! # Ok(()) }
//! ```
//!
//! The rule sets are usable alone:
//! ```
//! let robots = trawl_fetcher::Robots::parse(b"User-agent: *\nDisallow: /private/\n", "trawl/0.1");
//! assert!(!robots.allowed("http://example.com/private/x"));
//! assert!(trawl_fetcher::is_special("169.254.169.254".parse().expect("ip")));
//! ```
//!
//! # Layout
//! - `fetch`: [`Fetcher`], [`FetcherBuilder`], [`Fetched`], [`Error`].
//! - `gate`: [`HostGate`], per-host politeness on tokio's clock.
//! - `robots`: [`Robots`], RFC 9309 rules with the `robotstxt` crate's defects fixed.
//! - `body`: [`BodyDecoder`], capped streaming decompression.
//! - `ssrf`: the special-purpose address classes.
//!
//! To keep robots.txt answers and per-host politeness beyond the process (as the trawl
//! engine does in its frontier), give the builder a [`RobotsStore`] and use
//! [`HostGate::snapshot`] / [`HostGate::restore`].
//!
//! Also: a DNS cache ([`FetcherBuilder::dns_cache_ttl`]), cookies when enabled
//! ([`FetcherBuilder::cookies`]), conditional GET ([`Fetcher::fetch_conditional`] with
//! [`Validators`]), custom headers, a proxy when configured, and a convenience mode
//! that follows redirects with every hop checked ([`FetcherBuilder::follow_redirects`]).

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod body;
mod fetch;
mod gate;
mod robots;
mod ssrf;

pub use body::{BodyDecoder, BodyError, ContentEncoding};
pub use fetch::{
    Error, Fetched, Fetcher, FetcherBuilder, RobotsStore, StoredRobots, Timings, Validators,
    parse_retry_after,
};
pub use gate::{GatePolicy, GateSnapshot, HostGate, HostPermit};
pub use robots::{MAX_ROBOTS_BYTES, Robots, product_token};
pub use ssrf::{is_special, is_special_v4, is_special_v6};
