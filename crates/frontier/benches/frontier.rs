//! Frontier throughput and memory benchmark (a plain bench binary, no harness).
//!
//! ```sh
//! cargo bench -p trawl-frontier                         # speed: 3 runs, medians
//! cargo bench -p trawl-frontier -- --urls 1000000        # a bigger speed run
//! cargo bench -p trawl-frontier -- --scale 10000000 --hosts 10000   # memory and disk
//! ```
//!
//! Speed phases, each on a fresh sled directory on the real disk:
//! - enqueue of new URLs in batches of 32, seen check included;
//! - enqueue of the same URLs again (all already seen), batches of 32;
//! - lease (batches of 32 per host) plus ack with 20 discovered links per URL, all
//!   already seen, with a flush every 100 ms.
//!
//! The scale mode enqueues N URLs over H hosts and reports, per tenth, the rate, peak
//! RSS (VmHWM) and disk (sled plus the seen set's runs); then it leases and acks a
//! million of them and times a reopen.

use std::time::{Duration, Instant};

use trawl_frontier::{Ack, Frontier, FrontierStore, NewUrl, Options, Outcome};

const BATCH: usize = 32;

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn url(i: u64, hosts: u64) -> String {
    format!("http://host{}.example/section/{}/page-{i}.html", i % hosts, i / 7)
}

