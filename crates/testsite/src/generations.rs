//! Generations: how the synthetic site changes between two crawls, for recrawl tests.
//!
//! The server serves generation `g` (`RunningSite::set_generation`, 0 at start). At
//! each step from `g - 1` to `g`, a regular page (not a root) stays the same (seven in
//! ten), changes (two in ten: its text and validators change, and it links to a page
//! that is new at `g`, `/new/{g}/{i}`), or is gone from then on (one in ten: 404).
//! Half the pages send an `ETag` and a `Last-Modified` (and answer a matching
//! conditional GET with 304); the others send no validators, so a revisit gets the
//! same 200 again. Everything is derived from `(seed, page, generation)`, so
//! [`Site::recrawl_truth`] says exactly what a recrawl must find.

use std::collections::{BTreeMap, BTreeSet};

use crate::site::Site;

/// What became of a page at one generation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Same,
    Changed,
    Gone,
}

/// What a recrawl at one generation of pages known from another must find, as
/// [`Site::recrawl_truth`] computes it (canonical URLs).
#[derive(Debug, Clone, Default)]
pub struct RecrawlTruth {
    /// Pages with validators whose content did not change: a conditional GET gets 304.
    pub not_modified: BTreeSet<String>,
    /// Pages without validators whose content did not change.
    pub unchanged: BTreeSet<String>,
    /// Pages whose content changed.
    pub changed: BTreeSet<String>,
    /// Pages that now answer 404.
    pub gone: BTreeSet<String>,
    /// Pages that did not exist before, linked from the changed ones.
    pub new: BTreeSet<String>,
}

impl Site {
    fn step(&self, i: u64, g: u64) -> Step {
        if g == 0 || i < self.hosts() as u64 {
            return Step::Same;
        }
        match crate::site::mix(self.seed() ^ crate::site::mix(i ^ crate::site::mix(7_000 + g))) % 10 {
            0 => Step::Gone,
            1 | 2 => Step::Changed,
            _ => Step::Same,
        }
    }

    /// Whether page `i` is gone (answers 404) at generation `g`.
    pub fn is_gone(&self, i: u64, g: u64) -> bool {
        (1..=g).any(|s| self.step(i, s) == Step::Gone)
    }

    /// How many times page `i` changed up to generation `g`.
    pub fn version(&self, i: u64, g: u64) -> u64 {
        (1..=g).filter(|s| self.step(i, *s) == Step::Changed).count() as u64
    }

    /// The generations at which page `i` changed, up to `g` (each added a new page).
    pub fn changes(&self, i: u64, g: u64) -> Vec<u64> {
        (1..=g).filter(|s| self.step(i, *s) == Step::Changed).collect()
    }

    /// Whether page `i` sends validators (`ETag`, `Last-Modified`): one page in two,
    /// or every page after [`Site::with_validators_on_every_page`].
    pub fn has_validators(&self, i: u64) -> bool {
        self.all_validators || crate::site::mix(self.seed() ^ crate::site::mix(i ^ 61)).is_multiple_of(2)
    }

    /// The same site with validators on every page (a recrawl of it is all 304s).
    pub fn with_validators_on_every_page(mut self) -> Site {
        self.all_validators = true;
        self
    }

    /// The `ETag` of page `i` at generation `g`, when it sends one.
    pub fn etag(&self, i: u64, g: u64) -> Option<String> {
        self.has_validators(i)
            .then(|| format!("\"p{i}-v{}\"", self.version(i, g)))
    }

    /// The `Last-Modified` of page `i` at generation `g`, when it sends one.
    pub fn last_modified(&self, i: u64, g: u64) -> Option<String> {
        self.has_validators(i).then(|| {
            format!(
                "Wed, 21 Oct 2026 {:02}:{:02}:00 GMT",
                self.version(i, g) % 24,
                i % 60
            )
        })
    }

    /// The URL of the page that page `i` added when it changed at generation `g`.
    pub fn new_page_url(&self, i: u64, g: u64) -> String {
        format!("{}/new/{g}/{i}", self.bases()[self.host_of(i)])
    }

    /// Whether `/new/{g}/{i}` exists on host `host` at generation `now`.
    pub fn new_page_exists(&self, host: usize, g: u64, i: u64, now: u64) -> bool {
        i < self.pages() && self.host_of(i) == host && g <= now && self.step(i, g) == Step::Changed
    }

    /// What a recrawl at generation `to` must find for the pages `known` (the
    /// canonical URLs of a crawl at generation `from`, as [`Site::crawl_truth`] gives
    /// them; other URLs are ignored).
    pub fn recrawl_truth(&self, known: &BTreeMap<String, u32>, from: u64, to: u64) -> RecrawlTruth {
        let mut t = RecrawlTruth::default();
        for url in known.keys() {
            let Some(i) = self.page_of_url(url) else {
                continue;
            };
            if self.is_gone(i, to) {
                t.gone.insert(url.clone());
            } else if self.version(i, to) != self.version(i, from) {
                t.changed.insert(url.clone());
                for g in self.changes(i, to).into_iter().filter(|g| *g > from) {
                    let new = self.new_page_url(i, g);
                    if !known.contains_key(&new) {
                        t.new.insert(new);
                    }
                }
            } else if self.has_validators(i) {
                t.not_modified.insert(url.clone());
            } else {
                t.unchanged.insert(url.clone());
            }
        }
        t
    }

    /// The page number of a canonical page URL of this site.
    pub fn page_of_url(&self, url: &str) -> Option<u64> {
        self.bases().iter().enumerate().find_map(|(h, base)| {
            let path = url.strip_prefix(base.as_str())?;
            self.page_for_path(h, path)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_change_some_pages_and_keep_the_rest() {
        let s = Site::new(
            5,
            2_000,
            vec!["http://127.0.0.1:9000".into(), "http://127.0.0.1:9001".into()],
        );
        let known = s.crawl_truth(&[0, 1], &|_| true).pages;
        let t = s.recrawl_truth(&known, 0, 1);
        let n = known.len();
        assert_eq!(
            t.not_modified.len() + t.unchanged.len() + t.changed.len() + t.gone.len(),
            n
        );
        for (set, lo, hi) in [
            (&t.gone, n / 20, n / 6),
            (&t.changed, n / 8, n / 3),
            (&t.not_modified, n / 5, n / 2),
            (&t.unchanged, n / 5, n / 2),
        ] {
            assert!((lo..hi).contains(&set.len()), "{} of {n}", set.len());
        }
        assert_eq!(t.new.len(), t.changed.len(), "one new page per changed page");
        // Generation 0 is the site as it always was.
        assert!(s.recrawl_truth(&known, 0, 0).changed.is_empty());
        let i = s
            .page_of_url(t.changed.iter().next().expect("a change"))
            .expect("a page");
        assert_ne!(s.version(i, 1), 0);
    }
}
