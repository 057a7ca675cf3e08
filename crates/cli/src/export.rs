//! `trawl export`: every known URL, or its outcome, or a WACZ of the crawl's archive,
//! read without changing the crawl.

use std::io::Write;

use trawl_engine::UrlState;

use crate::args::{ExportArgs, StateFilter, What};
use crate::exit;
use crate::failure::{Failure, R};
use crate::status::open_reader;

/// `trawl export --wacz FILE`: the WARC files of the crawl and of every recrawl of it,
/// each up to its last ack, with their CDXJ lines sorted and a pages list.
fn export_wacz(a: &ExportArgs, wacz: &std::path::Path) -> R<u8> {
    let mut input = trawl_engine::WaczInput {
        software: format!("trawl/{}", env!("CARGO_PKG_VERSION")),
        created: trawl_engine::rfc3339_ms(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() * 1000),
        )
        .replace(".000Z", "Z"),
        ..Default::default()
    };
    let mut dirs = vec![a.dir.clone()];
    dirs.extend(
        trawl_engine::recrawl::generations(&a.dir)
            .into_iter()
            .map(|n| trawl_engine::recrawl::generation_dir(&a.dir, n)),
    );
    for (k, dir) in dirs.iter().enumerate() {
        let Some(reader) = open_reader(dir)? else {
            return Err(crate::failure::state(format!(
                "a crawl is running in {}; export it after it stops",
                dir.display()
            )));
        };
        if k == 0 {
            let cfg = reader
                .config()
                .map_err(crate::failure::engine)?
                .unwrap_or_default();
            input.title = format!("trawl crawl of {}", cfg.seeds.join(" "));
            input.main_page = cfg.seeds.first().cloned();
        }
        if let Some(files) = reader.archive().map_err(crate::failure::engine)? {
            input.warcs.extend(files.warcs);
            input.indexes.extend(files.index);
        }
    }
    if input.warcs.is_empty() {
        return Err(crate::failure::usage(format!(
            "{} wrote no WARC to package; crawl with --warc FILE",
            a.dir.display()
        )));
    }
    let s = trawl_engine::write_wacz(wacz, &input).map_err(|e| Failure {
        code: exit::OUTPUT,
        message: format!("cannot write {}: {}", wacz.display(), crate::failure::chain(&e)),
    })?;
    eprintln!(
        "trawl: {} written: {} WARC files, {} index lines, {} pages",
        wacz.display(),
        s.warcs,
        s.index_lines,
        s.pages
    );
    Ok(exit::OK)
}

/// `trawl export --what broken`: the broken-link log, merged by target.
fn export_broken(
    reader: &trawl_engine::StateReader,
    mut out: Box<dyn Write>,
    write_failure: impl Fn(std::io::Error) -> Failure,
) -> R<u8> {
    let links = reader.broken_links().map_err(crate::failure::engine)?;
    let mut sources = 0usize;
    let written = (|| -> std::io::Result<()> {
        for l in &links {
            writeln!(out, "{}", serde_json::to_string(l)?)?;
            sources += l.sources.len();
        }
        out.flush()
    })();
    match written {
        Ok(()) => {}
        // A reader that stopped reading (`| head`) is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
        Err(e) => return Err(write_failure(e)),
    }
    eprintln!(
        "trawl: {} broken links, linked from {sources} listed pages",
        links.len()
    );
    Ok(exit::OK)
}

/// `trawl export`.
pub(crate) fn export(a: ExportArgs) -> R<u8> {
    if let Some(wacz) = &a.wacz {
        return export_wacz(&a, wacz);
    }
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
    if matches!(a.what, What::Broken) {
        return export_broken(&reader, out, write_failure);
    }
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
            What::Urls | What::Broken => r.url.clone(),
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
