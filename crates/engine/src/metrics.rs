//! Live metrics of a crawl in the Prometheus text format ([`Metrics`], from
//! [`crate::Crawler::metrics`]), through `prometheus-client`.
//!
//! Two kinds. Instruments fed as the crawl goes ([`Live`]): the per-stage latency
//! histograms, responses answered 429 or 5xx (every attempt, retried ones too: a
//! record shows only the last), and the stall monitor's warnings. The rest is read
//! at scrape time from what the crawl keeps anyway ([`Stats`] and the fetcher's host
//! gates), so nothing is counted twice. Label values are bounded: outcomes, stages,
//! failure kinds and status classes are fixed sets, and the per-host rate is given
//! for at most [`RATE_HOSTS`] hosts (the busiest).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use trawl_fetcher::Fetcher;

use crate::stats::Stats;

/// The most hosts whose adaptive rate is reported (the busiest of this run).
pub const RATE_HOSTS: usize = 20;

/// One label, of a fixed set of values.
type Label = [(&'static str, &'static str); 1];

/// A stage's latency histogram: 1 ms to about 33 s, doubling.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The instruments the pipeline feeds as it goes.
#[derive(Debug)]
pub(crate) struct Live {
    /// Seconds per task in each stage (`fetch`, `parse`, `commit`).
    stage: Family<Label, Histogram, fn() -> Histogram>,
    /// Responses by class (`429`, `5xx`).
    responses: Family<Label, Counter>,
    /// Stall-monitor warnings (the runtime woke a timer late).
    stalls: Counter,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            stage: Family::new_with_constructor(stage_histogram),
            responses: Family::default(),
            stalls: Counter::default(),
        }
    }
}

impl Live {
    /// A task of `stage` took `secs`.
    pub(crate) fn stage(&self, stage: &'static str, secs: f64) {
        self.stage.get_or_create(&[("stage", stage)]).observe(secs);
    }

    /// A response with `status` (counted when it is 429 or 5xx).
    pub(crate) fn response(&self, status: u16) {
        let class = match status {
            429 => "429",
            500..=599 => "5xx",
            _ => return,
        };
        self.responses.get_or_create(&[("class", class)]).inc();
    }

    /// A stall-monitor warning.
    pub(crate) fn stall(&self) {
        self.stalls.inc();
    }
}

/// What is read at scrape time.
#[derive(Debug)]
struct Scrape {
    stats: Arc<Stats>,
    fetcher: Fetcher,
    /// The configured rate (0: none), for hosts the adaptive rate does not hold back.
    rate: f64,
}

/// Encodes one metric without labels.
fn one(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, m: &impl EncodeMetric) -> std::fmt::Result {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.stats.snapshot();
        let other = s.pages.saturating_sub(s.ok + s.redirects + s.failed);
        let pages = ConstCounter::new(0u64);
        let mut m =
            enc.encode_descriptor("pages", "Records written, by outcome", None, pages.metric_type())?;
        for (outcome, n) in [
            ("ok", s.ok),
            ("redirect", s.redirects),
            ("failed", s.failed),
            ("other", other),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut m =
            enc.encode_descriptor("failures", "Failed records, by kind", None, pages.metric_type())?;
        for (kind, n) in &s.errors {
            ConstCounter::new(*n).encode(m.encode_family(&[("kind", kind.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "bytes",
            "Body bytes: after decompression (body) and on the wire (wire)",
            None,
            pages.metric_type(),
        )?;
        for (at, n) in [("body", s.bytes), ("wire", s.wire_bytes)] {
            ConstCounter::new(n).encode(m.encode_family(&[("at", at)])?)?;
        }
        one(
            &mut enc,
            "requests_in_flight",
            "URLs leased and not yet acked",
            &ConstGauge::new(s.in_flight as i64),
        )?;
        one(
            &mut enc,
            "queue_depth",
            "URLs queued in the frontier",
            &ConstGauge::new(s.queued as i64),
        )?;
        one(
            &mut enc,
            "hosts_seen",
            "Hosts seen in this run",
            &ConstGauge::new(s.hosts as i64),
        )?;
        one(
            &mut enc,
            "max_stall_seconds",
            "The worst lateness of the runtime stall monitor",
            &ConstGauge::new(s.max_stall_ms / 1000.0),
        )?;
        let hosts = self.fetcher.host_states();
        let cooling = hosts.iter().filter(|h| !h.cool_down.is_zero()).count();
        one(
            &mut enc,
            "hosts_cooling_down",
            "Hosts in a cool-down (Retry-After or backoff) among those in memory",
            &ConstGauge::new(cooling as i64),
        )?;
        let held = hosts.iter().filter(|h| h.adaptive_rate.is_some()).count();
        one(
            &mut enc,
            "hosts_rate_lowered",
            "Hosts the adaptive rate holds below the configured rate",
            &ConstGauge::new(held as i64),
        )?;
        // The busiest hosts' rates: the label count stays at RATE_HOSTS.
        let mut m = enc.encode_descriptor(
            "host_rate",
            "Requests per second a host is held to (adaptive, or the configured rate), for the busiest hosts",
            None,
            ConstGauge::new(0.0).metric_type(),
        )?;
        for top in s.top_hosts.iter().take(RATE_HOSTS) {
            let state = hosts.iter().find(|h| authority(&h.origin) == top.host);
            let rate = state.and_then(|h| h.adaptive_rate).unwrap_or(self.rate);
            ConstGauge::new(rate).encode(m.encode_family(&[("host", top.host.as_str())])?)?;
        }
        Ok(())
    }
}

/// `host[:port]` of an origin `scheme://host[:port]`.
fn authority(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, a)| a)
}

/// A crawl's metrics registry: cheap to clone, encoded on demand.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    fetcher: Fetcher,
}

impl Metrics {
    pub(crate) fn new(live: &Arc<Live>, stats: Arc<Stats>, fetcher: Fetcher, rate: f64) -> Metrics {
        let mut registry = Registry::with_prefix("trawl");
        registry.register(
            "stage_seconds",
            "Seconds per task in each pipeline stage",
            live.stage.clone(),
        );
        registry.register(
            "responses",
            "Responses answered 429 or 5xx, every attempt",
            live.responses.clone(),
        );
        registry.register("stalls", "Stall-monitor warnings", live.stalls.clone());
        registry.register_collector(Box::new(Scrape {
            stats,
            fetcher: fetcher.clone(),
            rate,
        }));
        Metrics {
            registry: Arc::new(registry),
            fetcher,
        }
    }

    /// Hosts in a cool-down (Retry-After or backoff) among those whose gates are in
    /// memory, for a progress line.
    pub fn hosts_cooling_down(&self) -> usize {
        self.fetcher
            .host_states()
            .iter()
            .filter(|h| !h.cool_down.is_zero())
            .count()
    }

    /// The metrics now, in the Prometheus (OpenMetrics) text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
