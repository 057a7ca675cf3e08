//! The `trawl` command line: a thin layer over trawl-engine. See README.md for the
//! commands, flags and exit codes. The binary is `trawl::main`; the library form lets
//! the end-to-end tests build the same program.

#![deny(missing_docs)]

mod args;
mod commands;

use std::process::ExitCode;

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
    commands::init_logging(&cli);
    let code = commands::run(cli);
    ExitCode::from(code)
}
