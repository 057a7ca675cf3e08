//! The headline promise: `kill -9` at any moment, then `trawl resume`, with nothing lost
//! and nothing written twice. Also deterministic crash points inside the commit path,
//! a damaged state directory, and a full disk.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use trawl_e2e::{Rec, arg, command, duplicates, read_jsonl, run, workdir};
use trawl_testsite::{Latency, RunningSite, TestSite};

use crate::bin;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything that must hold once the crawl has completed, however often it was killed.
/// Returns the number of pages fetched more than once.
fn check_final(site: &RunningSite, d: &Path, seeds: &[u64]) -> (Vec<Rec>, u64) {
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(
        duplicates(&recs).is_empty(),
        "written twice: {:?}",
        duplicates(&recs)
    );
    let truth = site.site().crawl_truth(seeds, &|_| true);
    let ok = trawl_e2e::ok_urls(&recs);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    let missing: Vec<_> = expected.difference(&ok).take(5).collect();
    let extra: Vec<_> = ok.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    let denied: HashSet<&str> = recs
        .iter()
        .filter(|r| r.error.as_deref() == Some("robots-denied"))
        .map(|r| r.url.as_str())
        .collect();
    let disallowed: HashSet<&str> = truth.disallowed.iter().map(String::as_str).collect();
    assert_eq!(denied, disallowed);
    assert_eq!(recs.len(), ok.len() + denied.len(), "no other failures");
    // Never a robots-disallowed or out-of-scope request, even around a crash.
    assert_eq!(site.private_hits(), 0);
    for q in site.requests() {
        let path = q.url.splitn(4, '/').nth(3).unwrap_or("");
        assert!(
            expected.contains(q.url.as_str()) || path == "robots.txt" || path.starts_with("sitemap"),
            "unexpected request {}",
            q.url
        );
    }
    let refetched: u64 = site
        .pages_hit_twice()
        .iter()
        .map(|(_, n)| u64::from(*n - 1))
        .sum();
    (recs, refetched)
}

