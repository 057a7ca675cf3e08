//! Truncate-on-reopen: a crash leaves an output file cut at any byte after the last
//! stored checkpoint. Reopening at that checkpoint must give a file that parses fully
//! and holds exactly the checkpointed records, and writing on must keep it so.
//! WARC output is also checked by warcio, a tool that no one here wrote.

use std::io::Read;
use std::path::{Path, PathBuf};

use trawl_sink::{
    Checkpoint, CsvSink, Durability, Exchange, JsonlSink, PageRecord, Sink, WarcOptions, WarcSink,
};

fn record(i: usize) -> PageRecord {
    PageRecord {
        url: format!("http://a.test/page/{i}"),
        final_url: format!("http://a.test/page/{i}"),
        status: Some(200),
        depth: (i % 5) as u16,
        title: Some(format!("Page {i}, with \"quotes\", commas and ünïcödé")),
        fetched_at: trawl_sink::rfc3339_ms(1_795_349_045_000 + i as u64),
        content_type: Some("text/html; charset=utf-8".into()),
        outlinks: i as u32,
        ..Default::default()
    }
}

fn body(i: usize) -> Vec<u8> {
    format!(
        "<html><title>Page {i}</title><body>{}</body></html>",
        "x".repeat(i * 37 % 3000)
    )
    .into_bytes()
}

fn write_with(sink: &mut dyn Sink, i: usize) {
    let b = body(i);
    let req = format!("GET /page/{i} HTTP/1.1\r\nHost: a.test\r\nUser-Agent: trawl-test");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}",
        b.len() / 3
    );
    let x = Exchange {
        request_head: &req,
        response_head: &resp,
        body: &b,
        ip: Some("127.0.0.1"),
        protocol: "http/1.1",
        revisit: None,
    };
    sink.write(&record(i), Some(&x)).expect("write");
}

/// Records 0..n, with the checkpoint taken after each one.
fn write_n(sink: &mut dyn Sink, from: usize, n: usize) -> Vec<Checkpoint> {
    (from..from + n)
        .map(|i| {
            write_with(sink, i);
            sink.checkpoint().expect("checkpoint")
        })
        .collect()
}

fn jsonl_urls(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    text.lines()
        .map(|l| {
            serde_json::from_str::<PageRecord>(l)
                .expect("every line parses")
                .url
        })
        .collect()
}

fn csv_urls(path: &Path) -> Vec<String> {
    let mut rd = csv::Reader::from_path(path).expect("csv");
    assert_eq!(rd.headers().expect("header").len(), trawl_sink::CSV_HEADER.len());
    rd.records()
        .map(|r| r.expect("every row parses")[0].to_string())
        .collect()
}

/// Decodes every gzip member and returns the WARC-Target-URI of each response record.
fn warc_urls(paths: &[PathBuf]) -> Vec<String> {
    let mut urls = Vec::new();
    for p in paths {
        let raw = std::fs::read(p).expect("read");
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut text)
            .expect("every member decodes");
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.starts_with("WARC/1.1\r\nWARC-Type: warcinfo\r\n"),
            "{} does not start with warcinfo",
            p.display()
        );
        for rec in text.split("WARC/1.1\r\n").skip(1) {
            if rec.starts_with("WARC-Type: response") {
                let uri = rec
                    .lines()
                    .find_map(|l| l.strip_prefix("WARC-Target-URI: "))
                    .expect("uri");
                urls.push(uri.to_string());
            }
        }
    }
    urls
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| record(i).url).collect()
}

fn cut(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len).expect("cut");
}

#[test]
fn jsonl_and_csv_recover_from_any_cut() {
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..40 {
        let dir = tempfile::tempdir().expect("tmp");
        let (j, c) = (dir.path().join("o.jsonl"), dir.path().join("o.csv"));
        let mut js = JsonlSink::create(&j, Durability::Os).expect("jsonl");
        let mut cs = CsvSink::create(&c, Durability::Os).expect("csv");
        let n = 20;
        let jcp = write_n(&mut js, 0, n);
        let ccp = write_n(&mut cs, 0, n);
        drop((js, cs));
        // The crash: the last ack covered record k; the file holds some more bytes.
        let k = rng.usize(0..n);
        for (path, cps) in [(&j, &jcp), (&c, &ccp)] {
            let full = std::fs::metadata(path).expect("meta").len();
            cut(path, rng.u64(cps[k].offset..=full));
        }
        let mut js = JsonlSink::resume(&j, &jcp[k], Durability::Os).expect("resume jsonl");
        let mut cs = CsvSink::resume(&c, &ccp[k], Durability::Os).expect("resume csv");
        assert_eq!(jsonl_urls(&j), expected(k + 1), "round {round}");
        assert_eq!(csv_urls(&c), expected(k + 1), "round {round}");
        // The unacked records are fetched again and written once.
        write_n(&mut js, k + 1, n - k - 1);
        write_n(&mut cs, k + 1, n - k - 1);
        drop((js, cs));
        assert_eq!(jsonl_urls(&j), expected(n));
        assert_eq!(csv_urls(&c), expected(n));
    }
}

