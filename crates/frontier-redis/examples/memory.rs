//! What the Redis frontier costs in server memory: enqueues N URLs (1,000,000 by
//! default) into a fresh redis-server, reports the bytes per queued URL and per seen
//! URL, then leases and acks every URL (draining the queues) and reports the bytes per
//! known URL that stay: the seen set.
//!
//! ```text
//! cargo run --release -p trawl-frontier-redis --example memory [-- URLS [HOSTS [nodrain]]]
//! ```

use std::time::Instant;

use trawl_frontier::{Ack, FrontierStore, NewUrl, Outcome};
use trawl_frontier_redis::RedisFrontier;
use trawl_frontier_redis::testing::RedisServer;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn used_memory(c: &mut redis::Connection) -> Res<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query(c)?;
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .ok_or("no used_memory in INFO")?;
    Ok(line.trim().parse()?)
}

/// The sum of MEMORY USAGE (exact: SAMPLES 0) over the keys `prefix{0..n}`.
fn usage(c: &mut redis::Connection, prefix: &str, n: u64) -> Res<u64> {
    let mut total = 0;
    for from in (0..n).step_by(1024) {
        let mut p = redis::pipe();
        for i in from..(from + 1024).min(n) {
            p.cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("{prefix}{i}"))
                .arg("SAMPLES")
                .arg(0);
        }
        let v: Vec<Option<u64>> = p.query(c)?;
        total += v.into_iter().flatten().sum::<u64>();
    }
    Ok(total)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let hosts: u64 = args.get(2).map_or(Ok(1_000), |s| s.parse())?;
    let server = RedisServer::start_with(&["--appendonly", "no"])?;
    let mut c = server.client()?.get_connection()?;
    let f = RedisFrontier::open(server.options("mem", "w1"))?;
    let buckets = u64::from(f.options().seen_buckets);
    let base = used_memory(&mut c)?;

    let t = Instant::now();
    let mut batch = Vec::with_capacity(2_000);
    for i in 0..n {
        // About 45 bytes, like a typical crawled URL.
        let h = i % hosts;
        batch.push(NewUrl::page(
            format!("https://www.host{h}.example/articles/{i:08}.html"),
            1,
        ));
        if batch.len() == 2_000 || i + 1 == n {
            f.enqueue(std::mem::take(&mut batch))?;
        }
    }
    let enqueued = t.elapsed();
    let full = used_memory(&mut c)?;
    let seen = usage(&mut c, "trawl:mem:s:", buckets)?;
    let queues = usage(&mut c, "trawl:mem:q:", hosts)?;
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("trawl:mem:s:0")
        .query(&mut c)?;
    let mut chained = 0;
    for from in (0..buckets).step_by(1024) {
        let mut p = redis::pipe();
        for b in from..(from + 1024).min(buckets) {
            p.cmd("EXISTS").arg(format!("trawl:mem:s:{b}:1"));
        }
        chained += p.query::<Vec<u64>>(&mut c)?.into_iter().sum::<u64>();
    }
    let per = |b: u64| b as f64 / n as f64;
    println!("{n} URLs on {hosts} hosts, {buckets} seen-set buckets; enqueued in {enqueued:.1?}");
    println!(
        "  used_memory delta, all queued:      {:6.1} B per URL",
        per(full - base)
    );
    println!(
        "  MEMORY USAGE of the queues:         {:6.1} B per queued URL",
        per(queues)
    );
    println!(
        "  MEMORY USAGE of the seen set:       {:6.1} B per known URL",
        per(seen)
    );
    println!("  seen buckets: {encoding}; {chained} of {buckets} went on to a second hash");

    if args.get(3).is_some_and(|a| a == "nodrain") {
        return Ok(());
    }
    // Drain: lease and ack every URL, so that only the seen set (and the counters)
    // remain.
    let t = Instant::now();
    for h in 0..hosts {
        let Some(id) = f.host_id(&format!("https://www.host{h}.example"))? else {
            continue;
        };
        loop {
            let leases = f.lease(id, 500)?;
            if leases.is_empty() {
                break;
            }
            let acks = leases
                .into_iter()
                .map(|lease| Ack {
                    lease,
                    outcome: Outcome::Done,
                    discovered: Vec::new(),
                })
                .collect();
            f.ack(acks, &[])?;
        }
    }
    let counts = f.counts()?;
    assert_eq!(counts.done, n, "every URL is done");
    let drained = used_memory(&mut c)?;
    let seen_after = usage(&mut c, "trawl:mem:s:", buckets)?;
    println!("drained (leased and acked) in {:.1?}", t.elapsed());
    println!(
        "  used_memory delta, all done:        {:6.1} B per known URL",
        per(drained.saturating_sub(base))
    );
    println!(
        "  MEMORY USAGE of the seen set:       {:6.1} B per known URL",
        per(seen_after)
    );
    Ok(())
}
