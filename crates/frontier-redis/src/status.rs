//! A shared crawl's state as `trawl status --frontier` shows it: read with plain
//! commands, without registering a worker or changing anything.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;
use trawl_frontier::{Counts, Result};

use crate::codec::number;
use crate::link::backend;
use crate::store::read;

/// How long a status read waits for the server.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The claim ttl assumed for a worker that stored none (an older version's).
const DEFAULT_TTL_MS: u64 = 150_000;

/// The replies of the crawl-wide reads: TIME, the counts, the hosts known, with work
/// and claimed, and the workers with their heartbeats.
type Overview = (Vec<u64>, Vec<Value>, u64, u64, u64, Vec<(String, u64)>);

/// The whole of a shared crawl, at one moment of the server's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlStatus {
    /// The crawl's name (its keys are under `trawl:{crawl}:`).
    pub crawl: String,
    /// What the workers were started on (their seeds and scope), as the first worker
    /// that stored it said.
    pub identity: Option<String>,
    /// The server's clock, ms since the epoch: `last_seen_ms` and `last_ack_ms` are
    /// on it.
    pub now_ms: u64,
    /// URLs by state, across every worker.
    pub counts: Counts,
    /// Records written by every worker.
    pub records: u64,
    /// Hosts known.
    pub hosts: u64,
    /// Hosts with queued or leased URLs.
    pub hosts_with_work: u64,
    /// Hosts claimed by some worker.
    pub hosts_claimed: u64,
    /// Every worker the crawl has heard from in the last 100 claim ttls, by name.
    pub workers: Vec<WorkerStatus>,
}

/// One worker of a shared crawl.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    /// Its name.
    pub name: String,
    /// Its last heartbeat (an open or a claim renewal), or when it stopped, ms on the
    /// server's clock.
    pub last_seen_ms: u64,
    /// Whether it has not stopped and that heartbeat is within its claim ttl: it is
    /// running (a worker killed with -9 stays live until its ttl has passed).
    pub live: bool,
    /// Its claim ttl, ms.
    pub claim_ttl_ms: u64,
    /// The hosts it claims, by key (`scheme://host[:port]`), sorted.
    pub hosts: Vec<String>,
    /// URLs it has leased and not acked.
    pub leased: u64,
    /// Records its acks wrote.
    pub records: u64,
    /// Records a second over its last 10 to 20 s of acks (at least a second; falling
    /// while it is idle).
    pub rate: f64,
    /// Its last ack, ms on the server's clock (`None`: none yet).
    pub last_ack_ms: Option<u64>,
}

fn connect(url: &str) -> Result<redis::Connection> {
    let client = redis::Client::open(url).map_err(|e| backend(format!("{url}: {e}")))?;
    client
        .get_connection_with_timeout(TIMEOUT)
        .map_err(|e| backend(format!("{url}: {e}")))
}

fn fail(e: redis::RedisError) -> trawl_frontier::Error {
    backend(e)
}

/// The names of the crawls on the server at `url`, sorted.
///
/// # Errors
/// [`Error::Backend`](trawl_frontier::Error::Backend) when the server cannot be
/// reached or refuses a command.
pub fn crawls(url: &str) -> Result<Vec<String>> {
    use redis::Commands;

    let mut c = connect(url)?;
    let keys = c
        .scan_match::<_, String>("trawl:*:counts")
        .map_err(fail)?
        .collect::<redis::RedisResult<Vec<String>>>()
        .map_err(fail)?;
    let mut names: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix("trawl:")
                .and_then(|k| k.strip_suffix(":counts"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Reads crawl `crawl` on the server at `url`; `Ok(None)` when the server holds no
/// such crawl.
///
/// # Errors
/// [`Error::Backend`](trawl_frontier::Error::Backend) when the server cannot be
/// reached or refuses a command.
pub fn crawl_status(url: &str, crawl: &str) -> Result<Option<CrawlStatus>> {
    use redis::Commands;

    let mut c = connect(url)?;
    let p = format!("trawl:{crawl}:");
    let key = |rest: &str| format!("{p}{rest}");
    let exists: bool = c.exists(key("counts")).map_err(fail)?;
    if !exists {
        return Ok(None);
    }
    let (time, counts, hosts, with_work, claimed, workers): Overview = redis::pipe()
        .cmd("TIME")
        .cmd("HMGET")
        .arg(key("counts"))
        .arg(&["q", "l", "d", "f", "pg"])
        .hlen(key("hostids"))
        .scard(key("active"))
        .zcard(key("claims"))
        .zrange_withscores(key("workers"), 0, -1)
        .query(&mut c)
        .map_err(fail)?;
    let now_ms = time.first().copied().unwrap_or(0) * 1000 + time.get(1).copied().unwrap_or(0) / 1000;
    let records = counts.get(4).cloned().map_or(Ok(0), number)?;
    let counts = read::counts(counts)?;
    let mut out = Vec::with_capacity(workers.len());
    let mut identity = None;
    let mut names: HashMap<String, String> = HashMap::new();
    for (name, seen) in workers {
        let w = key(&format!("w:{name}"));
        let (f, held): (Vec<Option<u64>>, Vec<String>) = redis::pipe()
            .cmd("HMGET")
            .arg(&w)
            .arg(&["ttl", "n", "rn", "rt", "pn", "pt", "at", "left"])
            .smembers(key(&format!("wc:{name}")))
            .query(&mut c)
            .map_err(fail)?;
        if identity.is_none() {
            let id: Option<Vec<u8>> = c.hget(&w, "x:identity").map_err(fail)?;
            identity = id.map(|b| String::from_utf8_lossy(&b).into_owned());
        }
        let g = |i: usize| f.get(i).copied().flatten();
        let ttl = g(0).unwrap_or(DEFAULT_TTL_MS);
        let mut leased = 0;
        let mut hosts = Vec::with_capacity(held.len());
        for h in held {
            let n: u64 = c.hlen(key(&format!("l:{name}:{h}"))).map_err(fail)?;
            leased += n;
            if !names.contains_key(&h) {
                let k: Option<String> = c.hget(key(&format!("h:{h}")), "k").map_err(fail)?;
                names.insert(h.clone(), k.unwrap_or_else(|| format!("host {h}")));
            }
            hosts.push(names[&h].clone());
        }
        hosts.sort();
        let (rn, rt, pn, pt) = (g(2).unwrap_or(0), g(3).unwrap_or(0), g(4).unwrap_or(0), g(5));
        let since = pt.unwrap_or(rt);
        let rate = if since == 0 || now_ms <= since {
            0.0
        } else {
            (rn + pn) as f64 * 1000.0 / (now_ms - since).max(1000) as f64
        };
        // A worker that stopped left a time of its own, and is not live.
        let left = g(7);
        let seen = left.unwrap_or(seen);
        out.push(WorkerStatus {
            name,
            last_seen_ms: seen,
            live: left.is_none() && now_ms.saturating_sub(seen) <= ttl,
            claim_ttl_ms: ttl,
            hosts,
            leased,
            records: g(1).unwrap_or(0),
            rate,
            last_ack_ms: g(6),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(CrawlStatus {
        crawl: crawl.to_string(),
        identity,
        now_ms,
        counts,
        records,
        hosts,
        hosts_with_work: with_work,
        hosts_claimed: claimed,
        workers: out,
    }))
}
