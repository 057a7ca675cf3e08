//! robots.txt rules per RFC 9309, through the `robotstxt` crate (a port of Google's
//! parser) wrapped to fix its known defects:
//!
//! - a UTF-8 byte order mark is stripped (the crate misses it and drops the first group);
//! - the body is cut at 500 KiB on a character boundary (RFC 9309's minimum);
//! - lines over 8 KiB are shortened on a character boundary (the crate panics on long
//!   lines of multibyte characters), and the call runs inside `catch_unwind` anyway;
//! - only `user-agent`, `allow` and `disallow` lines (and comments) reach the crate, so
//!   a `Sitemap:` or unknown line can no longer end a group; `Sitemap:` and
//!   `Crawl-delay:` are read here instead;
//! - `/robots.txt` itself is always allowed;
//! - the agent name passed is the product token only (`trawl` of `trawl/0.1 (+url)`).
//!
//! Status rules (4xx allows all, 5xx disallows all) live with the fetching; this module
//! only reads a body.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// The most of a robots.txt body that is read, as RFC 9309 requires at least.
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// Lines are shortened to this many bytes before parsing.
const MAX_LINE: usize = 8 * 1024;

/// The product token of a User-Agent: the part before the first `/`, space or `(`.
pub fn product_token(user_agent: &str) -> &str {
    let t = user_agent.trim();
    let end = t.find(['/', ' ', '(', ';']).unwrap_or(t.len());
    &t[..end]
}

fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A parsed robots.txt body, ready to answer for one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Robots {
    /// The cleaned body the matcher reads.
    body: String,
    /// `Sitemap:` URLs, in order.
    sitemaps: Vec<String>,
    /// `Crawl-delay` of the group that applies to the agent, in seconds.
    crawl_delay: Option<f64>,
    agent: String,
}

