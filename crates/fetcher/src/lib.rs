//! trawl-fetcher: a polite, pooled HTTP fetcher that works as a library on its own.
//!
//! **Work in progress.** What exists so far are the two rule sets the fetcher applies
//! before any request, both usable on their own:
//!
//! - [`Robots`]: robots.txt rules per RFC 9309 (longest match, Allow wins ties, `*`
//!   and `$`), through the `robotstxt` crate with its known defects fixed, plus
//!   `Sitemap:` and `Crawl-delay:`.
//! - [`is_special`]: the special-purpose address check behind the protection against
//!   server-side request forgery.
//! - [`BodyDecoder`]: streaming gzip, deflate, brotli and zstd decoding under a size
//!   cap and a ratio cap, counting wire bytes and decoded bytes.
//! - [`HostGate`]: one host's politeness: governor rate limit, concurrency cap,
//!   Crawl-delay, and the cool-down after 429/503 (Retry-After or exponential backoff
//!   with full jitter), on tokio's clock.
//!
//! The `Fetcher` itself (per-host rate limits and concurrency, retries, caps, the
//! filtering DNS resolver) is the rest of its issue.
//!
//! # Example
//! ```
//! let robots = trawl_fetcher::Robots::parse(b"User-agent: *\nDisallow: /private/\n", "trawl/0.1");
//! assert!(!robots.allowed("http://example.com/private/x"));
//! assert!(trawl_fetcher::is_special("169.254.169.254".parse().expect("ip")));
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod body;
mod fetch;
mod gate;
mod robots;
mod ssrf;

pub use body::{BodyDecoder, BodyError, ContentEncoding};
pub use fetch::{Error, Fetched, Fetcher, FetcherBuilder, Timings, parse_retry_after};
pub use gate::{GatePolicy, HostGate, HostPermit};
pub use robots::{MAX_ROBOTS_BYTES, Robots, product_token};
pub use ssrf::{is_special, is_special_v4, is_special_v6};
