//! A crawl of every hostile endpoint finishes, each with its documented outcome, in
//! bounded memory.

use std::time::Duration;

use trawl_e2e::{Rec, arg, duplicates, read_jsonl, run, workdir};
use trawl_testsite::{ENDPOINTS, TestSite};

use crate::bin;

/// What the record of each endpoint must say: the failure kinds its documentation
/// allows, or a status.
fn expected(path: &str) -> Result<u64, &'static [&'static str]> {
    match path {
        "/bad/bomb/gzip" | "/bad/bomb/br" | "/bad/bomb/zstd" => Err(&["too-large"]),
        // "The body cap or the total timeout must stop it": on a loaded machine 8 MiB
        // may take longer than the 2 s timeout.
        "/bad/huge" | "/bad/endless" => Err(&["too-large", "timeout"]),
        "/bad/trickle" | "/bad/stall" => Err(&["timeout"]),
        "/bad/always-500" => Err(&["http-status"]),
        "/bad/redirect-loop/a" | "/bad/redirect-chain/20" => Ok(302),
        p if p.starts_with("/bad/redirect-to/") => Ok(302),
        // 429/503 come back 200 after the Retry-After; the rest are pages.
        _ => Ok(200),
    }
}

fn find<'a>(recs: &'a [Rec], url: &str) -> Option<&'a Rec> {
    recs.iter().find(|r| r.url == url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_endpoint_ends_as_its_documented_record() {
    let site = TestSite::new()
        .pages(10)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let base = site.site().bases()[0].clone();
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let seed = format!("{base}/bad/");
    let t = std::time::Instant::now();
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
            "16",
            "--timeout",
            "2s",
            "--max-body",
            "8MiB",
            "--budget",
            "/bad/calendar/=10",
            "--budget",
            "/bad/deep/=10",
            "--budget",
            "/bad/link-target/=20",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "the crawl finishes: {}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(90), "{:?}", t.elapsed());
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&recs).is_empty(), "{:?}", duplicates(&recs));

    for e in ENDPOINTS {
        let url = if e.path.starts_with("/bad/session") {
            // Session ids are stripped: the whole trap is one URL.
            format!("{base}/bad/session")
        } else {
            format!("{base}{}", e.path)
        };
        let rec = find(&recs, &url).unwrap_or_else(|| panic!("no record for {url} ({})", e.kind));
        match expected(e.path) {
            Ok(status) => {
                assert_eq!(rec.error, None, "{url}: {rec:?}");
                assert_eq!(rec.status, Some(status), "{url}");
            }
            Err(kinds) => assert!(
                rec.error.as_deref().is_some_and(|k| kinds.contains(&k)),
                "{url}: {rec:?}, expected one of {kinds:?}"
            ),
        }
    }
    let under = |p: &str| {
        recs.iter()
            .filter(|r| r.url.starts_with(&format!("{base}{p}")))
            .count()
    };
    assert_eq!(under("/bad/session"), 1, "session ids canonicalize away");
    assert!(
        under("/bad/calendar/") <= 10,
        "the calendar trap is held by its budget"
    );
    assert!(under("/bad/deep/") <= 10, "the deep trap is held by its budget");
    assert!(under("/bad/link-target/") <= 20);
    // A cap that cuts says so in the record: the 16,000-deep page lost its deep tags.
    let text = std::fs::read_to_string(d.join("out.jsonl")).expect("output");
    let nested: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["url"] == format!("{base}/bad/nested").as_str())
        .expect("the nested page's record");
    let limits = nested["limits"].to_string();
    assert!(limits.contains("depth:"), "{limits}");
    assert_eq!(under("/bad/redirect-loop/"), 2, "the loop ends at the seen set");
    assert_eq!(
        under("/bad/redirect-chain/"),
        21,
        "every hop is checked and recorded"
    );
    // Redirects and links to special-purpose addresses were never followed.
    assert!(
        recs.iter()
            .all(|r| !r.url.contains("169.254") && !r.url.contains("2130706433"))
    );
    assert!(site.requests().iter().all(|q| q.url.starts_with(&base)));

    // Memory stayed bounded: the bombs were stopped at the 8 MiB cap.
    #[allow(unsafe_code)]
    // SAFETY: getrusage only writes into the struct it is given.
    let maxrss_kib = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    };
    assert!(
        maxrss_kib < 300 * 1024,
        "a trawl process peaked at {maxrss_kib} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_end_with_no_flags() {
    let site = TestSite::new()
        .pages(10)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let base = site.site().bases()[0].clone();
    let dir = workdir();
    let d = dir.path();
    let (out, state, stats) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "stats.json"));
    let seeds: Vec<String> = [
        "/bad/calendar/2026/1",
        "/bad/deep/a/",
        "/bad/session?PHPSESSID=1",
        "/bad/facets?color=1",
        "/bad/mirror/a/b/",
    ]
    .iter()
    .map(|p| format!("{base}{p}"))
    .collect();
    // No --budget, no --max-depth: only politeness lifted, for speed (and a time limit,
    // so that a guard that fails ends the test as a failure instead of running on).
    let mut args = vec!["crawl"];
    args.extend(seeds.iter().map(String::as_str));
    args.extend([
        "-o",
        &out,
        "--state",
        &state,
        "--rate",
        "0",
        "--per-host-concurrency",
        "8",
        "--max-time",
        "60s",
        "--stats-json",
        &stats,
        "-q",
    ]);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "completed: {}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&recs).is_empty());
    let requests = site.requests();
    let under = |p: &str| requests.iter().filter(|q| q.url.contains(p)).count();
    // The calendar walks both ways from its seed until the depth guard (50 hops).
    let calendar = under("/bad/calendar/");
    assert!((90..=110).contains(&calendar), "{calendar} calendar requests");
    assert!(under("/bad/deep/") <= 10, "{} deep requests", under("/bad/deep/"));
    assert!(
        under("/bad/session") <= 3,
        "{} session requests",
        under("/bad/session")
    );
    // The facets walk a four-dimensional lattice (depth alone would allow some
    // 300,000 pages): the query-variant guard admits 500 of the one path.
    let facets = under("/bad/facets");
    assert!((400..=501).contains(&facets), "{facets} facet requests");
    let guarded: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.limits.iter().any(|x| x.starts_with("query-variants: ")))
        .collect();
    assert!(!guarded.is_empty(), "the pages whose links were cut say so");
    assert!(guarded.iter().all(|r| r.url.contains("/bad/facets")));
    let mirror = under("/bad/mirror/");
    assert!((2..=4).contains(&mirror), "{mirror} mirror requests");
    assert!(
        recs.iter()
            .any(|r| r.limits.iter().any(|x| x.starts_with("repeated-segments: 1 "))),
        "the repeated-segment refusal is on the record"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("stats.json")).unwrap()).unwrap();
    let guarded = stats["stats"]["links_guarded"].as_u64().unwrap_or(0);
    assert!(guarded > 100, "{guarded} links guarded");
    assert!(requests.len() < 1_000, "{} requests in all", requests.len());

    // Each guard lifts or tightens with its flag.
    let dir2 = workdir();
    let d2 = dir2.path();
    let (out2, state2) = (arg(d2, "out.jsonl"), arg(d2, "state"));
    let before = site.requests().len();
    let facet_seed = format!("{base}/bad/facets?color=1");
    let mirror_seed = format!("{base}/bad/mirror/a/b/");
    let r = run(
        bin(),
        d2,
        &[
            "crawl",
            &facet_seed,
            &mirror_seed,
            "-o",
            &out2,
            "--state",
            &state2,
            "--rate",
            "0",
            "--max-query-variants",
            "20",
            "--max-repeated-segments",
            "5",
            "--max-time",
            "60s",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "completed: {}", r.stderr);
    let later = &site.requests()[before..];
    let facets = later.iter().filter(|q| q.url.contains("/bad/facets")).count();
    assert!(
        (15..=21).contains(&facets),
        "{facets} facet requests with 20 variants (and the seed)"
    );
    let mirror = later.iter().filter(|q| q.url.contains("/bad/mirror/")).count();
    assert!(
        mirror > 2 && mirror <= 6,
        "{mirror} mirror requests with 5 repeats"
    );
}