impl Robots {
    /// Reads `raw` (the body as fetched) for the agent `user_agent` (a full User-Agent
    /// or a product token).
    pub fn parse(raw: &[u8], user_agent: &str) -> Robots {
        let agent = product_token(user_agent).to_string();
        let text = String::from_utf8_lossy(&raw[..raw.len().min(MAX_ROBOTS_BYTES)]);
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        // Only the rules of the groups that apply are kept: those naming our agent,
        // else those for `*` (RFC 9309 2.2.1: matching groups are combined). The
        // matcher then reads a few lines per verdict, however long the file was.
        let (mut our_rules, mut star_rules) = (String::new(), String::new());
        let mut ours_seen = false;
        let mut sitemaps = Vec::new();
        // Crawl-delay: the group naming our agent wins over `*`, as for the rules.
        let (mut ours, mut star): (Option<f64>, Option<f64>) = (None, None);
        let mut group_is_ours = false;
        let mut group_is_star = false;
        let mut last_was_agent = false;
        // RFC 9309 2.2: a line ends at CR, LF or CRLF (`str::lines` knows only the
        // last two, and would read a file of bare CRs as one line).
        for line in text.split(['\r', '\n']) {
            let line = cut_at_char_boundary(line, MAX_LINE);
            let content = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = content.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if !last_was_agent {
                        group_is_ours = false;
                        group_is_star = false;
                    }
                    if value == "*" {
                        group_is_star = true;
                    } else if product_token(value).eq_ignore_ascii_case(&agent) {
                        group_is_ours = true;
                        ours_seen = true;
                    }
                    last_was_agent = true;
                }
                "allow" | "disallow" => {
                    last_was_agent = false;
                    let rule = format!("{key}: {value}\n");
                    if group_is_ours {
                        our_rules.push_str(&rule);
                    }
                    if group_is_star {
                        star_rules.push_str(&rule);
                    }
                }
                "crawl-delay" => {
                    last_was_agent = false;
                    if let Ok(d) = value.parse::<f64>()
                        && d.is_finite()
                        && d >= 0.0
                    {
                        if group_is_ours {
                            ours = Some(d);
                        } else if group_is_star {
                            star = Some(d);
                        }
                    }
                }
                "sitemap" | "site-map" => sitemaps.push(value.to_string()),
                _ => {}
            }
        }
        let rules = if ours_seen { our_rules } else { star_rules };
        let body = if rules.is_empty() {
            String::new()
        } else {
            format!("user-agent: {agent}\n{rules}")
        };
        Robots {
            body,
            sitemaps,
            crawl_delay: ours.or(star),
            agent,
        }
    }

    /// A rule set that allows everything (a 4xx robots.txt).
    pub fn allow_all(user_agent: &str) -> Robots {
        Robots::parse(b"", user_agent)
    }

    /// Whether the agent may fetch `url` (absolute, percent-encoded).
    pub fn allowed(&self, url: &str) -> bool {
        let path = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
        if path == "/robots.txt" || path.starts_with("/robots.txt?") {
            return true;
        }
        if self.body.is_empty() {
            return true;
        }
        let body = self.body.as_str();
        let agent = self.agent.as_str();
        catch_unwind(AssertUnwindSafe(|| {
            let mut matcher = robotstxt::DefaultMatcher::default();
            matcher.one_agent_allowed_by_robots(body, agent, url)
        }))
        // A panic inside the parser is treated like an unreadable file: allow, as for
        // a 4xx, since the rules could not be read at all.
        .unwrap_or(true)
    }

    /// The `Sitemap:` URLs.
    pub fn sitemaps(&self) -> &[String] {
        &self.sitemaps
    }

    /// The `Crawl-delay` for this agent, in seconds, uncapped.
    pub fn crawl_delay(&self) -> Option<f64> {
        self.crawl_delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = "trawl/0.1 (+https://example.com/bot)";

    #[test]
    fn tokens() {
        assert_eq!(product_token(UA), "trawl");
        assert_eq!(product_token("Googlebot"), "Googlebot");
    }

    #[test]
    fn longest_match_and_allow_wins_ties() {
        let r = Robots::parse(
            b"User-agent: *\nDisallow: /private/\nAllow: /private/open\nDisallow: /*.pdf$\nAllow: /same\nDisallow: /same\n",
            UA,
        );
        assert!(!r.allowed("http://a.example/private/x"));
        assert!(r.allowed("http://a.example/private/open/x"));
        assert!(!r.allowed("http://a.example/doc.pdf"));
        assert!(r.allowed("http://a.example/doc.pdf?x=1"));
        assert!(r.allowed("http://a.example/same"), "Allow wins a tie");
        assert!(r.allowed("http://a.example/robots.txt"));
    }

    #[test]
    fn our_group_wins_over_star() {
        let r = Robots::parse(b"User-agent: *\nDisallow: /\nCrawl-delay: 9\n\nUser-agent: Trawl\nDisallow: /x\nCrawl-delay: 2\n", UA);
        assert!(r.allowed("http://a.example/y"));
        assert!(!r.allowed("http://a.example/x"));
        assert_eq!(r.crawl_delay(), Some(2.0));
        let other = Robots::parse(b"User-agent: *\nCrawl-delay: 1.5\nDisallow: /p\n", UA);
        assert_eq!(other.crawl_delay(), Some(1.5));
    }

    #[test]
    fn only_the_applicable_groups_are_kept() {
        let mut file = String::new();
        for i in 0..2000 {
            file.push_str(&format!("User-agent: bot{i}\nDisallow: /b{i}/\n\n"));
        }
        file.push_str("User-agent: *\nDisallow: /star/\n\nUser-agent: trawl\nUser-agent: other\n\nUser-agent: Trawl\nDisallow: /a/\n");
        let r = Robots::parse(file.as_bytes(), UA);
        assert!(r.body.len() < 64, "{:?}", r.body);
        assert!(!r.allowed("http://a.example/a/1"));
        assert!(r.allowed("http://a.example/star/1"), "our groups replace *");
        assert!(r.allowed("http://a.example/b7/"));
        // A group naming us with no rules allows everything, whatever `*` says.
        let empty = Robots::parse(b"User-agent: *\nDisallow: /\n\nUser-agent: trawl\n", UA);
        assert!(empty.allowed("http://a.example/x"));
        let star = Robots::parse(
            b"User-agent: *\nDisallow: /\n\nUser-agent: nobody\nAllow: /\n",
            UA,
        );
        assert!(!star.allowed("http://a.example/x"));
    }

    #[test]
    fn the_crates_defects_are_fixed() {
        let bom = Robots::parse("\u{FEFF}User-agent: *\nDisallow: /private/\n".as_bytes(), UA);
        assert!(
            !bom.allowed("http://a.example/private/1"),
            "the BOM dropped the group"
        );
        let sitemap = Robots::parse(
            b"User-agent: *\nSitemap: http://a.example/s.xml\nDisallow: /private/\n",
            UA,
        );
        assert!(
            !sitemap.allowed("http://a.example/private/1"),
            "a Sitemap line ended the group"
        );
        assert_eq!(sitemap.sitemaps(), ["http://a.example/s.xml"]);
        let mut long = String::from("User-agent: *\n# ");
        long.push_str(&"é".repeat(10 * 1024));
        long.push_str("\nDisallow: /");
        long.push_str(&"ü".repeat(10 * 1024));
        long.push_str("\nDisallow: /private/\n");
        let r = Robots::parse(long.as_bytes(), UA);
        assert!(!r.allowed("http://a.example/private/1"));
        assert!(r.allowed("http://a.example/open/1"));
        let mut big = String::from("User-agent: *\nDisallow: /private/\n");
        while big.len() < 3 << 20 {
            big.push_str("Disallow: /filler/0000000/\n");
        }
        big.push_str("Disallow: /late/\n");
        let r = Robots::parse(big.as_bytes(), UA);
        assert!(!r.allowed("http://a.example/private/1"));
        assert!(
            r.allowed("http://a.example/late/1"),
            "rules past 500 KiB are not read"
        );
        let html = Robots::parse(b"<!DOCTYPE html><html><body>Not found</body></html>", UA);
        assert!(html.allowed("http://a.example/private/1"));
    }

    #[test]
    fn lines_end_at_cr_lf_or_crlf() {
        for nl in ["\r", "\n", "\r\n"] {
            let file = [
                "User-agent: *",
                "Disallow: /private/",
                "Crawl-delay: 3",
                "",
                "User-agent: other",
                "Disallow: /",
            ]
            .join(nl);
            let r = Robots::parse(file.as_bytes(), UA);
            assert!(!r.allowed("http://a.example/private/1"), "{nl:?}");
            assert!(
                r.allowed("http://a.example/open"),
                "{nl:?}: the other group is not ours"
            );
            assert_eq!(r.crawl_delay(), Some(3.0), "{nl:?}");
        }
    }
}
