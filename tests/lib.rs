//! Helpers shared by the end-to-end tests (see `e2e/`): running the `trawl` program as a
//! process and reading what it wrote.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a finished `trawl` process left.
#[derive(Debug)]
pub struct Run {
    /// The exit code (or 128 + the signal number).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A `trawl` command in `cwd`, with logs kept quiet unless the test sets RUST_LOG.
pub fn command(bin: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd).args(args).stdin(Stdio::null());
    if std::env::var_os("RUST_LOG").is_none() {
        c.env("RUST_LOG", "warn");
    }
    c
}

/// Runs `trawl` to the end, off the async threads (the test site keeps serving).
pub async fn run(bin: &Path, cwd: &Path, args: &[&str]) -> Run {
    let mut c = command(bin, cwd, args);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("join")
        .expect("the trawl binary runs");
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One JSONL output record, reduced to what the tests check.
#[derive(Debug, Clone)]
pub struct Rec {
    /// The URL.
    pub url: String,
    /// Its depth.
    pub depth: u64,
    /// The HTTP status, if a response came.
    pub status: Option<u64>,
    /// The failure kind, for failed records.
    pub error: Option<String>,
    /// Body bytes after decompression.
    pub body_bytes: u64,
    /// Body bytes on the wire.
    pub wire_bytes: u64,
    /// The `Content-Type` received.
    pub content_type: Option<String>,
    /// Why the body was not downloaded, when it was not.
    pub skipped: Option<String>,
    /// The caps and guards the page hit.
    pub limits: Vec<String>,
}

/// Reads a JSONL output: every line must parse and the file must end with a newline
/// (no torn last line).
pub fn read_jsonl(path: &Path) -> Vec<Rec> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: torn last line",
        path.display()
    );
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{} line {}: {e}: {l}", path.display(), i + 1));
            Rec {
                url: v["url"].as_str().unwrap_or_default().to_string(),
                depth: v["depth"].as_u64().unwrap_or(0),
                status: v["status"].as_u64(),
                error: v["error"]["kind"].as_str().map(String::from),
                body_bytes: v["body_bytes"].as_u64().unwrap_or(0),
                wire_bytes: v["wire_bytes"].as_u64().unwrap_or(0),
                content_type: v["content_type"].as_str().map(String::from),
                skipped: v["skipped"].as_str().map(String::from),
                limits: v["limits"]
                    .as_array()
                    .map(|l| l.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// How many times each URL appears.
pub fn counts(records: &[Rec]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.url.clone()).or_default() += 1;
    }
    m
}

/// URLs written more than once.
pub fn duplicates(records: &[Rec]) -> Vec<String> {
    counts(records)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(u, _)| u)
        .collect()
}

/// A fresh working directory.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// `dir/name` as a string argument.
pub fn arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// The path of a file in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Waits (polling) until `cond` holds or `limit` passes; returns whether it held.
pub async fn wait_for(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// Decompresses a (multi-member) gzip file as text.
pub fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut s = String::new();
    let mut bytes_out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut bytes_out)
        .expect("a valid gzip file");
    s.push_str(&String::from_utf8_lossy(&bytes_out));
    s
}

/// The URLs of the records that did not fail.
pub fn ok_urls(records: &[Rec]) -> HashSet<&str> {
    records
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.url.as_str())
        .collect()
}

/// The only non-empty line of `stderr`; fails the test when there are more or none.
pub fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    lines[0]
}
