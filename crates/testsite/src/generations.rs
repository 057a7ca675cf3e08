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
//!
//! Generation `g` began at [`Site::generation_time`]`(g)`, site time (2026-10-21
//! 00:00 UTC plus `g` days), not the clock's, so the truth does not depend on when a
//! test runs. The sitemaps list every page that is not gone, most with a `<lastmod>`
//! of the generation at which the page last changed ([`Site::lastmod`]) written in
//! one of the W3C forms (a date, a UTC time, a time in another zone); one page in
//! six has none and one in six a date that does not read. So
//! [`Site::recrawl_truth_since`] knows what a recrawl with `--changed-since` must skip.

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
    /// Pages not revisited, for a recrawl given a changed-since time
    /// ([`Site::recrawl_truth_since`]): their sitemap `<lastmod>` says they last
    /// changed before it. They are in none of the sets above.
    pub skipped: BTreeSet<String>,
    /// Pages whose sitemap `<lastmod>` is at or after the changed-since time: a
    /// recrawl revisits them before the pages without one. Each is also in its
    /// outcome's set above. Empty without a changed-since time.
    pub fresh: BTreeSet<String>,
}

/// The time generation 0 began: 2026-10-21T00:00:00Z, in seconds since the Unix epoch.
const GENERATION_0: i64 = 1_792_540_800;

