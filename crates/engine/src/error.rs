//! [`Error`]: why a crawl could not start or had to stop. A bad page is never one of
//! these; it becomes a failed record.

use std::path::PathBuf;

/// Why a crawl could not start or had to stop early. After any of these the state
/// directory is still consistent and resumable.
///
/// Each variant's message either includes its cause or returns it as
/// [`source()`](std::error::Error::source), never both, so printing the chain of
/// sources says everything once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a bad seed, pattern or setting).
    #[error("{}{message}", setting.map(|s| format!("{s}: ")).unwrap_or_default())]
    Config {
        /// The setting at fault, by its flag and file-key name (`rate`,
        /// `per-host-concurrency`, `include`, …); `None` for the seeds.
        setting: Option<&'static str>,
        /// What is wrong with it.
        message: String,
    },
    /// The state directory could not be used: locked by another crawl, of another
    /// crawl, damaged, or a disk error.
    #[error("state directory {}", dir.display())]
    State {
        /// The directory.
        dir: PathBuf,
        /// The frontier's error.
        #[source]
        source: trawl_frontier::Error,
    },
    /// The outputs given differ from those this crawl writes, or would overwrite a
    /// file.
    #[error("{0}")]
    Outputs(String),
    /// An output could not be written (a full disk, say).
    #[error("output")]
    Sink(#[from] trawl_sink::Error),
    /// The HTTP client could not be built.
    #[error("fetcher")]
    Fetcher(#[source] Box<trawl_fetcher::Error>),
    /// No seed of a new crawl could be reached.
    #[error("cannot reach any seed ({})", reasons.join("; "))]
    Unreachable {
        /// Why, one entry per seed.
        reasons: Vec<String>,
    },
    /// A seed's TLS certificate is not trusted or its handshake failed.
    #[error("cannot connect to {seed} securely")]
    SeedTls {
        /// The seed.
        seed: String,
        /// The fetcher's [`trawl_fetcher::Error::Tls`].
        #[source]
        source: Box<trawl_fetcher::Error>,
    },
    /// A task of the pipeline failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<trawl_fetcher::Error> for Error {
    fn from(e: trawl_fetcher::Error) -> Error {
        Error::Fetcher(Box::new(e))
    }
}

impl Error {
    pub(crate) fn state(dir: &std::path::Path, source: trawl_frontier::Error) -> Error {
        Error::State {
            dir: dir.to_path_buf(),
            source,
        }
    }

    /// A damaged state directory: something stored in it does not read.
    pub(crate) fn damaged(dir: &std::path::Path, detail: impl Into<String>) -> Error {
        Error::state(
            dir,
            trawl_frontier::Error::Corrupt {
                detail: detail.into(),
            },
        )
    }

    /// Whether the cause is a full disk (by its error kind or errno, never its text).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Sink(e) => e.is_disk_full(),
            Error::State { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    /// Whether this worker lost its claim on a shared crawl
    /// ([`trawl_frontier::Error::LostOwnership`]): it then opens the store again,
    /// which cuts its outputs back to its stored checkpoints, and goes on.
    pub fn is_lost_ownership(&self) -> bool {
        matches!(
            self,
            Error::State {
                source: trawl_frontier::Error::LostOwnership { .. },
                ..
            }
        )
    }

    /// Whether another process holds the state directory.
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            Error::State {
                source: trawl_frontier::Error::Locked { .. },
                ..
            }
        )
    }
}
