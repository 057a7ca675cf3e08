//! Bad input from the user: a one-line error that says what to do, and the documented
//! exit code. Nothing in the state directory is lost.

use trawl_e2e::{arg, command, one_line, read_jsonl, run, wait_for, workdir};
use trawl_testsite::TestSite;

use crate::{FAST, bin};

/// The exit codes of README.md.
const USAGE: i32 = 2;
const STATE: i32 = 4;
const UNREACHABLE: i32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_say_what_to_do() {
    let dir = workdir();
    let d = dir.path();
    let cases: &[(&[&str], &str)] = &[
        (&["crawl"], "no seed URL given"),
        (&["crawl", "not a url"], "invalid seed URL"),
        (&["crawl", "ftp://example.com/"], "only http:// and https://"),
        (
            &["crawl", "http://127.0.0.1:9/", "--max-time", "soon"],
            "--max-time",
        ),
        (
            &["crawl", "http://127.0.0.1:9/", "--max-bytes", "lots"],
            "--max-bytes",
        ),
        (
            &["crawl", "http://127.0.0.1:9/", "--budget", "nonsense"],
            "--budget",
        ),
        (&["crawl", "http://127.0.0.1:9/", "--rate=-1"], "--rate"),
        (
            &["crawl", "http://127.0.0.1:9/", "--accept-type", "pdf"],
            "--accept-type",
        ),
        (
            &["crawl", "http://127.0.0.1:9/", "--user-agent", " "],
            "--user-agent",
        ),
        (
            &["crawl", "http://127.0.0.1:9/", "--include", "("],
            "invalid pattern",
        ),
    ];
    for (args, needle) in cases {
        let r = run(bin(), d, args).await;
        assert_eq!(r.code, USAGE, "{args:?}: {}", r.stderr);
        assert!(one_line(&r.stderr).contains(needle), "{args:?}: {}", r.stderr);
    }
    let r = run(bin(), d, &["crawl", "http://127.0.0.1:9/", "--no-such-flag"]).await;
    assert_eq!(r.code, USAGE, "{}", r.stderr);
    assert!(r.stderr.contains("--no-such-flag"));

    std::fs::write(d.join("bad.toml"), "rat = 2\n").expect("write");
    let r = run(bin(), d, &["crawl", "--config", "bad.toml"]).await;
    assert_eq!(r.code, USAGE);
    assert!(one_line(&r.stderr).contains("bad.toml"), "{}", r.stderr);
    // Nothing was created by the failed commands.
    let made: Vec<_> = std::fs::read_dir(d)
        .expect("dir")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seeds_and_state_errors() {
    let dir = workdir();
    let d = dir.path();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead = format!("http://127.0.0.1:{port}/");
    let r = run(bin(), d, &["crawl", &dead, "--state", "dead"]).await;
    assert_eq!(r.code, UNREACHABLE, "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("cannot reach any seed"));
    assert!(!d.join("dead").exists(), "no state directory is left behind");

    let r = run(bin(), d, &["resume", "missing"]).await;
    assert_eq!(r.code, STATE);
    assert!(one_line(&r.stderr).contains("does not exist"));
    std::fs::create_dir(d.join("foreign")).expect("mkdir");
    std::fs::write(d.join("foreign/notes.txt"), "mine").expect("write");
    let r = run(bin(), d, &["resume", "foreign"]).await;
    assert_eq!(r.code, STATE, "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("foreign"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(d.join("foreign/notes.txt")).expect("kept"),
        "mine"
    );

    // A directory that holds another crawl.
    let site = TestSite::new().pages(30).hosts(2).start().await.expect("site");
    let (a, b) = (site.site().root_url(0), site.site().root_url(1));
    let (out, state) = (arg(d, "a.jsonl"), arg(d, "state"));
    let mut args = vec![
        "crawl",
        a.as_str(),
        "-o",
        &out,
        "--state",
        &state,
        "--no-sitemaps",
    ];
    args.extend(FAST);
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = std::fs::read(d.join("a.jsonl")).expect("output");
    let r = run(bin(), d, &["crawl", &b, "--state", &state, "-q"]).await;
    assert_eq!(r.code, STATE, "{}", r.stderr);
    assert!(
        one_line(&r.stderr).contains("holds another crawl"),
        "{}",
        r.stderr
    );
    // Resuming with other outputs is refused; the output is untouched.
    let other = arg(d, "b.jsonl");
    let r = run(bin(), d, &["crawl", &a, "--state", &state, "-o", &other, "-q"]).await;
    assert_eq!(r.code, USAGE, "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("trawl resume"), "{}", r.stderr);
    assert_eq!(std::fs::read(d.join("a.jsonl")).expect("output"), before);
    // The same command again resumes the finished crawl: nothing new, nothing lost.
    let r = run(bin(), d, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(d.join("a.jsonl")).expect("output"), before);
    // A fresh crawl never overwrites an existing output file.
    let (state2, _) = (arg(d, "state2"), ());
    let r = run(
        bin(),
        d,
        &["crawl", &b, "-o", &out, "--state", &state2, "-q", "--no-sitemaps"],
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read(d.join("a.jsonl")).expect("output"), before);
    assert!(!read_jsonl(&d.join("a.jsonl")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_directory_is_refused_at_once() {
    let site = TestSite::new()
        .pages(400)
        .latency(trawl_testsite::Latency::Fixed(std::time::Duration::from_millis(
            20,
        )))
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state, seed) = (arg(d, "out.jsonl"), arg(d, "state"), site.root_url());
    let mut first = command(
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
            "2",
            "-q",
        ],
    )
    .spawn()
    .expect("spawn");
    let out_path = d.join("out.jsonl");
    assert!(
        wait_for(std::time::Duration::from_secs(30), || std::fs::metadata(
            &out_path
        )
        .is_ok_and(|m| m.len() > 0))
        .await
    );
    let t = std::time::Instant::now();
    let r = run(bin(), d, &["resume", &state, "-q"]).await;
    assert_eq!(r.code, STATE, "{}", r.stderr);
    assert!(
        one_line(&r.stderr).contains("another trawl process"),
        "{}",
        r.stderr
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "at once: {:?}",
        t.elapsed()
    );
    // `trawl status` still answers, from the running crawl's progress file.
    let ok = wait_for(std::time::Duration::from_secs(10), || {
        d.join("state/progress.json").exists()
    })
    .await;
    assert!(ok, "the running crawl writes its progress");
    let r = run(bin(), d, &["status", &state]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("a crawl is running"), "{}", r.stdout);
    let _ = first.kill();
    let _ = first.wait();
}
