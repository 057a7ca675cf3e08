//! Watching a crawl: `--metrics` scraped while it runs and read by a real Prometheus
//! text parser (the Python client's OpenMetrics parser, from `.ci/venv`, named by
//! `TRAWL_PYTHON`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trawl_e2e::{arg, command, workdir};
use trawl_testsite::{Latency, RateLimit, TestSite};

use crate::bin;

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One scrape of `http://addr/metrics`: the body, or `None` when nobody answers yet.
async fn scrape(addr: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.ok()?;
    let reply = String::from_utf8(reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Parses `text` with `prometheus_client.openmetrics.parser` and returns each sample
/// as `name{labels} value` lines, sorted; `None` (with the reason printed) when the
/// parser is not installed outside CI.
fn parse_with_prometheus(text: &str) -> Option<Vec<String>> {
    let python = match std::env::var("TRAWL_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("TRAWL_PYTHON is not set under CI (bash .ci/run sets it)")
        }
        Err(_) => {
            eprintln!("TRAWL_PYTHON is not set: skipping the Prometheus parser check (bash .ci/run sets it)");
            return None;
        }
    };
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    Some(lines)
}

/// The value of the sample `name{labels}` (labels as `k=v`, sorted, comma-joined).
fn value(samples: &[String], sample: &str) -> Option<f64> {
    samples
        .iter()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_during_a_crawl_and_parse_as_openmetrics() {
    // A hidden limit, so that 429s and the adaptive rate show; latency, so the crawl
    // is still running when it is scraped.
    let site = TestSite::new()
        .pages(400)
        .latency(Latency::Fixed(Duration::from_millis(5)))
        .rate_limit(RateLimit {
            per_second: 10,
            retry_after: None,
        })
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let (out, state) = (arg(d, "out.jsonl"), arg(d, "state"));
    let addr = format!("127.0.0.1:{}", free_port());
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
        "--metrics",
        &addr,
        "-q",
    ];
    let mut child = command(bin(), d, &args).spawn().expect("spawn");
    // Scrape until the crawl has written pages and met the limit.
    let mut text = String::new();
    let mut seen = false;
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < end && !seen {
        if let Some(t) = scrape(&addr).await {
            seen = t.contains("trawl_responses_total{class=\"429\"}")
                && t.contains("trawl_pages_total{outcome=\"ok\"}");
            text = t;
        }
        if !seen {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the crawl was still running"
    );
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(seen, "no 429 or page counted after 60 s:\n{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let Some(samples) = parse_with_prometheus(&text) else {
        return;
    };
    assert!(
        value(&samples, "trawl_pages_total{outcome=ok}").is_some_and(|v| v >= 1.0),
        "{samples:#?}"
    );
    assert!(value(&samples, "trawl_responses_total{class=429}").is_some_and(|v| v >= 1.0));
    assert!(value(&samples, "trawl_bytes_total{at=body}").is_some_and(|v| v > 0.0));
    assert!(value(&samples, "trawl_queue_depth{}").is_some());
    assert!(value(&samples, "trawl_requests_in_flight{}").is_some());
    assert!(value(&samples, "trawl_hosts_cooling_down{}").is_some());
    assert!(value(&samples, "trawl_stalls_total{}").is_some());
    for stage in ["fetch", "parse", "commit"] {
        let count = value(&samples, &format!("trawl_stage_seconds_count{{stage={stage}}}"));
        assert!(count.is_some_and(|c| c >= 1.0), "{stage}: {samples:#?}");
        assert!(
            value(
                &samples,
                &format!("trawl_stage_seconds_bucket{{le=+Inf,stage={stage}}}")
            )
            .is_some()
        );
    }
    // The adaptive rate of the one host, below --rate after the 429s.
    let host = root.trim_start_matches("http://").trim_end_matches('/');
    let rate = value(&samples, &format!("trawl_host_rate{{host={host}}}")).expect("the host's rate");
    assert!(rate < 40.0, "{rate}");
    // Label values stay bounded: one host here (at most the engine's RATE_HOSTS, 20).
    let hosts = samples
        .iter()
        .filter(|l| l.starts_with("trawl_host_rate{"))
        .count();
    assert_eq!(hosts, 1, "{samples:#?}");
}

#[tokio::test]
async fn a_bad_metrics_address_is_a_usage_error() {
    let dir = workdir();
    let d = dir.path();
    let r = trawl_e2e::run(
        bin(),
        d,
        &["crawl", "http://127.0.0.1:9/", "--metrics", "nowhere", "-q"],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--metrics"), "{}", r.stderr);
}

/// The screen of tmux session `name`, as `capture-pane` prints it.
fn capture(name: &str) -> String {
    let out = std::process::Command::new("tmux")
        .args(["capture-pane", "-p", "-t", name])
        .output()
        .expect("tmux capture-pane");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_line_reads_well_in_a_real_terminal() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "tmux is missing under CI (bash .ci/run installs it)"
        );
        eprintln!("tmux is not installed: skipping the terminal check");
        return;
    }
    let site = TestSite::new()
        .pages(2_000)
        .rate_limit(RateLimit {
            per_second: 10,
            retry_after: Some(1),
        })
        .start()
        .await
        .expect("site");
    let dir = workdir();
    let d = dir.path();
    let name = format!("trawl-progress-{}", std::process::id());
    let cmd = format!(
        "{} crawl {} -o {} --state {} --no-sitemaps --rate 40 --max-pages 300; sleep 30",
        bin().display(),
        site.root_url(),
        arg(d, "out.jsonl"),
        arg(d, "state")
    );
    let started = std::process::Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "150", "-y", "10", &cmd])
        .env("RUST_LOG", "error")
        .status()
        .expect("tmux new-session");
    assert!(started.success());
    // Until the line shows a rate, the queue, a cool-down and the ETA of --max-pages.
    let shows = |s: &str| {
        s.contains("/s) | ") && s.contains(" queued | ") && s.contains("cooling down") && s.contains("ETA ")
    };
    let mut screen = String::new();
    let seen = trawl_e2e::wait_for(Duration::from_secs(60), || {
        screen = capture(&name);
        shows(&screen)
    })
    .await;
    let _ = std::process::Command::new("tmux")
        .args(["kill-session", "-t", &name])
        .status();
    println!("captured screen:\n{screen}");
    assert!(seen, "the progress line never showed everything:\n{screen}");
    // One line, not wrapped at 150 columns, no stray escape codes.
    let line = screen.lines().find(|l| shows(l)).expect("one line holds it all");
    assert!(line.len() <= 150, "{line}");
    assert!(!line.contains('\u{1b}'), "{line:?}");
}
