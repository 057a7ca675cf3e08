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
}
