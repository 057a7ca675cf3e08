//! A crawl shared by several workers through a real redis-server
//! (`--frontier redis+unix://…`): together they write every page once.

use std::collections::HashSet;

use trawl_e2e::{arg, duplicates, ok_urls, read_jsonl, run, workdir};
use trawl_frontier_redis::testing::RedisServer;
use trawl_testsite::TestSite;

use crate::{FAST, bin};

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
    let worker = |name: &'static str| {
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
                &url,
                "--worker",
                name,
                "--timeout",
                "5s",
                "--claim-ttl",
                "10s",
            ]
            .map(String::from),
        );
        args.extend(FAST.iter().map(|s| s.to_string()));
        args
    };
    let (a, b) = (worker("a"), worker("b"));
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
}
