//! From what the user typed to a [`CrawlConfig`]: the flags and the TOML file merged
//! (flags win), their strings parsed (sizes, durations, budgets), and a stored crawl's
//! settings kept where no flag changes them. This is the raw-to-settled step, like
//! ripgrep's split between low and high arguments; checking the values is
//! [`CrawlConfig::validate`]'s job alone.

use std::path::{Path, PathBuf};

use trawl_engine::{CrawlConfig, OutputConfig, PathBudget, PolitenessBy};

use crate::args::{CrawlArgs, FileConfig, Format, ScopeArgs, TuneArgs, parse_duration, parse_size};
use crate::failure::{R, usage};

/// Reads the TOML configuration file.
pub(crate) fn load_file(path: &Path) -> R<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        usage(format!(
            "the config file {} is invalid: {}",
            path.display(),
            e.message()
        ))
    })
}

/// `trawl-<host>` (with `-<port>` for a non-default port), for the first seed.
pub(crate) fn default_state(seed: &url::Url) -> PathBuf {
    let host = seed.host_str().unwrap_or("crawl").replace([':', '[', ']'], "_");
    PathBuf::from(match seed.port() {
        Some(p) => format!("trawl-{host}-{p}"),
        None => format!("trawl-{host}"),
    })
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `trawl crawl`'s flags and file, merged: everything but the tunable settings, which
/// [`apply_tune`] lays over the stored or the new configuration.
#[derive(Debug)]
pub(crate) struct CrawlSettings {
    /// The crawl as the flags describe it (seeds, scope, outputs; defaults elsewhere).
    pub(crate) fresh: CrawlConfig,
    /// Whether any scope flag was given (otherwise a resumed crawl keeps its scope).
    pub(crate) scope_given: bool,
    /// Whether any output was given (otherwise a resumed crawl keeps its outputs).
    pub(crate) outputs_given: bool,
    /// `--state`, if given.
    pub(crate) state: Option<PathBuf>,
    /// The tunable settings.
    pub(crate) tune: TuneArgs,
}

fn scope_given(s: &ScopeArgs) -> bool {
    s.subdomains
        || s.domain
        || !s.allow_hosts.is_empty()
        || !s.include.is_empty()
        || !s.exclude.is_empty()
        || s.no_sitemaps
}

impl CrawlSettings {
    /// Merges `trawl crawl`'s flags with its `--config` file.
    pub(crate) fn new(a: CrawlArgs) -> R<CrawlSettings> {
        let file = match &a.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let seeds = if a.seeds.is_empty() { file.seeds } else { a.seeds };
        let mut fresh = CrawlConfig::new(seeds);
        let sc = if scope_given(&a.scope) {
            a.scope
        } else {
            file.scope
        };
        let scope_given = scope_given(&sc);
        fresh.scope.subdomains = sc.subdomains;
        fresh.scope.registrable_domain = sc.domain;
        fresh.scope.extra_hosts = sc.allow_hosts;
        fresh.scope.include = sc.include;
        fresh.scope.exclude = sc.exclude;
        fresh.scope.no_sitemaps = sc.no_sitemaps;

        let output = a.output.or(file.output).map(|p| absolute(&p));
        let format = a.format.or(file.format);
        let mut outputs = OutputConfig::default();
        if let Some(o) = output {
            let csv = match format {
                Some(Format::Csv) => true,
                Some(Format::Jsonl) => false,
                None => o.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")),
            };
            if csv {
                outputs.csv = Some(o);
            } else {
                outputs.jsonl = Some(o);
            }
        } else if format.is_some() {
            return Err(usage("--format needs --output FILE"));
        }
        outputs.warc = a.warc.or(file.warc).map(|p| absolute(&p));
        let outputs_given = outputs.jsonl.is_some() || outputs.csv.is_some() || outputs.warc.is_some();
        fresh.output = outputs;
        Ok(CrawlSettings {
            fresh,
            scope_given,
            outputs_given,
            state: a.state.or(file.state),
            tune: merge_tune(a.tune, file.tune),
        })
    }
}

fn merge_tune(flags: TuneArgs, file: TuneArgs) -> TuneArgs {
    fn or_file<T>(flags: Vec<T>, file: Vec<T>) -> Vec<T> {
        if flags.is_empty() { file } else { flags }
    }
    TuneArgs {
        concurrency: flags.concurrency.or(file.concurrency),
        per_host_concurrency: flags.per_host_concurrency.or(file.per_host_concurrency),
        rate: flags.rate.or(file.rate),
        burst: flags.burst.or(file.burst),
        adaptive: flags.adaptive.or(file.adaptive),
        politeness_key: flags.politeness_key.or(file.politeness_key),
        ignore_crawl_delay: flags.ignore_crawl_delay || file.ignore_crawl_delay,
        requisites: flags.requisites || file.requisites,
        max_depth: flags.max_depth.or(file.max_depth),
        max_query_variants: flags.max_query_variants.or(file.max_query_variants),
        max_path_segments: flags.max_path_segments.or(file.max_path_segments),
        max_repeated_segments: flags.max_repeated_segments.or(file.max_repeated_segments),
        max_pages: flags.max_pages.or(file.max_pages),
        max_bytes: flags.max_bytes.or(file.max_bytes),
        max_time: flags.max_time.or(file.max_time),
        max_pages_per_host: flags.max_pages_per_host.or(file.max_pages_per_host),
        budgets: or_file(flags.budgets, file.budgets),
        user_agent: flags.user_agent.or(file.user_agent),
        allow_private_ips: flags.allow_private_ips || file.allow_private_ips,
        no_robots: flags.no_robots || file.no_robots,
        max_body: flags.max_body.or(file.max_body),
        timeout: flags.timeout.or(file.timeout),
        ca_certs: or_file(flags.ca_certs, file.ca_certs)
            .into_iter()
            .map(|p| absolute(&p))
            .collect(),
        accept_types: or_file(flags.accept_types, file.accept_types),
        resolves: or_file(flags.resolves, file.resolves),
        host_cache: flags.host_cache.or(file.host_cache),
        cache_capacity: flags.cache_capacity.or(file.cache_capacity),
        grace: flags.grace.or(file.grace),
        fsync: flags.fsync || file.fsync,
        stats_json: flags.stats_json.or(file.stats_json),
        metrics: flags.metrics.or(file.metrics),
    }
}

/// The sled cache size the flags ask for, if any: the state directory is opened with
/// it, before the stored configuration can be read.
pub(crate) fn cache_capacity(t: &TuneArgs) -> R<Option<u64>> {
    t.cache_capacity
        .as_deref()
        .map(|s| parse_size(s).map_err(|e| usage(format!("--cache-capacity: {e}"))))
        .transpose()
}

/// An `on|off` flag's value.
fn on_off(flag: &str, value: &str) -> R<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(usage(format!("--{flag}: expected on or off, not {value:?}"))),
    }
}

