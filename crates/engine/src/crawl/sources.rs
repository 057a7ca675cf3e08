//! The broken-link tracker, owned by the commit stage: which pages link to a URL that
//! has not finished yet, so that when it fails the broken-link log
//! ([`trawl_sink::BrokenSink`], `broken.jsonl` in the state directory) can say who
//! linked to it and with what text.
//!
//! - The first source of every URL is durable already: it travels with the URL in the
//!   frontier ([`super::encode_origin`]: parent and anchor).
//! - Later sources are kept here, in memory, for the URLs still pending: an entry is
//!   made only for a URL the frontier reports as new in an ack
//!   ([`FrontierStore::ack_new`]), so nothing already finished is ever held, and it is
//!   dropped when the URL finishes. At most [`MAX_LINK_SOURCES`] sources per URL, and
//!   [`TRACKER_BUDGET`] bytes in all; past that, new URLs are not followed, and the
//!   failures that may lack sources say so.
//! - A link to a URL that already failed becomes a line of its own, up to the cap. The
//!   failed URLs' source counts are rebuilt from the log on resume.
//!
//! Lines are written before the ack and the log's checkpoint is stored with it, so the
//! log is exactly-once across crashes like every output. What a crash loses is the
//! in-memory sources of URLs pending at the time: their failures note it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use trawl_frontier::{Fingerprint, NewUrl, Outcome};
use trawl_sink::{
    BrokenLink, BrokenSink, Checkpoint, Discovery, LinkSource, MAX_LINK_SOURCES, more_sources_note,
};

use super::decode_origin;
use super::parse::Done;

/// The memory the tracker may hold for pending URLs' later sources.
pub(crate) const TRACKER_BUDGET: usize = 4 << 20;

/// What a pending URL costs in the maps, about.
const ENTRY_BYTES: usize = 24;

/// The later sources of one pending URL.
#[derive(Debug, Default)]
struct Extras {
    list: Vec<(Arc<str>, Option<Box<str>>)>,
    /// More sources were seen than are kept.
    more: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Sources {
    log: BrokenSink,
    /// Pending URLs (by the low half of their fingerprint) that were new in one of
    /// this process's acks, with their later sources, if any.
    pending: HashMap<u64, Option<Box<Extras>>>,
    /// Failed URLs with the number of sources logged (up to the cap, plus one once a
    /// source past it was seen).
    failed: HashMap<u64, u8>,
    bytes: usize,
    /// Why a failure not in `pending` may lack sources, once that can happen.
    lossy: Option<&'static str>,
    /// URLs of the batch in flight that were unknown here: made pending if the
    /// frontier reports them new.
    unknown: HashSet<u64>,
    /// Sources of the batch in flight for those unknown URLs, after their first.
    unknown_extras: Vec<(u64, Arc<str>, Option<Box<str>>)>,
}

fn key(url: &str) -> u64 {
    Fingerprint::of(url).0 as u64
}

/// Whether `data` says a link (or a redirect) found the URL.
fn is_link(u: &NewUrl) -> bool {
    matches!(u.data.first(), Some(1 | 2))
}

impl Sources {
    /// The tracker over `log`, with the failed URLs' counts from the lines it holds.
    /// `resumed_pending`: URLs were pending when an earlier run stopped (their later
    /// sources, held in that run's memory, are gone).
    pub(crate) fn new(
        log: BrokenSink,
        lines: impl IntoIterator<Item = BrokenLink>,
        resumed_pending: bool,
    ) -> Sources {
        let mut failed: HashMap<u64, u8> = HashMap::new();
        for l in lines {
            let n = failed.entry(key(&l.url)).or_insert(0);
            *n = if l.sources_note.as_deref() == Some(more_sources_note().as_str()) {
                MAX_LINK_SOURCES as u8 + 1
            } else {
                n.saturating_add(l.sources.len() as u8)
                    .min(MAX_LINK_SOURCES as u8 + 1)
            };
        }
        Sources {
            log,
            pending: HashMap::new(),
            failed,
            bytes: 0,
            lossy: resumed_pending
                .then_some("the pages that linked here before the crawl was resumed are not all known"),
            unknown: HashSet::new(),
            unknown_extras: Vec::new(),
        }
    }

