//! The adaptive per-host rate against testsite's hidden per-client limit (R requests
//! in any second, 429 above it), judged from the server's request log: the times are
//! the server's, recorded as the requests arrived, so nothing here waits or sleeps.
//!
//! The convergence bars themselves, with and without `Retry-After`, are proven on
//! tokio's paused clock through the real gate (`crates/fetcher/src/adaptive_sim.rs`).
//! This test checks that the whole binary gets there too (the scheduler, the fetch
//! tasks, the retries through the frontier, one real server) in one variant, and
//! that `--adaptive off` does not, so that it can fail.

use std::time::Duration;

use trawl_e2e::{arg, run, workdir};
use trawl_testsite::{RateLimit, Request, TestSite};

use crate::bin;

/// The hidden limit, requests per second.
const R: u32 = 20;
/// How long each crawl runs (`--max-time`), and the warm-up left out of the verdict.
const CRAWL: &str = "45s";
const WARM_UP: Duration = Duration::from_secs(15);
/// The span of the rate samples that must stay within ±30% of their mean.
const BUCKET: Duration = Duration::from_secs(5);

/// What the log says after the warm-up.
#[derive(Debug)]
struct Verdict {
    /// Admitted requests per second.
    achieved: f64,
    /// Share of the requests answered 429.
    refused: f64,
    /// Admitted requests per second in each whole [`BUCKET`].
    buckets: Vec<f64>,
    /// Requests after the warm-up.
    requests: usize,
}

fn judge(log: &[Request]) -> Verdict {
    let mut pages: Vec<&Request> = log.iter().filter(|r| !r.url.ends_with("/robots.txt")).collect();
    pages.sort_by_key(|r| r.at);
    let t0 = pages.first().expect("requests").at + WARM_UP;
    let end = pages.last().expect("requests").at;
    let after: Vec<&&Request> = pages.iter().filter(|r| r.at >= t0).collect();
    let ok = after.iter().filter(|r| r.status == 200).count();
    let refused = after.iter().filter(|r| r.status == 429).count();
    let span = end.saturating_duration_since(t0);
    let whole = (span.as_secs_f64() / BUCKET.as_secs_f64()).floor() as usize;
    let mut buckets = vec![0u32; whole];
    for r in after.iter().filter(|r| r.status == 200) {
        let k = (r.at.saturating_duration_since(t0).as_secs_f64() / BUCKET.as_secs_f64()) as usize;
        if let Some(b) = buckets.get_mut(k) {
            *b += 1;
        }
    }
    Verdict {
        achieved: ok as f64 / span.as_secs_f64(),
        refused: refused as f64 / after.len().max(1) as f64,
        buckets: buckets
            .iter()
            .map(|b| f64::from(*b) / BUCKET.as_secs_f64())
            .collect(),
        requests: after.len(),
    }
}

/// Crawls a site under the hidden limit at `--rate 4R` with the given extra flags, and
/// returns the server's request log. (`retry_after` is the 429's `Retry-After`; the
/// variant with one is proven on paused time in the fetcher.)
async fn crawl_under_limit(retry_after: Option<u64>, extra: &[&str]) -> Vec<Request> {
    let site = TestSite::new()
        .pages(5_000)
        .rate_limit(RateLimit {
            per_second: R,
            retry_after,
        })
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let (rate, root) = ((4 * R).to_string(), site.root_url());
    let mut args = vec![
        "crawl",
        &root,
        "-o",
        &out,
        "--state",
        &state,
        "--no-sitemaps",
        "--rate",
        &rate,
        "--max-time",
        CRAWL,
        "-q",
    ];
    args.extend_from_slice(extra);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 3, "stopped by --max-time: {}", r.stderr);
    site.requests()
}

fn check(v: &Verdict, variant: &str) {
    let r = f64::from(R);
    assert!(v.requests > 300, "{variant}: too few requests to judge: {v:?}");
    assert!(
        (0.7 * r..=1.0 * r).contains(&v.achieved),
        "{variant}: achieved {:.1}/s against a limit of {R}/s: {v:?}",
        v.achieved
    );
    assert!(
        v.refused < 0.05,
        "{variant}: {:.1}% refused: {v:?}",
        v.refused * 100.0
    );
    let mean = v.buckets.iter().sum::<f64>() / v.buckets.len() as f64;
    for b in &v.buckets {
        assert!(
            (b / mean - 1.0).abs() <= 0.3,
            "{variant}: {b:.1}/s in a {BUCKET:?} span against a mean of {mean:.1}/s: {v:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_rate_converges_under_a_hidden_limit_and_a_fixed_rate_does_not() {
    let (plain, fixed) = tokio::join!(
        crawl_under_limit(None, &[]),
        crawl_under_limit(None, &["--adaptive", "off"]),
    );
    let (plain, fixed) = (judge(&plain), judge(&fixed));
    println!("429 without Retry-After: {plain:?}\n--adaptive off: {fixed:?}");
    check(&plain, "no Retry-After");
    // The same crawl at a fixed rate fails the same bar: it keeps running into the
    // limit and loses its time in backoff (measured: 9% refused, 0.58 R achieved).
    let r = f64::from(R);
    assert!(
        fixed.refused >= 0.05 || fixed.achieved < 0.7 * r,
        "--adaptive off met the bar too, so the test tells nothing: {fixed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_rate_survives_kill_9_and_status_shows_it() {
    let site = TestSite::new()
        .pages(2_000)
        .rate_limit(RateLimit {
            per_second: 10,
            retry_after: None,
        })
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let root = site.root_url();
    let args = [
        "crawl",
        &root,
        "-o",
        &out,
        "--state",
        &state,
        "--no-sitemaps",
        "--rate",
        "40",
        "-q",
    ];
    let mut child = trawl_e2e::command(bin(), d, &args).spawn().expect("spawn");
    // Until the limit has refused a few requests and many more were answered since
    // (well past the commit stage's 200 ms flush interval), then SIGKILL.
    let refused_then = |n: usize| {
        let log = site.requests();
        let first = log.iter().position(|r| r.status == 429)?;
        (log[first..].iter().filter(|r| r.status == 200).count() >= n).then_some(())
    };
    let ready = trawl_e2e::wait_for(Duration::from_secs(60), || refused_then(40).is_some()).await;
    child.kill().expect("SIGKILL");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(ready, "no 429 followed by 40 pages within 60 s");
    let r = run(bin(), d, &["status", &state, "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let host = &v["politeness"][0];
    assert_eq!(host["adaptive"], true, "{}", r.stdout);
    let rate = host["rate"].as_f64().expect("a rate");
    assert!(rate > 0.0 && rate < 40.0, "{rate}: {}", r.stdout);
    // And in text, for people.
    let t = run(bin(), d, &["status", &state]).await;
    assert!(
        t.stdout.contains("politeness of the hosts with the most work"),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains('*'), "{}", t.stdout);
}
