//! Bodies of types trawl does not parse are not downloaded, unless `--accept-type`
//! or `--warc` keeps them: measured on the client (the records and the stats) and on
//! the server (testsite's report of the streamed body).

use std::time::Duration;

use trawl_e2e::{Rec, arg, read_jsonl, run, workdir};
use trawl_testsite::{BINARY_BYTES, RunningSite, StreamReport, TestSite};

use crate::{FAST, bin};

/// At most this much of the 10 MiB binary may be read when it is skipped.
const READ_AT_MOST: u64 = 64 << 10;

/// Crawls `seeds` with `extra` flags into a fresh directory; the records and the stats.
async fn crawl(seeds: &[String], extra: &[&str]) -> (Vec<Rec>, serde_json::Value, tempfile::TempDir) {
    let dir = workdir();
    let d = dir.path();
    let (out, state, stats) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "stats.json"));
    let mut args = vec!["crawl"];
    args.extend(seeds.iter().map(String::as_str));
    args.extend([
        "-o",
        &out,
        "--state",
        &state,
        "--stats-json",
        &stats,
        "--no-sitemaps",
    ]);
    args.extend(FAST);
    args.extend(extra);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    let stats = serde_json::from_slice(&std::fs::read(d.join("stats.json")).expect("stats")).expect("json");
    (read_jsonl(&d.join("out.jsonl")), stats, dir)
}

fn record<'a>(recs: &'a [Rec], url: &str) -> &'a Rec {
    recs.iter()
        .find(|r| r.url == url)
        .unwrap_or_else(|| panic!("no record for {url}: {recs:?}"))
}

/// The server's reports of the `n` bodies of `url` sent so far, once all have ended.
async fn sent(site: &RunningSite, url: &str, n: usize) -> Vec<StreamReport> {
    tokio::time::timeout(Duration::from_secs(30), site.streams_ended(url, n))
        .await
        .expect("the server lets go of every body it streamed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_body_is_closed_after_its_headers() {
    let site = TestSite::new().pages(10).start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let binary = format!("{base}/bad/binary");
    let html = format!("{base}/bad/charset/undeclared-sjis");
    let (recs, stats, _dir) = crawl(&[binary.clone(), html.clone()], &[]).await;

    let b = record(&recs, &binary);
    assert_eq!(b.status, Some(200));
    assert_eq!(b.error, None, "a skipped body is not a failure");
    assert_eq!(b.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(b.skipped.as_deref(), Some("skipped-content-type"));
    assert!(
        b.wire_bytes < READ_AT_MOST && b.body_bytes < READ_AT_MOST,
        "{} bytes of {BINARY_BYTES} read",
        b.wire_bytes
    );
    // HTML is read as ever.
    let h = record(&recs, &html);
    assert!(h.skipped.is_none() && h.body_bytes > 0, "{h:?}");

    let s = &stats["stats"];
    assert_eq!(s["bodies_skipped"].as_u64(), Some(1), "{stats}");
    assert!(
        s["wire_bytes"].as_u64().expect("wire bytes") < READ_AT_MOST,
        "{stats}"
    );
    // The server never got to the end of the body: the client hung up on it.
    let reports = sent(&site, &binary, 1).await;
    assert!(!reports[0].complete, "{reports:?}");
    assert!(reports[0].bytes < BINARY_BYTES, "{reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_type_and_warc_keep_the_body() {
    let site = TestSite::new().pages(10).start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let binary = format!("{base}/bad/binary");
    let seeds = [binary.clone()];

    let (recs, stats, _dir) = crawl(&seeds, &["--accept-type", "application/*"]).await;
    let b = record(&recs, &binary);
    assert_eq!(
        (b.skipped.as_deref(), b.body_bytes),
        (None, BINARY_BYTES),
        "{b:?}"
    );
    assert_eq!(stats["stats"]["bodies_skipped"].as_u64(), Some(0));
    assert!(sent(&site, &binary, 1).await[0].complete);

    // With WARC output the body is archived, so it is read without --accept-type.
    let warc_dir = workdir();
    let warc = arg(warc_dir.path(), "out.warc.gz");
    let (recs, stats, _dir) = crawl(&seeds, &["--warc", &warc]).await;
    let b = record(&recs, &binary);
    assert_eq!(
        (b.skipped.as_deref(), b.body_bytes),
        (None, BINARY_BYTES),
        "{b:?}"
    );
    assert_eq!(stats["stats"]["bodies_skipped"].as_u64(), Some(0));
    assert!(sent(&site, &binary, 2).await[1].complete);
    let mut archived = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&warc).expect("the WARC file")),
        &mut archived,
    )
    .expect("gzip members");
    assert!(
        archived.len() as u64 > BINARY_BYTES,
        "the archive holds the body: {} bytes",
        archived.len()
    );
}
