//! Archive-grade WARC output, checked by the tools web archives use: revisit records
//! pass `warcio check`, and the CDXJ index trawl writes as it goes equals the one
//! webrecorder's `cdxj-indexer` builds from the same WARC, also after a crash cut.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trawl_sink::{
    Checkpoint, Exchange, PageRecord, Revisit, RevisitProfile, Sink, WarcOptions, WarcSink, cdxj_path,
};

/// A Python tool found through its environment variable (set by .ci/run), or in
/// .ci/venv. Under CI it must exist; elsewhere the test is skipped with a reason.
fn tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.ci/venv/bin")
        .join(name);
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide {name} (bash .ci/run installs it and sets {env})"
    );
    eprintln!("SKIPPED: {name} not found; run `bash .ci/run` once to install it");
    None
}

fn date(i: usize) -> String {
    trawl_sink::rfc3339_ms(1_795_349_045_000 + i as u64 * 1_500)
}

fn record(i: usize, status: u16) -> PageRecord {
    PageRecord {
        url: format!("http://a.test/page/{i}?b=2&a=1"),
        final_url: format!("http://a.test/page/{i}?b=2&a=1"),
        status: Some(status),
        fetched_at: date(i),
        content_type: Some("text/html; charset=utf-8".into()),
        ..Default::default()
    }
}

/// Page `i`: a response for even `i`; for odd `i`, a revisit of page `i - 1`'s
/// capture (a 304 for every third, an identical payload otherwise).
fn write(sink: &mut dyn Sink, i: usize) {
    let body = format!(
        "<html><title>Page {i}</title>{}</html>",
        "y".repeat(i * 53 % 2000)
    );
    let req = format!("GET /page/{i}?b=2&a=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: trawl-test");
    let not_modified = i % 2 == 1 && i.is_multiple_of(3);
    let status = if not_modified { 304 } else { 200 };
    let resp = format!("HTTP/1.1 {status} OK\r\nContent-Type: text/html; charset=utf-8\r\nETag: \"e{i}\"");
    let earlier = record(i.saturating_sub(1), 200);
    let earlier_date = earlier.fetched_at.clone();
    let revisit = (i % 2 == 1).then(|| Revisit {
        profile: if not_modified {
            RevisitProfile::ServerNotModified
        } else {
            RevisitProfile::IdenticalPayloadDigest
        },
        refers_to_uri: &earlier.url,
        refers_to_date: &earlier_date,
    });
    let x = Exchange {
        request_head: &req,
        response_head: &resp,
        body: if not_modified { b"" } else { body.as_bytes() },
        ip: Some("127.0.0.1"),
        protocol: "http/1.1",
        revisit,
    };
    sink.write(&record(i, status), Some(&x)).expect("write");
}

/// The lines of a CDXJ file as (key, timestamp, the JSON fields trawl writes).
fn cdxj_lines(text: &str) -> BTreeSet<(String, String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let key = parts.next().expect("key").to_string();
            let ts = parts.next().expect("timestamp").to_string();
            let json: serde_json::Value = serde_json::from_str(parts.next().expect("json")).expect("json");
            let fields: Vec<String> = ["url", "mime", "status", "digest", "length", "offset", "filename"]
                .iter()
                .map(|k| format!("{k}={}", json[k]))
                .collect();
            (key, ts, fields.join(" "))
        })
        .collect()
}

#[test]
fn revisits_pass_warcio_and_the_cdxj_index_matches_cdxj_indexer() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("crawl.warc.gz");
    let index = cdxj_path(&base);
    let opts = || WarcOptions::default().max_file_bytes(16 * 1024);
    let mut w = WarcSink::create(&base, opts())
        .expect("warc")
        .with_cdxj(&index, None)
        .expect("cdxj");
    let mut cps: Vec<(Checkpoint, Checkpoint)> = Vec::new();
    for i in 0..40 {
        write(&mut w, i);
        let cp = w.checkpoint().expect("checkpoint");
        let side = w.side_checkpoints();
        assert_eq!(side.len(), 1);
        assert_eq!(side[0].0, trawl_sink::CDXJ_CHECKPOINT);
        cps.push((cp, side[0].1));
    }
    drop(w);
    // A crash after the checkpoint of page 24: both files hold more than it covers
    // (the index a torn line). Resuming at it cuts both, and writing on gives one
    // line per record.
    let (cp, icp) = cps[24];
    let len = std::fs::metadata(&index).expect("meta").len();
    assert!(len > icp.offset);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .expect("open");
    f.set_len(icp.offset + (len - icp.offset) / 2).expect("cut");
    drop(f);
    let mut w = WarcSink::resume(&base, &cp, opts())
        .expect("resume")
        .with_cdxj(&index, Some(&icp))
        .expect("cdxj");
    for i in 25..40 {
        write(&mut w, i);
        w.checkpoint().expect("checkpoint");
    }
    let paths: Vec<PathBuf> = w.paths().into_iter().filter(|p| p != &index).collect();
    drop(w);
    assert!(paths.len() >= 3, "rotated into {} files", paths.len());
    let ours = std::fs::read_to_string(&index).expect("index");
    assert_eq!(ours.lines().count(), 40, "one line per response or revisit");
    assert_eq!(ours.lines().filter(|l| l.contains("warc/revisit")).count(), 20);

    if let Some(warcio) = tool("TRAWL_WARCIO", "warcio") {
        for p in &paths {
            let check = std::process::Command::new(&warcio)
                .args(["check", "-v"])
                .arg(p)
                .output()
                .expect("run warcio");
            let out = String::from_utf8_lossy(&check.stdout);
            assert!(check.status.success(), "warcio check {}:\n{out}", p.display());
            assert!(!out.contains("digest failed"), "{out}");
        }
    }
    if let Some(indexer) = tool("TRAWL_CDXJ_INDEXER", "cdxj-indexer") {
        let out = std::process::Command::new(&indexer)
            .args(&paths)
            .output()
            .expect("run cdxj-indexer");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs = String::from_utf8_lossy(&out.stdout);
        let (a, b) = (cdxj_lines(&ours), cdxj_lines(&theirs));
        let only_ours: Vec<_> = a.difference(&b).take(3).collect();
        let only_theirs: Vec<_> = b.difference(&a).take(3).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "trawl's CDXJ differs from cdxj-indexer's:\nonly trawl: {only_ours:#?}\nonly cdxj-indexer: {only_theirs:#?}"
        );
        assert_eq!(a.len(), 40);
    }
}
