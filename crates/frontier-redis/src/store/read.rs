//! Reads: hosts, counts, one URL's record, and the consistency check.

use std::collections::HashMap;

use trawl_frontier::{Counts, FrontierStore, HostInfo, Politeness, UrlRecord, UrlState, host_of};

use super::*;

/// Hosts read per pipeline.
const CHUNK: u64 = 512;

fn field(f: &HashMap<String, Vec<u8>>, name: &str) -> Result<u64> {
    match f.get(name) {
        None => Ok(0),
        Some(b) => number(Value::BulkString(b.clone())),
    }
}

/// A host's hash as a [`HostInfo`]; `None` if there is no such host.
pub(crate) fn host_info(id: HostId, f: HashMap<String, Vec<u8>>) -> Result<Option<HostInfo>> {
    let Some(key) = f.get("k") else {
        return Ok(None);
    };
    let key = String::from_utf8(key.clone()).map_err(|_| codec::corrupt("a host key is not UTF-8"))?;
    // Counts are kept with HINCRBY and cannot go below 0 unless the data is damaged.
    let c = |n: &str| field(&f, n);
    Ok(Some(HostInfo {
        id,
        key,
        counts: Counts {
            queued: c("q")?,
            leased: c("l")?,
            done: c("d")?,
            failed: c("f")?,
        },
        politeness: Politeness {
            next_allowed_at_ms: c("pn")?,
            retry_after_until_ms: c("pr")?,
            backoff_level: c("pb")? as u32,
            consecutive_failures: c("pc")? as u32,
            adaptive_millirate: c("pa")? as u32,
        },
    }))
}

pub(crate) fn counts(v: Vec<Value>) -> Result<Counts> {
    let mut it = v.into_iter();
    let mut next = || number(it.next().unwrap_or(Value::Nil));
    Ok(Counts {
        queued: next()?,
        leased: next()?,
        done: next()?,
        failed: next()?,
    })
}

impl RedisFrontier {
    pub(crate) fn read_hosts(&self) -> Result<Vec<HostInfo>> {
        let sh = &*self.shared;
        let meta = sh.key("meta");
        let n: u64 = sh
            .query(|c| redis::cmd("HGET").arg(&meta).arg("next_host").query::<Value>(c))
            .and_then(number)?;
        let mut out = Vec::with_capacity(n as usize);
        let mut from = 0;
        while from < n {
            let to = (from + CHUNK).min(n);
            let all: Vec<HashMap<String, Vec<u8>>> = sh.query(|c| {
                let mut p = redis::pipe();
                for h in from..to {
                    p.cmd("HGETALL").arg(sh.key(&format!("h:{h}")));
                }
                p.query(c)
            })?;
            for (i, f) in all.into_iter().enumerate() {
                let id = HostId((from + i as u64) as u32);
                if let Some(h) = host_info(id, f)? {
                    out.push(h);
                }
            }
            from = to;
        }
        Ok(out)
    }

    pub(crate) fn read_url(&self, url: &str) -> Result<Option<UrlRecord>> {
        let sh = &*self.shared;
        let fp = Fingerprint::of(url);
        let Some((state, attempts)) = self.seen_state(fp)? else {
            return Ok(None);
        };
        let host = host_of(url)
            .map(|h| self.host_id(h))
            .transpose()?
            .flatten()
            .ok_or_else(|| codec::corrupt(format!("known {url} names an unknown host")))?;
        let want = fp.0.to_be_bytes();
        match state {
            UrlState::Done | UrlState::Failed => Ok(Some(UrlRecord {
                fp,
                url: url.to_string(),
                state,
                attempts,
                depth: 0,
                priority: trawl_frontier::Priority::Page,
                host,
                reason: None,
                data: Vec::new(),
            })),
            UrlState::Leased => {
                let hk = sh.key(&format!("h:{}", host.0));
                let owner: Option<String> = sh.query(|c| redis::cmd("HGET").arg(&hk).arg("o").query(c))?;
                let owner =
                    owner.ok_or_else(|| codec::corrupt(format!("leased {url} is on an unclaimed host")))?;
                let lk = sh.key(&format!("l:{owner}:{}", host.0));
                let v: Option<Vec<u8>> = sh.query(|c| redis::cmd("HGET").arg(&lk).arg(&want[..]).query(c))?;
                let v =
                    v.ok_or_else(|| codec::corrupt(format!("leased {url} is missing from its lease hash")))?;
                let rec = codec::decode_record(v.get(16..).unwrap_or_default())?;
                Ok(Some(rec.into_url_record(host, UrlState::Leased)))
            }
            UrlState::Queued => {
                let qk = sh.key(&format!("q:{}", host.0));
                let mut from = 0i64;
                loop {
                    let chunk: Vec<Vec<u8>> =
                        sh.query(|c| redis::cmd("ZRANGE").arg(&qk).arg(from).arg(from + 1023).query(c))?;
                    if let Some(r) = chunk.iter().find(|r| r.get(..16) == Some(&want[..])) {
                        let rec = codec::decode_record(r)?;
                        return Ok(Some(rec.into_url_record(host, UrlState::Queued)));
                    }
                    if chunk.len() < 1024 {
                        return Err(codec::corrupt(format!("queued {url} is in no queue")));
                    }
                    from += 1024;
                }
            }
        }
    }

