//! trawl-fetcher: a polite, pooled HTTP fetcher that works as a library on its own.
//!
//! - [`Fetcher`] (built by [`Fetcher::builder`]) is cheap to clone and shares one
//!   connection pool, the per-host gates and the robots.txt cache. [`Fetcher::fetch`]
//!   returns a [`Fetched`] or an inspectable [`Error`] (`is_timeout`,
//!   `is_robots_denied`, `is_too_large`, `is_forbidden`, `is_transient`,
//!   `counts_against_host`, `status`, `url`, `kind`).
//! - Before a request: the special-purpose address check ([`is_special`]) on IP
//!   literals, robots.txt ([`Robots`], fetched once per host and cached for 24 h; a
//!   4xx allows all, a 5xx, 429 or network error disallows all for a minute), and the
//!   host's politeness gate ([`HostGate`]: rate, concurrency, Crawl-delay, cool-down).
//! - During it: a DNS resolver that drops special-purpose addresses, connect, idle and
//!   total timeouts, the body read in a stream through [`BodyDecoder`] (size cap after
//!   decompression, ratio cap), a content-type allow list checked on the headers, and
//!   [`AcceptTypes`]: a body of a type the caller does not want is not downloaded at
//!   all ([`Fetched::body_skipped`]; [`FetcherBuilder::accept`] for the fetcher,
//!   [`RequestOptions::accept`] for one request; by default every body is read).
//! - After it: 5xx, 408 and 429 are retried (Retry-After honoured, else jittered
//!   exponential backoff), other 4xx are final; redirects are returned in
//!   [`Fetched::redirect_to`], never followed, so the caller checks each hop.
//! - TLS is rustls (on ring, no system library), trusting the system's roots plus any
//!   [`FetcherBuilder::ca_cert`]; HTTP/2 is negotiated by ALPN ([`Fetched::protocol`]).
//!   A certificate or handshake failure is [`Error::Tls`], permanent, also when it
//!   happens to the host's robots.txt.
//!
//! # A scheduler that never blocks on one host
//! [`HostGate::try_acquire`] claims a request of a host without waiting: a permit, or
//! [`NotReady::Busy`] (every slot taken) or [`NotReady::Wait`] (how long until the
//! cool-down, crawl delay or rate allow a start). The claimed permit goes to
//! [`Fetcher::fetch_claimed`], which sends under it (after any cool-down that began
//! since), so the scheduler keeps no spacing of its own. [`Fetcher::probe`] checks
//! beforehand that a seed's host can be reached at all with these settings.
//! ```no_run
//! # async fn demo(fetcher: trawl_fetcher::Fetcher) -> Result<(), trawl_fetcher::Error> {
//! let url = "https://example.com/page";
//! let gate = fetcher.gate(&url::Url::parse(url).expect("url"));
//! match gate.try_acquire() {
//!     Ok(permit) => println!("{}", fetcher.fetch_claimed(url, permit).await?.status),
//!     Err(trawl_fetcher::NotReady::Wait(d)) => println!("serve other hosts for {d:?}"),
//!     Err(trawl_fetcher::NotReady::Busy) => println!("wait for a request of this host to end"),
//! }
//! # Ok(()) }
//! ```
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
//! - `fetch`: [`Fetcher`] (its builder, errors, the robots.txt path, the request loop
//!   and the bounded per-host state, a file each), [`FetcherBuilder`],
//!   [`RequestOptions`], [`Fetched`], [`Error`].
//! - `accept`: [`AcceptTypes`] and [`MediaRange`], which bodies are downloaded.
//! - `gate`: [`HostGate`], per-host politeness on tokio's clock.
//! - `adaptive`: the AIMD controller behind [`GatePolicy::adaptive`]: a host's rate
//!   cut on 429, 503, timeouts and slow first bytes, recovered while it is healthy.
//! - `net`: under HTTP: the filtering DNS resolver and its cache, the rustls config,
//!   and reqwest's errors read by the type of their cause.
//! - `robots`: [`Robots`], RFC 9309 rules with the `robotstxt` crate's defects fixed.
//! - `body`: [`BodyDecoder`], capped streaming decompression.
//! - `ssrf`: the special-purpose address classes.
//!
//! To keep robots.txt answers and per-host politeness beyond the process (as the trawl
//! engine does in its frontier), give the builder a [`RobotsStore`] and use
//! [`HostGate::snapshot`] / [`HostGate::restore`].
//!
//! # Many hosts
//! Per-host state stays bounded however many hosts are fetched: the gates of hosts at
//! rest and the robots.txt verdicts used least recently are dropped past
//! [`FetcherBuilder::host_cache_capacity`] (a gate that still holds a host back never
//! is). [`FetcherBuilder::resolve`] sends a `host:port` to given addresses, as curl's
//! `--resolve`, and `localhost` and `*.localhost` resolve to loopback without DNS
//! (RFC 6761).
//!
//! Also: a DNS cache ([`FetcherBuilder::dns_cache_ttl`]), cookies when enabled
//! ([`FetcherBuilder::cookies`]), conditional GET ([`Fetcher::fetch_conditional`] with
//! [`Validators`]), custom headers, a proxy when configured, and a convenience mode
//! that follows redirects with every hop checked ([`FetcherBuilder::follow_redirects`]).

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod accept;
mod adaptive;
#[cfg(test)]
mod adaptive_sim;
mod body;
mod fetch;
mod gate;
mod memory;
mod net;
mod robots;
mod ssrf;

pub use accept::{AcceptTypes, MediaRange};
pub use body::{BodyDecoder, BodyError, ContentEncoding};
pub use fetch::{
    DEFAULT_HOST_CACHE, Error, Fetched, Fetcher, FetcherBuilder, HostState, PolitenessKey, RequestOptions,
    RobotsStore, StoredRobots, Timings, Validators, parse_retry_after,
};
pub use gate::{GatePolicy, GateSnapshot, HostGate, HostPermit, NotReady};
pub use memory::MemoryReservation;
pub use robots::{MAX_ROBOTS_BYTES, Robots, product_token};
pub use ssrf::{is_special, is_special_v4, is_special_v6};
