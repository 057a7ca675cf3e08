//! Rate, Crawl-delay and Retry-After, seen in the test site's request log.

use std::time::Duration;

use trawl_e2e::{arg, read_jsonl, run, workdir};
use trawl_testsite::TestSite;

use crate::bin;

/// How many requests went to `base`, and the time from the first to the last.
fn span(site: &trawl_testsite::RunningSite, base: &str) -> (u32, Duration) {
    let mut at: Vec<_> = site
        .requests()
        .into_iter()
        .filter(|r| r.url.starts_with(base))
        .map(|r| r.at)
        .collect();
    at.sort();
    match (at.first(), at.last()) {
        (Some(a), Some(b)) => (at.len() as u32, *b - *a),
        _ => (0, Duration::ZERO),
    }
}

/// Asserts a pace's contract as the server sees it: the k-th request whose URL starts
/// with `base` comes no sooner than k intervals after the first, less 20 ms. Not a
/// least gap between neighbours: a request that reaches the server late (load between
/// the claim and the send) lands close to the next one, which is on time (seen on a
/// loaded machine: 0.8 ms and 71 ms gaps at 8/s, and 65 ms with a 0.25 s Crawl-delay,
/// with every claim on time).
fn assert_paced(site: &trawl_testsite::RunningSite, base: &str, interval: Duration) {
    let mut at: Vec<_> = site
        .requests()
        .into_iter()
        .filter(|q| q.url.starts_with(base))
        .map(|q| q.at)
        .collect();
    at.sort();
    for (k, t) in at.iter().enumerate() {
        assert!(
            *t - at[0] + Duration::from_millis(20) >= interval * k as u32,
            "{base}: request {k} came {:?} after the first, at one per {interval:?}",
            *t - at[0]
        );
    }
}