    /// Scans the whole crawl and checks that it is consistent: every host's queue and
    /// lease hashes hold as many URLs as its counts say, the per-host counts add up
    /// to the global ones, the seen set holds exactly that many URLs with those
    /// states, every host with queued URLs is in the ready index of its owner (or the
    /// global one) and no other host is, and claims, owners and the claim sets agree.
    /// Returns the counts found. For tests and tools: it reads every key of the crawl,
    /// with no other worker writing meanwhile.
    pub fn verify(&self) -> Result<Counts> {
        let sh = &*self.shared;
        let bad = |s: String| Err(codec::corrupt(s));
        let mut found = Counts::default();
        let claims: HashMap<String, f64> = sh.query(|c| {
            redis::cmd("ZRANGE")
                .arg(sh.key("claims"))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(c)
        })?;
        let hosts = self.read_hosts()?;
        let mut owned = 0;
        for h in &hosts {
            let hk = sh.key(&format!("h:{}", h.id.0));
            let (owner, ix, ra): (Option<String>, Option<String>, Option<String>) =
                sh.query(|c| redis::cmd("HMGET").arg(&hk).arg(&["o", "ix", "ra"]).query(c))?;
            let queued: u64 =
                sh.query(|c| redis::cmd("ZCARD").arg(sh.key(&format!("q:{}", h.id.0))).query(c))?;
            let leased: u64 = match &owner {
                Some(o) => sh.query(|c| {
                    redis::cmd("HLEN")
                        .arg(sh.key(&format!("l:{o}:{}", h.id.0)))
                        .query(c)
                })?,
                None => 0,
            };
            if (queued, leased) != (h.counts.queued, h.counts.leased) {
                return bad(format!(
                    "host {} counts {:?} but holds {queued} queued and {leased} leased",
                    h.key, h.counts
                ));
            }
            found.queued += queued;
            found.leased += leased;
            found.done += h.counts.done;
            found.failed += h.counts.failed;
            if let Some(o) = &owner {
                owned += 1;
                let member: bool = sh.query(|c| {
                    redis::cmd("SISMEMBER")
                        .arg(sh.key(&format!("wc:{o}")))
                        .arg(h.id.0)
                        .query(c)
                })?;
                if !member || !claims.contains_key(&h.id.0.to_string()) {
                    return bad(format!(
                        "host {} is owned by {o} but not in its claim sets",
                        h.key
                    ));
                }
                if queued + leased == 0 {
                    return bad(format!("host {} is claimed with nothing queued or leased", h.key));
                }
            }
            // Where the ready index has it.
            let o = owner.clone().unwrap_or_default();
            let suffix = if o.is_empty() {
                String::new()
            } else {
                format!(":{o}")
            };
            let open: Option<f64> = sh.query(|c| {
                redis::cmd("ZSCORE")
                    .arg(sh.key(&format!("open{suffix}")))
                    .arg(h.id.0)
                    .query(c)
            })?;
            let timed: Option<f64> = sh.query(|c| {
                redis::cmd("ZSCORE")
                    .arg(sh.key(&format!("timed{suffix}")))
                    .arg(h.id.0)
                    .query(c)
            })?;
            let placed = match (queued > 0, open, timed) {
                (false, None, None) => ix.is_none() && ra.is_none(),
                (true, Some(_), None) => ix.as_deref() == Some(&o) && ra.as_deref() == Some("0"),
                (true, None, Some(_)) => ix.as_deref() == Some(&o) && ra.as_deref().is_some_and(|r| r != "0"),
                _ => false,
            };
            if !placed {
                return bad(format!(
                    "host {} ({queued} queued, owner {o:?}) is misplaced in the ready index",
                    h.key
                ));
            }
        }
        if owned != claims.len() {
            return bad(format!("{} claims for {owned} owned hosts", claims.len()));
        }
        let total = self.counts()?;
        if total != found {
            return bad(format!("the counters say {total:?}, the hosts {found:?}"));
        }
        // The seen set: every value's state, counted.
        let mut seen = Counts::default();
        let buckets = u64::from(sh.opts.seen_buckets);
        let mut from = 0;
        while from < buckets {
            let to = (from + CHUNK).min(buckets);
            let all: Vec<Vec<u64>> = sh.query(|c| {
                let mut p = redis::pipe();
                for b in from..to {
                    p.cmd("HVALS").arg(sh.key(&format!("s:{b}")));
                }
                p.query(c)
            })?;
            let mut vals: Vec<u64> = Vec::new();
            for (b, level0) in (from..to).zip(all) {
                // A full hash may have more of its bucket's chain after it.
                let mut len = level0.len() as u64;
                vals.extend(level0);
                let mut level = 1;
                loop {
                    if len > sh.seen_cap {
                        return bad(format!(
                            "seen-set bucket {b} holds {len} fields in a hash (at most {})",
                            sh.seen_cap
                        ));
                    }
                    if len < sh.seen_cap {
                        break;
                    }
                    let more: Vec<u64> = sh.query(|c| {
                        redis::cmd("HVALS")
                            .arg(sh.key(&format!("s:{b}:{level}")))
                            .query(c)
                    })?;
                    len = more.len() as u64;
                    vals.extend(more);
                    level += 1;
                }
            }
            for v in vals {
                let slot = match codec::decode_seen(v)?.0 {
                    UrlState::Queued => &mut seen.queued,
                    UrlState::Leased => &mut seen.leased,
                    UrlState::Done => &mut seen.done,
                    UrlState::Failed => &mut seen.failed,
                };
                *slot += 1;
            }
            from = to;
        }
        if seen != found {
            return bad(format!(
                "the seen set says {seen:?}, the queues and leases {found:?}"
            ));
        }
        Ok(found)
    }
}
