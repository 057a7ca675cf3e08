//! Archive-grade output checked by the tools web archives use: `trawl export --wacz`
//! accepted by py-wacz's `wacz validate`, and trawl's WARCs (a crawl and its recrawl,
//! revisits included) replayed by pywb: a crawled page, and a page whose recrawl was a
//! revisit, are served with status 200.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use trawl_e2e::{arg, python_tool, read_jsonl, run, workdir};
use trawl_testsite::TestSite;

use crate::{FAST, bin};

/// `GET path` from a server on loopback; the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| raw[i + 4..].to_vec());
    Ok((status, body))
}

/// The timestamp and the record type of the CDXJ line of `url` in `index`.
fn indexed(index: &Path, url: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(index).ok()?;
    text.lines().find_map(|l| {
        let mut p = l.splitn(3, ' ');
        let (_, ts, json) = (p.next()?, p.next()?, p.next()?);
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        (v["url"] == url).then(|| (ts.to_string(), v["mime"].as_str().unwrap_or("").to_string()))
    })
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wacz_validates_and_pywb_replays_pages_and_revisits() {
    let site = TestSite::new().pages(150).hosts(1).start().await.expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state, seed) = (
        arg(d, "out.jsonl"),
        arg(d, "out.warc.gz"),
        arg(d, "state"),
        site.root_url(),
    );
    let mut args = vec!["crawl", &seed, "-o", &out, "--warc", &warc, "--state", &state];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    site.set_generation(1);
    let mut args = vec!["recrawl", &state];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The WACZ: both WARCs, their index, the pages.
    let wacz = arg(d, "crawl.wacz");
    let r = run(bin(), d, &["export", &state, "--wacz", &wacz]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("2 WARC files"), "{}", r.stderr);
    let zip = std::fs::read(&wacz).expect("the WACZ");
    for name in [
        "archive/out.warc.gz",
        "archive/out-recrawl-1.warc.gz",
        "indexes/index.cdx",
        "pages/pages.jsonl",
        "datapackage.json",
        "datapackage-digest.json",
    ] {
        assert!(
            zip.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} in the WACZ"
        );
    }
    if let Some(tool) = python_tool("TRAWL_WACZ", "wacz") {
        let out = std::process::Command::new(&tool)
            .args(["validate", "-f", &wacz])
            .output()
            .expect("wacz runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Validation succeeded"),
            "wacz validate: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // pywb: a collection of both WARCs, served on loopback.
    let Some(bin_dir) = std::env::var_os("TRAWL_PYWB_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| python_tool("TRAWL_WACZ", "wayback").and_then(|p| p.parent().map(Path::to_path_buf)))
    else {
        return;
    };
    let pywb = d.join("pywb");
    std::fs::create_dir(&pywb).expect("mkdir");
    let manager = |args: &[&str]| {
        let out = std::process::Command::new(bin_dir.join("wb-manager"))
            .current_dir(&pywb)
            .args(args)
            .output()
            .expect("wb-manager runs");
        assert!(
            out.status.success(),
            "wb-manager {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    manager(&["init", "trawl"]);
    manager(&["add", "trawl", &warc, &arg(d, "out-recrawl-1.warc.gz")]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(bin_dir.join("wayback"))
        .current_dir(&pywb)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wayback starts");
    let _server = Killed(child);
    let up = trawl_e2e::wait_for(Duration::from_secs(60), || get(port, "/").is_ok()).await;
    assert!(up, "wayback did not answer on port {port}");

    // A page of the crawl, replayed as it was captured.
    let page = site.site().page_url(3);
    let (ts, mime) = indexed(&d.join("out.cdxj"), &page).expect("page 3 indexed");
    assert_eq!(mime, "text/html");
    let (status, body) = tokio::task::spawn_blocking({
        let path = format!("/trawl/{ts}id_/{page}");
        move || get(port, &path)
    })
    .await
    .expect("join")
    .expect("a replay answer");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("Page 3:"),
        "the captured page"
    );

    // A page whose recrawl was an identical-payload revisit: pywb finds the original
    // it refers to and serves its payload. (A server-not-modified revisit holds the
    // 304 as it was received, and pywb 2.10 replays a revisit with the revisit's own
    // HTTP head, so it answers 304 there: the capture to replay is the original.)
    let recs = read_jsonl(&d.join("out-recrawl-1.jsonl"));
    {
        let outcome = "unchanged";
        let revisited = recs
            .iter()
            .find(|r| r.recrawl.as_deref() == Some(outcome))
            .unwrap_or_else(|| panic!("a {outcome} page"));
        let (ts, mime) = indexed(&d.join("out-recrawl-1.cdxj"), &revisited.url).expect("the revisit indexed");
        assert_eq!(mime, "warc/revisit");
        let (status, body) = tokio::task::spawn_blocking({
            let path = format!("/trawl/{ts}id_/{}", revisited.url);
            move || get(port, &path)
        })
        .await
        .expect("join")
        .expect("a replay answer");
        assert_eq!(
            status,
            200,
            "{outcome} revisit of {}: {}",
            revisited.url,
            String::from_utf8_lossy(&body)
        );
        assert!(
            String::from_utf8_lossy(&body).contains("<title>Page "),
            "the original payload"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requisites_are_fetched_recorded_and_archived_but_not_followed() {
    let site = TestSite::new().pages(60).hosts(1).start().await.expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state, seed) = (
        arg(d, "out.jsonl"),
        arg(d, "out.warc.gz"),
        arg(d, "state"),
        site.root_url(),
    );
    let mut args = vec![
        "crawl",
        &seed,
        "-o",
        &out,
        "--warc",
        &warc,
        "--state",
        &state,
        "--requisites",
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    let base = &site.site().bases()[0];
    let requisites: std::collections::BTreeSet<String> =
        ["/static/site.css", "/static/logo.png", "/static/brand.png"]
            .iter()
            .map(|p| format!("{base}{p}"))
            .collect();
    let got: std::collections::BTreeSet<String> = recs
        .iter()
        .filter(|r| r.url.contains("/static/"))
        .map(|r| r.url.clone())
        .collect();
    // The stylesheet, the image and the inline CSS's url(), each once, fetched; the
    // stylesheet's own url() is a link of a requisite: not followed.
    assert_eq!(got, requisites);
    assert!(trawl_e2e::duplicates(&recs).is_empty());
    for r in recs.iter().filter(|r| r.url.contains("/static/")) {
        assert_eq!(r.status, Some(200), "{}", r.url);
    }
    assert_eq!(site.hits(&format!("{base}/static/bg.png")), 0);
    let raw = std::fs::read_to_string(d.join("out.jsonl")).expect("jsonl");
    let discovered: Vec<&str> = raw.lines().filter(|l| l.contains("/static/")).collect();
    assert!(
        discovered
            .iter()
            .all(|l| l.contains("\"discovery\":\"requisite\"")),
        "{discovered:?}"
    );
    // In the WARC, with their bodies: a replay shows the page with its assets.
    let archived: std::collections::BTreeSet<String> = trawl_e2e::read_warc(&d.join("out.warc.gz"))
        .into_iter()
        .filter(|r| r.header("WARC-Type") == Some("response"))
        .filter_map(|r| r.header("WARC-Target-URI").map(String::from))
        .filter(|u| u.contains("/static/"))
        .collect();
    assert_eq!(archived, requisites);
    // Without the flag, none is fetched.
    let plain = workdir();
    let p = plain.path();
    let (out, state) = (arg(p, "out.jsonl"), arg(p, "state"));
    let before = site.hits(&format!("{base}/static/logo.png"));
    let mut args = vec!["crawl", &seed, "-o", &out, "--state", &state];
    args.extend(FAST);
    let r = run(bin(), p, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(site.hits(&format!("{base}/static/logo.png")), before);
    assert!(
        read_jsonl(&p.join("out.jsonl"))
            .iter()
            .all(|r| !r.url.contains("/static/"))
    );
}
