//! A crawl shared by several workers through a real redis-server
//! (`--frontier redis+unix://…`): together they write every page once, and a page
//! limit holds for them together.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use trawl_e2e::{arg, command, duplicates, ok_urls, read_jsonl, run, workdir};
use trawl_frontier_redis::testing::RedisServer;
use trawl_testsite::TestSite;

use crate::{FAST, bin};

/// The arguments of worker `name`: every root as a seed, its own output and state
/// directory in `d`, the shared frontier `url`, and `extra`.
fn worker(d: &Path, roots: &[String], url: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let (out, state) = (
        arg(d, &format!("out-{name}.jsonl")),
        arg(d, &format!("state-{name}")),
    );
    let mut args: Vec<String> = vec!["crawl".into()];
    args.extend(roots.iter().cloned());
    args.extend(
        [
            "-o",
            &out,
            "--state",
            &state,
            "--frontier",
            url,
            "--worker",
            name,
            "--timeout",
            "5s",
            "--claim-ttl",
            "10s",
        ]
        .map(String::from),
    );
    args.extend(FAST.iter().chain(extra).map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_redis_write_every_page_once_between_them() {
    let site = TestSite::new()
        .pages(400)
        .hosts(4)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let server = RedisServer::start().expect("redis-server");
    let dir = workdir();
    let d = dir.path();
    let roots: Vec<String> = (0..4).map(|h| site.site().root_url(h)).collect();
    let url = server.url();
    let (a, b) = (
        worker(d, &roots, &url, "a", &[]),
        worker(d, &roots, &url, "b", &[]),
    );
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let (ra, rb) = tokio::join!(run(bin(), d, &a), run(bin(), d, &b));
    assert_eq!(ra.code, 0, "{}", ra.stderr);
    assert_eq!(rb.code, 0, "{}", rb.stderr);

    let mut records = read_jsonl(&d.join("out-a.jsonl"));
    records.extend(read_jsonl(&d.join("out-b.jsonl")));
    assert!(duplicates(&records).is_empty(), "{:?}", duplicates(&records));
    let truth = site.site().crawl_truth(&[0, 1, 2, 3], &|_| true);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok_urls(&records), expected);
    // robots.txt was read once per host, whichever worker read it.
    for root in &roots {
        assert_eq!(site.hits(&format!("{root}robots.txt")), 1, "{root}");
    }

    // Status shows the crawl whole, and each worker: stopped, holding nothing, with
    // the records it wrote.
    let r = run(bin(), d, &["status", "--frontier", &url, "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let crawls = v.as_array().expect("a list of crawls");
    assert_eq!(crawls.len(), 1, "{v}");
    let c = &crawls[0];
    assert_eq!(c["counts"]["queued"], 0);
    assert_eq!(c["counts"]["leased"], 0);
    assert_eq!(c["records"], records.len() as u64);
    let workers = c["workers"].as_array().expect("workers");
    let names: Vec<&str> = workers.iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    for (w, name) in workers.iter().zip(["a", "b"]) {
        let written = read_jsonl(&d.join(format!("out-{name}.jsonl"))).len() as u64;
        assert_eq!(w["records"], written, "{w}");
        assert_eq!(w["live"], false, "{w}");
        assert_eq!(w["hosts"].as_array().map(Vec::len), Some(0), "{w}");
    }
    let r = run(bin(), d, &["status", &arg(d, "state-a")]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("is worker a of a shared crawl"), "{}", r.stdout);
    assert!(
        r.stdout.contains(c["crawl"].as_str().expect("name")),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_limit_holds_for_every_worker_together() {
    let site = TestSite::new().pages(300).hosts(4).start().await.expect("site");
    let server = RedisServer::start().expect("redis-server");
    let dir = workdir();
    let d = dir.path();
    let roots: Vec<String> = (0..4).map(|h| site.site().root_url(h)).collect();
    let url = server.url();
    let total = |names: &[&str]| {
        let mut records = Vec::new();
        for n in names {
            records.extend(read_jsonl(&d.join(format!("out-{n}.jsonl"))));
        }
        assert!(duplicates(&records).is_empty(), "{:?}", duplicates(&records));
        records.len()
    };
    // Together, 60 records between them, however they share them out.
    let limit = ["--max-pages", "60"];
    let (a, b) = (
        worker(d, &roots, &url, "a", &limit),
        worker(d, &roots, &url, "b", &limit),
    );
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let (ra, rb) = tokio::join!(run(bin(), d, &a), run(bin(), d, &b));
    // The limit stopped the crawl, for both.
    assert_eq!(ra.code, 3, "{}", ra.stderr);
    assert_eq!(rb.code, 3, "{}", rb.stderr);
    assert_eq!(total(&["a", "b"]), 60);
    // Raised to 97 for worker b alone: it writes the 37 that are left, not 97.
    let before_b = total(&["b"]);
    let state_b = arg(d, "state-b");
    let r = run(bin(), d, &["resume", &state_b, "--max-pages", "97"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(total(&["b"]) - before_b, 37);
    assert_eq!(total(&["a", "b"]), 97);
    // And worker a, given 97 too, has nothing left to write.
    let state_a = arg(d, "state-a");
    let r = run(bin(), d, &["resume", &state_a, "--max-pages", "97"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(total(&["a", "b"]), 97);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_joins_late_is_handed_hosts_by_the_one_that_holds_them_all() {
    let site = TestSite::new().pages(400).hosts(4).start().await.expect("site");
    let server = RedisServer::start().expect("redis-server");
    let dir = workdir();
    let d = dir.path();
    let roots: Vec<String> = (0..4).map(|h| site.site().root_url(h)).collect();
    let url = server.url();
    // Paced (20 requests a second per host: some 5 s in all), short claims (renewed,
    // and the share looked at again, every half second).
    let paced = |name: &str| {
        let mut args = worker(d, &roots, &url, name, &[]);
        let fast = args.iter().position(|a| a == "--rate").expect("FAST");
        args.splice(fast..fast + 2, ["--rate".to_string(), "20".to_string()]);
        for (flag, v) in [("--timeout", "1s"), ("--claim-ttl", "2s")] {
            let i = args.iter().position(|a| a == flag).expect(flag);
            args[i + 1] = v.to_string();
        }
        args
    };
    let a = paced("a");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut first = command(bin(), d, &a).spawn().expect("spawn a");
    // Alone, a claims every host. Once it has written some pages, b joins.
    let out_a = d.join("out-a.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_jsonl(&out_a).len() < 20 {
        assert!(Instant::now() < deadline, "worker a wrote nothing in 30 s");
        assert!(first.try_wait().expect("poll").is_none(), "a ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = paced("b");
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let rb = run(bin(), d, &b).await;
    let ra = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("join")
        .expect("wait a");
    assert_eq!(ra.code(), Some(0));
    assert_eq!(rb.code, 0, "{}", rb.stderr);
    let (ra, rb) = (read_jsonl(&out_a), read_jsonl(&d.join("out-b.jsonl")));
    // b got hosts of its own, handed over by a (which holds 3 at most once b is there).
    assert!(
        rb.len() >= 20,
        "b wrote only {} of {} pages",
        rb.len(),
        ra.len() + rb.len()
    );
    let mut records = ra;
    records.extend(rb);
    assert!(duplicates(&records).is_empty(), "{:?}", duplicates(&records));
    let truth = site.site().crawl_truth(&[0, 1, 2, 3], &|_| true);
    let expected: HashSet<&str> = truth.pages.keys().map(String::as_str).collect();
    assert_eq!(ok_urls(&records), expected);
}
