//! The engine against trawl-testsite over real HTTP, with real sled directories.

use std::collections::{BTreeMap, HashSet};

use trawl_engine::{CancellationToken, CrawlConfig, CrawlOutcome, Crawler};
use trawl_testsite::TestSite;

fn fast(config: &mut CrawlConfig) {
    config.politeness.rate = 0.0;
    config.politeness.per_host_concurrency = 8;
    config.politeness.concurrency = 32;
    config.politeness.user_agent = "trawl-test/0.1 (+https://example.invalid/bot)".into();
}

fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("output");
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_host_site_is_crawled_exactly_once() {
    let site = TestSite::new()
        .pages(300)
        .hosts(3)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = tempfile::tempdir().expect("tmp");
    let seeds: Vec<String> = (0..3).map(|h| site.site().root_url(h)).collect();
    let mut config = CrawlConfig::new(seeds);
    fast(&mut config);
    config.state.dir = dir.path().join("state");
    let out = dir.path().join("pages.jsonl");
    config.output.jsonl = Some(out.clone());
    let summary = Crawler::run(config, CancellationToken::new())
        .await
        .expect("crawl");
    assert_eq!(summary.outcome, CrawlOutcome::Completed);

    let truth = site.site().crawl_truth(&[0, 1, 2], &|_| true);
    let records = read_jsonl(&out);
    let mut ok: BTreeMap<String, u64> = BTreeMap::new();
    let mut denied = HashSet::new();
    for r in &records {
        let url = r["url"].as_str().expect("url").to_string();
        match r["error"]["kind"].as_str() {
            None => *ok.entry(url).or_default() += 1,
            Some("robots-denied") => {
                assert!(denied.insert(url.clone()), "{url} twice");
            }
            Some(other) => panic!("{url} failed: {other}"),
        }
    }
    assert!(ok.values().all(|&n| n == 1), "a page was written twice");
    let found: HashSet<&String> = ok.keys().collect();
    let expected: HashSet<&String> = truth.pages.keys().collect();
    assert_eq!(found, expected);
    let disallowed: HashSet<String> = truth.disallowed.iter().cloned().collect();
    assert_eq!(denied, disallowed);
    assert_eq!(site.private_hits(), 0, "a robots-disallowed URL was requested");
    assert!(site.pages_hit_twice().is_empty(), "{:?}", site.pages_hit_twice());
    assert_eq!(summary.stats.pages as usize, records.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_trips_its_circuit_breaker_and_the_others_go_on() {
    let site = TestSite::new().pages(200).start().await.expect("site");
    // A port nobody listens on: every request to it fails to connect.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead: Vec<String> = (0..30)
        .map(|i| format!("http://127.0.0.1:{dead_port}/p/{i}"))
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let mut seeds = vec![site.root_url()];
    seeds.extend(dead.iter().cloned());
    let mut config = CrawlConfig::new(seeds);
    fast(&mut config);
    config.politeness.per_host_concurrency = 2;
    config.politeness.pause_after_failures = 100;
    config.politeness.give_up_after_failures = 6;
    config.politeness.backoff_base_secs = 0.01;
    // (An unreachable robots.txt keeps a host waiting a minute per try; here the
    // breaker is tested on the requests themselves.)
    config.politeness.robots = false;
    // Without robots.txt the test site's /private/ chain is an endless trap.
    config.limits.budgets = vec![trawl_engine::PathBudget {
        prefix: "/private/".into(),
        max: 3,
    }];
    config.scope.no_sitemaps = true;
    config.state.dir = dir.path().join("state");
    let out = dir.path().join("pages.jsonl");
    config.output.jsonl = Some(out.clone());
    let summary = Crawler::run(config, CancellationToken::new())
        .await
        .expect("crawl");
    assert_eq!(summary.outcome, CrawlOutcome::Completed);
    let records = read_jsonl(&out);
    let on_dead: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.contains(&format!(":{dead_port}/")))
        })
        .collect();
    assert_eq!(on_dead.len(), 30, "every URL of the dead host ends as a record");
    let unavailable = on_dead
        .iter()
        .filter(|r| r["error"]["kind"] == "host-unavailable")
        .count();
    let kinds: Vec<&serde_json::Value> = on_dead.iter().map(|r| &r["error"]["kind"]).collect();
    assert!(
        unavailable >= 20,
        "the breaker gave up on the host: {unavailable} of 30: {kinds:?}"
    );
    assert!(on_dead.iter().all(|r| r["error"]["kind"].is_string()));
    // Failed at once, with an outcome of their own: no request, no pacing.
    for r in on_dead
        .iter()
        .filter(|r| r["error"]["kind"] == "host-unavailable")
    {
        assert!(r["status"].is_null(), "{r}");
        assert_eq!(r["timings"]["total_ms"].as_f64(), Some(0.0), "{r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("no request was made"), "{message}");
    }
    let ok = records
        .iter()
        .filter(|r| r["error"].is_null() && !r["url"].as_str().unwrap_or("").contains("/private/"))
        .count();
    let truth = site.site().crawl_truth(&[0], &|_| true);
    assert_eq!(ok, truth.pages.len(), "the live host is unaffected");
    let dead_host = format!("127.0.0.1:{dead_port}");
    let h = summary
        .stats
        .top_hosts
        .iter()
        .find(|h| h.host == dead_host)
        .expect("the dead host in the stats");
    assert!(h.failure_rate > 0.99, "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_leased_too_often_fails_with_a_record_and_no_request() {
    use trawl_frontier::{Frontier, FrontierStore, NewUrl, Options};
    let site = TestSite::new()
        .pages(20)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state");
    let root = site.root_url();
    // A crash loop: the seed leased 11 times, and every process died before its ack.
    for _ in 0..=trawl_engine::MAX_LEASES {
        let f = Frontier::open(&state, Options::default().max_attempts(u32::MAX)).expect("open");
        f.enqueue(vec![NewUrl::page(root.clone(), 0)]).expect("enqueue");
        let (host, _) = f.ready_hosts().expect("read")[0];
        assert_eq!(f.lease(host, 1).expect("lease").len(), 1);
        f.flush().expect("flush");
    }
    let mut config = CrawlConfig::new([root.clone()]);
    fast(&mut config);
    config.scope.no_sitemaps = true;
    config.state.dir = state;
    let out = dir.path().join("pages.jsonl");
    config.output.jsonl = Some(out.clone());
    let summary = Crawler::run(config, CancellationToken::new())
        .await
        .expect("crawl");
    assert_eq!(summary.outcome, CrawlOutcome::Completed);
    let records = read_jsonl(&out);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["url"], root.as_str());
    assert_eq!(records[0]["error"]["kind"], "too-many-attempts");
    assert_eq!(site.page_hits(0), 0, "no request for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_engine_checkpoint_is_a_state_error() {
    use trawl_frontier::{Ack, Frontier, FrontierStore, Options, Outcome};
    let site = TestSite::new().pages(30).start().await.expect("site");
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = CrawlConfig::new([site.root_url()]);
    fast(&mut config);
    config.limits.max_pages = Some(5);
    config.state.dir = dir.path().join("state");
    config.output.jsonl = Some(dir.path().join("pages.jsonl"));
    let summary = Crawler::run(config.clone(), CancellationToken::new())
        .await
        .expect("crawl");
    assert!(matches!(summary.outcome, CrawlOutcome::LimitReached(_)));
    // Store garbage as the engine's counters, the way a torn write would.
    {
        let f = Frontier::open(&config.state.dir, Options::default()).expect("open");
        let (host, _) = f.ready_hosts().expect("read")[0];
        let lease = f.lease(host, 1).expect("lease").remove(0);
        let ack = Ack {
            lease,
            outcome: Outcome::Retry,
            discovered: Vec::new(),
        };
        f.ack(vec![ack], &[("engine", b"{not json")]).expect("ack");
        f.flush().expect("flush");
    }
    config.limits.max_pages = Some(10);
    let err = Crawler::open(config).await.expect_err("a damaged checkpoint");
    assert!(
        matches!(
            &err,
            trawl_engine::Error::State {
                source: trawl_engine::FrontierError::Corrupt { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_budgets_hold_for_sitemap_urls_too() {
    let site = TestSite::new()
        .pages(400)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = CrawlConfig::new([site.root_url()]);
    fast(&mut config);
    config.limits.budgets = vec![trawl_engine::PathBudget {
        prefix: "/page/".into(),
        max: 25,
    }];
    config.state.dir = dir.path().join("state");
    let out = dir.path().join("pages.jsonl");
    config.output.jsonl = Some(out.clone());
    let summary = Crawler::run(config, CancellationToken::new())
        .await
        .expect("crawl");
    assert_eq!(summary.outcome, CrawlOutcome::Completed);
    assert!(summary.stats.sitemaps > 0, "the sitemap was read");
    let records = read_jsonl(&out);
    let under: Vec<_> = records
        .iter()
        .filter(|r| r["url"].as_str().is_some_and(|u| u.contains("/page/")))
        .collect();
    // The sitemap lists all 399 pages under /page/: the budget holds for them too.
    // It counts distinct URLs: a link to a URL already known gives its unit back
    // after the ack (so one refused in between, while a unit is out, is the only
    // way to end below the budget).
    assert!(under.len() <= 25, "{} records under /page/", under.len());
    assert!(under.len() >= 24, "{} records under /page/", under.len());
    assert!(summary.stats.over_budget > 300, "{}", summary.stats.over_budget);
}
