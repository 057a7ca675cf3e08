//! The robots.txt served by the regular hosts, and the hosts that each serve one broken
//! or tricky robots.txt variant.

use std::fmt::Write as _;

/// A host of the site whose robots.txt is unusual in one way. Each variant gets a host of
/// its own (robots.txt is per host). Besides `/robots.txt`, such a host serves `/` with
/// links to `/private/1`, `/open/1` and `/late/1`, and a tiny page at any other path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RobotsVariant {
    /// `/robots.txt` answers 503.
    ServerError,
    /// `/robots.txt` answers 404.
    NotFound,
    /// `/robots.txt` redirects (301) to `/robots-real.txt`, which disallows `/private/`.
    Redirect,
    /// `/robots.txt` is an HTML page (a soft 404) with no rules in it.
    Html,
    /// A 3 MiB file: `Disallow: /private/` at the top, filler, then `Disallow: /late/`
    /// past the 500 KiB that RFC 9309 asks a parser to read.
    Oversized,
    /// A UTF-8 byte order mark before `User-agent: *` / `Disallow: /private/`.
    Bom,
    /// A `Sitemap:` line between `User-agent: *` and `Disallow: /private/`.
    SitemapBetweenGroups,
    /// A 20 KiB line of multibyte characters before `Disallow: /private/`.
    LongLine,
}

impl RobotsVariant {
    /// Every variant, in host order.
    pub const ALL: &'static [RobotsVariant] = &[
        RobotsVariant::ServerError,
        RobotsVariant::NotFound,
        RobotsVariant::Redirect,
        RobotsVariant::Html,
        RobotsVariant::Oversized,
        RobotsVariant::Bom,
        RobotsVariant::SitemapBetweenGroups,
        RobotsVariant::LongLine,
    ];

    /// Whether RFC 9309 says a crawler may fetch `/private/1` on this host.
    pub fn private_allowed(self) -> bool {
        matches!(self, RobotsVariant::NotFound | RobotsVariant::Html)
    }

    /// Whether RFC 9309 says a crawler may fetch `/open/1` on this host. Only a server
    /// error makes the whole host disallowed.
    pub fn open_allowed(self) -> bool {
        self != RobotsVariant::ServerError
    }

    /// Whether a crawler may fetch `/late/1`: only the oversized file names it, past the
    /// part a parser reads, so it stays allowed everywhere but on a 5xx host.
    pub fn late_allowed(self) -> bool {
        self != RobotsVariant::ServerError
    }
}

/// The robots.txt of a regular host.
pub(crate) fn regular(base: &str, crawl_delay: Option<f64>) -> String {
    let mut s = String::from(
        "# robots.txt of the trawl test site\n\
         User-agent: badbot\nDisallow: /\n\n\
         User-agent: *\nDisallow: /private/\nAllow: /private/$\n",
    );
    if let Some(d) = crawl_delay {
        let _ = writeln!(s, "Crawl-delay: {d}");
    }
    let _ = writeln!(s, "\nSitemap: {base}/sitemap_index.xml");
    s
}

/// The body of `/robots.txt` on a variant host; `None` where the variant is not a 200.
pub(crate) fn variant_body(v: RobotsVariant, base: &str) -> Option<Vec<u8>> {
    let rules = "User-agent: *\nDisallow: /private/\n";
    match v {
        RobotsVariant::ServerError | RobotsVariant::NotFound | RobotsVariant::Redirect => None,
        RobotsVariant::Html => Some(
            b"<!DOCTYPE html><html><head><title>Not here</title></head><body><p>Page not found, but we said 200.</p></body></html>\n"
                .to_vec(),
        ),
        RobotsVariant::Oversized => {
            let mut s = String::with_capacity(3 << 20);
            s.push_str(rules);
            let mut k = 0u64;
            while s.len() < 3 << 20 {
                let _ = writeln!(s, "Disallow: /filler/{k:08}/");
                k += 1;
            }
            s.push_str("Disallow: /late/\n");
            Some(s.into_bytes())
        }
        RobotsVariant::Bom => {
            let mut b = "\u{FEFF}".as_bytes().to_vec();
            b.extend_from_slice(rules.as_bytes());
            Some(b)
        }
        RobotsVariant::SitemapBetweenGroups => Some(
            format!("User-agent: *\nSitemap: {base}/sitemap.xml\nDisallow: /private/\n").into_bytes(),
        ),
        RobotsVariant::LongLine => {
            let mut s = String::from("User-agent: *\n# ");
            s.push_str(&"é".repeat(10 * 1024));
            s.push_str("\nDisallow: /");
            s.push_str(&"ü".repeat(10 * 1024));
            s.push_str("\nDisallow: /private/\n");
            Some(s.into_bytes())
        }
    }
}

/// The real robots.txt behind [`RobotsVariant::Redirect`].
pub(crate) const REDIRECT_TARGET_BODY: &str = "User-agent: *\nDisallow: /private/\n";