/// The WARC file: one response record per fetched record, each URL once, and
/// `warcio check` passes when the CI's warcio is there (`TRAWL_WARCIO`).
fn check_warc(d: &Path, recs: &[Rec]) {
    let warc = d.join("out.warc.gz");
    let text = trawl_e2e::gunzip(&std::fs::read(&warc).expect("warc"));
    let mut targets = Vec::new();
    let mut in_response = false;
    for line in text.lines() {
        if line.starts_with("WARC-Type:") {
            in_response = line.trim_end() == "WARC-Type: response";
        }
        if in_response && let Some(uri) = line.strip_prefix("WARC-Target-URI: ") {
            targets.push(uri.trim_end().to_string());
            in_response = false;
        }
    }
    let fetched: HashSet<&str> = recs
        .iter()
        .filter(|r| r.status.is_some())
        .map(|r| r.url.as_str())
        .collect();
    let unique: HashSet<&str> = targets.iter().map(String::as_str).collect();
    assert_eq!(targets.len(), unique.len(), "a response record written twice");
    assert_eq!(unique, fetched);
    // Every response says which protocol fetched it (testsite here is plain HTTP/1.1),
    // and so does every JSONL record with a response.
    let records = trawl_e2e::read_warc(&warc);
    for r in records
        .iter()
        .filter(|r| r.header("WARC-Type") == Some("response"))
    {
        assert_eq!(r.header("WARC-Protocol"), Some("http/1.1"), "{:?}", r.headers);
    }
    for r in recs.iter().filter(|r| r.status.is_some()) {
        assert_eq!(r.protocol.as_deref(), Some("http/1.1"), "{}", r.url);
    }
    // The CDXJ index next to it, cut back with it at every crash: exactly one line
    // per response record, each pointing at it, and what cdxj-indexer finds.
    let indexed = trawl_e2e::check_cdxj(d, &d.join("out.cdxj"));
    assert_eq!(indexed, targets.len(), "one CDXJ line per response record");
    match std::env::var("TRAWL_WARCIO") {
        Ok(warcio) => {
            let out = std::process::Command::new(&warcio)
                .arg("check")
                .arg(&warc)
                .output()
                .expect("warcio runs");
            assert!(
                out.status.success(),
                "warcio check: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => eprintln!("TRAWL_WARCIO is not set: skipping `warcio check` (bash .ci/run sets it)"),
    }
}

fn crawl_args<'a>(seeds: &'a [String], out: &'a str, warc: &'a str, state: &'a str) -> Vec<&'a str> {
    let mut v = vec!["crawl"];
    v.extend(seeds.iter().map(String::as_str));
    v.extend([
        "-o",
        out,
        "--warc",
        warc,
        "--state",
        state,
        "--rate",
        "0",
        "--per-host-concurrency",
        "4",
        "-q",
    ]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_and_writes_nothing_twice() {
    let rounds = env_u64("TRAWL_CRASH_ROUNDS", 12);
    let pages = env_u64("TRAWL_CRASH_PAGES", 1000);
    let seed = env_u64("TRAWL_CRASH_SEED", fastrand::u64(..));
    eprintln!(
        "kill -9 test: {rounds} rounds, {pages} pages, seed {seed} (replay with TRAWL_CRASH_SEED={seed})"
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let site = TestSite::new()
        .pages(pages)
        .hosts(2)
        .latency(Latency::Fixed(Duration::from_millis(25)))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
    let seeds: Vec<String> = (0..2).map(|h| site.site().root_url(h)).collect();
    let args = crawl_args(&seeds, &out, &warc, &state);
    let mut kills = 0u64;
    let mut completed = false;
    while kills < rounds {
        let mut child = command(bin(), d, &args).spawn().expect("spawn");
        let delay = Duration::from_millis(rng.u64(30..400));
        tokio::time::sleep(delay).await;
        if child.try_wait().expect("poll").is_some() {
            completed = true;
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        kills += 1;
        // After every crash the output parses, with no torn line and no duplicate.
        let recs = read_jsonl(&d.join("out.jsonl"));
        assert!(
            duplicates(&recs).is_empty(),
            "round {kills}: {:?}",
            duplicates(&recs)
        );
    }
    if !completed {
        let r = run(bin(), d, &args).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert!(
        kills >= rounds.min(10),
        "only {kills} kills before the crawl ended"
    );
    let (recs, refetched) = check_final(&site, d, &[0, 1]);
    check_warc(d, &recs);
    // What a kill can cost: the pages in flight (2 hosts x 4, plus up to 32 leased per
    // host and the parse/commit queues) and the acks of one flush interval (200 ms).
    let window = 2 * 4 + 2 * 32 + 64;
    eprintln!(
        "kill -9 test: {kills} kills, {refetched} pages fetched again (bound {})",
        kills * window
    );
    assert!(
        refetched <= kills * window,
        "{refetched} refetches for {kills} kills"
    );
}

/// `trawl status --json` of a directory, as its counts (queued, leased, done, failed).
async fn status_counts(d: &Path, state: &str) -> [u64; 4] {
    let r = run(bin(), d, &["status", state, "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("status JSON");
    let c = &v["counts"];
    ["queued", "leased", "done", "failed"].map(|k| c[k].as_u64().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_between_kills_changes_nothing() {
    let seed = env_u64("TRAWL_CRASH_SEED", fastrand::u64(..));
    eprintln!("status between kills: seed {seed} (replay with TRAWL_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let site = TestSite::new()
        .pages(600)
        .hosts(2)
        .latency(Latency::Fixed(Duration::from_millis(25)))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
    let seeds: Vec<String> = (0..2).map(|h| site.site().root_url(h)).collect();
    let args = crawl_args(&seeds, &out, &warc, &state);
    let mut leased_seen = 0;
    for round in 0..6 {
        let mut child = command(bin(), d, &args).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_millis(rng.u64(150..500))).await;
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        // Read-only: the same answer every time, the killed run's leases still out.
        // (An open that recovers would return them, and after a few rounds quarantine
        // URLs for attempts the crawl never used.)
        let first = status_counts(d, &state).await;
        for _ in 0..4 {
            assert_eq!(
                status_counts(d, &state).await,
                first,
                "round {round}: status changed the state"
            );
        }
        leased_seen += first[1];
    }
    assert!(leased_seen > 0, "no round was killed with work in flight");
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Exactly once, and no URL failed at all (no `too-many-attempts`, no quarantine).
    let (recs, _) = check_final(&site, d, &[0, 1]);
    assert!(
        recs.iter()
            .all(|r| r.error.as_deref() != Some("too-many-attempts"))
    );
    check_warc(d, &recs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_points_in_the_commit_path_recover() {
    let site = TestSite::new()
        .pages(1500)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let seeds = vec![site.root_url()];
    for (point, n) in [
        ("enqueue-chunk", 1),
        ("mid-sink-write", 3),
        ("before-ack", 4),
        ("after-ack", 5),
        ("after-flush", 2),
    ] {
        let dir = workdir();
        let d = dir.path();
        let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
        let args = crawl_args(&seeds, &out, &warc, &state);
        let mut c = command(bin(), d, &args);
        c.env("TRAWL_FAULT", format!("{point}:{n}"));
        let out1 = tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("run");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out1.status.signal(),
            Some(libc::SIGABRT),
            "{point}: the crash point was reached: {}",
            String::from_utf8_lossy(&out1.stderr)
        );
        let r = run(bin(), d, &["resume", &state, "-q"]).await;
        assert_eq!(r.code, 0, "{point}: {}", r.stderr);
        let recs = read_jsonl(&d.join("out.jsonl"));
        assert!(duplicates(&recs).is_empty(), "{point}: {:?}", duplicates(&recs));
        let truth = site.site().crawl_truth(&[0], &|_| true);
        let ok = trawl_e2e::ok_urls(&recs);
        assert_eq!(ok.len(), truth.pages.len(), "{point}");
        check_warc(d, &recs);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cool_down_survives_a_crash() {
    let site = TestSite::new()
        .pages(40)
        .hosts(2)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let base0 = site.site().bases()[0].clone();
    let hostile = format!("{base0}/bad/status/429?after=5");
    let h1 = site.site().root_url(1);
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let log = d.join("log.txt");
    let mut c = command(
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
            "--rate",
            "0",
            "--no-sitemaps",
        ],
    );
    c.env("RUST_LOG", "info");
    c.stderr(std::fs::File::create(&log).expect("log"));
    let mut child = c.spawn().expect("spawn");
    // The engine says so once the cool-down is durable.
    let durable = trawl_e2e::wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("host cooling down"))
    })
    .await;
    assert!(durable, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    child.kill().expect("SIGKILL");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let first = site
        .requests()
        .into_iter()
        .find(|q| q.url == hostile)
        .expect("the 429 was served");
    assert_eq!(first.status, 429);

    let r = run(bin(), d, &["resume", &state, "-q"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let deadline = first.at + Duration::from_secs(5);
    let after: Vec<_> = site
        .requests()
        .into_iter()
        .filter(|q| q.url.starts_with(&base0) && q.at > first.at)
        .collect();
    assert!(!after.is_empty(), "host 0 was crawled after its cool-down");
    for q in &after {
        assert!(
            q.at >= deadline - Duration::from_millis(50),
            "{} requested {:?} after the 429 (Retry-After: 5)",
            q.url,
            q.at - first.at
        );
    }
    let recs = read_jsonl(&d.join("out.jsonl"));
    let rec = recs.iter().find(|r| r.url == hostile).expect("a record");
    assert_eq!(rec.status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_directory_is_a_clear_error() {
    let site = TestSite::new().pages(200).start().await.expect("site");
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
            "--rate",
            "0",
            "--per-host-concurrency",
            "8",
            "-q",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let output_before = std::fs::read(d.join("out.jsonl")).expect("output");
    // Overwrite the middle of sled's log with garbage, as a torn disk write would.
    let db = d.join("state/db");
    let mut bytes = std::fs::read(&db).expect("sled file");
    let len = bytes.len();
    assert!(len > 4096, "{len}");
    for b in &mut bytes[len / 3..len / 3 + 4096.min(len / 3)] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).expect("corrupt");
    // `status` first: it reads, and says what it found.
    let r = run(bin(), d, &["status", &state]).await;
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.code == 0 || r.code == 4, "{}", r.stderr);
    if r.code == 4 {
        let line = trawl_e2e::one_line(&r.stderr);
        assert!(line.contains("damaged") || line.contains("state"), "{line}");
    }
    // Then resume: either a clear one-line error with the output untouched, or (sled
    // recovered a consistent prefix of its log) a crawl that ends exactly-once.
    eprintln!("damaged state: status exit {}: {}", r.code, r.stderr.trim());
    let r = run(bin(), d, &["resume", &state, "-q"]).await;
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    eprintln!("damaged state: resume exit {}: {}", r.code, r.stderr.trim());
    match r.code {
        4 => {
            trawl_e2e::one_line(&r.stderr);
            assert!(
                std::fs::read(d.join("out.jsonl")).expect("output") == output_before,
                "a failed open never touches the output"
            );
        }
        0 => {
            let recs = read_jsonl(&d.join("out.jsonl"));
            assert!(duplicates(&recs).is_empty(), "{:?}", duplicates(&recs));
            let truth = site.site().crawl_truth(&[0], &|_| true);
            assert_eq!(
                recs.iter().filter(|r| r.error.is_none()).count(),
                truth.pages.len()
            );
        }
        other => panic!("exit {other}: {}", r.stderr),
    }
    // Sled's own header destroyed: it cannot open at all. A one-line error, exit 4.
    let keep = std::fs::read(&db).expect("sled file");
    let mut broken = keep.clone();
    for b in &mut broken[..4096.min(keep.len())] {
        *b = 0xA5;
    }
    std::fs::write(&db, &broken).expect("corrupt");
    let output_now = std::fs::read(d.join("out.jsonl")).expect("output");
    for args in [
        vec!["status", state.as_str()],
        vec!["resume", state.as_str(), "-q"],
    ] {
        let r = run(bin(), d, &args).await;
        assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
        let line = trawl_e2e::one_line(&r.stderr);
        assert!(line.contains("damaged"), "{line}");
    }
    assert!(std::fs::read(d.join("out.jsonl")).expect("output") == output_now);
    std::fs::write(&db, &keep).expect("restore");
    // Truncated to a third: never a panic, a clear answer.
    let now = std::fs::read(&db).expect("sled file");
    std::fs::write(&db, &now[..now.len() / 3]).expect("truncate");
    for args in [
        vec!["status", state.as_str()],
        vec!["resume", state.as_str(), "-q"],
    ] {
        let r = run(bin(), d, &args).await;
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        eprintln!(
            "truncated state: {} exit {}: {}",
            args[0],
            r.code,
            r.stderr.trim()
        );
        assert!(r.code == 0 || r.code == 4, "{args:?}: {} {}", r.code, r.stderr);
        if r.code == 0 && args[0] == "resume" {
            let recs = read_jsonl(&d.join("out.jsonl"));
            assert!(duplicates(&recs).is_empty(), "{:?}", duplicates(&recs));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_cleanly_and_resumes() {
    let dir = workdir();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED a_full_disk_stops_cleanly_and_resumes: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let site = TestSite::new().pages(1500).start().await.expect("site");
    let d = &mnt;
    let (out, state, seed) = (arg(d, "out.jsonl"), arg(d, "state"), site.root_url());
    // The WARC (about 6 MB for this site) cannot fit in 3 MiB, whatever sled needs.
    let warc = arg(d, "out.warc.gz");
    let r = run(
        bin(),
        d,
        &[
            "crawl",
            &seed,
            "-o",
            &out,
            "--warc",
            &warc,
            "--state",
            &state,
            "--rate",
            "0",
            "--per-host-concurrency",
            "8",
            "--cache-capacity",
            "1MiB",
            "-q",
            "--no-sitemaps",
        ],
    )
    .await;
    assert!(
        r.code == 5 || r.code == 4,
        "the disk filled up: code {} {}",
        r.code,
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        r.stderr.contains("full") || r.stderr.contains("space"),
        "says why: {}",
        r.stderr
    );
    // More room, then resume: the crawl completes with every page exactly once.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount");
    let r = run(bin(), d, &["resume", &state, "-q"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = read_jsonl(&d.join("out.jsonl"));
    assert!(duplicates(&recs).is_empty());
    let truth = site.site().crawl_truth(&[0], &|_| true);
    let ok = recs.iter().filter(|r| r.error.is_none()).count();
    assert_eq!(ok, truth.pages.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_recrawl_loses_nothing_and_writes_nothing_twice() {
    let rounds = env_u64("TRAWL_CRASH_ROUNDS", 8);
    let seed = env_u64("TRAWL_CRASH_SEED", fastrand::u64(..));
    eprintln!("kill -9 during a recrawl: {rounds} rounds, seed {seed} (replay with TRAWL_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let site = TestSite::new()
        .pages(800)
        .hosts(2)
        .latency(Latency::Fixed(Duration::from_millis(25)))
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, warc, state) = (arg(d, "out.jsonl"), arg(d, "out.warc.gz"), arg(d, "state"));
    let seeds: Vec<String> = (0..2).map(|h| site.site().root_url(h)).collect();
    let r = run(bin(), d, &crawl_args(&seeds, &out, &warc, &state)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth = site.site().crawl_truth(&[0, 1], &|_| true);
    site.set_generation(1);
    let generation = d.join("state/recrawl/1");
    let generation = generation.to_string_lossy().into_owned();
    let tune = ["--rate", "0", "--per-host-concurrency", "4", "-q"];
    // `trawl recrawl` until the recrawl's outputs exist (its configuration is stored
    // by then), then `trawl resume` of its directory, as after any crash.
    let args_now = |started: bool| -> Vec<String> {
        let mut v: Vec<String> = if started {
            vec!["resume".into(), generation.clone()]
        } else {
            vec!["recrawl".into(), state.clone()]
        };
        v.extend(tune.iter().map(|s| s.to_string()));
        v
    };
    let recrawl_out = d.join("out-recrawl-1.jsonl");
    let mut kills = 0u64;
    let mut completed = false;
    while kills < rounds {
        let args = args_now(recrawl_out.exists());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = command(bin(), d, &args).spawn().expect("spawn");
        tokio::time::sleep(Duration::from_millis(rng.u64(30..400))).await;
        if child.try_wait().expect("poll").is_some() {
            completed = true;
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        kills += 1;
        let recs = read_jsonl(&recrawl_out);
        assert!(
            duplicates(&recs).is_empty(),
            "round {kills}: {:?}",
            duplicates(&recs)
        );
    }
    if !completed {
        let args = args_now(recrawl_out.exists());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(bin(), d, &args).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    eprintln!("kill -9 during a recrawl: {kills} kills");
    assert!(
        kills >= rounds.min(4),
        "only {kills} kills before the recrawl ended"
    );
    let recs = read_jsonl(&recrawl_out);
    let t = site.site().recrawl_truth(&truth.pages, 0, 1);
    crate::recrawl::check_outcomes(&recs, &t);
    let w1 = d.join("out-recrawl-1.warc.gz");
    crate::recrawl::check_revisits(&w1, &recs, &[&d.join("out.warc.gz")]);
    let records = trawl_e2e::read_warc(&w1);
    let indexed = records
        .iter()
        .filter(|r| matches!(r.header("WARC-Type"), Some("response" | "revisit")))
        .count();
    assert_eq!(trawl_e2e::check_cdxj(d, &d.join("out-recrawl-1.cdxj")), indexed);
    // The history the next recrawl reads holds each URL once.
    let history = std::fs::read_to_string(d.join("state/recrawl/1/history.jsonl")).expect("history");
    let urls: Vec<&str> = history
        .lines()
        .map(|l| {
            l.split("\"url\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
        })
        .collect();
    let unique: HashSet<&str> = urls.iter().copied().collect();
    assert_eq!(urls.len(), unique.len(), "a URL twice in the history");
}