/// The smallest gap between consecutive requests whose URL starts with `base`.
fn min_gap(site: &trawl_testsite::RunningSite, base: &str) -> Duration {
    let mut at: Vec<_> = site
        .requests()
        .into_iter()
        .filter(|r| r.url.starts_with(base))
        .map(|r| r.at)
        .collect();
    at.sort();
    at.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(Duration::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_per_host_is_held_while_another_host_goes_on() {
    let site = TestSite::new()
        .pages(400)
        .hosts(2)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let (h0, h1) = (site.site().root_url(0), site.site().root_url(1));
    // 8 requests per second per host, 2 at once: 12 pages take at least 11/8 s per host.
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &h0,
            &h1,
            "-o",
            &out,
            "--state",
            &state,
            "--no-sitemaps",
            "--rate",
            "8",
            "--per-host-concurrency",
            "2",
            "--max-pages",
            "24",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(read_jsonl(&d.join("out.jsonl")).len(), 24);
    for base in site.site().bases() {
        let n = site
            .requests()
            .iter()
            .filter(|q| q.url.starts_with(base.as_str()))
            .count();
        assert!(n >= 6, "{base} was crawled too: {n}");
        assert_paced(&site, base, Duration::from_millis(125));
        // N requests to one host take at least (N-1)/rate.
        let (n, took) = span(&site, base);
        let least = Duration::from_millis(125) * (n - 1);
        assert!(
            took + Duration::from_millis(20) >= least,
            "{base}: {n} requests in {took:?}, at 8/s they need {least:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_delay_is_honoured_even_with_no_rate_limit() {
    let site = TestSite::new()
        .pages(100)
        .crawl_delay(Some(0.25))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state, seed) = (arg(d, "out.jsonl"), arg(d, "state"), site.root_url());
    let r = run(
        bin(),
        d,
        &[
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
            "4",
            "--max-pages",
            "6",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    // The delay's contract as the server sees it (see `assert_paced`).
    assert_paced(&site, &site.site().bases()[0], Duration::from_millis(250));
    let (n, took) = span(&site, &site.site().bases()[0]);
    assert!(
        took + Duration::from_millis(20) >= Duration::from_millis(250) * (n - 1),
        "{n} requests in {took:?} with a 0.25 s Crawl-delay"
    );

    // --ignore-crawl-delay lifts it.
    let fast = TestSite::new()
        .pages(100)
        .crawl_delay(Some(0.25))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state, seed) = (arg(d, "out.jsonl"), arg(d, "state"), fast.root_url());
    let r = run(
        bin(),
        d,
        &[
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
            "4",
            "--max-pages",
            "20",
            "--ignore-crawl-delay",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(min_gap(&fast, &fast.site().bases()[0]) < Duration::from_millis(240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_cools_one_host_while_the_other_goes_on() {
    let site = TestSite::new()
        .pages(300)
        .hosts(2)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let base0 = site.site().bases()[0].clone();
    let hostile = format!("{base0}/bad/status/429?after=2");
    let h1 = site.site().root_url(1);
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &hostile,
            &h1,
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
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log = site.requests();
    let first = log
        .iter()
        .find(|q| q.url == hostile)
        .expect("the 429 was requested");
    assert_eq!(first.status, 429);
    let deadline = first.at + Duration::from_secs(2);
    // Host 0 is left alone until Retry-After has passed...
    for q in log
        .iter()
        .filter(|q| q.url.starts_with(&base0) && q.at > first.at)
    {
        assert!(
            q.at >= deadline - Duration::from_millis(50),
            "{} at +{:?}",
            q.url,
            q.at - first.at
        );
    }
    let retried = log
        .iter()
        .filter(|q| q.url == hostile)
        .nth(1)
        .expect("retried after the wait");
    assert_eq!(retried.status, 200);
    // ...while host 1 is crawled in the meantime.
    let base1 = &site.site().bases()[1];
    let meanwhile = log
        .iter()
        .filter(|q| q.url.starts_with(base1.as_str()) && q.at > first.at && q.at < deadline)
        .count();
    assert!(
        meanwhile >= 20,
        "host 1 made {meanwhile} requests during host 0's cool-down"
    );
    let recs = read_jsonl(&d.join("out.jsonl"));
    let rec = recs
        .iter()
        .find(|r| r.url == hostile)
        .expect("a record for the 429 URL");
    assert_eq!(rec.status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_host_holds_up_no_other_host() {
    // 10 hosts; host 0's first two URLs stall (headers, then nothing) and hold both of
    // its slots. The other nine must be crawled completely meanwhile.
    let site = TestSite::new()
        .pages(450)
        .hosts(10)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let base0 = site.site().bases()[0].clone();
    let stall_a = format!("{base0}/bad/stall");
    let stall_b = format!("{base0}/bad/stall?again=1");
    let mut args: Vec<String> = vec!["crawl".into(), stall_a, stall_b];
    args.extend((1..10).map(|h| site.site().root_url(h)));
    for a in [
        "-o",
        &out,
        "--state",
        &state,
        "--no-sitemaps",
        "--rate",
        "0",
        "--per-host-concurrency",
        "2",
        "--concurrency",
        "8",
        "--timeout",
        "60s",
        "-q",
    ] {
        args.push(a.to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = trawl_e2e::command(bin(), d, &argv).spawn().expect("spawn");
    let truth = site
        .site()
        .crawl_truth(&(1..10).collect::<Vec<u64>>(), &|h| h != 0);
    let others: Vec<String> = truth.pages.keys().cloned().collect();
    let done = trawl_e2e::wait_for(Duration::from_secs(30), || {
        others.iter().all(|u| site.hits(u) > 0)
    })
    .await;
    let stalled = site
        .requests()
        .iter()
        .filter(|q| q.url.contains("/bad/stall"))
        .count();
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "the other hosts were not crawled while host 0 stalled");
    assert_eq!(stalled, 2, "both of host 0's slots were stalled the whole time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_goes_through_back_to_back_then_the_rate_holds() {
    let site = TestSite::new()
        .pages(200)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let root = site.root_url();
    // 2 per second with a burst of 6 and 6 at once: robots.txt (fetched by the seed
    // check), the root and 4 more together, then one every half second.
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &root,
            "-o",
            &out,
            "--state",
            &state,
            "--no-sitemaps",
            "--rate",
            "2",
            "--burst",
            "6",
            "--per-host-concurrency",
            "6",
            "--max-pages",
            "10",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let mut at: Vec<_> = site.requests().into_iter().map(|q| q.at).collect();
    at.sort();
    assert_eq!(at.len(), 11, "robots.txt and 10 pages: {at:?}");
    // The root's links arrive with its record: the next 4 requests go at once after it.
    let burst = at[5] - at[1];
    let offsets: Vec<_> = at.iter().map(|t| *t - at[0]).collect();
    assert!(
        burst < Duration::from_millis(400),
        "the burst was spread over {burst:?}: {offsets:?}"
    );
    // Then the rate: 5 more requests at 2/s, each at least about half a second apart.
    let rest = at[10] - at[5];
    assert!(rest >= Duration::from_millis(1_950), "after the burst: {rest:?}");
    // The rate's contract (GCRA): the k-th request after the burst of 6 (robots.txt
    // included) starts no sooner than k half-seconds after the first. Two requests may
    // be closer than half a second when the earlier one started late.
    for k in 1..=5 {
        let since = at[5 + k] - at[0];
        assert!(
            since >= Duration::from_millis(500 * k as u64 - 50),
            "request {} came {since:?} after the first: {offsets:?}",
            5 + k
        );
    }
}

/// The request times of a crawl of 4 virtual hosts on one address at 5 requests per
/// second, politeness kept by `key`.
async fn vhost_crawl(key: &str) -> Vec<tokio::time::Instant> {
    let site = TestSite::new()
        .vhosts(4)
        .pages(40)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let portal = site.portal_url().expect("a portal");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &portal,
            "--subdomains",
            "--allow-private-ips",
            "--no-sitemaps",
            "--rate",
            "5",
            "--politeness-key",
            key,
            "--max-pages",
            "16",
            "-o",
            &out,
            "--state",
            &state,
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let hosts: std::collections::HashSet<String> = site
        .requests()
        .iter()
        .filter_map(|q| q.url.split('/').nth(2).map(String::from))
        .collect();
    assert!(hosts.len() >= 3, "several virtual hosts fetched: {hosts:?}");
    let mut at: Vec<_> = site.requests().into_iter().map(|q| q.at).collect();
    at.sort();
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_ip_the_virtual_hosts_of_one_server_share_one_rate() {
    let (by_ip, by_host) = tokio::join!(vhost_crawl("ip"), vhost_crawl("host"));
    // One gate for the server: the k-th request after the first no sooner than k
    // intervals (0.2 s) after it, whichever hosts they were for (robots.txt included).
    let first = by_ip[0];
    for (k, t) in by_ip.iter().enumerate() {
        assert!(
            *t - first + Duration::from_millis(20) >= Duration::from_millis(200) * k as u32,
            "request {k} at {:?}",
            *t - first
        );
    }
    // By host, the same crawl goes faster than one server's rate allows.
    let fast = by_host
        .iter()
        .enumerate()
        .any(|(k, t)| *t - by_host[0] + Duration::from_millis(20) < Duration::from_millis(200) * k as u32);
    assert!(fast, "by host, each host has its own rate");
}
