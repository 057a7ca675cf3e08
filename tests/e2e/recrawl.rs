//! `trawl recrawl`: a crawl, the site moves on a generation, a recrawl; what it finds
//! is compared with testsite's truth, and its WARC revisit records with the captures
//! they refer to.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use trawl_e2e::{Rec, WarcRecord, arg, duplicates, read_jsonl, read_warc, run, workdir};
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
