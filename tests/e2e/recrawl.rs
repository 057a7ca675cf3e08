//! `trawl recrawl`: a crawl, the site moves on a generation, a recrawl; what it finds
//! is compared with testsite's truth, and its WARC revisit records with the captures
//! they refer to. With `--changed-since`, what the sitemaps' `<lastmod>`s let it skip
//! and the order of its revisits are compared with the truth too.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use trawl_e2e::{Rec, WarcRecord, arg, duplicates, one_line, read_jsonl, read_warc, run, workdir};
use trawl_testsite::{RecrawlTruth, TestSite};

use crate::{FAST, bin};

/// The URLs of the records with recrawl outcome `outcome`.
pub(crate) fn with_outcome(recs: &[Rec], outcome: &str) -> BTreeSet<String> {
    recs.iter()
        .filter(|r| r.recrawl.as_deref() == Some(outcome))
        .map(|r| r.url.clone())
        .collect()
}

/// Every outcome count matches the truth, URL for URL.
pub(crate) fn check_outcomes(recs: &[Rec], t: &RecrawlTruth) {
    assert!(
        duplicates(recs).is_empty(),
        "written twice: {:?}",
        duplicates(recs)
    );
    for (name, want) in [
        ("not-modified", &t.not_modified),
        ("unchanged", &t.unchanged),
        ("changed", &t.changed),
        ("gone", &t.gone),
        ("new", &t.new),
        ("skipped-unchanged", &t.skipped),
    ] {
        let got = with_outcome(recs, name);
        let missing: Vec<_> = want.difference(&got).take(3).collect();
        let extra: Vec<_> = got.difference(want).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: {} found, {} true; missing {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        );
    }
}

/// The response records of WARC files, by (target URI, date), with their payload
/// digests.
fn captures(files: &[&Path]) -> HashMap<(String, String), String> {
    let mut m = HashMap::new();
    for f in files {
        for r in read_warc(f)
            .into_iter()
            .filter(|r| r.header("WARC-Type") == Some("response"))
        {
            let key = (
                r.header("WARC-Target-URI").unwrap_or_default().to_string(),
                r.header("WARC-Date").unwrap_or_default().to_string(),
            );
            m.insert(
                key,
                r.header("WARC-Payload-Digest").unwrap_or_default().to_string(),
            );
        }
    }
    m
}

/// The revisit records of `warc`: one per not-modified and unchanged record, of the
/// matching profile, each referring to a capture in `earlier` that exists (the
/// identical-payload ones with that capture's payload digest). Returns how many.
pub(crate) fn check_revisits(warc: &Path, recs: &[Rec], earlier: &[&Path]) -> usize {
    let caps = captures(earlier);
    let revisits: Vec<WarcRecord> = read_warc(warc)
        .into_iter()
        .filter(|r| r.header("WARC-Type") == Some("revisit"))
        .collect();
    let mut by_uri: HashMap<String, &WarcRecord> = HashMap::new();
    for r in &revisits {
        let uri = r.header("WARC-Target-URI").expect("a target").to_string();
        assert!(by_uri.insert(uri.clone(), r).is_none(), "two revisits of {uri}");
    }
    let mut want = 0;
    for rec in recs {
        let profile = match rec.recrawl.as_deref() {
            Some("not-modified") => "server-not-modified",
            Some("unchanged") => "identical-payload-digest",
            _ => {
                assert!(!by_uri.contains_key(&rec.url), "{} is a revisit", rec.url);
                continue;
            }
        };
        want += 1;
        let r = by_uri
            .get(&rec.url)
            .unwrap_or_else(|| panic!("no revisit record of {}", rec.url));
        assert_eq!(
            r.header("WARC-Profile"),
            Some(format!("http://netpreserve.org/warc/1.1/revisit/{profile}").as_str())
        );
        let key = (
            r.header("WARC-Refers-To-Target-URI")
                .expect("refers to a URI")
                .to_string(),
            r.header("WARC-Refers-To-Date")
                .expect("refers to a date")
                .to_string(),
        );
        let digest = caps
            .get(&key)
            .unwrap_or_else(|| panic!("{} refers to {key:?}, which no WARC holds", rec.url));
        if profile == "identical-payload-digest" {
            assert_eq!(
                r.header("WARC-Payload-Digest"),
                Some(digest.as_str()),
                "{}",
                rec.url
            );
        }
    }
    assert_eq!(
        revisits.len(),
        want,
        "one revisit per not-modified and unchanged page"
    );
    want
}

