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
    /// The protocol the response came over (`http/1.1`, `h2`).
    pub protocol: Option<String>,
    /// What a recrawl found (`not-modified`, `unchanged`, `changed`, `gone`, `new`,
    /// `skipped-unchanged`).
    pub recrawl: Option<String>,
    /// The content hash.
    pub content_hash: Option<String>,
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
                protocol: v["protocol"].as_str().map(String::from),
                recrawl: v["recrawl"].as_str().map(String::from),
                content_hash: v["content_hash"].as_str().map(String::from),
            }
        })
        .collect()
}

/// One WARC record: its named headers, in order, and its block.
#[derive(Debug, Clone)]
pub struct WarcRecord {
    /// The headers as `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// The block (`Content-Length` bytes).
    pub block: Vec<u8>,
}

impl WarcRecord {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads every record of a gzipped WARC file, checking the framing as it goes (a
/// `WARC/1.1` line, a `Content-Length` that the block fills, the `\r\n\r\n` after it).
pub fn read_warc(path: &Path) -> Vec<WarcRecord> {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut all)
        .expect("a valid gzip file");
    let mut out = Vec::new();
    let mut at = 0;
    while at < all.len() {
        let rest = &all[at..];
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{}: a record head without its end", path.display()));
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("WARC/1.1"),
            "{}: record at {at}",
            path.display()
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("a Content-Length");
        let start = end + 4;
        let block = rest[start..start + len].to_vec();
        assert_eq!(&rest[start + len..start + len + 4], b"\r\n\r\n");
        at += start + len + 4;
        out.push(WarcRecord { headers, block });
    }
    out
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

/// A Python tool of the archive world, found through its environment variable (set
/// by `.ci/run`) or in the worktree's `.ci/venv`. Under CI it must exist; elsewhere
/// `None` with a printed reason, and the caller skips that check.
pub fn python_tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.ci/venv/bin")
        .join(name);
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide {name} (bash .ci/run installs it and sets {env})"
    );
    eprintln!("{env} is not set and .ci/venv has no {name}: skipping its check (bash .ci/run installs it)");
    None
}

/// Checks the CDXJ index `index` against the WARC files it names in `dir`: one line
/// per response and revisit record, each locating (offset, length) a gzip member that
/// holds a record of that type, URI and date, no record indexed twice; and, when
/// `cdxj-indexer` is there, the same lines as it builds from those files (ignoring
/// order). Returns the number of lines.
pub fn check_cdxj(dir: &Path, index: &Path) -> usize {
    use std::io::Read;
    let text = std::fs::read_to_string(index).unwrap_or_else(|e| panic!("{}: {e}", index.display()));
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    let mut seen = HashSet::new();
    let mut files = std::collections::BTreeSet::new();
    let mut ours = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (key, ts, json) = (
            parts.next().expect("key"),
            parts.next().expect("timestamp"),
            parts.next().expect("json"),
        );
        let v: serde_json::Value = serde_json::from_str(json).expect("CDXJ JSON");
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {line}"))
                .to_string()
        };
        let (file, offset, length) = (
            field("filename"),
            field("offset").parse::<usize>().expect("offset"),
            field("length").parse::<usize>().expect("length"),
        );
        assert!(seen.insert((file.clone(), offset)), "indexed twice: {line}");
        let raw = std::fs::read(dir.join(&file)).expect("the WARC file it names");
        let mut rec = Vec::new();
        flate2::read::GzDecoder::new(&raw[offset..offset + length])
            .read_to_end(&mut rec)
            .expect("one gzip member at offset");
        let rec = String::from_utf8_lossy(&rec);
        let want_type = if v["mime"] == "warc/revisit" {
            "revisit"
        } else {
            "response"
        };
        assert!(rec.contains(&format!("WARC-Type: {want_type}\r\n")), "{line}");
        assert!(
            rec.contains(&format!("WARC-Target-URI: {}\r\n", field("url"))),
            "{line}"
        );
        assert_eq!(ts.len(), 14, "{line}");
        files.insert(file);
        ours.insert(cdxj_fields(key, ts, &v));
    }
    if let Some(indexer) = python_tool("TRAWL_CDXJ_INDEXER", "cdxj-indexer") {
        let out = std::process::Command::new(&indexer)
            .args(files.iter().map(|f| dir.join(f)))
            .output()
            .expect("cdxj-indexer runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs: std::collections::BTreeSet<_> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let mut p = l.splitn(3, ' ');
                let (k, t) = (p.next().expect("key"), p.next().expect("ts"));
                let v: serde_json::Value = serde_json::from_str(p.next().expect("json")).expect("json");
                cdxj_fields(k, t, &v)
            })
            .collect();
        let a: Vec<_> = ours.difference(&theirs).take(3).collect();
        let b: Vec<_> = theirs.difference(&ours).take(3).collect();
        assert!(
            a.is_empty() && b.is_empty(),
            "CDXJ differs from cdxj-indexer's: only trawl {a:?}, only cdxj-indexer {b:?}"
        );
    }
    seen.len()
}

/// A CDXJ line as the fields trawl writes, for comparing with cdxj-indexer's.
fn cdxj_fields(key: &str, ts: &str, v: &serde_json::Value) -> String {
    let mut s = format!("{key} {ts}");
    for k in ["url", "mime", "status", "digest", "length", "offset", "filename"] {
        s.push_str(&format!(" {k}={}", v[k]));
    }
    s
}
