//! Ctrl-C mid-crawl, then resume: the same output as an uninterrupted crawl.

use std::collections::HashSet;
use std::time::Duration;

use trawl_e2e::{arg, command, duplicates, read_jsonl, run, wait_for, workdir};
use trawl_testsite::TestSite;

use crate::bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_then_resume_equals_an_uninterrupted_crawl() {
    let site = TestSite::new()
        .pages(1500)
        .hosts(2)
        .latency(trawl_testsite::Latency::Fixed(Duration::from_millis(3)))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state, warc) = (arg(d, "out.jsonl"), arg(d, "state"), arg(d, "out.warc.gz"));
    let (h0, h1) = (site.site().root_url(0), site.site().root_url(1));
    let mut child = command(
        bin(),
        d,
        &[
            "crawl",
            &h0,
            &h1,
            "-o",
            &out,
            "--warc",
            &warc,
            "--state",
            &state,
            "--rate",
            "0",
            "--per-host-concurrency",
            "4",
            "-q",
        ],
    )
    .spawn()
    .expect("spawn");
    let out_path = d.join("out.jsonl");
    let started = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&out_path).is_ok_and(|t| t.lines().count() >= 200)
    })
    .await;
    assert!(started, "the crawl wrote 200 records");
    // SIGINT, as Ctrl-C sends.
    let pid = child.id() as i32;
    #[allow(unsafe_code)]
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(130), "interrupted and resumable");
    let partial = read_jsonl(&out_path);
    assert!(
        partial.len() < 1500 + 60,
        "stopped before the end: {}",
        partial.len()
    );
    assert!(duplicates(&partial).is_empty());

    let r = run(bin(), d, &["resume", &state, "-q"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&out_path);
    assert!(duplicates(&recs).is_empty(), "{:?}", duplicates(&recs));
    let truth = site.site().crawl_truth(&[0, 1], &|_| true);
    let ok = trawl_e2e::ok_urls(&recs);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok, expected);
    // A graceful stop finishes its in-flight pages: nothing is fetched twice.
    assert!(site.pages_hit_twice().is_empty(), "{:?}", site.pages_hit_twice());
    // The WARC holds one response per fetched record.
    let warc_bytes = std::fs::read(d.join("out.warc.gz")).expect("warc");
    let text = trawl_e2e::gunzip(&warc_bytes);
    let responses = text.matches("WARC-Type: response").count();
    let fetched = recs.iter().filter(|r| r.status.is_some()).count();
    assert_eq!(responses, fetched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_exits_at_once_and_the_crawl_still_resumes() {
    let site = TestSite::new()
        .pages(200)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let base = site.site().bases()[0].clone();
    // A stalled URL keeps a fetch in flight, so the graceful stop would wait its grace.
    let stall = format!("{base}/bad/stall");
    let root = site.root_url();
    let log = d.join("stderr.txt");
    let mut c = command(
        bin(),
        d,
        &[
            "crawl",
            &stall,
            &root,
            "-o",
            &out,
            "--state",
            &state,
            "--rate",
            "0",
            "--no-sitemaps",
            "--grace",
            "60s",
            "--timeout",
            "120s",
        ],
    );
    c.stderr(std::fs::File::create(&log).expect("log"));
    let mut child = c.spawn().expect("spawn");
    let stalled = wait_for(Duration::from_secs(20), || site.hits(&stall) > 0).await;
    assert!(stalled);
    let pid = child.id() as i32;
    #[allow(unsafe_code)]
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let stopping = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("stopping"))
    })
    .await;
    assert!(stopping, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let t = std::time::Instant::now();
    #[allow(unsafe_code)]
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "at once, not after the grace: {:?}",
        t.elapsed()
    );
    let partial = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&partial).is_empty());
    // Resume without the stalled URL in the way: a short timeout ends it.
    let r = run(bin(), d, &["resume", &state, "-q", "--timeout", "1s"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&recs).is_empty(), "{:?}", duplicates(&recs));
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let ok = recs.iter().filter(|r| r.error.is_none()).count();
    assert_eq!(ok, truth.pages.len());
}
