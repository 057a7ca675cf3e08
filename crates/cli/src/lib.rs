//! The `trawl` command line: a thin layer over trawl-engine. See README.md for the
//! commands, flags and exit codes. The binary is `trawl::main`; the library form lets
//! the end-to-end tests build the same program.
//!
//! # Layout
//! - `args`: the raw flags (clap) and the TOML file, one set of names for both.
//! - `settings`: flags and file merged and parsed into a `CrawlConfig`; the engine's
//!   `CrawlConfig::validate` checks it.
//! - `crawl`: `trawl crawl` and `trawl resume`, signals, exit codes of a crawl.
//! - `status`, `export`: read-only reports.
//! - `display`: the progress display.
//! - `failure`: errors as an exit code and one line.

#![deny(missing_docs)]

mod args;
mod crawl;
mod display;
mod export;
mod failure;
mod malloc;
mod metrics;
mod settings;
mod shared;
mod status;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Exit codes, documented in README.md.
pub mod exit {
    /// The crawl completed (or the command succeeded).
    pub const OK: u8 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad flags or configuration (clap also uses 2).
    pub const USAGE: u8 = 2;
    /// A limit stopped the crawl; `trawl resume` with a higher limit goes on.
    pub const LIMIT: u8 = 3;
    /// The state directory cannot be used (locked, another crawl, damaged).
    pub const STATE: u8 = 4;
    /// An output could not be written (a full disk); the crawl is resumable.
    pub const OUTPUT: u8 = 5;
    /// No seed could be reached.
    pub const UNREACHABLE: u8 = 6;
    /// Stopped by Ctrl-C or SIGTERM; resumable.
    pub const INTERRUPTED: u8 = 130;
}

/// Runs the command line with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    malloc::tune();
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(
                if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    exit::USAGE
                } else {
                    code
                },
            );
        }
    };
    init_logging(&cli);
    ExitCode::from(run(cli))
}

/// Sets up tracing on stderr from `RUST_LOG`, or from -q / -v.
fn init_logging(cli: &args::Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(match (cli.quiet, cli.verbose) {
            (true, _) => "warn",
            (false, 0) => "warn,trawl=info,trawl_engine=info",
            (false, 1) => "info,trawl=debug,trawl_engine=debug,trawl_fetcher=debug,trawl_frontier=debug",
            _ => "debug,trawl=trace,trawl_engine=trace,trawl_fetcher=trace,trawl_frontier=trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match cli.log_format {
        args::LogFormat::Json => builder.json().try_init(),
        args::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// Runs a command and returns its exit code.
fn run(cli: args::Cli) -> u8 {
    let quiet = cli.quiet;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trawl: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let result = match cli.command {
        args::Command::Crawl(a) => rt.block_on(crawl::crawl(a, quiet)),
        args::Command::Resume(a) => rt.block_on(crawl::resume(a, quiet)),
        args::Command::Recrawl(a) => rt.block_on(crawl::recrawl(a, quiet)),
        args::Command::Status(a) => status::status(a),
        args::Command::Export(a) => export::export(a),
    };
    // Do not wait for blocking tasks that a stop abandoned.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("trawl: {}", f.message);
            f.code
        }
    }
}
