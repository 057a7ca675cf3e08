//! [`Stats`]: live counters of a crawl, and [`StatsSnapshot`], their serializable
//! picture for progress lines, `--stats-json` and `trawl status`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Live counters, shared by the pipeline's stages. Cheap to update from any thread.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    pub(crate) pages: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) sitemaps: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) wire_bytes: AtomicU64,
    pub(crate) links: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) beyond_depth: AtomicU64,
    pub(crate) over_budget: AtomicU64,
    pub(crate) links_dropped: AtomicU64,
    pub(crate) links_guarded: AtomicU64,
    pub(crate) pages_over_caps: AtomicU64,
    pub(crate) bodies_skipped: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) max_stall_us: AtomicU64,
    pub(crate) fetch_us: AtomicU64,
    pub(crate) parse_us: AtomicU64,
    pub(crate) commit_us: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) done_total: AtomicU64,
    pub(crate) failed_total: AtomicU64,
    status: Mutex<BTreeMap<u16, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    hosts: Mutex<HostTable>,
    /// What a recrawl's `--changed-since` decided, set when the crawl is opened.
    pub(crate) changed_since: Mutex<Option<crate::recrawl::ChangedSince>>,
}

/// The most hosts whose counters are kept. Past it the half with the fewest pages
/// is dropped: the busiest hosts (what `top_hosts` shows) stay, and a broad crawl's
/// counters stay small. Hosts seen are counted apart, one bit each.
pub const STATS_HOSTS: usize = 4_096;

/// Per-host counters, bounded by [`STATS_HOSTS`].
#[derive(Debug, Default)]
struct HostTable {
    counters: HashMap<String, HostCounters>,
    /// One bit per frontier host number: seen in this run.
    seen: Vec<u64>,
    seen_count: u64,
}

impl HostTable {
    fn note(&mut self, id: u32) {
        let (i, bit) = (id as usize / 64, 1u64 << (id % 64));
        if self.seen.len() <= i {
            self.seen.resize(i + 1, 0);
        }
        if self.seen[i] & bit == 0 {
            self.seen[i] |= bit;
            self.seen_count += 1;
        }
    }

