//! Recrawls: revisiting a finished or stopped crawl cheaply, and saying what changed.
//!
//! A recrawl is a crawl of its own, in a state directory of its own inside the
//! crawl's, `DIR/recrawl/N` for generation `N` ([`generation_dir`]), so it is
//! crash-safe and resumable exactly as a crawl is. What it knows of the generation
//! before comes from that generation's history (`history.jsonl` in its state
//! directory, a sink cut back to its checkpoint like the others, so it holds one line
//! per acked URL): when the recrawl's directory is first opened, every URL of that
//! history is queued with what it was (status, `ETag`, `Last-Modified`, content hash,
//! the WARC capture that holds it) in its frontier data, before anything else, in
//! batches (enqueue is idempotent, so a crash half-way only means it is done again;
//! a meta key marks it done). Memory holds one batch, whatever the size of the crawl.
//!
//! Each known URL is then fetched with `If-None-Match` / `If-Modified-Since` from
//! those validators, and its record says what was found ([`PageRecord::recrawl`]):
//! `not-modified` (a 304), `unchanged` (the same status and content hash), `changed`,
//! `gone` (404 or 410), or `new` for a URL the generation before did not know (links
//! are followed within the crawl's scope and limits, as in a crawl). With WARC output,
//! a not-modified page is written as a `server-not-modified` revisit record and an
//! unchanged one as an `identical-payload-digest` revisit, each referring
//! (`WARC-Refers-To-Target-URI`, `WARC-Refers-To-Date`) to the response record that
//! holds the payload, in the WARC of the generation that captured it.
//!
//! With `--changed-since DATE` ([`RecrawlConfig::changed_since`]), the decision of
//! what to revisit is made once, while the frontier is seeded, and stored with each
//! URL, so it is as durable as the queue itself. Before the history is queued (and
//! so before any revisit), the sitemaps that the generation before read are fetched
//! and read again, through the crawl's fetcher (robots.txt, politeness, the body cap)
//! and its sitemap reader (the protocol's limits), two at a time, following the
//! indexes they name, at most [`CHANGED_SINCE_SITEMAPS`] in all; their `<lastmod>`s
//! are kept by URL fingerprint, at most [`CHANGED_SINCE_LASTMODS`]. Then, as the
//! history is queued, a known page whose `<lastmod>` ends before DATE and that was
//! fetched with content last time (a 2xx, or a 304 standing for one) is flagged
//! (`SKIP_FLAG`): the scheduler hands it on without a request or a wait for its
//! host, and its record says `skipped-unchanged`, with the content hash and
//! validators known before (the history keeps its status and capture, so the next
//! recrawl revisits from them). A page whose `<lastmod>` is at or after DATE is
//! queued in the class ahead of pages (the one redirect targets use), newest first
//! within each run of [`FRESH_RUN`] such pages, so each host revisits them before the
//! rest. Anything the sitemaps do not vouch for is revisited as without the flag:
//! no `<lastmod>`, one that does not read, a sitemap that could not be fetched or
//! read, a site with no sitemap (the summary says so, [`ChangedSince`]). A crash
//! before the seeding is marked done reads the sitemaps again; URLs queued already
//! keep the decision they were queued with (enqueue is idempotent).
//!
//! The crawl then reads the sitemaps once more, as every crawl does, for the URLs
//! they list that the generation before did not know: the first read decides, before
//! anything is queued, the second discovers, alongside the revisits.
//!
//! [`PageRecord::recrawl`]: trawl_sink::PageRecord::recrawl
//! [`RecrawlConfig::changed_since`]: crate::RecrawlConfig::changed_since

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_fetcher::Fetcher;
use trawl_frontier::{Fingerprint, Frontier, FrontierStore, NewUrl, Options, Priority, UrlState};
use trawl_parser::{CanonOptions, Lastmod, SitemapKind};
use trawl_sink::{Checkpoint, Discovery, HISTORY_FILE, HistorySink};

use crate::config::CrawlConfig;
use crate::crawl::sitemap as sitemaps;
use crate::error::Error;
use crate::scope::Scope;

/// The folder of a crawl's state directory that holds its recrawls' directories.
pub const RECRAWL_DIR: &str = "recrawl";

