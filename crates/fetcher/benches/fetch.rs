//! Fetcher throughput: 100,000 small pages from trawl-testsite with no politeness
//! limits at concurrency 64. The server runs in a child process (this binary again,
//! started with `TRAWL_BENCH_SERVER=1`), so the CPU time reported is the fetcher's own.
//!
//! ```sh
//! cargo bench -p trawl-fetcher --bench fetch                       # 100,000 requests, 3 runs
//! cargo bench -p trawl-fetcher --bench fetch -- --requests 20000 --concurrency 64
//! ```

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trawl_fetcher::{Fetcher, GatePolicy};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// User plus system CPU time of this process, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let site = trawl_testsite::TestSite::new()
            .pages(10)
            .track_requests(false)
            .start()
            .await
            .expect("site");
        println!("{}", site.site().bases()[0]);
        // Serve until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        })
        .await;
    });
}

fn main() {
    if std::env::var_os("TRAWL_BENCH_SERVER").is_some() {
        serve();
        return;
    }
    let requests = arg("--requests").unwrap_or(100_000);
    let concurrency = arg("--concurrency").unwrap_or(64);
    let runs = arg("--runs").unwrap_or(3);
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("TRAWL_BENCH_SERVER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server");
    let mut base = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut base)
        .expect("base");
    let base = base.trim().to_string();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for run in 0..runs {
        let mut policy = GatePolicy::default();
        policy.rate = None;
        policy.concurrency = concurrency as usize;
        let fetcher = Fetcher::builder()
            .user_agent("trawl-bench/0.1")
            .allow_private_ips(true)
            .robots(false)
            .compression(false)
            .politeness(policy)
            .build()
            .expect("fetcher");
        let next = Arc::new(AtomicU64::new(0));
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (f, next, base) = (fetcher.clone(), next.clone(), base.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break;
                        }
                        let page = f
                            .fetch(&format!("{base}/bad/link-target/{}", i % 1000))
                            .await
                            .expect("fetch");
                        assert_eq!(page.status, 200);
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let secs = t0.elapsed().as_secs_f64();
        let cpu = (cpu_time() - cpu0).as_secs_f64();
        println!(
            "run {run}: {requests} requests in {secs:.2} s = {:.0} req/s; fetcher CPU {:.1} µs/request",
            requests as f64 / secs,
            cpu * 1e6 / requests as f64
        );
        rates.push(requests as f64 / secs);
        cpus.push(cpu * 1e6 / requests as f64);
    }
    rates.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "median of {runs}: {:.0} req/s at concurrency {concurrency}; fetcher CPU {:.1} µs/request",
        rates[rates.len() / 2],
        cpus[cpus.len() / 2]
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