    /// Makes room for `host` if it is new and the table is full.
    fn make_room(&mut self, host: &str) {
        if !self.counters.contains_key(host) && self.counters.len() >= STATS_HOSTS {
            let mut pages: Vec<u64> = self.counters.values().map(|c| c.pages).collect();
            let mid = pages.len() / 2;
            let median = *pages.select_nth_unstable(mid).1;
            self.counters.retain(|_, c| c.pages > median);
            if self.counters.len() >= STATS_HOSTS {
                // All alike: drop any half.
                let mut k = 0;
                self.counters.retain(|_, _| {
                    k += 1;
                    k % 2 == 0
                });
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct HostCounters {
    pages: u64,
    failures: u64,
    /// Responses answered 429 (every attempt).
    refused: u64,
}

/// One host in a [`StatsSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// `host[:port]`.
    pub host: String,
    /// Records written for it in this run.
    pub pages: u64,
    /// Of which failed.
    pub failures: u64,
    /// `failures / pages`.
    pub failure_rate: f64,
    /// Responses answered 429 Too Many Requests in this run, every attempt (a
    /// retried URL's record shows only its last answer).
    #[serde(default)]
    pub refused_429: u64,
}

/// Where the pipeline's time went, in milliseconds summed over tasks (wall time
/// inside each stage; fetch includes waiting on the network).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct StageTimes {
    /// Inside `Fetcher::fetch`.
    pub fetch_ms: f64,
    /// Parsing (HTML, sitemaps) and building records.
    pub parse_ms: f64,
    /// Writing outputs and acking in the frontier.
    pub commit_ms: f64,
}

/// A picture of a crawl's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StatsSnapshot {
    /// Seconds since this run started.
    pub elapsed_secs: f64,
    /// Records written in this run.
    pub pages: u64,
    /// `pages / elapsed_secs`.
    pub pages_per_sec: f64,
    /// Records with a 2xx response.
    pub ok: u64,
    /// Failed records.
    pub failed: u64,
    /// Records of redirects.
    pub redirects: u64,
    /// Sitemaps read (they write no record).
    pub sitemaps: u64,
    /// Body bytes after decompression.
    pub bytes: u64,
    /// Body bytes on the wire.
    pub wire_bytes: u64,
    /// Links found on pages.
    pub links: u64,
    /// Links refused by scope (out of scope, excluded, special addresses).
    pub refused_links: u64,
    /// Links not followed because of `max_depth`.
    pub beyond_depth: u64,
    /// Links dropped by a path budget.
    pub over_budget: u64,
    /// Links dropped past the per-page link cap.
    #[serde(default)]
    pub links_dropped: u64,
    /// Links not followed because a trap guard refused them (path segments, repeated
    /// segments, query parameters, URL length, query variants of one path): the
    /// records of the pages they were on say which guard (`limits`).
    #[serde(default)]
    pub links_guarded: u64,
    /// Pages that hit a parse cap (links, nesting depth, input size): their records
    /// say which (`limits`).
    #[serde(default)]
    pub pages_over_caps: u64,
    /// Responses whose body was not downloaded because trawl does not parse their
    /// `Content-Type` and `--accept-type` does not keep it: their records say
    /// `skipped-content-type` (sitemaps of another type count too).
    #[serde(default)]
    pub bodies_skipped: u64,
    /// Responses by status.
    pub status: BTreeMap<String, u64>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// The busiest hosts (at most 20), with their failure rates.
    pub top_hosts: Vec<HostSnapshot>,
    /// Hosts seen in this run.
    pub hosts: u64,
    /// URLs queued in the frontier (whole crawl).
    pub queued: u64,
    /// URLs leased and not yet acked.
    pub in_flight: u64,
    /// URLs done in the frontier (whole crawl).
    pub done: u64,
    /// URLs failed in the frontier (whole crawl).
    pub failed_total: u64,
    /// The worst lateness of the runtime stall monitor, in milliseconds.
    pub max_stall_ms: f64,
    /// Where the time went.
    pub stages: StageTimes,
    /// For a recrawl given `--changed-since`: what the sitemaps' `<lastmod>`s decided
    /// (made once, before its first revisit, so a resumed recrawl shows it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<crate::recrawl::ChangedSince>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    /// Empty counters, with the clock starting now.
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            pages: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            sitemaps: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            wire_bytes: AtomicU64::new(0),
            links: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            beyond_depth: AtomicU64::new(0),
            over_budget: AtomicU64::new(0),
            links_dropped: AtomicU64::new(0),
            links_guarded: AtomicU64::new(0),
            pages_over_caps: AtomicU64::new(0),
            bodies_skipped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_stall_us: AtomicU64::new(0),
            fetch_us: AtomicU64::new(0),
            parse_us: AtomicU64::new(0),
            commit_us: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            done_total: AtomicU64::new(0),
            failed_total: AtomicU64::new(0),
            status: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            hosts: Mutex::new(HostTable::default()),
            changed_since: Mutex::new(None),
        }
    }

    /// Counts one written record of host `host` (frontier host number `host_id`).
    pub(crate) fn record(&self, host_id: u32, host: &str, status: Option<u16>, error: Option<&str>) {
        self.pages.fetch_add(1, Relaxed);
        if let Some(s) = status {
            *self
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(s)
                .or_default() += 1;
            if (200..300).contains(&s) {
                self.ok.fetch_add(1, Relaxed);
            } else if (300..400).contains(&s) {
                self.redirects.fetch_add(1, Relaxed);
            }
        }
        if let Some(kind) = error {
            self.failed.fetch_add(1, Relaxed);
            *self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(kind.to_string())
                .or_default() += 1;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.note(host_id);
        hosts.make_room(host);
        // Looked up before inserting: no allocation per record once the host is known.
        let h = match hosts.counters.get_mut(host) {
            Some(h) => h,
            None => hosts.counters.entry(host.to_string()).or_default(),
        };
        h.pages += 1;
        h.failures += u64::from(error.is_some());
    }

    /// Counts a response of `host` answered 429 (only hosts already in the table: the
    /// busiest keep their counters, see [`STATS_HOSTS`]).
    pub(crate) fn refused(&self, host: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.counters.get_mut(host) {
            h.refused += 1;
        } else {
            hosts.make_room(host);
            hosts.counters.entry(host.to_string()).or_default().refused += 1;
        }
    }

    /// The failure rate of a host in this run (0 when unknown; the counters of the
    /// least busy hosts are dropped past [`STATS_HOSTS`]).
    pub fn host_failure_rate(&self, host: &str) -> f64 {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .counters
            .get(host)
            .map_or(0.0, |h| h.failures as f64 / h.pages.max(1) as f64)
    }

    /// Records the runtime's lateness seen by the stall monitor.
    pub(crate) fn stall(&self, late_us: u64) {
        self.max_stall_us.fetch_max(late_us, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let elapsed = self.started.elapsed().as_secs_f64();
        let pages = self.pages.load(Relaxed);
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut top: Vec<HostSnapshot> = hosts
            .counters
            .iter()
            .map(|(h, c)| HostSnapshot {
                host: h.clone(),
                pages: c.pages,
                failures: c.failures,
                failure_rate: c.failures as f64 / c.pages.max(1) as f64,
                refused_429: c.refused,
            })
            .collect();
        top.sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.host.cmp(&b.host)));
        top.truncate(20);
        StatsSnapshot {
            elapsed_secs: elapsed,
            pages,
            pages_per_sec: if elapsed > 0.0 {
                pages as f64 / elapsed
            } else {
                0.0
            },
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            redirects: self.redirects.load(Relaxed),
            sitemaps: self.sitemaps.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            wire_bytes: self.wire_bytes.load(Relaxed),
            links: self.links.load(Relaxed),
            refused_links: self.refused.load(Relaxed),
            beyond_depth: self.beyond_depth.load(Relaxed),
            over_budget: self.over_budget.load(Relaxed),
            links_dropped: self.links_dropped.load(Relaxed),
            links_guarded: self.links_guarded.load(Relaxed),
            pages_over_caps: self.pages_over_caps.load(Relaxed),
            bodies_skipped: self.bodies_skipped.load(Relaxed),
            status: self
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: self.errors.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            top_hosts: top,
            hosts: hosts.seen_count,
            queued: self.queued.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            done: self.done_total.load(Relaxed),
            failed_total: self.failed_total.load(Relaxed),
            max_stall_ms: self.max_stall_us.load(Relaxed) as f64 / 1000.0,
            stages: StageTimes {
                fetch_ms: self.fetch_us.load(Relaxed) as f64 / 1000.0,
                parse_ms: self.parse_us.load(Relaxed) as f64 / 1000.0,
                commit_ms: self.commit_us.load(Relaxed) as f64 / 1000.0,
            },
            changed_since: self
                .changed_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl StatsSnapshot {
    /// A few lines for people: the end-of-crawl summary.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} pages in {:.1} s ({:.0} pages/s): {} ok, {} redirects, {} failed; {:.1} MiB ({:.1} MiB on the wire)\n",
            self.pages,
            self.elapsed_secs,
            self.pages_per_sec,
            self.ok,
            self.redirects,
            self.failed,
            self.bytes as f64 / 1048576.0,
            self.wire_bytes as f64 / 1048576.0,
        );
        s.push_str(&format!(
            "frontier: {} queued, {} done, {} failed; {} links found, {} refused by scope, {} beyond depth, {} over budget; {} sitemaps\n",
            self.queued,
            self.done,
            self.failed_total,
            self.links,
            self.refused_links,
            self.beyond_depth,
            self.over_budget,
            self.sitemaps
        ));
        if self.pages_over_caps > 0 {
            s.push_str(&format!(
                "caps: {} pages hit a parse cap (see their records' limits); {} links past the per-page link cap\n",
                self.pages_over_caps, self.links_dropped
            ));
        }
        if self.links_guarded > 0 {
            s.push_str(&format!(
                "guards: {} links refused by a trap guard (see their pages' records' limits; README lists how to lift each)\n",
                self.links_guarded
            ));
        }
        if self.bodies_skipped > 0 {
            s.push_str(&format!(
                "skipped: {} bodies not downloaded, of types that are not parsed (--accept-type keeps them)\n",
                self.bodies_skipped
            ));
        }
        if !self.status.is_empty() {
            let st: Vec<String> = self.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            s.push_str(&format!("status: {}\n", st.join(", ")));
        }
        if !self.errors.is_empty() {
            let er: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            s.push_str(&format!("errors: {}\n", er.join(", ")));
        }
        if let Some(c) = &self.changed_since {
            s.push_str(&c.to_text());
            s.push('\n');
        }
        for h in self.top_hosts.iter().take(5) {
            s.push_str(&format!(
                "host {}: {} pages, {:.1}% failed, {} answered 429\n",
                h.host,
                h.pages,
                h.failure_rate * 100.0,
                h.refused_429
            ));
        }
        s.push_str(&format!(
            "runtime: worst stall {:.1} ms; time in fetch {:.1} s, parse {:.1} s, commit {:.1} s",
            self.max_stall_ms,
            self.stages.fetch_ms / 1000.0,
            self.stages.parse_ms / 1000.0,
            self.stages.commit_ms / 1000.0
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_counters_stay_bounded_and_keep_the_busiest() {
        let stats = Stats::new();
        for k in 0..20_000u32 {
            stats.record(k + 1, &format!("h{k}.localhost"), Some(200), None);
            if k % 100 == 0 {
                for _ in 0..5 {
                    stats.record(0, "busy.localhost", Some(503), Some("http-status"));
                }
            }
        }
        // Hosts seen again are not counted twice.
        stats.record(7, "h6.localhost", Some(200), None);
        let snap = stats.snapshot();
        assert_eq!(snap.hosts, 20_001);
        assert_eq!(snap.pages, 20_000 + 1_000 + 1);
        assert!(stats.hosts.lock().expect("lock").counters.len() <= STATS_HOSTS);
        let top = &snap.top_hosts[0];
        assert_eq!(
            (top.host.as_str(), top.pages, top.failures),
            ("busy.localhost", 1_000, 1_000)
        );
        assert_eq!(stats.host_failure_rate("busy.localhost"), 1.0);
    }
}
