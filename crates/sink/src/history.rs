//! The crawl history: one JSON line per finished URL, kept in the state directory, with
//! what a recrawl needs to revisit it: its validators (sent back as `If-None-Match` and
//! `If-Modified-Since`), its content hash (to tell `unchanged` from `changed`) and the
//! capture a WARC revisit record refers to. It is a sink like the others, cut back to
//! its checkpoint on resume, so it holds exactly one line per acked URL.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::file::OutFile;
use crate::{Checkpoint, Discovery, Durability, Error, Exchange, PageRecord, Result, Sink};

/// The name of the history file in a state directory.
pub const HISTORY_FILE: &str = "history.jsonl";

/// What the history keeps of one URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The URL (canonical).
    pub url: String,
    /// Its depth.
    pub depth: u16,
    /// How it was found.
    pub discovery: Discovery,
    /// The status received, `None` when the URL failed without a response.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    /// The `ETag` of the content this entry stands for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    /// The `Last-Modified` of that content.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_modified: Option<String>,
    /// Its content hash ([`PageRecord::content_hash`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<String>,
    /// The `WARC-Date` of the WARC response record that holds this content, when the
    /// crawl wrote one (a revisit keeps pointing at the original capture).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capture: Option<String>,
}

/// Writes the history file, exactly-once across crashes like every sink.
#[derive(Debug)]
pub struct HistorySink {
    file: OutFile,
}

impl HistorySink {
    /// Opens the history at `path`, cut back to `checkpoint` (`None` starts it empty).
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint, [`Error::Io`]
    /// otherwise.
    pub fn open(path: &Path, checkpoint: Option<&Checkpoint>, durability: Durability) -> Result<HistorySink> {
        let offset = checkpoint.map_or(0, |c| c.offset);
        Ok(HistorySink {
            file: OutFile::open(path, offset, durability)?,
        })
    }

    /// The entries of the history at `path` up to `checkpoint` (what was acked; a
    /// crash may have left more after it), in the order they were written.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, [`Error::Behind`] when it is
    /// shorter than the checkpoint; the iterator yields [`Error::Serialize`] for a line
    /// that does not read.
    pub fn read(path: &Path, checkpoint: &Checkpoint) -> Result<impl Iterator<Item = Result<HistoryEntry>>> {
        crate::file::read_json_lines(path, checkpoint, false)
    }
}

impl Sink for HistorySink {
    fn name(&self) -> &str {
        "history"
    }

    fn write(&mut self, r: &PageRecord, exchange: Option<&Exchange<'_>>) -> Result<()> {
        // A record without a response of its own (skipped-unchanged) stands for the
        // capture it carries.
        let carried = r.carried.as_ref();
        let capture = match exchange {
            Some(x) => Some(match x.revisit {
                Some(v) => v.refers_to_date.to_string(),
                None => r.fetched_at.clone(),
            }),
            None => carried.and_then(|c| c.capture.clone()),
        };
        let entry = HistoryEntry {
            url: r.url.clone(),
            depth: r.depth,
            discovery: r.discovery,
            status: r.status.or_else(|| carried.and_then(|c| c.status)),
            etag: r.etag.clone(),
            last_modified: r.last_modified.clone(),
            hash: r.content_hash.clone(),
            capture,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| Error::Serialize(Box::new(e)))?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            file: 0,
            offset: self.file.commit()?,
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.file.path().to_path_buf()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_up_to_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(HISTORY_FILE);
        let mut h = HistorySink::open(&path, None, Durability::Os).expect("open");
        let rec = PageRecord {
            url: "http://a.test/".into(),
            status: Some(200),
            etag: Some("\"x\"".into()),
            content_hash: Some("xxh3:1".into()),
            fetched_at: "2026-01-01T00:00:00.000Z".into(),
            ..Default::default()
        };
        h.write(&rec, None).expect("write");
        let cp = h.checkpoint().expect("cp");
        h.write(
            &PageRecord {
                url: "http://a.test/later".into(),
                ..Default::default()
            },
            None,
        )
        .expect("write");
        h.checkpoint().expect("cp");
        let got: Vec<HistoryEntry> = HistorySink::read(&path, &cp)
            .expect("read")
            .collect::<Result<_>>()
            .expect("entries");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].url, "http://a.test/");
        assert_eq!(got[0].etag.as_deref(), Some("\"x\""));
        assert_eq!(got[0].capture, None, "no WARC, no capture");
    }

    #[test]
    fn a_record_without_a_response_keeps_what_it_carries() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(HISTORY_FILE);
        let mut h = HistorySink::open(&path, None, Durability::Os).expect("open");
        let rec = PageRecord {
            url: "http://a.test/same".into(),
            content_hash: Some("xxh3:1".into()),
            recrawl: Some(crate::SKIPPED_UNCHANGED.into()),
            carried: Some(crate::Carried {
                status: Some(200),
                capture: Some("2026-01-01T00:00:00.000Z".into()),
            }),
            ..Default::default()
        };
        h.write(&rec, None).expect("write");
        let cp = h.checkpoint().expect("cp");
        let got: Vec<HistoryEntry> = HistorySink::read(&path, &cp)
            .expect("read")
            .collect::<Result<_>>()
            .expect("entries");
        assert_eq!(got[0].status, Some(200));
        assert_eq!(got[0].capture.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(got[0].hash.as_deref(), Some("xxh3:1"));
        let json = serde_json::to_string(&rec).expect("json");
        assert!(
            !json.contains("carried") && !json.contains("2026-01-01"),
            "{json}"
        );
    }
}