/// The meta key that marks a recrawl's frontier as holding its whole history.
const SEEDED: &str = "recrawl-seeded";

/// The meta key that keeps what `--changed-since` decided ([`ChangedSince`]).
const CHANGED_SINCE: &str = "recrawl-changed-since";

/// URLs of the history queued per frontier batch.
const SEED_BATCH: usize = 1024;

/// The most sitemaps read for `--changed-since`, the ones the generation before read
/// and those their indexes name: at the default rate of one request a second, a
/// quarter of an hour on one host before the first revisit.
pub const CHANGED_SINCE_SITEMAPS: usize = 1_000;

/// The most `<lastmod>`s kept for `--changed-since`, by 128-bit URL fingerprint (about
/// 40 bytes each, 40 MB in all, held only while the frontier is seeded). URLs past
/// them have none, so they are revisited.
pub const CHANGED_SINCE_LASTMODS: usize = 1_000_000;

/// Pages revisited first are sorted newest first within runs of this many, which
/// bounds what the seeding holds (a few hundred bytes each).
pub const FRESH_RUN: usize = 65_536;

/// The state directory of recrawl `generation` of the crawl in `base`.
pub fn generation_dir(base: &Path, generation: u32) -> PathBuf {
    base.join(RECRAWL_DIR).join(generation.to_string())
}

/// The recrawl generations that exist in `base`, in order.
pub fn generations(base: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(base.join(RECRAWL_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|n| *n > 0)
        .collect();
    v.sort_unstable();
    v
}

/// The state directory of the generation before `generation` (the crawl itself for
/// the first recrawl).
pub fn source_dir(base: &Path, generation: u32) -> PathBuf {
    if generation <= 1 {
        base.to_path_buf()
    } else {
        generation_dir(base, generation - 1)
    }
}

/// The default output of recrawl `generation` for a crawl output `path`:
/// `out.jsonl` becomes `out-recrawl-1.jsonl`, `crawl.warc.gz` `crawl-recrawl-1.warc.gz`.
pub fn generation_output(path: &Path, generation: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let (stem, ext) = match name.find(".warc") {
        Some(i) => name.split_at(i),
        None => match name.rfind('.') {
            Some(i) if i > 0 => name.split_at(i),
            _ => (name.as_str(), ""),
        },
    };
    path.with_file_name(format!("{stem}-recrawl-{generation}{ext}"))
}

/// Whether the recrawl in `dir` ran to its end: its history was queued and no URL is
/// left queued or leased. It is read without changing anything.
///
/// # Errors
/// [`Error::State`] when the directory cannot be read (locked by a running recrawl,
/// damaged).
pub fn is_complete(dir: &Path) -> Result<bool, Error> {
    let opts = Options::default().cache_capacity(8 << 20).read_only(true);
    let f = Frontier::open(dir, opts).map_err(|e| Error::state(dir, e))?;
    let seeded = f.meta(SEEDED).map_err(|e| Error::state(dir, e))?.is_some();
    let c = f.counts().map_err(|e| Error::state(dir, e))?;
    Ok(seeded && c.queued == 0 && c.leased == 0)
}

/// What the generation before knew of a URL, kept in its frontier data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Prior {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) last_modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) capture: Option<String>,
}

/// The flag on the first byte of a URL's frontier data that says a [`Prior`] follows
/// (instead of a parent URL).
pub(crate) const PRIOR_FLAG: u8 = 0x80;

/// The flag on the first byte of a URL's frontier data (beside [`PRIOR_FLAG`]) that says
/// it is not fetched: its sitemap `<lastmod>` is older than `--changed-since`.
pub(crate) const SKIP_FLAG: u8 = 0x40;

/// Whether a URL's frontier data says it is recorded without a request.
pub(crate) fn is_skipped(data: &[u8]) -> bool {
    data.first()
        .is_some_and(|b| b & (PRIOR_FLAG | SKIP_FLAG) == PRIOR_FLAG | SKIP_FLAG)
}