fn budget(b: &str) -> R<PathBudget> {
    let (prefix, n) = b
        .rsplit_once('=')
        .ok_or_else(|| usage(format!("--budget {b:?}: expected PREFIX=N, like /calendar/=100")))?;
    let max = n
        .trim()
        .parse()
        .map_err(|_| usage(format!("--budget {b:?}: {n:?} is not a number")))?;
    Ok(PathBudget {
        prefix: prefix.to_string(),
        max,
    })
}

/// Lays the tunable settings that were given over `cfg` (others keep their stored or
/// default values). Strings are parsed here; values are checked by `validate`.
pub(crate) fn apply_tune(cfg: &mut CrawlConfig, t: &TuneArgs) -> R<()> {
    let duration = |flag: &str, s: &str| {
        parse_duration(s)
            .map(|d| d.as_secs_f64())
            .map_err(|e| usage(format!("--{flag}: {e}")))
    };
    let size = |flag: &str, s: &str| parse_size(s).map_err(|e| usage(format!("--{flag}: {e}")));
    let p = &mut cfg.politeness;
    if let Some(n) = t.concurrency {
        p.concurrency = n;
    }
    if let Some(n) = t.per_host_concurrency {
        p.per_host_concurrency = n;
    }
    if let Some(r) = t.rate {
        p.rate = r;
    }
    if let Some(b) = t.burst {
        p.burst = b;
    }
    if let Some(a) = &t.adaptive {
        p.adaptive = on_off("adaptive", a)?;
    }
    if let Some(k) = &t.politeness_key {
        p.politeness_key = match k.trim().to_ascii_lowercase().as_str() {
            "host" => PolitenessBy::Host,
            "ip" => PolitenessBy::Ip,
            _ => return Err(usage(format!("--politeness-key: expected host or ip, not {k:?}"))),
        };
    }
    p.ignore_crawl_delay |= t.ignore_crawl_delay;
    if let Some(ua) = &t.user_agent {
        p.user_agent = ua.clone();
    }
    p.allow_private_ips |= t.allow_private_ips;
    if t.no_robots {
        p.robots = false;
    }
    let l = &mut cfg.limits;
    l.requisites |= t.requisites;
    if let Some(d) = t.max_depth {
        l.max_depth = d.0;
    }
    if let Some(g) = t.max_query_variants {
        l.max_query_variants = g.0;
    }
    if let Some(g) = t.max_path_segments {
        l.max_path_segments = g.0.map(|n| n as usize);
    }
    if let Some(g) = t.max_repeated_segments {
        l.max_repeated_segments = g.0.map(|n| n as usize);
    }
    if let Some(n) = t.max_pages {
        l.max_pages = Some(n);
    }
    if let Some(s) = &t.max_bytes {
        l.max_bytes = Some(size("max-bytes", s)?);
    }
    if let Some(s) = &t.max_time {
        l.max_time_secs = Some(duration("max-time", s)?);
    }
    if let Some(n) = t.max_pages_per_host {
        l.max_pages_per_host = Some(n);
    }
    if !t.budgets.is_empty() {
        l.budgets = t.budgets.iter().map(|b| budget(b)).collect::<R<Vec<_>>>()?;
    }
    if let Some(s) = &t.max_body {
        cfg.fetch.max_body = size("max-body", s)?;
    }
    if let Some(s) = &t.timeout {
        cfg.fetch.total_timeout_secs = duration("timeout", s)?;
    }
    if !t.ca_certs.is_empty() {
        cfg.fetch.ca_certs = t.ca_certs.clone();
    }
    if !t.accept_types.is_empty() {
        cfg.fetch.accept_types = t.accept_types.clone();
    }
    if !t.resolves.is_empty() {
        cfg.fetch.resolve = t.resolves.clone();
    }
    if let Some(n) = t.host_cache {
        cfg.fetch.host_cache = n;
    }
    if let Some(s) = &t.cache_capacity {
        cfg.state.cache_capacity = size("cache-capacity", s)?;
    }
    if let Some(s) = &t.grace {
        cfg.state.grace_secs = duration("grace", s)?;
    }
    cfg.output.fsync |= t.fsync;
    Ok(())
}
