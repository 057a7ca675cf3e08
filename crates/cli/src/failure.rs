//! [`Failure`]: a command that could not do its job, as an exit code and one line
//! that says what is wrong and what to do.

use std::path::Path;

use crate::exit;

/// A command that could not do its job: the exit code and a one-line message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

/// A command's result.
pub(crate) type R<T> = Result<T, Failure>;

/// A usage error (exit 2).
pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
    }
}

/// A state-directory error (exit 4) with a message of our own.
pub(crate) fn state(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::STATE,
        message: message.into(),
    }
}

/// The message of an error and its causes, on one line. Every error in trawl either
/// says its cause or returns it as `source()`, never both, so nothing repeats.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn state_failure(dir: &Path, e: &trawl_engine::Error, source: &trawl_engine::FrontierError) -> Failure {
    use trawl_engine::FrontierError as F;
    let d = dir.display();
    let message = match source {
        F::Locked { .. } => {
            format!("another trawl process is using {d}; wait for it to stop or use another --state")
        }
        F::ConfigMismatch { stored } => format!(
            "{d} holds another crawl ({stored}); use another --state, or `trawl resume {d}` to continue that one"
        ),
        F::Corrupt { detail } => format!(
            "{d} is damaged ({detail}); run `trawl status {d}` to see what can be read, or move it aside and start again"
        ),
        _ if e.is_disk_full() => format!(
            "{}; the disk is full: free space, then `trawl resume {d}`",
            chain(e)
        ),
        _ => chain(e),
    };
    state(message)
}

/// The exit code and message of an engine error.
pub(crate) fn engine(e: trawl_engine::Error) -> Failure {
    use trawl_engine::Error as E;
    match &e {
        E::Config {
            setting: Some(s),
            message,
        } => usage(format!("--{s}: {message}")),
        E::Config {
            setting: None,
            message,
        } => usage(message.clone()),
        E::Outputs(_) | E::Fetcher(_) => usage(chain(&e)),
        E::State { dir, source } => state_failure(dir, &e, source),
        E::Sink(_) => Failure {
            code: exit::OUTPUT,
            message: format!(
                "{}{}; the crawl stopped and can be resumed",
                chain(&e),
                if e.is_disk_full() {
                    " (the disk is full)"
                } else {
                    ""
                }
            ),
        },
        E::Unreachable { .. } => Failure {
            code: exit::UNREACHABLE,
            message: format!("{}; check the URL and the network", chain(&e)),
        },
        E::SeedTls { .. } => Failure {
            code: exit::UNREACHABLE,
            message: format!(
                "{}; if the server's certificate comes from a private CA, trust it with --ca-cert FILE",
                chain(&e)
            ),
        },
        _ => Failure {
            code: exit::INTERNAL,
            message: chain(&e),
        },
    }
}