    /// A large link set enqueued ahead of its ack: its URLs' new-ness is not reported,
    /// so later links to them are not followed.
    pub(crate) fn untracked_links(&mut self) {
        self.lossy
            .get_or_insert("a page linking here had too many links to follow each one");
    }

    /// Before the batch's ack: logs the batch's broken URLs with their sources, and
    /// the batch's links to URLs that already failed; notes the links to pending URLs.
    ///
    /// # Errors
    /// When the log cannot be written.
    pub(crate) fn before_ack(&mut self, batch: &[Done]) -> trawl_sink::Result<()> {
        self.unknown.clear();
        self.unknown_extras.clear();
        for d in batch {
            let k = d.lease.fp.0 as u64;
            match (&d.outcome, &d.record) {
                (Outcome::Retry, _) => {}
                (_, Some(rec)) if BrokenLink::of_record(rec) => {
                    self.log_failure(k, d, rec)?;
                }
                _ => {
                    if let Some(extras) = self.pending.remove(&k) {
                        let held = ENTRY_BYTES + extras.as_deref().map_or(0, extras_bytes);
                        self.bytes = self.bytes.saturating_sub(held);
                    }
                }
            }
            let links = d.discovered.iter().filter(|u| is_link(u));
            let mut source: Option<Arc<str>> = None;
            for u in links {
                let t = key(&u.url);
                let anchor = || decode_origin(&u.data).anchor.map(String::into_boxed_str);
                let mut src = || {
                    source
                        .get_or_insert_with(|| Arc::from(d.lease.url.as_str()))
                        .clone()
                };
                if let Some(n) = self.failed.get_mut(&t) {
                    let n0 = usize::from(*n);
                    if n0 <= MAX_LINK_SOURCES {
                        *n += 1;
                        let line = BrokenLink {
                            url: u.url.clone(),
                            sources: if n0 < MAX_LINK_SOURCES {
                                vec![LinkSource {
                                    url: d.lease.url.clone(),
                                    anchor: anchor().map(String::from),
                                }]
                            } else {
                                Vec::new()
                            },
                            sources_note: (n0 == MAX_LINK_SOURCES).then(more_sources_note),
                            ..BrokenLink::default()
                        };
                        self.log.write(&line)?;
                    }
                } else if let Some(slot) = self.pending.get_mut(&t) {
                    let x = slot.get_or_insert_with(Box::default);
                    if x.list.len() + 1 >= MAX_LINK_SOURCES {
                        x.more = true;
                    } else if self.bytes < TRACKER_BUDGET {
                        let a = anchor();
                        self.bytes += 40 + a.as_ref().map_or(0, |a| a.len());
                        x.list.push((src(), a));
                    } else {
                        self.lossy
                            .get_or_insert("links were seen while the link tracker was full");
                    }
                } else if !self.unknown.insert(t) {
                    self.unknown_extras.push((t, src(), anchor()));
                }
            }
        }
        Ok(())
    }

    /// After the ack: the URLs it enqueued become pending (their first source went
    /// with them into the frontier), with the batch's later links to them.
    pub(crate) fn after_ack(&mut self, new: &[Fingerprint]) {
        for fp in new {
            let k = fp.0 as u64;
            if !self.unknown.contains(&k) {
                continue;
            }
            if self.bytes + ENTRY_BYTES > TRACKER_BUDGET {
                self.lossy
                    .get_or_insert("links were seen while the link tracker was full");
                continue;
            }
            self.bytes += ENTRY_BYTES;
            self.pending.insert(k, None);
        }
        for (k, src, anchor) in std::mem::take(&mut self.unknown_extras) {
            let Some(slot) = self.pending.get_mut(&k) else {
                continue;
            };
            let x = slot.get_or_insert_with(Box::default);
            if x.list.len() + 1 >= MAX_LINK_SOURCES {
                x.more = true;
            } else {
                self.bytes += 40 + anchor.as_ref().map_or(0, |a| a.len());
                x.list.push((src, anchor));
            }
        }
    }

