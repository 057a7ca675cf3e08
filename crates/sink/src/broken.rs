//! The broken-link log: for every link target that ended in a 4xx or 5xx, or in a
//! network error, a JSON line with the pages that linked to it and the anchor text of
//! each link, kept in the state directory for `trawl export DIR --what broken`.
//!
//! A target's first line is written when it fails, with the sources known by then; a
//! page that links to it later adds a line of its own with that one source. Readers
//! merge the lines by URL ([`merge_broken`]). Like every sink, the file is cut back to
//! its checkpoint on resume, so it holds exactly the lines of acked work.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::file::OutFile;
use crate::{Checkpoint, Durability, Error, Result};

/// The name of the broken-link log in a state directory.
pub const BROKEN_FILE: &str = "broken.jsonl";

/// The name its checkpoint is stored under.
pub const BROKEN_CHECKPOINT: &str = "broken";

/// The most sources a broken link lists: the first pages found to link to it.
pub const MAX_LINK_SOURCES: usize = 5;

/// A page that links to a URL, and the link's anchor text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSource {
    /// The linking page (canonical URL). For a redirect's target, the URL that
    /// redirected to it.
    pub url: String,
    /// The link's text (whitespace collapsed, cut to the parser's anchor-text cap);
    /// absent for a redirect or when the link had none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub anchor: Option<String>,
}

/// One line of the broken-link log, and one entry of the merged report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BrokenLink {
    /// The link target that failed (canonical URL).
    pub url: String,
    /// The HTTP status it ended with, `None` for a network error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    /// The failure kind ([`crate::FailureInfo::kind`]), for example `request` or
    /// `timeout`; `http-status` for a 4xx or 5xx response.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub error: String,
    /// The failure's message.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
    /// The pages found to link to it, first found first, at most
    /// [`MAX_LINK_SOURCES`].
    pub sources: Vec<LinkSource>,
    /// What the list of sources may lack, when it may lack something: more pages
    /// linked here than are listed, or links were seen while the tracker was full or
    /// before a resume. Absent when the list is every source the crawl saw.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sources_note: Option<String>,
}

impl BrokenLink {
    /// Whether a failure of this kind and status is a broken link: an HTTP 4xx or 5xx
    /// (`http-status`), or a network error (`request`, `timeout`, `tls`, `body`,
    /// `host-unavailable`, `too-many-redirects`). Refusals of trawl's own (robots.txt,
    /// a size or type cap, a forbidden address) are not.
    pub fn is_broken(kind: &str, status: Option<u16>) -> bool {
        Self::kind_is_broken(kind, status)
    }

    /// Whether a record is of a broken link: a response of status 400 or more (a 404
    /// is a fetched page, not a failure, in the outputs), or a failure
    /// [`BrokenLink::is_broken`] counts.
    pub fn of_record(r: &crate::PageRecord) -> bool {
        match &r.error {
            Some(e) => Self::kind_is_broken(&e.kind, r.status),
            None => r.status.is_some_and(|s| s >= 400),
        }
    }

    fn kind_is_broken(kind: &str, status: Option<u16>) -> bool {
        match kind {
            "http-status" => status.is_some_and(|s| s >= 400),
            "request" | "timeout" | "tls" | "body" | "host-unavailable" | "too-many-redirects" => true,
            _ => false,
        }
    }
}

/// Writes the broken-link log, exactly-once across crashes like every sink.
#[derive(Debug)]
pub struct BrokenSink {
    file: OutFile,
}

impl BrokenSink {
    /// Opens the log at `path`, cut back to `checkpoint` (`None` starts it empty).
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint, [`Error::Io`]
    /// otherwise.
    pub fn open(path: &Path, checkpoint: Option<&Checkpoint>, durability: Durability) -> Result<BrokenSink> {
        let offset = checkpoint.map_or(0, |c| c.offset);
        Ok(BrokenSink {
            file: OutFile::open(path, offset, durability)?,
        })
    }