/// Reads `--changed-since`: a W3C datetime (RFC 3339, or a day, read from its UTC
/// midnight) as seconds since the Unix epoch, or what is wrong with it.
pub fn parse_changed_since(s: &str) -> Result<i64, String> {
    Lastmod::parse(s).map(|d| d.earliest).ok_or_else(|| {
        format!(
            "{s:?} is not a date: give an RFC 3339 time such as 2026-10-22T00:00:00Z, or a day such as 2026-10-22"
        )
    })
}

impl Prior {
    /// The validators to send.
    pub(crate) fn validators(&self) -> trawl_fetcher::Validators {
        trawl_fetcher::Validators {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
        }
    }

    /// Whether the earlier status was a success whose content the hash stands for (a
    /// 304 stood for the content before it).
    fn had_content(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }

    /// Whether a `<lastmod>` older than `--changed-since` may stand for a revisit: the
    /// page was fetched with its content last time (a 2xx, or a 304 standing for
    /// one). A redirect or a failure is revisited whatever the sitemap says.
    fn skippable(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s) || s == 304)
    }
}

/// The frontier data of a URL queued from the history.
fn encode(discovery: Discovery, prior: &Prior) -> Vec<u8> {
    let mut v = crate::crawl::encode_data(discovery, None);
    v[0] |= PRIOR_FLAG;
    v.extend_from_slice(&serde_json::to_vec(prior).unwrap_or_default());
    v
}

/// The [`Prior`] in a URL's frontier data, if it has one.
pub(crate) fn decode_prior(data: &[u8]) -> Option<Prior> {
    if data.first()? & PRIOR_FLAG == 0 {
        return None;
    }
    serde_json::from_slice(&data[1..]).ok()
}

/// What a recrawl found for a URL: `prior` is what the generation before knew (none
/// for a new URL), `status` and `hash` what came now.
pub(crate) fn outcome(prior: Option<&Prior>, status: u16, hash: Option<&str>) -> &'static str {
    let Some(p) = prior else { return "new" };
    match status {
        304 => "not-modified",
        404 | 410 => "gone",
        s if p.had_content()
            && p.hash.as_deref() == hash
            && (p.status == Some(s) || p.status == Some(304)) =>
        {
            "unchanged"
        }
        _ => "changed",
    }
}

/// What a recrawl's `--changed-since` decided, once, before its first revisit: the
/// sitemaps read and what their `<lastmod>`s made of the known pages. Every known
/// page is in exactly one of `skipped`, `revisited_first` and `revisited`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChangedSince {
    /// The time given, as RFC 3339 UTC.
    pub since: String,
    /// Sitemaps are off for this crawl (`--no-sitemaps`): none was read.
    pub sitemaps_off: bool,
    /// Sitemaps the generation before read (what was read again, with the ones their
    /// indexes name).
    pub sitemaps_known: u64,
    /// Sitemaps fetched and read.
    pub sitemaps_read: u64,
    /// Sitemaps that could not be fetched or read: their pages were revisited.
    pub sitemaps_failed: u64,
    /// Distinct URLs the sitemaps gave a `<lastmod>` that reads.
    pub lastmods: u64,
    /// [`CHANGED_SINCE_LASTMODS`] or [`CHANGED_SINCE_SITEMAPS`] was reached: what lay
    /// past it was revisited.
    pub truncated: bool,
    /// Known pages recorded as `skipped-unchanged`, without a request.
    pub skipped: u64,
    /// Known pages whose `<lastmod>` is at or after `since`: revisited before the rest.
    pub revisited_first: u64,
    /// Known pages revisited as without `--changed-since`: no `<lastmod>` (or one that
    /// did not read), or not fetched with content last time.
    pub revisited: u64,
}

