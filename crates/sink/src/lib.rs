//! trawl-sink: the output writers of the trawl crawler, exactly-once across crashes.
//!
//! Crawl output is what users keep, so a sink never corrupts it and never duplicates
//! it, even when the process dies in the middle of a write.
//!
//! - [`PageRecord`] is the record written for every finished URL (fetched or failed).
//!   Its fields are the JSON Lines keys and the CSV columns ([`CSV_HEADER`]); fields
//!   are only added, at the end: `limits` (the parse caps a page hit) and `skipped`
//!   (why a body was not downloaded, [`SKIPPED_CONTENT_TYPE`]) came last.
//! - [`Sink`] is the writer interface: write records, take a [`Checkpoint`], and reopen
//!   cut back to a checkpoint.
//! - [`JsonlSink`] (the default format), [`CsvSink`] and [`WarcSink`] (WARC 1.1, one
//!   gzip member per record, rotating files, revisit records, and a CDXJ index of its
//!   records written alongside, [`WarcSink::with_cdxj`]) implement it.
//! - [`HistorySink`] keeps, in the state directory, what a recrawl needs of each URL:
//!   its validators, content hash and the capture a revisit refers to.
//!
//! # How exactly-once works
//! The engine writes a batch of records, calls [`Sink::checkpoint`], and stores the
//! returned checkpoint in the frontier *in the same atomic batch* as the acks of those
//! URLs. After a crash, the frontier has some last checkpoint `c` whose URLs are done;
//! everything after `c` in the file belongs to URLs that were not acked and will be
//! fetched again. Reopening the sink with `c` cuts the file back to exactly `c`, so no
//! record is lost and none is written twice. A torn last line is simply cut off.
//!
//! # Durability
//! - [`Durability::Os`] (the default): a checkpoint hands all buffered bytes to the OS
//!   with `write`. That survives `kill -9` and any crash of trawl itself; a power loss
//!   or kernel crash can lose what the OS had not yet written to disk.
//! - [`Durability::Fsync`]: a checkpoint also calls `fsync`, so acked output survives
//!   power loss, at the price of a disk flush per checkpoint.
//!
//! Writing to standard output ([`JsonlSink::stdout`]) cannot be cut back, so it has no
//! exactly-once promise: after a crash and resume, records written after the last
//! checkpoint appear again.
//!
//! # Example
//! ```
//! use trawl_sink::{Durability, JsonlSink, PageRecord, Sink};
//!
//! # fn main() -> Result<(), trawl_sink::Error> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let path = dir.path().join("pages.jsonl");
//! let mut sink = JsonlSink::create(&path, Durability::Os)?;
//! sink.write(&PageRecord { url: "http://example.com/".into(), status: Some(200), ..Default::default() }, None)?;
//! let checkpoint = sink.checkpoint()?; // store this with the acks
//! sink.write(&PageRecord { url: "http://example.com/a".into(), ..Default::default() }, None)?;
//! drop(sink); // as if the process died before the second ack
//!
//! let sink = JsonlSink::resume(&path, &checkpoint, Durability::Os)?;
//! drop(sink);
//! assert_eq!(std::fs::read_to_string(&path).expect("read").lines().count(), 1);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `record`: [`PageRecord`] and its parts, [`Exchange`].
//! - `file`: the buffered output file with truncation and durability.
//! - `jsonl`, `csv_sink`, `warc`: the three writers.
//! - `cdxj`: the CDXJ index of a WARC output, and [`surt`].
//! - `history`: [`HistorySink`] and [`HistoryEntry`].
//! - `broken`: [`BrokenSink`], the broken-link log, and [`merge_broken`].
//! - `wacz`: [`write_wacz`], a WACZ 1.1.1 package of WARCs and their index.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod broken;
mod cdxj;
mod csv_sink;
mod file;
mod history;
mod jsonl;
mod record;
mod wacz;
mod warc;

use std::path::{Path, PathBuf};