#[test]
fn warc_recovers_from_any_cut_across_rotation() {
    let mut rng = fastrand::Rng::with_seed(11);
    for round in 0..25 {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("crawl.warc.gz");
        let opts = || WarcOptions::default().max_file_bytes(8 * 1024);
        let mut w = WarcSink::create(&base, opts()).expect("warc");
        let n = 30;
        let cps = write_n(&mut w, 0, n);
        let paths = w.paths();
        assert!(paths.len() >= 3, "rotation made {} files", paths.len());
        drop(w);
        let k = rng.usize(0..n);
        let cp = cps[k];
        let file = paths[cp.file as usize].clone();
        let full = std::fs::metadata(&file).expect("meta").len();
        cut(&file, rng.u64(cp.offset..=full));
        let mut w = WarcSink::resume(&base, &cp, opts()).expect("resume");
        assert_eq!(
            w.paths().len(),
            cp.file as usize + 1,
            "round {round}: later files removed"
        );
        assert_eq!(warc_urls(&w.paths()), expected(k + 1), "round {round}");
        write_n(&mut w, k + 1, n - k - 1);
        assert_eq!(warc_urls(&w.paths()), expected(n), "round {round}");
    }
}

#[test]
fn a_checkpoint_beyond_the_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("o.jsonl");
    let mut s = JsonlSink::create(&j, Durability::Os).expect("create");
    let cp = write_n(&mut s, 0, 3)[2];
    drop(s);
    cut(&j, cp.offset - 1);
    let err = JsonlSink::resume(&j, &cp, Durability::Os).expect_err("behind");
    assert!(err.to_string().contains("changed outside trawl"), "{err}");
    assert_eq!(
        std::fs::metadata(&j).expect("meta").len(),
        cp.offset - 1,
        "nothing was cut further"
    );
}

/// warcio, found through TRAWL_WARCIO (set by .ci/run), the PATH, or .ci/venv. Under
/// CI it must exist.
fn warcio() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TRAWL_WARCIO") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/warcio");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = std::process::Command::new("warcio")
        .arg("--help")
        .output()
        .is_ok();
    on_path.then(|| PathBuf::from("warcio"))
}

#[test]
fn warcio_accepts_what_trawl_writes() {
    let Some(warcio) = warcio() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide warcio (bash .ci/run installs it)"
        );
        eprintln!(
            "SKIPPED warcio_accepts_what_trawl_writes: warcio not found; run `bash .ci/run` once to install it"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("crawl.warc.gz");
    let mut w = WarcSink::create(&base, WarcOptions::default()).expect("warc");
    write_n(&mut w, 0, 12);
    drop(w);
    let check = std::process::Command::new(&warcio)
        .args(["check", "-v"])
        .arg(&base)
        .output()
        .expect("run warcio");
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "warcio check failed:\n{out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // 12 responses and 12 requests carry digests; the warcinfo has none.
    assert_eq!(
        out.matches("digest pass").count(),
        24,
        "warcio did not verify every digest:\n{out}"
    );
    assert!(!out.contains("digest failed"), "{out}");
    let index = std::process::Command::new(&warcio)
        .arg("index")
        .arg(&base)
        .output()
        .expect("run warcio");
    assert!(index.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&index.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("warcio index emits JSON"))
        .collect();
    let types: Vec<&str> = lines.iter().filter_map(|v| v["warc-type"].as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "response").count(), 12);
    assert_eq!(types.iter().filter(|t| **t == "request").count(), 12);
    assert_eq!(types[0], "warcinfo");
}

/// A small tmpfs mounted by the test itself, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_what_was_checkpointed() {
    let Some(fs) = Tmpfs::mount("size=256k") else {
        assert!(
            std::env::var_os("CI").is_none() || !cfg!(target_os = "linux"),
            "CI runs as root on Linux: mount must work"
        );
        eprintln!("SKIPPED a_full_disk_is_a_clear_error: cannot mount a tmpfs here (not root?)");
        return;
    };
    let path = fs.dir.path().join("o.jsonl");
    let mut s = JsonlSink::create(&path, Durability::Os).expect("create");
    let mut last = Checkpoint::default();
    let mut written = 0;
    let err = loop {
        let mut r = record(written);
        r.body = Some("y".repeat(8_000));
        if let Err(e) = s.write(&r, None) {
            break e;
        }
        match s.checkpoint() {
            Ok(cp) => {
                last = cp;
                written += 1;
            }
            Err(e) => break e,
        }
        assert!(written < 1_000, "a 256 KiB disk never filled");
    };
    assert!(err.is_disk_full(), "{err:?}");
    assert!(err.to_string().starts_with("cannot write"), "{err}");
    drop(s);
    // Resuming at the last checkpoint gives exactly the records acked before the error.
    let s = JsonlSink::resume(&path, &last, Durability::Os).expect("resume");
    drop(s);
    assert_eq!(jsonl_urls(&path), expected(written));
}

#[test]
fn a_read_only_mount_is_a_clear_error() {
    let Some(fs) = Tmpfs::mount("size=64k,ro") else {
        assert!(
            std::env::var_os("CI").is_none() || !cfg!(target_os = "linux"),
            "CI runs as root on Linux: mount must work"
        );
        eprintln!("SKIPPED a_read_only_mount_is_a_clear_error: cannot mount a tmpfs here (not root?)");
        return;
    };
    let err = JsonlSink::create(&fs.dir.path().join("o.jsonl"), Durability::Os).expect_err("read-only");
    assert!(err.to_string().starts_with("cannot write"), "{err}");
    assert!(
        matches!(err, trawl_sink::Error::Io { ref source, .. } if source.raw_os_error() == Some(30)),
        "{err:?}"
    );
}