impl ChangedSince {
    /// One line for the end-of-crawl summary.
    pub fn to_text(&self) -> String {
        let head = format!("changed since {}", self.since);
        let all = "nothing was skipped: every known page is revisited";
        if self.sitemaps_off {
            return format!("{head}: sitemaps are off (--no-sitemaps), so no <lastmod> is known; {all}");
        }
        if self.sitemaps_read == 0 {
            return if self.sitemaps_failed == 0 {
                format!("{head}: the crawl found no sitemap, so no <lastmod> is known; {all}")
            } else {
                format!(
                    "{head}: no sitemap could be read ({} failed), so no <lastmod> is known; {all}",
                    self.sitemaps_failed
                )
            };
        }
        let read = format!(
            "{} sitemaps read{}",
            self.sitemaps_read,
            if self.sitemaps_failed > 0 {
                format!(" ({} could not be, their pages revisited)", self.sitemaps_failed)
            } else {
                String::new()
            }
        );
        if self.lastmods == 0 {
            return format!("{head}: {read}, none with a <lastmod>; {all}");
        }
        format!(
            "{head}: {read}, {} URLs with a <lastmod>{}; {} known pages not refetched (skipped-unchanged), {} revisited first, {} revisited without a <lastmod> to go by",
            self.lastmods,
            if self.truncated { " (capped)" } else { "" },
            self.skipped,
            self.revisited_first,
            self.revisited
        )
    }
}

/// The `<lastmod>`s of the sitemaps, for `--changed-since`: what [`read_lastmods`]
/// found, handed to [`seed`].
#[derive(Debug)]
pub(crate) struct Lastmods {
    /// `--changed-since`, in seconds since the Unix epoch.
    since: i64,
    /// The last second each URL's `<lastmod>` can mean, by URL fingerprint (the
    /// latest, when sitemaps disagree).
    by_url: HashMap<u128, i64>,
    report: ChangedSince,
}

/// Whether the recrawl's frontier holds its whole history already.
pub(crate) fn is_seeded(frontier: &Frontier, dir: &Path) -> Result<bool, Error> {
    Ok(frontier.meta(SEEDED).map_err(|e| Error::state(dir, e))?.is_some())
}

/// What `--changed-since` decided, as the seeding stored it.
pub(crate) fn changed_since(frontier: &Frontier, dir: &Path) -> Result<Option<ChangedSince>, Error> {
    let Some(v) = frontier.meta(CHANGED_SINCE).map_err(|e| Error::state(dir, e))? else {
        return Ok(None);
    };
    serde_json::from_slice(&v)
        .map(Some)
        .map_err(|e| Error::damaged(dir, format!("its --changed-since record does not read: {e}")))
}

/// The sitemaps the crawl in `source` read (or had still to), at most
/// [`CHANGED_SINCE_SITEMAPS`], in the order it found them; not those that failed.
fn sitemaps_of(source: &Path) -> Result<Vec<String>, Error> {
    let opts = Options::default().cache_capacity(8 << 20).read_only(true);
    let f = Frontier::open(source, opts).map_err(|e| Error::state(source, e))?;
    let mut v = Vec::new();
    for rec in f.urls() {
        let rec = rec.map_err(|e| Error::state(source, e))?;
        if rec.priority == Priority::Sitemap && rec.state != UrlState::Failed {
            v.push(rec.url);
            if v.len() == CHANGED_SINCE_SITEMAPS {
                break;
            }
        }
    }
    Ok(v)
}

/// What one sitemap gave: the `(fingerprint, latest second)` of its URLs with a
/// `<lastmod>`, or the sitemaps an index (or a redirect) names; `None` when it could
/// not be fetched or read.
type SitemapRead = Option<Result<Vec<(u128, i64)>, Vec<String>>>;

/// Fetches and reads one sitemap for `--changed-since`: the crawl's request for a
/// sitemap through the crawl's fetcher, and its reader, on a blocking thread.
async fn read_one(fetcher: Fetcher, url: String, canon: CanonOptions) -> SitemapRead {
    let fetched = match fetcher.fetch_with(&url, &sitemaps::request()).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(url, error = %e, "--changed-since: the sitemap could not be fetched");
            return None;
        }
    };
    if let Some(to) = &fetched.redirect_to {
        return Some(Err(vec![to.to_string()]));
    }
    if !(200..300).contains(&fetched.status) || fetched.body_skipped {
        return None;
    }
    let parsed = tokio::task::spawn_blocking(move || {
        let map = match sitemaps::read(&fetched.body) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(url, error = %e, "--changed-since: the sitemap does not read");
                return None;
            }
        };
        let canonical = |loc: &str| trawl_parser::canonicalize(loc.trim(), None, &canon).ok();
        Some(match map.kind {
            SitemapKind::Index => Err(map.entries.iter().filter_map(|e| canonical(&e.loc)).collect()),
            _ => Ok(map
                .entries
                .iter()
                .filter_map(|e| {
                    let latest = e.lastmod?.latest;
                    Some((Fingerprint::of(&canonical(&e.loc)?).0, latest))
                })
                .collect()),
        })
    });
    parsed.await.ok().flatten()
}

