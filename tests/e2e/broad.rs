//! A broad crawl: hundreds of virtual hosts (`h0.localhost` …) on one port of
//! 127.0.0.1, reached through RFC 6761's `*.localhost`, with less room for per-host
//! state in memory than there are hosts.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use trawl_e2e::{arg, duplicates, ok_urls, read_jsonl, run, workdir};
use trawl_testsite::TestSite;

use crate::bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_virtual_hosts_are_crawled_once_each_and_politely() {
    const HOSTS: usize = 300;
    let site = TestSite::new()
        .vhosts(HOSTS)
        .pages(4 * HOSTS as u64)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let portal = site.portal_url().expect("a portal");
    let dir = workdir();
    let d = dir.path();
    let (out, state, stats) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "stats.json"));
    // 4 requests per second per host, one at a time; room for 16 idle hosts' gates and
    // robots.txt verdicts, so they are dropped and made again all along.
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &portal,
            "--subdomains",
            "--allow-private-ips",
            "--rate",
            "4",
            "--per-host-concurrency",
            "1",
            "--concurrency",
            "48",
            "--host-cache",
            "16",
            "-o",
            &out,
            "--state",
            &state,
            "--stats-json",
            &stats,
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Every page of every host, exactly once, and nothing else.
    let truth = site.site().crawl_truth(&[0], &|_| true);
    assert_eq!(truth.pages.len(), 4 * HOSTS);
    let records = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&records).is_empty(), "{:?}", duplicates(&records));
    let mut expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    expected.insert(portal.as_str());
    assert_eq!(ok_urls(&records), expected);
    for i in 0..4 * HOSTS as u64 {
        assert_eq!(site.page_hits(i), 1, "page {i} ({})", site.site().page_url(i));
    }
    assert_eq!(site.private_hits(), 0, "robots.txt of every host obeyed");
    for o in &truth.out_of_scope {
        assert_eq!(site.hits(o), 0, "{o} requested");
    }
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("stats.json")).expect("stats")).expect("json");
    assert_eq!(s["outcome"], "completed");
    assert_eq!(s["stats"]["hosts"].as_u64(), Some(HOSTS as u64 + 1));

    // Politeness per host: every request to a host (robots.txt and sitemaps included)
    // spaced by the rate, however often its gate left memory.
    let mut by_host: BTreeMap<String, Vec<tokio::time::Instant>> = BTreeMap::new();
    for q in site.requests() {
        let base = q.url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        by_host.entry(base).or_default().push(q.at);
    }
    assert_eq!(
        by_host.len(),
        HOSTS + 1,
        "{:?}",
        by_host.keys().take(5).collect::<Vec<_>>()
    );
    let mut checked = 0;
    for (base, mut at) in by_host {
        at.sort();
        // Sends are spaced by the client; an arrival can be late by up to a hundred
        // milliseconds on a loaded machine, which shortens one gap and lengthens the
        // next (more so when the host's robots.txt verdict left memory and is read
        // back first). So any run of requests spans its share of the rate, less 100 ms.
        for i in 0..at.len() {
            for j in i + 1..at.len() {
                let (took, least) = (at[j] - at[i], Duration::from_millis(250) * (j - i) as u32);
                assert!(
                    took + Duration::from_millis(100) >= least,
                    "{base}: requests {i} to {j} came {took:?} apart at 4/s"
                );
            }
        }
        let n = at.len();
        checked += usize::from(n >= 4);
    }
    assert!(checked >= HOSTS, "{checked} hosts had 4 requests or more");
}
