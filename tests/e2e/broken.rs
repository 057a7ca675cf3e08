//! `trawl export DIR --what broken`: the broken-link report of a crawl, checked against
//! testsite's truth (which pages link to which broken URL, with which anchor text),
//! after a crawl in one run and after one stopped by a limit and resumed.

use std::collections::BTreeMap;
use std::path::Path;

use trawl_e2e::{arg, run, workdir};
use trawl_testsite::{BrokenTarget, TestSite};

use crate::{FAST, bin};

/// The most sources a report lists per target (trawl_sink::MAX_LINK_SOURCES).
const CAP: usize = 5;

/// What `trawl export --what broken` wrote, one JSON object per line.
async fn report(d: &Path, state: &str) -> Vec<serde_json::Value> {
    let r = run(bin(), d, &["export", state, "--what", "broken"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every broken target is reported once, with its status, and its sources are true
/// ones with their true anchors. `complete`: each lists every source up to the cap,
/// and says so when there are more.
fn check(got: &[serde_json::Value], truth: &BTreeMap<String, BrokenTarget>, complete: bool) {
    let mut seen = BTreeMap::new();
    for g in got {
        let url = g["url"].as_str().expect("a url").to_string();
        let t = truth
            .get(&url)
            .unwrap_or_else(|| panic!("{url} is reported broken but is not: {g}"));
        assert!(seen.insert(url.clone(), ()).is_none(), "{url} reported twice");
        assert_eq!(g["status"].as_u64().map(|s| s as u16), t.status, "{g}");
        let kind = g["error"].as_str().expect("a kind");
        match t.status {
            Some(_) => assert_eq!(kind, "http-status", "{g}"),
            None => assert!(
                ["request", "body", "timeout"].contains(&kind),
                "a dropped connection is a network error: {g}"
            ),
        }
        let sources = g["sources"].as_array().expect("sources");
        assert!(!sources.is_empty(), "{url} has no source: {g}");
        assert!(sources.len() <= CAP, "{g}");
        for s in sources {
            let pair = (
                s["url"].as_str().expect("a source url").to_string(),
                s["anchor"].as_str().expect("an anchor").to_string(),
            );
            assert!(
                t.sources.contains(&pair),
                "{url}: {pair:?} is not a link to it (true sources {:?})",
                t.sources
            );
        }
        if complete {
            assert_eq!(sources.len(), t.sources.len().min(CAP), "{url}: {g}");
            assert_eq!(
                g.get("sources_note").is_some(),
                t.sources.len() > CAP,
                "{url}: a note exactly when more pages link to it than are listed: {g}"
            );
        }
    }
    let missing: Vec<&String> = truth.keys().filter(|u| !seen.contains_key(*u)).collect();
    assert!(missing.is_empty(), "broken links not reported: {missing:?}");
}

/// A 600-page site with broken links.
async fn broken_site() -> trawl_testsite::RunningSite {
    TestSite::new()
        .pages(600)
        .broken_links(true)
        .start()
        .await
        .expect("site")
}

/// Crawls `site` into `d/out.jsonl` with the state in `state`, politeness lifted.
async fn crawl(site: &trawl_testsite::RunningSite, d: &Path, state: &str, extra: &[&str]) -> trawl_e2e::Run {
    let (out, root) = (arg(d, "out.jsonl"), site.root_url());
    let mut args = vec!["crawl", &root, "-o", &out, "--state", state];
    args.extend(FAST);
    args.extend(extra);
    run(bin(), d, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_link_report_matches_the_truth_with_sources_and_anchors() {
    let (site, dir) = (broken_site().await, workdir());
    let d = dir.path();
    let state = arg(d, "state");
    let r = crawl(&site, d, &state, &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().broken_truth();
    assert!(truth.len() >= 12 && truth.values().any(|t| t.sources.len() > CAP));
    check(&report(d, &state).await, &truth, true);

    // The failed records carry the first source's anchor too.
    let text = std::fs::read_to_string(d.join("out.jsonl")).expect("output");
    let mut anchored = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let Some(t) = truth.get(v["url"].as_str().expect("url")) else {
            continue;
        };
        let pair = (
            v["parent"].as_str().expect("a parent").to_string(),
            v["anchor"].as_str().expect("an anchor").to_string(),
        );
        assert!(t.sources.contains(&pair), "{v}");
        anchored += 1;
    }
    assert_eq!(anchored, truth.len(), "one failed record per broken target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_link_report_survives_a_stop_and_a_resume() {
    let (site, dir) = (broken_site().await, workdir());
    let d = dir.path();
    let state = arg(d, "state");
    let r = crawl(&site, d, &state, &["--max-pages", "250"]).await;
    assert_eq!(r.code, 3, "the limit stops it: {}", r.stderr);
    let truth = site.site().broken_truth();
    let part = report(d, &state).await;
    let mut resume = vec!["resume", &state, "--max-pages", "100000"];
    resume.extend(FAST);
    let r = run(bin(), d, &resume).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = report(d, &state).await;
    assert!(part.len() < all.len(), "{} then {}", part.len(), all.len());
    // What was reported before the stop is still there, with its sources.
    for p in &part {
        let a = all
            .iter()
            .find(|a| a["url"] == p["url"])
            .unwrap_or_else(|| panic!("{} lost on resume", p["url"]));
        for s in p["sources"].as_array().expect("sources") {
            assert!(a["sources"].as_array().expect("sources").contains(s), "{p} / {a}");
        }
    }
    check(&all, &truth, false);
}
