//! End-to-end tests of the `trawl` program against trawl-testsite on 127.0.0.1, one
//! module per area. Every test runs the real binary as a process.

mod accept;
mod adaptive;
mod archive;
mod broad;
mod broken;
mod chaos;
mod cli;
mod crash;
mod crawl;
mod distributed;
mod hostile;
mod limits;
mod politeness;
mod recrawl;
mod resume;
mod watch;

/// The `trawl` program built for these tests.
pub fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_trawl-under-test"))
}

/// Flags that lift politeness for speed on the local test site.
pub const FAST: &[&str] = &[
    "--rate",
    "0",
    "--per-host-concurrency",
    "16",
    "--concurrency",
    "32",
    "-q",
];
