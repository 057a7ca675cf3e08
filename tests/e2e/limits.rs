//! Each limit stops where README.md says, resumably; raising it on resume goes on.

use std::collections::HashSet;

use trawl_e2e::{arg, duplicates, read_jsonl, run, workdir};
use trawl_testsite::TestSite;

use crate::{FAST, bin};

fn crawl_args<'a>(seed: &'a str, out: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["crawl", seed, "-o", out, "--state", state, "--no-sitemaps"];
    v.extend(FAST);
    v.extend(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pages_stops_exactly_and_a_higher_limit_goes_on() {
    let site = TestSite::new()
        .pages(400)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let seed = site.root_url();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let r = run(bin(), d, &crawl_args(&seed, &out, &state, &["--max-pages", "50"])).await;
    assert_eq!(r.code, 3, "limit reached: {}", r.stderr);
    assert_eq!(read_jsonl(&d.join("out.jsonl")).len(), 50);

    let r = run(bin(), d, &["resume", &state, "--max-pages", "120", "-q"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert_eq!(recs.len(), 120);
    assert!(duplicates(&recs).is_empty());

    let r = run(bin(), d, &["resume", &state, "-q", "--max-pages", "100000"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&recs).is_empty());
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let ok = trawl_e2e::ok_urls(&recs);
    assert_eq!(ok.len(), truth.pages.len());
    assert!(site.pages_hit_twice().is_empty(), "{:?}", site.pages_hit_twice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_depth_keeps_exactly_the_pages_within_it() {
    let site = TestSite::new().pages(600).start().await.expect("site");
    let dir = workdir();
    let d = dir.path();
    let seed = site.root_url();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let r = run(bin(), d, &crawl_args(&seed, &out, &state, &["--max-depth", "2"])).await;
    assert_eq!(r.code, 0, "depth is a scope, not a stop: {}", r.stderr);
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(recs.iter().all(|r| r.depth <= 2));
    let ok = trawl_e2e::ok_urls(&recs);
    let within: HashSet<&str> = truth
        .pages
        .iter()
        .filter(|(_, d)| **d <= 2)
        .map(|(u, _)| u.as_str())
        .collect();
    assert!(within.len() < truth.pages.len(), "the limit must cut something");
    assert_eq!(ok, within);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_max_pages_per_host_and_max_time_stop_resumably() {
    let site = TestSite::new()
        .pages(600)
        .hosts(2)
        .latency(trawl_testsite::Latency::Fixed(std::time::Duration::from_millis(
            5,
        )))
        .start()
        .await
        .expect("site");
    let seed = site.root_url();

    // Bytes: leasing stops once 300 KiB are in; pages in flight finish.
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let r = run(
        bin(),
        d,
        &crawl_args(&seed, &out, &state, &["--max-bytes", "300KiB"]),
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    let bytes: u64 = recs.iter().map(|r| r.body_bytes).sum();
    assert!(bytes >= 300 << 10, "{bytes}");
    assert!(
        bytes < (300 << 10) + 64 * (24 << 10),
        "at most the in-flight pages past it: {bytes}"
    );

    // Pages per host: each host stops at 40 URLs.
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let host1 = site.site().root_url(1);
    let mut args = crawl_args(&seed, &out, &state, &["--max-pages-per-host", "40"]);
    args.insert(2, &host1);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    for base in site.site().bases() {
        let n = recs.iter().filter(|r| r.url.starts_with(base.as_str())).count();
        assert!((30..=40).contains(&n), "{base}: {n}");
    }

    // Time: a slow site and one second of crawling.
    let slow = TestSite::new()
        .pages(300)
        .latency(trawl_testsite::Latency::Fixed(std::time::Duration::from_millis(
            50,
        )))
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let seed = slow.root_url();
    let t = std::time::Instant::now();
    let args: Vec<&str> = vec![
        "crawl",
        &seed,
        "-o",
        &out,
        "--state",
        &state,
        "--no-sitemaps",
        "--rate",
        "0",
        "--per-host-concurrency",
        "2",
        "-q",
        "--max-time",
        "1s",
    ];
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t.elapsed()
    );
    let first = read_jsonl(&d.join("out.jsonl")).len();
    assert!(first > 0 && first < 300, "{first}");
    // The time is counted across runs: another second goes on from there.
    let r = run(bin(), d, &["resume", &state, "-q", "--max-time", "2s"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(recs.len() > first, "{} then {}", first, recs.len());
    assert!(duplicates(&recs).is_empty());
}