pub use broken::{
    BROKEN_CHECKPOINT, BROKEN_FILE, BrokenLink, BrokenSink, LinkSource, MAX_LINK_SOURCES, merge_broken,
    more_sources_note,
};
pub use cdxj::{cdxj_path, surt};
pub use csv_sink::{CSV_HEADER, CsvSink};
pub use history::{HISTORY_FILE, HistoryEntry, HistorySink};
pub use jsonl::JsonlSink;
pub use record::{
    Carried, Discovery, Exchange, FailureInfo, PageRecord, RECRAWL_OUTCOMES, Revisit, RevisitProfile,
    RobotsFlags, SKIPPED_CONTENT_TYPE, SKIPPED_UNCHANGED, Timings, rfc3339_ms,
};
pub use wacz::{WaczInput, WaczSummary, write_wacz};
pub use warc::{CDXJ_CHECKPOINT, WarcOptions, WarcSink, rotated_path};

/// What can go wrong writing output. Each one stops the crawl cleanly: the frontier
/// keeps the last checkpoint, and nothing already written is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing an output file failed (a full disk, a read-only directory…).
    #[error("cannot write {}", path.display())]
    Io {
        /// The output file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An output file is shorter than the checkpoint the crawl stored for it, so output
    /// that counts as written is missing (the file was truncated or replaced by
    /// something else).
    #[error("{} holds {found} bytes but the crawl's checkpoint says {checkpoint}; it was changed outside trawl", path.display())]
    Behind {
        /// The output file.
        path: PathBuf,
        /// The stored checkpoint offset.
        checkpoint: u64,
        /// The file's actual length.
        found: u64,
    },
    /// A checkpoint that does not decode, or belongs to another kind of sink.
    #[error("the stored output checkpoint is not valid: {0}")]
    BadCheckpoint(String),
    /// A record could not be serialized.
    #[error("cannot serialize a record")]
    Serialize(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether this is the disk being full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(28))
    }
}

/// The sink's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How hard a checkpoint pushes data towards the disk. See the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Hand the data to the OS: survives `kill -9`, not power loss.
    #[default]
    Os,
    /// Also `fsync`: survives power loss.
    Fsync,
}

/// A position in a sink's output: which file (for rotating sinks) and the byte offset
/// in it. It is stored in the frontier as 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The index of the current file (always 0 for sinks that do not rotate).
    pub file: u32,
    /// Bytes of that file that hold complete, acked records.
    pub offset: u64,
}

impl Checkpoint {
    /// The 12-byte form stored in the frontier.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.file.to_be_bytes());
        b[4..].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    /// Parses the 12-byte form.
    ///
    /// # Errors
    /// [`Error::BadCheckpoint`] for any other length.
    pub fn from_bytes(b: &[u8]) -> Result<Checkpoint> {
        let b: &[u8; 12] = b
            .try_into()
            .map_err(|_| Error::BadCheckpoint(format!("{} bytes, expected 12", b.len())))?;
        let (file, offset) = b.split_at(4);
        let mut f = [0u8; 4];
        f.copy_from_slice(file);
        let mut o = [0u8; 8];
        o.copy_from_slice(offset);
        Ok(Checkpoint {
            file: u32::from_be_bytes(f),
            offset: u64::from_be_bytes(o),
        })
    }
}

/// An output writer that can be cut back to a checkpoint.
///
/// Implementations open in one of two ways, by convention: `create` for a new crawl
/// (the output starts empty) and `resume` with the last stored checkpoint.
pub trait Sink: Send {
    /// The name the engine stores this sink's checkpoint under (for example `jsonl`).
    fn name(&self) -> &str;

    /// Writes one record. `exchange` carries the raw HTTP messages for sinks that need
    /// them (WARC); a failed URL with no response has none.
    fn write(&mut self, record: &PageRecord, exchange: Option<&Exchange<'_>>) -> Result<()>;

    /// Pushes everything written so far out (to the OS, or to disk in
    /// [`Durability::Fsync`] mode) and returns the checkpoint that covers it.
    fn checkpoint(&mut self) -> Result<Checkpoint>;

    /// The checkpoints of files this sink keeps besides its main output, each stored
    /// in the ack under its own name, as of the last [`Sink::checkpoint`] (the WARC
    /// sink's CDXJ index, [`CDXJ_CHECKPOINT`]). By default, none.
    fn side_checkpoints(&self) -> Vec<(&'static str, Checkpoint)> {
        Vec::new()
    }

    /// The files this sink has written to, for `trawl status`.
    fn paths(&self) -> Vec<PathBuf>;
}