fn warcio_check(path: &Path) {
    if let Some(warcio) = trawl_e2e::python_tool("TRAWL_WARCIO", "warcio") {
        let out = std::process::Command::new(&warcio)
            .arg("check")
            .arg(path)
            .output()
            .expect("warcio runs");
        assert!(
            out.status.success(),
            "warcio check {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recrawl_finds_what_changed_and_its_revisits_refer_to_captures_that_exist() {
    let site = TestSite::new()
        .pages(600)
        .hosts(2)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
    let seeds: Vec<String> = (0..2).map(|h| site.site().root_url(h)).collect();
    let mut args = vec![
        "crawl", &seeds[0], &seeds[1], "-o", &out, "--warc", &warc, "--state", &state,
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().crawl_truth(&[0, 1], &|_| true);

    // Generation 1: a recrawl with the default outputs.
    site.set_generation(1);
    let before = site.requests().len();
    let mut args = vec!["recrawl", &state];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out-recrawl-1.jsonl"));
    let t = site.site().recrawl_truth(&truth.pages, 0, 1);
    assert!(!t.not_modified.is_empty() && !t.unchanged.is_empty() && !t.changed.is_empty());
    assert!(!t.gone.is_empty() && !t.new.is_empty());
    check_outcomes(&recs, &t);
    // Every page with validators was asked conditionally, and answered 304 unless it
    // changed.
    let not_modified = site.requests()[before..]
        .iter()
        .filter(|q| q.status == 304)
        .count();
    assert_eq!(not_modified, t.not_modified.len());
    let (w0, w1) = (d.join("out.warc.gz"), d.join("out-recrawl-1.warc.gz"));
    let revisits = check_revisits(&w1, &recs, &[&w0]);
    assert_eq!(revisits, t.not_modified.len() + t.unchanged.len());
    warcio_check(&w1);
    let indexed = trawl_e2e::check_cdxj(d, &d.join("out-recrawl-1.cdxj"));
    let fetched = recs
        .iter()
        .filter(|r| r.error.is_none() && r.status.is_some())
        .count();
    assert_eq!(indexed, fetched, "one CDXJ line per response and revisit");

    // The same generation again: nothing changed since recrawl 1, and every revisit
    // refers to the capture that holds its payload, from the crawl or from recrawl 1.
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs2 = read_jsonl(&d.join("out-recrawl-2.jsonl"));
    assert!(duplicates(&recs2).is_empty());
    assert!(
        with_outcome(&recs2, "changed").is_empty(),
        "{:?}",
        with_outcome(&recs2, "changed")
    );
    assert!(with_outcome(&recs2, "new").is_empty());
    assert_eq!(with_outcome(&recs2, "gone"), t.gone);
    let w2 = d.join("out-recrawl-2.warc.gz");
    let revisits2 = check_revisits(&w2, &recs2, &[&w0, &w1]);
    assert_eq!(revisits2 + t.gone.len(), truth.pages.len() + t.new.len());
    warcio_check(&w2);

    // Run to its end, a third `trawl recrawl` starts recrawl 3; `status` of the crawl
    // still reads.
    let r = run(bin(), d, &["status", &state]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `--changed-since` in a recrawl's `--stats-json`.
fn changed_since_stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("stats json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["stats"]["changed_since"].clone()
}

/// Each URL once, every known one among them.
fn each_known_page_once(recs: &[Rec], known: &BTreeSet<String>) -> BTreeSet<String> {
    assert!(
        duplicates(recs).is_empty(),
        "written twice: {:?}",
        duplicates(recs)
    );
    let urls: BTreeSet<String> = recs.iter().map(|r| r.url.clone()).collect();
    let missing: Vec<_> = known.difference(&urls).take(3).collect();
    assert!(missing.is_empty(), "known pages without a record: {missing:?}");
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_since_skips_what_the_sitemaps_say_is_older_and_revisits_what_changed_first() {
    let site = TestSite::new()
        .pages(600)
        .hosts(2)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
    let seeds: Vec<String> = (0..2).map(|h| site.site().root_url(h)).collect();
    let mut args = vec![
        "crawl", &seeds[0], &seeds[1], "-o", &out, "--warc", &warc, "--state", &state,
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().crawl_truth(&[0, 1], &|_| true);
    let known: BTreeSet<String> = truth.pages.keys().cloned().collect();
    // Every URL with a record is known to the recrawl: the pages, and the failed URLs
    // (robots.txt keeps /private/ out) that are no page of the truth.
    let crawled: HashMap<String, Option<String>> = read_jsonl(&d.join("out.jsonl"))
        .into_iter()
        .map(|r| (r.url, r.content_hash))
        .collect();
    let recorded: BTreeSet<String> = crawled.keys().cloned().collect();
    assert!(known.is_subset(&recorded) && recorded.len() > known.len());

    // Generation 1, a day later in site time; revisit what changed since its start.
    site.set_generation(1);
    let since = site.site().generation_date(1);
    let before = site.requests().len();
    let stats = arg(d, "stats-1.json");
    // One request at a time per host, so that the server sees each host's revisits
    // in the order they were queued.
    let r = run(
        bin(),
        d,
        &[
            "recrawl",
            &state,
            "--changed-since",
            &since,
            "--stats-json",
            &stats,
            "--rate",
            "0",
            "--per-host-concurrency",
            "1",
            "--concurrency",
            "8",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out-recrawl-1.jsonl"));
    let t = site
        .site()
        .recrawl_truth_since(&truth.pages, 0, 1, Some(site.site().generation_time(1)));
    assert!(!t.skipped.is_empty() && !t.fresh.is_empty() && !t.changed.is_empty());
    // The pages without a <lastmod> to go by are revisited as without the flag.
    assert!(!t.not_modified.is_empty() && !t.unchanged.is_empty());
    assert!(!t.gone.is_empty() && !t.new.is_empty());
    check_outcomes(&recs, &t);
    let urls = each_known_page_once(&recs, &recorded);
    assert_eq!(
        urls.difference(&recorded).cloned().collect::<BTreeSet<_>>(),
        t.new,
        "nothing but the known URLs and the new ones"
    );

    // A skipped page was not asked for, and its record stands for what the crawl
    // found: no status, the crawl's content hash. Every other known page was asked.
    let log = site.requests()[before..].to_vec();
    let page = |url: &str| site.site().page_of_url(url);
    let asked: HashSet<u64> = log.iter().filter_map(|q| page(&q.url)).collect();
    for rec in recs
        .iter()
        .filter(|r| r.recrawl.as_deref() == Some("skipped-unchanged"))
    {
        let i = page(&rec.url).expect("a page of the site");
        assert!(!asked.contains(&i), "{} was fetched", rec.url);
        assert_eq!(rec.status, None, "{}", rec.url);
        assert!(rec.content_hash.is_some(), "{}", rec.url);
        assert_eq!(rec.content_hash, crawled[&rec.url], "{}", rec.url);
    }
    for url in known.difference(&t.skipped) {
        let i = page(url).expect("a page of the site");
        assert!(asked.contains(&i), "{url} was not revisited");
    }

    // On each host, the pages whose <lastmod> is at or after DATE were asked for
    // before any known page that had none to go by.
    for h in 0..2 {
        let seq: Vec<u64> = log
            .iter()
            .filter_map(|q| page(&q.url))
            .filter(|i| site.site().host_of(*i) == h)
            .collect();
        let fresh = |i: &u64| t.fresh.contains(&site.site().page_url(*i));
        let last_fresh = seq.iter().rposition(fresh).expect("a fresh page on each host");
        let first_rest = seq
            .iter()
            .position(|i| !fresh(i))
            .expect("a page without a lastmod on each host");
        assert!(
            last_fresh < first_rest,
            "host {h}: request {last_fresh} of a fresh page comes after {first_rest} of another"
        );
    }

    // The summary says what was decided.
    let c = changed_since_stats(Path::new(&stats));
    assert_eq!(c["skipped"].as_u64(), Some(t.skipped.len() as u64), "{c}");
    assert_eq!(c["revisited_first"].as_u64(), Some(t.fresh.len() as u64), "{c}");
    assert_eq!(
        c["revisited"].as_u64(),
        Some((recorded.len() - t.skipped.len() - t.fresh.len()) as u64),
        "{c}"
    );
    assert_eq!(c["sitemaps_failed"].as_u64(), Some(0), "{c}");
    assert!(
        c["sitemaps_read"].as_u64() > Some(1),
        "the index and its sitemaps: {c}"
    );
    assert_eq!(c["since"].as_str(), Some("2026-10-22T00:00:00.000Z"));

    // The WARC holds revisits only of what was fetched.
    let (w0, w1) = (d.join("out.warc.gz"), d.join("out-recrawl-1.warc.gz"));
    let revisits = check_revisits(&w1, &recs, &[&w0]);
    assert_eq!(revisits, t.not_modified.len() + t.unchanged.len());
    warcio_check(&w1);

    // The history kept the skipped pages as they were: a recrawl of the same
    // generation without the flag finds them not modified or unchanged, with revisit
    // records that refer to the crawl's captures.
    let mut args = vec!["recrawl", &state];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs2 = read_jsonl(&d.join("out-recrawl-2.jsonl"));
    let plain = site.site().recrawl_truth(&truth.pages, 0, 1);
    let outcome2: HashMap<&str, Option<&str>> = recs2
        .iter()
        .map(|r| (r.url.as_str(), r.recrawl.as_deref()))
        .collect();
    for url in &t.skipped {
        let want = if plain.not_modified.contains(url) {
            "not-modified"
        } else {
            "unchanged"
        };
        assert_eq!(outcome2.get(url.as_str()).copied().flatten(), Some(want), "{url}");
    }
    assert!(with_outcome(&recs2, "skipped-unchanged").is_empty());
    let w2 = d.join("out-recrawl-2.warc.gz");
    check_revisits(&w2, &recs2, &[&w0, &w1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_since_without_sitemaps_skips_nothing_and_says_so() {
    let site = TestSite::new().pages(150).start().await.expect("site");
    let dir = workdir();
    let d = dir.path();
    let seed = site.site().root_url(0);
    let (a, b) = (arg(d, "a"), arg(d, "b"));
    let (out_a, out_b) = (arg(d, "a.jsonl"), arg(d, "b.jsonl"));
    // A crawl that read the sitemaps, and one told not to.
    for (state, out, extra) in [(&a, &out_a, None), (&b, &out_b, Some("--no-sitemaps"))] {
        let mut args = vec!["crawl", &seed, "-o", out, "--state", state];
        args.extend(extra);
        args.extend(FAST);
        let r = run(bin(), d, &args).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let truth = site.site().crawl_truth(&[0], &|_| true);
    // What the recrawls know: every URL with a record (robots.txt keeps /private/ out,
    // with a record, so there is more than the truth's pages).
    let known: BTreeSet<String> = read_jsonl(Path::new(&out_a)).into_iter().map(|r| r.url).collect();
    assert_eq!(
        read_jsonl(Path::new(&out_b))
            .into_iter()
            .map(|r| r.url)
            .collect::<BTreeSet<_>>(),
        known
    );

    // A date that does not read is a usage error, said in one line, before anything
    // is created.
    let r = run(bin(), d, &["recrawl", &a, "--changed-since", "last tuesday"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("--changed-since"), "{}", r.stderr);
    assert!(!d.join("a/recrawl").exists(), "no recrawl directory was made");

    // The site moves on and its sitemaps are gone: nothing can be skipped.
    site.set_generation(1);
    site.set_sitemaps(false);
    let since = site.site().generation_date(1);
    let plain = site.site().recrawl_truth(&truth.pages, 0, 1);
    let quiet_less = [
        "--rate",
        "0",
        "--per-host-concurrency",
        "16",
        "--concurrency",
        "32",
    ];
    for (state, out, says) in [
        (&a, "a-recrawl-1.jsonl", "no sitemap could be read"),
        (&b, "b-recrawl-1.jsonl", "sitemaps are off (--no-sitemaps)"),
    ] {
        let stats = format!("{state}.stats.json");
        let mut args = vec![
            "recrawl",
            state.as_str(),
            "--changed-since",
            &since,
            "--stats-json",
            &stats,
        ];
        args.extend(quiet_less);
        let r = run(bin(), d, &args).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr.contains(says) && r.stderr.contains("nothing was skipped"),
            "{state}: {}",
            r.stderr
        );
        let recs = read_jsonl(&d.join(out));
        each_known_page_once(&recs, &known);
        check_outcomes(&recs, &plain);
        let c = changed_since_stats(Path::new(&stats));
        assert_eq!(c["skipped"].as_u64(), Some(0), "{c}");
        assert_eq!(c["revisited_first"].as_u64(), Some(0), "{c}");
        assert_eq!(c["revisited"].as_u64(), Some(known.len() as u64), "{c}");
        assert_eq!(c["lastmods"].as_u64(), Some(0), "{c}");
    }
    let c = changed_since_stats(Path::new(&format!("{a}.stats.json")));
    assert!(c["sitemaps_failed"].as_u64() > Some(0), "{c}");
    assert_eq!(c["sitemaps_read"].as_u64(), Some(0), "{c}");
    let c = changed_since_stats(Path::new(&format!("{b}.stats.json")));
    assert_eq!(c["sitemaps_off"].as_bool(), Some(true), "{c}");
}
