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
//! [`PageRecord::recrawl`]: trawl_sink::PageRecord::recrawl

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_frontier::{Frontier, FrontierStore, NewUrl, Options, Priority};
use trawl_sink::{Checkpoint, Discovery, HISTORY_FILE, HistorySink};

use crate::error::Error;

/// The folder of a crawl's state directory that holds its recrawls' directories.
pub const RECRAWL_DIR: &str = "recrawl";

/// The meta key that marks a recrawl's frontier as holding its whole history.
const SEEDED: &str = "recrawl-seeded";

/// URLs of the history queued per frontier batch.
const SEED_BATCH: usize = 1024;

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
    let c = f.counts();
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

/// Queues every URL of the history in `source` into the recrawl's `frontier`, once:
/// a frontier that holds it already (its meta says so) is left as it is. Returns the
/// URLs read.
pub(crate) fn seed(frontier: &Frontier, dir: &Path, source: &Path) -> Result<u64, Error> {
    if frontier.meta(SEEDED).map_err(|e| Error::state(dir, e))?.is_some() {
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
        batch.push(NewUrl {
            url: e.url,
            depth: e.depth,
            priority: Priority::Page,
            data: encode(e.discovery, &prior),
        });
        n += 1;
        if batch.len() == SEED_BATCH {
            frontier
                .enqueue(std::mem::take(&mut batch))
                .map_err(|e| Error::state(dir, e))?;
        }
    }
    frontier.enqueue(batch).map_err(|e| Error::state(dir, e))?;
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
}
