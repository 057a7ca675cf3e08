//! A whole crawl against the ground truth.

use std::collections::HashSet;

use trawl_e2e::{arg, duplicates, read_jsonl, run, workdir};
use trawl_testsite::TestSite;

use crate::{FAST, bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2000_page_site_over_3_hosts_is_crawled_exactly_once() {
    let site = TestSite::new()
        .pages(2000)
        .hosts(3)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let roots: Vec<String> = (0..3).map(|h| site.site().root_url(h)).collect();
    let (out, state, stats) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "stats.json"));
    let mut args: Vec<&str> = roots.iter().map(String::as_str).collect();
    args.extend(["-o", &out, "--state", &state, "--stats-json", &stats]);
    args.extend(FAST);
    let mut full = vec!["crawl"];
    full.extend(args);
    let r = run(bin(), d, &full).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    let truth = site.site().crawl_truth(&[0, 1, 2], &|_| true);
    let records = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&records).is_empty(), "{:?}", duplicates(&records));
    let ok = trawl_e2e::ok_urls(&records);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok.len(), 2000);
    assert_eq!(ok, expected);
    // (Depths are checked in the limits tests, with one host and no sitemaps: here a
    // page's first discovery may come through a sitemap or from a deeper page of
    // another host.)
    assert!(
        records
            .iter()
            .filter(|r| r.error.is_none())
            .all(|r| r.status == Some(200))
    );
    let denied: HashSet<&str> = records
        .iter()
        .filter(|r| r.error.as_deref() == Some("robots-denied"))
        .map(|r| r.url.as_str())
        .collect();
    let disallowed: HashSet<&str> = truth.disallowed.iter().map(String::as_str).collect();
    assert_eq!(denied, disallowed);
    assert_eq!(records.len(), ok.len() + denied.len(), "no other failures");

    // Nothing disallowed or out of scope was requested; no page twice.
    assert_eq!(site.private_hits(), 0);
    assert!(site.pages_hit_twice().is_empty(), "{:?}", site.pages_hit_twice());
    for req in site.requests() {
        let path = req.url.splitn(4, '/').nth(3).unwrap_or("");
        let known =
            expected.contains(req.url.as_str()) || path == "robots.txt" || path.starts_with("sitemap");
        assert!(known, "unexpected request {}", req.url);
    }
    for o in &truth.out_of_scope {
        assert!(site.hits(o) == 0, "{o} requested");
    }
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("stats.json")).expect("stats")).expect("json");
    assert_eq!(stats["outcome"], "completed");
    assert_eq!(stats["stats"]["pages"].as_u64(), Some(records.len() as u64));
    assert_eq!(stats["stats"]["ok"].as_u64(), Some(2000));
    // Sitemaps (XML) are read although pages are HTML only; no HTML body was skipped.
    assert!(stats["stats"]["sitemaps"].as_u64() > Some(0), "{stats}");
    assert_eq!(stats["stats"]["bodies_skipped"].as_u64(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_the_user_names_are_crawled_on_loopback() {
    let site = TestSite::new()
        .pages(600)
        .hosts(3)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let authority = |h: usize| site.site().bases()[h].trim_start_matches("http://").to_string();
    let (a1, a2) = (authority(1), authority(2));
    let root = site.site().root_url(0);
    // One seed; the other two hosts named, on 127.0.0.1, without --allow-private-ips.
    let mut args = vec![
        "crawl",
        root.as_str(),
        "--allow-host",
        &a1,
        "--allow-host",
        &a2,
        "-o",
        &out,
        "--state",
        &state,
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let records = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&records).is_empty());
    let ok = trawl_e2e::ok_urls(&records);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok, expected, "all three hosts");
    for h in 0..3 {
        let base = &site.site().bases()[h];
        assert!(
            ok.iter().any(|u| u.starts_with(base.as_str())),
            "no page of host {h}"
        );
    }
    // Discovered links to other special-purpose addresses are still refused.
    assert_eq!(site.private_hits(), 0);
    for o in &truth.out_of_scope {
        assert!(site.hits(o) == 0, "{o} requested");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_negotiates_http2() {
    let site = TestSite::new()
        .pages(200)
        .tls(true)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let ca = d.join("ca.pem");
    site.write_ca(&ca).expect("write the CA");
    let (out, state, ca_arg) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "ca.pem"));
    let warc = arg(d, "out.warc.gz");
    let root = site.root_url();
    assert!(root.starts_with("https://"), "{root}");

    // Without the CA: the seed preflight says what is wrong at once, exit 6, one line,
    // and leaves nothing behind.
    let r = run(bin(), d, &["crawl", &root, "-o", &out, "--state", &state, "-q"]).await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    let line = trawl_e2e::one_line(&r.stderr);
    assert!(line.contains("tls") && line.contains("certificate"), "{line}");
    assert!(line.contains("--ca-cert"), "{line}");
    assert!(!d.join("state").exists() && !d.join("out.jsonl").exists());

    // With it: the whole site, over HTTP/2 chosen by ALPN.
    let mut args = vec![
        "crawl",
        root.as_str(),
        "--ca-cert",
        &ca_arg,
        "-o",
        &out,
        "--warc",
        &warc,
        "--state",
        &state,
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let records = read_jsonl(&d.join("out.jsonl"));
    let ok = trawl_e2e::ok_urls(&records);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok, expected);
    let requests = site.requests();
    assert!(!requests.is_empty());
    let h2 = requests.iter().filter(|q| q.version == "HTTP/2.0").count();
    assert_eq!(h2, requests.len(), "every request over HTTP/2");
    // The protocol is recorded: in every JSONL record with a response and on every
    // WARC response record.
    for r in records.iter().filter(|r| r.status.is_some()) {
        assert_eq!(r.protocol.as_deref(), Some("h2"), "{}", r.url);
    }
    let responses: Vec<_> = trawl_e2e::read_warc(&d.join("out.warc.gz"))
        .into_iter()
        .filter(|r| r.header("WARC-Type") == Some("response"))
        .collect();
    assert_eq!(responses.len(), ok.len());
    for r in &responses {
        assert_eq!(r.header("WARC-Protocol"), Some("h2"), "{:?}", r.headers);
    }
}