/// URL `i` where each run of 32 consecutive URLs shares a host, as the links of one
/// page mostly do.
fn url_grouped(i: u64, hosts: u64) -> String {
    format!(
        "http://host{}.example/section/{}/page-{i}.html",
        (i / BATCH as u64) % hosts,
        i / 7
    )
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_dir() -> tempfile::TempDir {
    // On the real disk, under the build output, not in a tmpfs.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

struct Run {
    enqueue_new: f64,
    enqueue_seen: f64,
    lease_ack: f64,
}

/// How the URLs of one enqueue batch spread over hosts.
#[derive(Clone, Copy)]
enum Spread {
    /// 32 URLs of one host per batch, like the links of one page.
    OneHost,
    /// 32 different hosts per batch: the worst case, one queue segment per URL.
    ManyHosts,
}

/// How the discovered links of an ack relate to what is known.
#[derive(Clone, Copy)]
enum Links {
    /// Drawn from the last 20,000 URLs enqueued: a page links near itself.
    Recent,
    /// Drawn from every known URL: the worst case for the recency cache.
    Anywhere,
}

fn speed_run(n: u64, hosts: u64, spread: Spread, links: Links) -> Run {
    let dir = bench_dir();
    let f = Frontier::open(dir.path(), Options::default()).expect("open");
    let urls: Vec<String> = (0..n)
        .map(|i| match spread {
            Spread::OneHost => url_grouped(i, hosts),
            Spread::ManyHosts => url(i, hosts),
        })
        .collect();

    let t = Instant::now();
    for chunk in urls.chunks(BATCH) {
        f.enqueue(chunk.iter().map(|u| NewUrl::page(u.clone(), 1)).collect())
            .expect("enqueue");
    }
    let enqueue_new = n as f64 / t.elapsed().as_secs_f64();

    // Already-seen links: a page's links point near it (Recent) or anywhere (Anywhere).
    let window = 20_000.min(n);
    let batches: Vec<Vec<NewUrl>> = (0..n / BATCH as u64)
        .map(|b| {
            (0..BATCH as u64)
                .map(|j| {
                    let x = (b * BATCH as u64 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                    let i = match links {
                        Links::Recent => n - 1 - x % window,
                        Links::Anywhere => x % n,
                    };
                    NewUrl::page(urls[i as usize].clone(), 1)
                })
                .collect()
        })
        .collect();
    let seen_n = batches.len() as u64 * BATCH as u64;
    let t = Instant::now();
    for b in batches {
        f.enqueue(b).expect("enqueue");
    }
    let enqueue_seen = seen_n as f64 / t.elapsed().as_secs_f64();
    f.flush().expect("flush");

    // Lease and ack everything; each ack carries 20 links that are already known.
    let t = Instant::now();
    let mut last_flush = Instant::now();
    let mut done = 0u64;
    let mut k = 0u64;
    while done < n {
        let ready = f.ready_hosts().expect("read");
        if ready.is_empty() {
            break;
        }
        for (host, _) in ready {
            let leases = f.lease(host, BATCH).expect("lease");
            done += leases.len() as u64;
            let acks = leases
                .into_iter()
                .map(|lease| {
                    let here = (done + k) % n;
                    let discovered = (0..20)
                        .map(|j| {
                            k += 1;
                            let x = (k * 7919 + j) % n;
                            let i = match links {
                                Links::Recent => (here + x % window) % n,
                                Links::Anywhere => x,
                            };
                            NewUrl::page(urls[i as usize].clone(), 2)
                        })
                        .collect();
                    Ack {
                        lease,
                        outcome: Outcome::Done,
                        discovered,
                    }
                })
                .collect();
            f.ack(acks, &[("jsonl", &done.to_be_bytes())]).expect("ack");
            if last_flush.elapsed() >= Duration::from_millis(100) {
                f.flush().expect("flush");
                last_flush = Instant::now();
            }
        }
    }
    f.flush().expect("flush");
    let lease_ack = done as f64 / t.elapsed().as_secs_f64();
    assert_eq!(f.counts().expect("read").done, n);
    Run {
        enqueue_new,
        enqueue_seen,
        lease_ack,
    }
}

fn scale_run(n: u64, hosts: u64) {
    let dir = bench_dir();
    let f = Frontier::open(dir.path(), Options::default()).expect("open");
    let t = Instant::now();
    let mut tick = Instant::now();
    let step = (n / 10).clamp(1, 1_000_000);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        batch.push(NewUrl::page(url(i, hosts), 1));
        if batch.len() == BATCH {
            f.enqueue(std::mem::take(&mut batch)).expect("enqueue");
        }
        if i % step == 0 && i > 0 {
            f.flush().expect("flush");
            println!(
                "  {i:>10} URLs  {:6.1} s  last {step}: {:7.0} URLs/s  peak RSS {:5} MiB  disk {:6} MiB",
                t.elapsed().as_secs_f64(),
                step as f64 / tick.elapsed().as_secs_f64(),
                peak_rss_kib() / 1024,
                f.size_on_disk().unwrap_or(0) >> 20
            );
            tick = Instant::now();
        }
    }
    f.enqueue(batch).expect("enqueue");
    f.flush().expect("flush");
    let secs = t.elapsed().as_secs_f64();
    let disk = f.size_on_disk().unwrap_or(0);
    println!(
        "scale: {n} URLs over {hosts} hosts in {secs:.1} s ({:.0} URLs/s); peak RSS {} MiB; disk {} MiB = {:.0} bytes/URL",
        n as f64 / secs,
        peak_rss_kib() / 1024,
        disk >> 20,
        disk as f64 / n as f64
    );
    // Lease and ack a million of them, then report disk again: queue and lease keys
    // are inserted and deleted, which is where sled's space can grow.
    let t = Instant::now();
    let mut done = 0u64;
    'outer: loop {
        for (host, _) in f.ready_hosts().expect("read") {
            let leases = f.lease(host, BATCH).expect("lease");
            done += leases.len() as u64;
            let acks = leases
                .into_iter()
                .map(|lease| Ack {
                    lease,
                    outcome: Outcome::Done,
                    discovered: vec![],
                })
                .collect();
            f.ack(acks, &[]).expect("ack");
            if done >= n.min(1_000_000) {
                break 'outer;
            }
        }
    }
    f.flush().expect("flush");
    let disk = f.size_on_disk().unwrap_or(0);
    println!(
        "churn: leased and acked {done} in {:.1} s; peak RSS {} MiB; disk {} MiB = {:.0} bytes/URL",
        t.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024,
        disk >> 20,
        disk as f64 / n as f64
    );
    // Reopening loads the host table, the runs' filters and indexes and replays the
    // journal since the last checkpoint: how long a resume waits before it can lease.
    drop(f);
    let t = Instant::now();
    let f = Frontier::open(dir.path(), Options::default()).expect("reopen");
    println!(
        "reopen: {:.1} s for {} known URLs ({} queued); peak RSS {} MiB",
        t.elapsed().as_secs_f64(),
        f.counts().expect("read").total(),
        f.counts().expect("read").queued,
        peak_rss_kib() / 1024
    );
}

/// Raw sled: batches of 64 inserts of ~100-byte values under random 17-byte keys.
fn raw_sled(n: u64) {
    let dir = bench_dir();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(32 << 20)
        .flush_every_ms(None)
        .mode(sled::Mode::HighThroughput)
        .segment_size(arg("--segment").unwrap_or(512 * 1024) as usize)
        .open()
        .expect("sled");
    let tree = db.open_tree("t").expect("tree");
    let t = Instant::now();
    let mut b = sled::Batch::default();
    for i in 0..n {
        let k = xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()).to_be_bytes();
        b.insert(&k[..], vec![7u8; 100]);
        if i % 64 == 63 {
            tree.apply_batch(std::mem::take(&mut b)).expect("batch");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut hits = 0;
    for i in 0..n {
        let k = xxhash_rust::xxh3::xxh3_128(&(i * 3).to_le_bytes()).to_be_bytes();
        hits += usize::from(tree.contains_key(k).expect("get"));
    }
    println!(
        "raw sled: {:.0} inserts/s, {:.0} random gets/s ({hits} hits); peak RSS {} MiB, disk {} MiB",
        n as f64 / secs,
        n as f64 / t.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024,
        db.size_on_disk().unwrap_or(0) >> 20
    );
}

fn main() {
    if let Some(n) = arg("--raw") {
        raw_sled(n);
        return;
    }
    let hosts = arg("--hosts").unwrap_or(1_000);
    if let Some(n) = arg("--scale") {
        scale_run(n, hosts);
        return;
    }
    let n = arg("--urls").unwrap_or(200_000);
    let runs = arg("--runs").unwrap_or(3);
    for (name, spread, links) in [
        (
            "page-like: one host per batch, links near the page",
            Spread::OneHost,
            Links::Recent,
        ),
        (
            "worst case: 32 hosts per batch, links anywhere",
            Spread::ManyHosts,
            Links::Anywhere,
        ),
    ] {
        let mut new = Vec::new();
        let mut seen = Vec::new();
        let mut la = Vec::new();
        println!("{name}");
        for r in 0..runs {
            let run = speed_run(n, hosts, spread, links);
            println!(
                "  run {r}: enqueue new {:>9.0}/s   enqueue seen {:>10.0}/s   lease+ack {:>8.0}/s",
                run.enqueue_new, run.enqueue_seen, run.lease_ack
            );
            new.push(run.enqueue_new);
            seen.push(run.enqueue_seen);
            la.push(run.lease_ack);
        }
        println!(
            "  median of {runs} ({n} URLs, {hosts} hosts, batches of {BATCH}): enqueue new {:.0}/s, enqueue seen {:.0}/s, lease+ack {:.0}/s",
            median(new),
            median(seen),
            median(la),
        );
    }
    println!("peak RSS {} MiB", peak_rss_kib() / 1024);
}
