//! [`Error`]: why a crawl could not start or had to stop. A bad page is never one of
//! these; it becomes a failed record.

use std::path::PathBuf;

/// Why a crawl could not start or had to stop early. After any of these the state
/// directory is still consistent and resumable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a bad seed, pattern or setting).
    #[error("{0}")]
    Config(String),
    /// The state directory could not be used: locked by another crawl, of another
    /// crawl, damaged, or a disk error.
    #[error("state directory {}: {source}", dir.display())]
    State {
        /// The directory.
        dir: PathBuf,
        /// The frontier's error.
        #[source]
        source: trawl_frontier::Error,
    },
    /// The outputs given differ from those this crawl writes.
    #[error("{0}")]
    Outputs(String),
    /// An output could not be written (a full disk, say).
    #[error("output: {0}")]
    Sink(#[from] trawl_sink::Error),
    /// The HTTP client could not be built.
    #[error("fetcher: {0}")]
    Fetcher(#[from] trawl_fetcher::Error),
    /// A task of the pipeline failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn state(dir: &std::path::Path, source: trawl_frontier::Error) -> Error {
        Error::State {
            dir: dir.to_path_buf(),
            source,
        }
    }

    /// Whether the cause is a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Sink(e) => e.is_disk_full(),
            Error::State { source, .. } => source.to_string().contains("No space left"),
            _ => false,
        }
    }
}