    /// Appends one line.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn write(&mut self, line: &BrokenLink) -> Result<()> {
        let mut v = serde_json::to_vec(line).map_err(|e| Error::Serialize(Box::new(e)))?;
        v.push(b'\n');
        self.file.write_all(&v)
    }

    /// Pushes everything written out and returns the checkpoint that covers it.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be flushed.
    pub fn checkpoint(&mut self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            file: 0,
            offset: self.file.commit()?,
        })
    }

    /// The lines of the log at `path` up to `checkpoint`, in the order written. A
    /// missing file with a zero checkpoint reads as empty.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, [`Error::Behind`] when it is
    /// shorter than the checkpoint; the iterator yields [`Error::Serialize`] for a line
    /// that does not read.
    pub fn read(
        path: &Path,
        checkpoint: &Checkpoint,
    ) -> Result<Box<dyn Iterator<Item = Result<BrokenLink>>>> {
        crate::file::read_json_lines(path, checkpoint, true)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Merges log lines by URL, in the order the targets first failed: sources are
/// appended without repeats up to [`MAX_LINK_SOURCES`] (a source past the cap sets
/// the note), and the failure is the first line's.
pub fn merge_broken(lines: impl IntoIterator<Item = BrokenLink>) -> Vec<BrokenLink> {
    let mut out: Vec<BrokenLink> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for line in lines {
        let i = *at.entry(line.url.clone()).or_insert_with(|| {
            out.push(BrokenLink {
                sources: Vec::new(),
                ..line.clone()
            });
            out.len() - 1
        });
        let e = &mut out[i];
        if e.error.is_empty() && !line.error.is_empty() {
            e.status = line.status;
            e.error.clone_from(&line.error);
            e.message.clone_from(&line.message);
        }
        for s in line.sources {
            if e.sources.iter().any(|k| k.url == s.url) {
                continue;
            }
            if e.sources.len() >= MAX_LINK_SOURCES {
                e.sources_note = Some(more_sources_note());
                break;
            }
            e.sources.push(s);
        }
        if e.sources_note.is_none() {
            e.sources_note = line.sources_note;
        }
    }
    out
}

/// The note of a target with more sources than are listed.
pub fn more_sources_note() -> String {
    format!("more pages link here; the first {MAX_LINK_SOURCES} found are listed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(u: &str) -> LinkSource {
        LinkSource {
            url: u.into(),
            anchor: Some(format!("to {u}")),
        }
    }

    #[test]
    fn lines_merge_by_url_with_sources_deduplicated_and_capped() {
        let first = BrokenLink {
            url: "http://a.test/x".into(),
            status: Some(404),
            error: "http-status".into(),
            message: "404".into(),
            sources: vec![src("http://a.test/1"), src("http://a.test/2")],
            sources_note: None,
        };
        let mut lines = vec![first.clone()];
        for k in [2, 3, 4, 5, 6, 7] {
            lines.push(BrokenLink {
                url: "http://a.test/x".into(),
                sources: vec![src(&format!("http://a.test/{k}"))],
                ..Default::default()
            });
        }
        lines.push(BrokenLink {
            url: "http://a.test/y".into(),
            error: "timeout".into(),
            sources: vec![src("http://a.test/9")],
            ..Default::default()
        });
        let m = merge_broken(lines);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].status, Some(404));
        let urls: Vec<&str> = m[0].sources.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://a.test/1",
                "http://a.test/2",
                "http://a.test/3",
                "http://a.test/4",
                "http://a.test/5"
            ]
        );
        assert_eq!(m[0].sources_note, Some(more_sources_note()));
        assert_eq!(m[1].url, "http://a.test/y");
        assert_eq!(m[1].sources_note, None);
    }

    #[test]
    fn reads_back_up_to_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(BROKEN_FILE);
        assert_eq!(
            BrokenSink::read(&path, &Checkpoint::default())
                .expect("missing reads empty")
                .count(),
            0
        );
        let mut s = BrokenSink::open(&path, None, Durability::Os).expect("open");
        let line = BrokenLink {
            url: "http://a.test/x".into(),
            error: "request".into(),
            sources: vec![src("http://a.test/")],
            ..Default::default()
        };
        s.write(&line).expect("write");
        let cp = s.checkpoint().expect("cp");
        s.write(&line).expect("write");
        s.checkpoint().expect("cp");
        let got: Vec<BrokenLink> = BrokenSink::read(&path, &cp)
            .expect("read")
            .collect::<Result<_>>()
            .expect("lines");
        assert_eq!(got, vec![line]);
        assert!(BrokenLink::is_broken("http-status", Some(410)));
        assert!(!BrokenLink::is_broken("http-status", Some(304)));
        assert!(!BrokenLink::is_broken("robots-denied", None));
    }
}