/// Reads again the sitemaps the generation in `source` read, and the ones their
/// indexes name, for their `<lastmod>`s (see the module docs). A sitemap that cannot
/// be fetched or read only means its pages have no `<lastmod>`.
///
/// # Errors
/// [`Error::State`] when `source` cannot be read.
pub(crate) async fn read_lastmods(
    fetcher: &Fetcher,
    scope: &Scope,
    cfg: &CrawlConfig,
    source: &Path,
    since: i64,
) -> Result<Lastmods, Error> {
    let mut report = ChangedSince {
        since: trawl_sink::rfc3339_ms(since.max(0) as u64 * 1000),
        sitemaps_off: cfg.scope.no_sitemaps,
        ..ChangedSince::default()
    };
    let mut by_url: HashMap<u128, i64> = HashMap::new();
    if cfg.scope.no_sitemaps {
        return Ok(Lastmods {
            since,
            by_url,
            report,
        });
    }
    let src = source.to_path_buf();
    let known = tokio::task::spawn_blocking(move || sitemaps_of(&src))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    report.sitemaps_known = known.len() as u64;
    let mut seen: HashSet<String> = known.iter().cloned().collect();
    let mut queue: VecDeque<String> = known.into();
    let canon = cfg.limits.parse_options().canon;
    let mut tasks = tokio::task::JoinSet::new();
    tracing::info!(
        sitemaps = queue.len(),
        "--changed-since: reading the sitemaps for their <lastmod>s"
    );
    loop {
        // As the crawl's sitemap lane: two at once.
        while tasks.len() < sitemaps::SITEMAP_LANE
            && let Some(url) = queue.pop_front()
        {
            tasks.spawn(read_one(fetcher.clone(), url, canon.clone()));
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined.ok().flatten() {
            None => report.sitemaps_failed += 1,
            Some(Err(named)) => {
                report.sitemaps_read += 1;
                for u in named {
                    if scope.check_str(&u).is_err() || seen.contains(&u) {
                        continue;
                    }
                    if seen.len() >= CHANGED_SINCE_SITEMAPS {
                        report.truncated = true;
                        break;
                    }
                    seen.insert(u.clone());
                    queue.push_back(u);
                }
            }
            Some(Ok(lastmods)) => {
                report.sitemaps_read += 1;
                for (fp, latest) in lastmods {
                    if by_url.len() >= CHANGED_SINCE_LASTMODS && !by_url.contains_key(&fp) {
                        report.truncated = true;
                        continue;
                    }
                    let v = by_url.entry(fp).or_insert(latest);
                    *v = (*v).max(latest);
                }
            }
        }
    }
    report.lastmods = by_url.len() as u64;
    Ok(Lastmods {
        since,
        by_url,
        report,
    })
}

/// Queues pages to revisit first, newest `<lastmod>` first.
fn enqueue_newest_first(
    frontier: &Frontier,
    dir: &Path,
    fresh: &mut Vec<(i64, NewUrl)>,
) -> Result<(), Error> {
    fresh.sort_by_key(|(t, _)| Reverse(*t));
    let mut batch = Vec::with_capacity(SEED_BATCH);
    for (_, u) in fresh.drain(..) {
        batch.push(u);
        if batch.len() == SEED_BATCH {
            frontier
                .enqueue(std::mem::take(&mut batch))
                .map_err(|e| Error::state(dir, e))?;
        }
    }
    frontier.enqueue(batch).map_err(|e| Error::state(dir, e))?;
    Ok(())
}

/// Queues every URL of the history in `source` into the recrawl's `frontier`, once:
/// a frontier that holds it already (its meta says so) is left as it is. With
/// `lastmods` (`--changed-since`), each known page is flagged as skipped, queued to
/// be revisited first, or queued as it would be without it, and what was decided is
/// stored ([`ChangedSince`]). Returns the URLs read.
pub(crate) fn seed(
    frontier: &Frontier,
    dir: &Path,
    source: &Path,
    lastmods: Option<Lastmods>,
) -> Result<u64, Error> {
    if is_seeded(frontier, dir)? {
        return Ok(0);
    }
    let opts = Options::default().cache_capacity(8 << 20).read_only(true);
    let checkpoint = {
        let src = Frontier::open(source, opts).map_err(|e| Error::state(source, e))?;
        src.checkpoint("history").map_err(|e| Error::state(source, e))?
    };
    let Some(checkpoint) = checkpoint else {
        return Err(Error::damaged(
            source,
            "it keeps no crawl history to revisit from (a crawl made before trawl kept one, or one that wrote nothing yet)".to_string(),
        ));
    };
    let checkpoint = Checkpoint::from_bytes(&checkpoint)?;
    let mut batch = Vec::with_capacity(SEED_BATCH);
    let mut fresh: Vec<(i64, NewUrl)> = Vec::new();
    let mut report = lastmods.as_ref().map(|l| l.report.clone());
    let mut n = 0u64;
    for entry in HistorySink::read(&source.join(HISTORY_FILE), &checkpoint)? {
        let e = entry.map_err(|e| Error::damaged(source, format!("its crawl history does not read: {e}")))?;
        let prior = Prior {
            status: e.status,
            etag: e.etag,
            last_modified: e.last_modified,
            hash: e.hash,
            capture: e.capture,
        };
        let mut url = NewUrl {
            data: encode(e.discovery, &prior),
            url: e.url,
            depth: e.depth,
            priority: Priority::Page,
        };
        n += 1;
        if let (Some(l), Some(r)) = (&lastmods, report.as_mut()) {
            match l.by_url.get(&Fingerprint::of(&url.url).0) {
                Some(&t) if t < l.since && prior.skippable() => {
                    url.data[0] |= SKIP_FLAG;
                    r.skipped += 1;
                }
                Some(&t) if t >= l.since => {
                    // Ahead of the pages in their host's queue.
                    url.priority = Priority::Redirect;
                    r.revisited_first += 1;
                    fresh.push((t, url));
                    if fresh.len() == FRESH_RUN {
                        enqueue_newest_first(frontier, dir, &mut fresh)?;
                    }
                    continue;
                }
                _ => r.revisited += 1,
            }
        }
        batch.push(url);
        if batch.len() == SEED_BATCH {
            frontier
                .enqueue(std::mem::take(&mut batch))
                .map_err(|e| Error::state(dir, e))?;
        }
    }
    frontier.enqueue(batch).map_err(|e| Error::state(dir, e))?;
    enqueue_newest_first(frontier, dir, &mut fresh)?;
    if let Some(r) = &report {
        let json = serde_json::to_vec(r).map_err(|e| Error::Internal(e.to_string()))?;
        frontier
            .set_meta(CHANGED_SINCE, &json)
            .map_err(|e| Error::state(dir, e))?;
        tracing::info!("{}", r.to_text());
    }
    frontier
        .set_meta(SEEDED, b"1")
        .map_err(|e| Error::state(dir, e))?;
    frontier.flush().map_err(|e| Error::state(dir, e))?;
    tracing::info!(urls = n, source = %source.display(), "queued the crawl's known URLs for revisiting");
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_and_outcomes() {
        assert_eq!(
            generation_output(Path::new("/x/out.jsonl"), 2),
            Path::new("/x/out-recrawl-2.jsonl")
        );
        assert_eq!(
            generation_output(Path::new("crawl.warc.gz"), 1),
            Path::new("crawl-recrawl-1.warc.gz")
        );
        let p = Prior {
            status: Some(200),
            hash: Some("h".into()),
            ..Prior::default()
        };
        assert_eq!(outcome(None, 200, Some("h")), "new");
        assert_eq!(outcome(Some(&p), 304, None), "not-modified");
        assert_eq!(outcome(Some(&p), 200, Some("h")), "unchanged");
        assert_eq!(outcome(Some(&p), 200, Some("g")), "changed");
        assert_eq!(outcome(Some(&p), 410, None), "gone");
        let data = encode(Discovery::Link, &p);
        assert_eq!(decode_prior(&data), Some(p));
        assert_eq!(crate::crawl::decode_data(&data), (Discovery::Link, None));
        assert_eq!(
            decode_prior(&crate::crawl::encode_data(Discovery::Seed, Some("http://a/"))),
            None
        );
    }

    #[test]
    fn a_skipped_revisit_keeps_its_prior_and_discovery() {
        let p = Prior {
            status: Some(304),
            hash: Some("h".into()),
            ..Prior::default()
        };
        let mut data = encode(Discovery::Sitemap, &p);
        assert!(!is_skipped(&data));
        data[0] |= SKIP_FLAG;
        assert!(is_skipped(&data));
        assert_eq!(decode_prior(&data), Some(p.clone()));
        assert_eq!(crate::crawl::decode_data(&data), (Discovery::Sitemap, None));
        // Without a prior, the bit is not a skip (a parent URL's first byte, say).
        assert!(!is_skipped(&[SKIP_FLAG | 1, b'h']));
        assert!(p.skippable());
        for status in [None, Some(301), Some(404), Some(500)] {
            assert!(!Prior { status, ..p.clone() }.skippable(), "{status:?}");
        }
    }

    #[test]
    fn pages_revisited_first_lease_newest_first_and_ahead_of_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Frontier::open(dir.path(), Options::default()).expect("frontier");
        let page = |path: &str, priority| NewUrl {
            url: format!("http://a.test/{path}"),
            depth: 2,
            priority,
            data: Vec::new(),
        };
        f.enqueue(vec![
            page("old", Priority::Page),
            NewUrl {
                depth: 1,
                ..page("shallow", Priority::Page)
            },
        ])
        .expect("enqueue");
        let mut fresh = vec![
            (10, page("ten", Priority::Redirect)),
            (30, page("thirty", Priority::Redirect)),
            (20, page("twenty", Priority::Redirect)),
        ];
        enqueue_newest_first(&f, dir.path(), &mut fresh).expect("enqueue");
        assert!(fresh.is_empty());
        let host = f.hosts().expect("read")[0].id;
        let order: Vec<String> = f
            .lease(host, 10)
            .expect("lease")
            .into_iter()
            .map(|l| l.url.trim_start_matches("http://a.test/").to_string())
            .collect();
        assert_eq!(order, ["thirty", "twenty", "ten", "shallow", "old"]);
    }

    #[test]
    fn changed_since_dates_and_summaries() {
        assert_eq!(parse_changed_since("2026-10-22"), Ok(1_792_627_200));
        assert_eq!(
            parse_changed_since("2026-10-22T02:00:00+02:00"),
            Ok(1_792_627_200)
        );
        let e = parse_changed_since("last week").expect_err("not a date");
        assert!(e.contains("RFC 3339") && !e.contains('\n'), "{e}");
        let base = ChangedSince {
            since: "2026-10-22T00:00:00.000Z".into(),
            ..ChangedSince::default()
        };
        let off = ChangedSince {
            sitemaps_off: true,
            revisited: 5,
            ..base.clone()
        };
        assert!(off.to_text().contains("--no-sitemaps") && off.to_text().contains("nothing was skipped"));
        assert!(base.to_text().contains("found no sitemap"), "{}", base.to_text());
        let failed = ChangedSince {
            sitemaps_failed: 2,
            ..base.clone()
        };
        assert!(failed.to_text().contains("no sitemap could be read (2 failed)"));
        let bare = ChangedSince {
            sitemaps_read: 1,
            ..base.clone()
        };
        assert!(
            bare.to_text()
                .contains("none with a <lastmod>; nothing was skipped")
        );
        let some = ChangedSince {
            sitemaps_read: 3,
            lastmods: 9,
            skipped: 4,
            revisited_first: 2,
            revisited: 1,
            ..base
        };
        let t = some.to_text();
        assert!(
            t.contains("4 known pages not refetched") && t.contains("2 revisited first"),
            "{t}"
        );
        assert!(!t.contains("nothing was skipped"));
    }
}
