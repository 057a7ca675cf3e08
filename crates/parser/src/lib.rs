//! trawl-parser: turns fetched bytes into owned data for the trawl crawler.
//!
//! It is synchronous (no tokio, no reqwest) and meant to run in `spawn_blocking`. It is
//! fast, because parsing is the largest CPU cost of a crawl, and it does not fall over on
//! hostile pages: every input is capped before html5ever sees it.
//!
//! - [`parse_page`]: bytes and headers in, [`Page`] out (links, title, description,
//!   language, robots flags, optional text, and which [`LimitsHit`]).
//! - [`decode`]: the charset decision (BOM, HTTP, `<meta>`, chardetng guess).
//! - [`canonicalize`]: the canonical form of a URL; the rules are listed in the `canon`
//!   module docs and repeated on [`canonicalize`]'s page.
//! - [`parse_sitemap`]: sitemaps, sitemap indexes, gzip and plain-text sitemaps, each
//!   URL with its `<lastmod>` ([`Lastmod`], a W3C datetime).
//!
//! # Example
//! ```
//! use trawl_parser::{parse_page, ParseOptions};
//!
//! let url = url::Url::parse("http://example.com/docs/").expect("url");
//! let html = b"<html><head><title>Docs</title><base href=\"/v2/\"></head>\
//!              <body><a href=\"intro#top\">Intro</a> <a href=\"INTRO\">Again</a></body></html>";
//! let page = parse_page(html, Some("text/html"), &url, None, &ParseOptions::default());
//! assert_eq!(page.title.as_deref(), Some("Docs"));
//! assert_eq!(page.links[0].url, "http://example.com/v2/intro");
//! assert_eq!(page.links[0].text, "Intro");
//! ```
//!
//! # Layout
//! - `decode`: bytes to text.
//! - `html`: scraper extraction and the nesting pre-scan.
//! - `canon`: URL canonicalization.
//! - `requisites`: page requisites (images, stylesheets, scripts, CSS `url()`).
//! - `sitemap`: the streaming sitemap reader.
//! - `lastmod`: W3C datetimes (`<lastmod>`).

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod canon;
mod decode;
mod html;
mod lastmod;
mod requisites;
mod sitemap;

pub use canon::{CanonError, CanonOptions, DEFAULT_STRIP_PARAMS, canonicalize};
pub use decode::{CharsetSource, Decoded, charset_from_content_type, decode, prescan_meta};
pub use html::{
    LimitsHit, Link, LinkKind, Page, ParseOptions, RobotsMeta, flatten_nesting, nesting_cut, parse_html,
    parse_page,
};
pub use lastmod::Lastmod;
pub use requisites::css_urls;
pub use sitemap::{Sitemap, SitemapEntry, SitemapError, SitemapKind, SitemapLimits, parse_sitemap};
pub use url::Url;