/// How a page's `<lastmod>` is written in the sitemaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastmodForm {
    /// No `<lastmod>`.
    Absent,
    /// One that is not a W3C datetime (`21/10/2026`).
    Bad,
    /// `YYYY-MM-DD`: the whole day, read as UTC.
    Date,
    /// `YYYY-MM-DDT02:00:00+02:00`: the instant, in another zone.
    Zoned,
    /// `YYYY-MM-DDT00:00:00Z`.
    Utc,
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

    /// The time generation `g` began, in seconds since the Unix epoch (site time:
    /// 2026-10-21T00:00:00Z plus `g` days).
    pub fn generation_time(&self, g: u64) -> i64 {
        GENERATION_0 + g as i64 * 86_400
    }

    /// [`Site::generation_time`] as RFC 3339 (`2026-10-22T00:00:00Z` for 1): what a
    /// test passes to `--changed-since`.
    pub fn generation_date(&self, g: u64) -> String {
        let t = self.generation_time(g);
        format!("{}T{}Z", ymd(t), hms(t))
    }

    /// The generation at which page `i` last changed, up to `g` (0: never).
    pub fn last_change(&self, i: u64, g: u64) -> u64 {
        self.changes(i, g).last().copied().unwrap_or(0)
    }

    fn lastmod_form(&self, i: u64) -> LastmodForm {
        match crate::site::mix(self.seed() ^ crate::site::mix(i ^ 83)) % 6 {
            0 => LastmodForm::Absent,
            1 => LastmodForm::Bad,
            2 => LastmodForm::Date,
            3 => LastmodForm::Zoned,
            _ => LastmodForm::Utc,
        }
    }

    /// The text of page `i`'s `<lastmod>` in the sitemaps at generation `g`: when it
    /// last changed ([`Site::last_change`]) in one of the W3C forms, or a date that
    /// does not read; `None` for a page listed without one.
    pub fn lastmod(&self, i: u64, g: u64) -> Option<String> {
        let t = self.generation_time(self.last_change(i, g));
        match self.lastmod_form(i) {
            LastmodForm::Absent => None,
            LastmodForm::Bad => Some(format!("{}/10/2026", 21 + self.last_change(i, g))),
            LastmodForm::Date => Some(ymd(t)),
            LastmodForm::Zoned => {
                let local = t + 2 * 3600;
                Some(format!("{}T{}+02:00", ymd(local), hms(local)))
            }
            LastmodForm::Utc => Some(format!("{}T{}Z", ymd(t), hms(t))),
        }
    }

    /// The last second that page `i`'s `<lastmod>` at generation `g` can mean (the
    /// end of the day for a date alone), when it has one that reads.
    fn lastmod_latest(&self, i: u64, g: u64) -> Option<i64> {
        let t = self.generation_time(self.last_change(i, g));
        match self.lastmod_form(i) {
            LastmodForm::Absent | LastmodForm::Bad => None,
            LastmodForm::Date => Some(t - t.rem_euclid(86_400) + 86_399),
            LastmodForm::Zoned | LastmodForm::Utc => Some(t),
        }
    }

    /// Whether the sitemaps list page `i` at generation `g`: every page that is not
    /// gone.
    pub fn in_sitemap(&self, i: u64, g: u64) -> bool {
        !self.is_gone(i, g)
    }

    /// What a recrawl at generation `to` must find for the pages `known` (the
    /// canonical URLs of a crawl at generation `from`, as [`Site::crawl_truth`] gives
    /// them; other URLs are ignored).
    pub fn recrawl_truth(&self, known: &BTreeMap<String, u32>, from: u64, to: u64) -> RecrawlTruth {
        self.recrawl_truth_since(known, from, to, None)
    }

    /// [`Site::recrawl_truth`] for a recrawl given `--changed-since` (`since`, in
    /// seconds since the Unix epoch; `None`: not given): a known page that the
    /// sitemaps list with a `<lastmod>` whose span ends before `since` is not
    /// revisited (`skipped`), whatever became of it; one whose `<lastmod>` is at or
    /// after it is `fresh`. Pages without a `<lastmod>`, or with one that does not
    /// read, are revisited as without `since`.
    pub fn recrawl_truth_since(
        &self,
        known: &BTreeMap<String, u32>,
        from: u64,
        to: u64,
        since: Option<i64>,
    ) -> RecrawlTruth {
        let mut t = RecrawlTruth::default();
        for url in known.keys() {
            let Some(i) = self.page_of_url(url) else {
                continue;
            };
            let lastmod = self
                .in_sitemap(i, to)
                .then(|| self.lastmod_latest(i, to))
                .flatten();
            if let (Some(since), Some(latest)) = (since, lastmod) {
                if latest < since {
                    t.skipped.insert(url.clone());
                    continue;
                }
                t.fresh.insert(url.clone());
            }
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

/// The UTC date of `t` (seconds since the Unix epoch), `YYYY-MM-DD`.
fn ymd(t: i64) -> String {
    // Howard Hinnant's `civil_from_days`.
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC time of day of `t`, `hh:mm:ss`.
fn hms(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
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

    #[test]
    fn lastmods_say_when_a_page_last_changed() {
        let s = Site::new(5, 2_000, vec!["http://127.0.0.1:9000".into()]);
        assert_eq!(s.generation_date(0), "2026-10-21T00:00:00Z");
        assert_eq!(s.generation_date(11), "2026-11-01T00:00:00Z");
        assert_eq!(ymd(951_782_400), "2000-02-29");
        let known = s.crawl_truth(&[0], &|_| true).pages;
        let since = s.generation_time(1);
        let t = s.recrawl_truth_since(&known, 0, 1, Some(since));
        let plain = s.recrawl_truth(&known, 0, 1);
        assert!(plain.skipped.is_empty() && plain.fresh.is_empty());
        // A page that did not change and has a lastmod is skipped; one that changed is
        // fresh (its lastmod is the bump's), or revisited without one.
        assert!(t.skipped.len() > known.len() / 3, "{} skipped", t.skipped.len());
        assert!(t.changed.is_subset(&plain.changed));
        assert!(t.skipped.is_disjoint(&plain.changed) && t.skipped.is_disjoint(&plain.gone));
        assert!(!t.fresh.is_empty() && t.fresh.is_subset(&plain.changed));
        let n = t.not_modified.len() + t.unchanged.len() + t.changed.len() + t.gone.len();
        assert_eq!(n + t.skipped.len(), known.len());
        assert_eq!(t.gone, plain.gone, "a gone page is in no sitemap");
        let mut forms = [0; 5];
        for i in 0..s.pages() {
            let f = s.lastmod_form(i);
            forms[f as usize] += 1;
            let text = s.lastmod(i, 1);
            assert_eq!(text.is_none(), f == LastmodForm::Absent);
            if s.last_change(i, 1) == 1 && f == LastmodForm::Zoned {
                assert_eq!(text.as_deref(), Some("2026-10-22T02:00:00+02:00"));
            }
        }
        assert!(forms.iter().all(|n| *n > 100), "every form is served: {forms:?}");
        // Changed-since a day earlier than the crawl: nothing is skipped.
        let early = s.recrawl_truth_since(&known, 0, 1, Some(s.generation_time(0)));
        assert!(early.skipped.is_empty());
        assert_eq!(early.changed, plain.changed);
    }
}