    /// The log's checkpoint, to store with the ack.
    ///
    /// # Errors
    /// When the log cannot be flushed.
    pub(crate) fn checkpoint(&mut self) -> trawl_sink::Result<Checkpoint> {
        self.log.checkpoint()
    }

    fn log_failure(&mut self, k: u64, d: &Done, rec: &trawl_sink::PageRecord) -> trawl_sink::Result<()> {
        let origin = decode_origin(&d.lease.data);
        let mut sources = Vec::new();
        if let Some(p) = origin.parent {
            sources.push(LinkSource {
                url: p,
                anchor: origin.anchor,
            });
        }
        let mut note = None;
        match self.pending.remove(&k) {
            Some(extras) => {
                self.bytes = self.bytes.saturating_sub(ENTRY_BYTES);
                if let Some(x) = extras {
                    self.bytes = self.bytes.saturating_sub(extras_bytes(&x));
                    for (u, a) in x.list {
                        if sources.len() < MAX_LINK_SOURCES && !sources.iter().any(|s| *s.url == *u) {
                            sources.push(LinkSource {
                                url: u.to_string(),
                                anchor: a.map(String::from),
                            });
                        }
                    }
                    if x.more {
                        note = Some(more_sources_note());
                    }
                }
            }
            None if matches!(origin.discovery, Discovery::Sitemap | Discovery::Seed) => {
                note = Some(
                    "first found in a sitemap or as a seed: the pages that linked to it before it failed are not known"
                        .to_string(),
                );
            }
            None => note = self.lossy.map(String::from),
        }
        let logged = if note == Some(more_sources_note()) {
            MAX_LINK_SOURCES + 1
        } else {
            sources.len()
        } as u8;
        let (error, message) = match &rec.error {
            Some(e) => (e.kind.clone(), e.message.clone()),
            None => (
                "http-status".to_string(),
                format!("HTTP {}", rec.status.unwrap_or_default()),
            ),
        };
        self.log.write(&BrokenLink {
            url: rec.url.clone(),
            status: rec.status,
            error,
            message,
            sources,
            sources_note: note,
        })?;
        self.failed.insert(k, logged);
        Ok(())
    }
}

fn extras_bytes(x: &Extras) -> usize {
    x.list
        .iter()
        .map(|(_, a)| 40 + a.as_ref().map_or(0, |a| a.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use trawl_frontier::{HostId, Lease, Priority};
    use trawl_sink::{Durability, FailureInfo, PageRecord, merge_broken};

    use super::super::encode_origin;
    use super::*;

    fn lease(url: &str, parent: Option<(&str, &str)>) -> Lease {
        Lease {
            fp: Fingerprint::of(url),
            url: url.into(),
            host: HostId(0),
            depth: 1,
            priority: Priority::Page,
            attempts: 1,
            data: match parent {
                Some((p, a)) => encode_origin(Discovery::Link, Some(p), Some(a)),
                None => encode_origin(Discovery::Seed, None, None),
            },
        }
    }

    /// A page `url` that answered `status` and links to `links`.
    fn page(url: &str, parent: Option<(&str, &str)>, status: u16, links: &[&str]) -> Done {
        let l = lease(url, parent);
        Done {
            record: Some(PageRecord {
                url: url.into(),
                status: Some(status),
                ..PageRecord::default()
            }),
            discovered: links
                .iter()
                .map(|t| NewUrl {
                    url: (*t).into(),
                    depth: 2,
                    priority: Priority::Page,
                    data: encode_origin(Discovery::Link, Some(url), Some(&format!("{url} to {t}"))),
                })
                .collect(),
            lease: l,
            host: "a.test".into(),
            exchange: None,
            outcome: Outcome::Done,
            host_failure: None,
            cool: None,
            bytes: 0,
        }
    }

    /// Runs batches through the tracker, with the frontier's verdict of what was new
    /// (everything not seen in an earlier batch), and returns the merged report.
    fn run(batches: Vec<Vec<Done>>) -> (Vec<BrokenLink>, Sources) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("broken.jsonl");
        let log = BrokenSink::open(&path, None, Durability::Os).expect("open");
        let mut s = Sources::new(log, Vec::new(), false);
        let mut known: HashSet<String> = HashSet::new();
        for batch in batches {
            s.before_ack(&batch).expect("log");
            let mut new = Vec::new();
            for d in &batch {
                known.insert(d.lease.url.clone());
                for u in &d.discovered {
                    if known.insert(u.url.clone()) {
                        new.push(Fingerprint::of(&u.url));
                    }
                }
            }
            s.after_ack(&new);
        }
        let cp = s.checkpoint().expect("cp");
        let lines = BrokenSink::read(&path, &cp)
            .expect("read")
            .collect::<trawl_sink::Result<Vec<_>>>()
            .expect("lines");
        (merge_broken(lines), s)
    }

    #[test]
    fn sources_before_and_after_the_failure_are_kept_up_to_the_cap() {
        let x = "http://a.test/x";
        let mut batches = vec![vec![page(
            "http://a.test/",
            None,
            200,
            &["http://a.test/1", "http://a.test/2", x],
        )]];
        // Two more pages link to x before it fails, one in the batch that fails it.
        batches.push(vec![page(
            "http://a.test/1",
            Some(("http://a.test/", "one")),
            200,
            &[x],
        )]);
        let mut fail = page(x, Some(("http://a.test/", "to x")), 404, &[]);
        fail.record.as_mut().expect("record").error = None;
        batches.push(vec![
            page("http://a.test/2", Some(("http://a.test/", "two")), 200, &[x]),
            fail,
        ]);
        // Then six more after it: two fit under the cap of five, then a note.
        batches.push(
            (3..9)
                .map(|k| page(&format!("http://a.test/{k}"), None, 200, &[x]))
                .collect(),
        );
        let (report, s) = run(batches);
        assert_eq!(report.len(), 1, "{report:?}");
        let r = &report[0];
        assert_eq!(
            (r.url.as_str(), r.status, r.error.as_str()),
            (x, Some(404), "http-status")
        );
        let urls: Vec<&str> = r.sources.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://a.test/",
                "http://a.test/1",
                "http://a.test/2",
                "http://a.test/3",
                "http://a.test/4"
            ]
        );
        assert_eq!(r.sources[0].anchor.as_deref(), Some("to x"));
        assert_eq!(
            r.sources[1].anchor.as_deref(),
            Some("http://a.test/1 to http://a.test/x")
        );
        assert_eq!(r.sources_note, Some(more_sources_note()));
        assert!(
            s.pending.keys().all(|k| *k != key(x)),
            "a finished URL is not held"
        );
    }

    #[test]
    fn a_network_failure_is_broken_and_a_refusal_is_not() {
        let mut down = page("http://a.test/down", Some(("http://a.test/", "down")), 0, &[]);
        down.outcome = Outcome::Failed("request: refused".into());
        let rec = down.record.as_mut().expect("record");
        rec.status = None;
        rec.error = Some(FailureInfo {
            kind: "request".into(),
            message: "connection refused".into(),
        });
        let mut denied = page("http://a.test/private", Some(("http://a.test/", "p")), 0, &[]);
        denied.outcome = Outcome::Failed("robots-denied".into());
        let rec = denied.record.as_mut().expect("record");
        rec.status = None;
        rec.error = Some(FailureInfo {
            kind: "robots-denied".into(),
            message: "disallowed".into(),
        });
        let (report, _) = run(vec![vec![down, denied]]);
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(report[0].error, "request");
        assert_eq!(report[0].sources.len(), 1);
    }
}
