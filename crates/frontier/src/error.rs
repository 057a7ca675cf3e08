//! The frontier's error type.

use std::path::PathBuf;

/// What can go wrong opening or using a frontier.
///
/// A URL that fails to fetch is not an error here: it is acked with
/// [`Outcome::Failed`](crate::Outcome::Failed). These errors are about the state
/// directory itself, and each one leaves the directory as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the directory's lock.
    #[error("another crawl is using this directory: {}", path.display())]
    Locked {
        /// The state directory.
        path: PathBuf,
    },
    /// The directory holds something that is not a trawl frontier.
    #[error("{} is not a trawl state directory (it holds other files)", path.display())]
    Foreign {
        /// The state directory.
        path: PathBuf,
    },
    /// The directory was written by an incompatible version of trawl.
    #[error("state directory schema version {found} is not supported (this trawl reads version {expected})")]
    Schema {
        /// The version on disk.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The stored crawl configuration differs from the one given.
    #[error(
        "the state directory holds a different crawl ({stored}); use another directory or resume that crawl"
    )]
    ConfigMismatch {
        /// A short description of the stored crawl.
        stored: String,
    },
    /// The store is damaged: sled refused it, panicked on it, or a record does not decode.
    #[error("the state directory is damaged: {detail}")]
    Corrupt {
        /// What was found to be wrong.
        detail: String,
    },
    /// An earlier write failed, so this handle refuses further changes; reopen the
    /// directory to carry on from the last flushed state.
    #[error("the frontier stopped after an earlier write error; reopen the state directory")]
    Poisoned,
    /// The frontier was opened read-only ([`Options::read_only`](crate::Options)) and
    /// the call would change it.
    #[error("the state directory is open read-only")]
    ReadOnly,
    /// This worker lost its claim on part of a shared crawl: a host it owned was given
    /// to another worker after its claim ran out (the worker was paused or cut off),
    /// or the store lost acks this worker had made (a server restarted without them).
    /// Nothing of the call was applied. The worker cuts its outputs back to its stored
    /// checkpoints and opens the store again.
    #[error("this worker lost its claim on the shared crawl: {reason}")]
    LostOwnership {
        /// What was lost.
        reason: String,
    },
    /// A shared store could not be reached or refused a command.
    #[error("the shared frontier failed: {detail}")]
    Backend {
        /// The server's or the connection's error.
        detail: String,
    },
    /// An I/O error from sled (a full disk, a read-only directory, and the like).
    #[error("state directory i/o failed")]
    Io(#[source] std::io::Error),
}

/// The frontier's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Classifies a sled error met while opening `path`.
    pub(crate) fn from_open(path: &std::path::Path, e: sled::Error) -> Error {
        match e {
            sled::Error::Io(io) => {
                let text = io.to_string();
                if io.kind() == std::io::ErrorKind::WouldBlock || text.contains("lock") {
                    Error::Locked {
                        path: path.to_path_buf(),
                    }
                } else {
                    Error::Io(io)
                }
            }
            other => Error::from(other),
        }
    }

    /// Whether the cause is a full disk (`ENOSPC`, or `StorageFull`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(libc_enospc()))
    }

    /// A record that does not decode.
    pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
        Error::Corrupt {
            detail: detail.into(),
        }
    }
}

/// `ENOSPC`, the same number on every platform trawl runs on (Linux, the BSDs, macOS).
const fn libc_enospc() -> i32 {
    28
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Error {
        match e {
            sled::Error::Io(io) => Error::Io(io),
            other => Error::Corrupt {
                detail: other.to_string(),
            },
        }
    }
}
