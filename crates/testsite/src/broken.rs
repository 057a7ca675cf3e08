//! Broken links ([`Site::with_broken_links`]): some pages also link to URLs under
//! `/broken/` that answer 404, 410 or 500, or drop the connection mid-body, each
//! linked from several pages with a distinct anchor text per page, and the ground
//! truth a link checker's report must match ([`Site::broken_truth`]).

use std::collections::BTreeMap;

use crate::site::Site;

/// Which pages carry which broken link: `(kind, page modulus, residue, targets per
/// 1,000 pages, at least)`. Few 500s and drops: trawl retries them, with a back-off.
const KINDS: &[(&str, u64, u64, u64, u64)] = &[
    ("404", 5, 1, 16, 2),
    ("410", 11, 3, 4, 1),
    ("500", 97, 13, 0, 2),
    ("drop", 89, 7, 0, 1),
];

/// One broken link on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenHref {
    /// The `href` as written (a path on the page's own host).
    pub href: String,
    /// The link's text.
    pub anchor: String,
}

/// What a link checker must report of one broken target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokenTarget {
    /// The status it answers; `None` for a connection dropped mid-body.
    pub status: Option<u16>,
    /// Every page that links to it, as `(page URL, anchor text)`, by page number.
    pub sources: Vec<(String, String)>,
}

impl Site {
    /// The same site with broken links on some of its pages (see the module docs).
    pub fn with_broken_links(mut self) -> Site {
        self.broken = true;
        self
    }

    /// Whether the site has broken links.
    pub fn has_broken_links(&self) -> bool {
        self.broken
    }

    /// The broken links on regular page `i` (none unless [`Site::with_broken_links`]).
    pub fn broken_links(&self, i: u64) -> Vec<BrokenHref> {
        if !self.broken || i < self.hosts() as u64 {
            return Vec::new();
        }
        KINDS
            .iter()
            .filter(|(_, modulus, residue, _, _)| i % modulus == *residue)
            .map(|(kind, modulus, _, per_k, least)| {
                let targets = (self.pages() * per_k / 1_000).max(*least);
                let m = (i / modulus) % targets;
                BrokenHref {
                    href: format!("/broken/{kind}/{m}"),
                    anchor: format!("broken {kind} {m} on page {i}"),
                }
            })
            .collect()
    }

    /// Every broken link target (its URL) with what it answers and every page that
    /// links to it. Every regular page is reachable, so a complete crawl sees them all.
    pub fn broken_truth(&self) -> BTreeMap<String, BrokenTarget> {
        let mut out: BTreeMap<String, BrokenTarget> = BTreeMap::new();
        for i in 0..self.pages() {
            for b in self.broken_links(i) {
                let base = &self.bases()[(i % self.hosts() as u64) as usize];
                let t = out.entry(format!("{base}{}", b.href)).or_default();
                t.status = broken_status(&b.href).flatten();
                t.sources.push((self.page_url(i), b.anchor));
            }
        }
        out
    }
}

/// What a `/broken/` path answers: `Some(Some(status))`, `Some(None)` for a dropped
/// connection, `None` for a path that is not one.
pub(crate) fn broken_status(path: &str) -> Option<Option<u16>> {
    let rest = path.strip_prefix("/broken/")?;
    let (kind, m) = rest.split_once('/')?;
    m.parse::<u64>().ok()?;
    match kind {
        "404" => Some(Some(404)),
        "410" => Some(Some(410)),
        "500" => Some(Some(500)),
        "drop" => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_several_sources_with_distinct_anchors() {
        let site = Site::new(1, 600, vec!["http://127.0.0.1:1".into()]).with_broken_links();
        let truth = site.broken_truth();
        assert!(truth.len() >= 12, "{} targets", truth.len());
        assert!(truth.values().any(|t| t.status.is_none()), "a dropped connection");
        assert!(truth.values().any(|t| t.status == Some(500)));
        for (url, t) in &truth {
            assert!(t.sources.len() >= 2, "{url}: {:?}", t.sources);
            let mut anchors: Vec<&String> = t.sources.iter().map(|s| &s.1).collect();
            anchors.dedup();
            assert_eq!(anchors.len(), t.sources.len());
        }
        assert!(
            truth.values().any(|t| t.sources.len() > 5),
            "some past the report's cap"
        );
        assert!(
            Site::new(1, 600, vec!["http://127.0.0.1:1".into()])
                .broken_truth()
                .is_empty()
        );
    }
}
