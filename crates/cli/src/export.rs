//! `trawl export`: every known URL, or its outcome, read without changing the crawl.

use std::io::Write;

use trawl_engine::UrlState;

use crate::args::{ExportArgs, StateFilter, What};
use crate::exit;
use crate::failure::{Failure, R};
use crate::status::open_reader;

/// `trawl export`.
pub(crate) fn export(a: ExportArgs) -> R<u8> {
    let Some(reader) = open_reader(&a.dir)? else {
        return Err(crate::failure::state(format!(
            "a crawl is running in {}; export it after it stops",
            a.dir.display()
        )));
    };
    let write_failure = |e: std::io::Error| Failure {
        code: exit::OUTPUT,
        message: format!("cannot write the export: {e}"),
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Failure {
                code: exit::OUTPUT,
                message: format!("cannot create {}: {e}", p.display()),
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut unreadable = 0u64;
    let mut written = 0u64;
    for rec in reader.urls() {
        let Ok(r) = rec else {
            unreadable += 1;
            continue;
        };
        let keep = match a.state {
            StateFilter::All => true,
            StateFilter::Queued => matches!(r.state, UrlState::Queued | UrlState::Leased),
            StateFilter::Done => r.state == UrlState::Done,
            StateFilter::Failed => r.state == UrlState::Failed,
        };
        if !keep {
            continue;
        }
        let line = match a.what {
            What::Urls => r.url.clone(),
            What::Outcomes => serde_json::json!({
                "url": r.url,
                "state": match r.state {
                    UrlState::Queued | UrlState::Leased => "queued",
                    UrlState::Done => "done",
                    UrlState::Failed => "failed",
                },
                "depth": r.depth,
                "attempts": r.attempts,
                "reason": r.reason,
            })
            .to_string(),
        };
        match writeln!(out, "{line}") {
            Ok(()) => written += 1,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
            Err(e) => return Err(write_failure(e)),
        }
    }
    match out.flush() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
        Err(e) => return Err(write_failure(e)),
    }
    if unreadable > 0 {
        eprintln!(
            "trawl: {written} URLs written; {unreadable} records could not be read (the directory is damaged)"
        );
    }
    Ok(exit::OK)
}
