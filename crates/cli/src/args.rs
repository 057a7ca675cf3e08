//! The command line and the TOML configuration file: one set of names for both.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// A fast, polite, resumable web crawler.
#[derive(Debug, Parser)]
#[command(name = "trawl", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// Less output: no progress display, warnings and errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl from seed URLs (resumes the crawl if --state already holds it).
    Crawl(CrawlArgs),
    /// Continue a stopped or crashed crawl with its stored settings.
    Resume(ResumeArgs),
    /// Revisit a crawl with conditional GETs and record what changed (resumes a
    /// recrawl that did not run to its end).
    Recrawl(RecrawlArgs),
    /// Show a crawl's state: counts, busiest hosts, recent errors, outputs.
    Status(StatusArgs),
    /// Write the URLs or the per-URL outcomes of a crawl.
    Export(ExportArgs),
}

/// Output formats for `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON Lines: one record per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// `trawl crawl`.
#[derive(Debug, Args, Default)]
pub struct CrawlArgs {
    /// Seed URLs (http or https).
    #[arg(value_name = "SEED")]
    pub seeds: Vec<String>,
    /// A TOML file with the same settings as the flags (flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state directory. By default, `trawl-<host of the first seed>`.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Write records to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The format of --output. By default, from the file's extension (.csv: CSV),
    /// else JSON Lines.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Also write a WARC 1.1 file (gzipped when the name ends in .gz).
    #[arg(long, value_name = "FILE")]
    pub warc: Option<PathBuf>,
    /// Scope settings.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Settings that may change on resume.
    /// Where the queue lives: in the state directory, or shared with other workers.
    #[command(flatten)]
    pub frontier: FrontierArgs,
    #[command(flatten)]
    pub tune: TuneArgs,
}

/// Scope flags (fixed for the life of a crawl).
#[derive(Debug, Args, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ScopeArgs {
    /// Also crawl subdomains of the seed hosts.
    #[arg(long)]
    pub subdomains: bool,
    /// Also crawl every host of the seeds' registrable domains (public suffix list).
    #[arg(long)]
    pub domain: bool,
    /// Also crawl this host (`host` or `host:port`); repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    #[serde(rename = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// Only crawl URLs matching this regular expression; repeatable.
    #[arg(long, value_name = "REGEX")]
    pub include: Vec<String>,
    /// Never crawl URLs matching this regular expression; repeatable.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Do not read sitemaps (robots.txt Sitemap: lines and /sitemap.xml).
    #[arg(long)]
    pub no_sitemaps: bool,
}

/// Flags that may change when a crawl resumes.
#[derive(Debug, Args, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TuneArgs {
    /// Fetches in flight in total [default: 64].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Fetches in flight per host [default: 2].
    #[arg(long, value_name = "N")]
    pub per_host_concurrency: Option<usize>,
    /// Requests per second per host; 0 for no limit (robots.txt Crawl-delay still
    /// applies unless --ignore-crawl-delay) [default: 1].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Requests per host allowed back to back before the rate applies [default: 1].
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// Adapt each host's rate to its answers (cut on 429, 503, timeouts and slow
    /// responses, recovered while healthy, never above --rate nor Crawl-delay), or
    /// `off` to hold --rate fixed [default: on].
    #[arg(long, value_name = "on|off")]
    pub adaptive: Option<String>,
    /// Keep politeness (rate, per-host concurrency, cool-downs) per host, or per IP
    /// address, so that virtual hosts of one server share it [default: host].
    #[arg(long, value_name = "host|ip")]
    pub politeness_key: Option<String>,
    /// Ignore robots.txt Crawl-delay.
    #[arg(long)]
    pub ignore_crawl_delay: bool,
    /// Also fetch each HTML page's requisites (images, stylesheets, scripts, CSS
    /// url()s), so that an archived page replays with its assets; recorded, never
    /// followed for links.
    #[arg(long)]
    pub requisites: bool,
    /// Link hops from a seed (redirects and sitemap entries count as hops), or `none`
    /// for no limit [default: 50, a guard against traps].
    #[arg(long, value_name = "N|none", value_parser = parse_depth)]
    #[serde(default, deserialize_with = "depth_from_file")]
    pub max_depth: Option<MaxDepth>,
    /// Trap guard: distinct queries followed per path of a host, or `none`
    /// [default: 500].
    #[arg(long, value_name = "N|none", value_parser = parse_guard)]
    #[serde(default, deserialize_with = "guard_from_file")]
    pub max_query_variants: Option<Guard>,
    /// Trap guard: path segments of a URL followed, or `none` [default: 32].
    #[arg(long, value_name = "N|none", value_parser = parse_guard)]
    #[serde(default, deserialize_with = "guard_from_file")]
    pub max_path_segments: Option<Guard>,
    /// Trap guard: times one path segment may occur in a URL followed, or `none`
    /// [default: 3].
    #[arg(long, value_name = "N|none", value_parser = parse_guard)]
    #[serde(default, deserialize_with = "guard_from_file")]
    pub max_repeated_segments: Option<Guard>,
    /// Records written in total.
    #[arg(long, value_name = "N")]
    pub max_pages: Option<u64>,
    /// Body bytes downloaded in total, after decompression (e.g. 500MiB).
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<String>,
    /// Crawling time in total, across resumes (e.g. 90s, 10m, 2h).
    #[arg(long, value_name = "DURATION")]
    pub max_time: Option<String>,
    /// URLs fetched per host.
    #[arg(long, value_name = "N")]
    pub max_pages_per_host: Option<u64>,
    /// At most N URLs under a path prefix per host, against traps (PREFIX=N); repeatable.
    #[arg(long = "budget", value_name = "PREFIX=N")]
    #[serde(rename = "budget")]
    pub budgets: Vec<String>,
    /// The User-Agent: a product token and a contact URL [default: trawl/VERSION (+URL)].
    #[arg(long, value_name = "STRING")]
    pub user_agent: Option<String>,
    /// Allow loopback, private and other special-purpose addresses beyond the seeds.
    #[arg(long)]
    pub allow_private_ips: bool,
    /// Do NOT obey robots.txt. Only for sites you own.
    #[arg(long)]
    pub no_robots: bool,
    /// Body bytes kept per page, after decompression [default: 10MiB].
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<String>,
    /// Total time per request attempt [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Also trust the CA certificates in this PEM file for HTTPS (as curl's --cacert);
    /// repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    #[serde(rename = "ca-cert")]
    pub ca_certs: Vec<PathBuf>,
    /// Also download bodies of this media type (application/pdf, image/*, */*);
    /// repeatable. A body of another type is not downloaded, and its record says
    /// skipped-content-type [default: HTML only; every type with --warc].
    #[arg(long = "accept-type", value_name = "TYPE")]
    #[serde(rename = "accept-type")]
    pub accept_types: Vec<String>,
    /// Send requests for HOST on PORT to ADDR instead of what DNS says, as curl's
    /// --resolve (ADDR may list several, comma-separated; IPv6 in brackets);
    /// repeatable. localhost and *.localhost are always loopback.
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    #[serde(rename = "resolve")]
    pub resolves: Vec<String>,
    /// Idle hosts whose politeness gates and robots.txt verdicts stay in memory; the
    /// rest are dropped when at rest and read again from the state directory
    /// [default: 4096].
    #[arg(long, value_name = "N")]
    pub host_cache: Option<usize>,
    /// sled's page cache: the main term of memory [default: 8MiB].
    #[arg(long, value_name = "SIZE")]
    pub cache_capacity: Option<String>,
    /// How long in-flight pages may finish after Ctrl-C [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// fsync outputs at every checkpoint (survive power loss, not just kill -9).
    #[arg(long)]
    pub fsync: bool,
    /// Write the end-of-crawl summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Serve live metrics for Prometheus at ADDR (like 127.0.0.1:9898) while the
    /// crawl runs: pages by outcome, bytes, in flight, queue, stage latencies, 429
    /// and 5xx, hosts cooling down, the busiest hosts' rates, stalls.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

/// A crawl shared by several workers, on any machines, through one Redis.
#[derive(Debug, Args, Default, Clone)]
pub struct FrontierArgs {
    /// Share the crawl with other workers through the Redis at URL
    /// (redis://HOST:PORT/DB, or redis+unix:///PATH): every worker started with the
    /// same seeds and scope joins the same crawl, writes its own outputs, and
    /// together they write every page once. The state directory then holds only
    /// this worker's own files [default: the frontier is in the state directory].
    #[arg(long, value_name = "URL")]
    pub frontier: Option<String>,
    /// This worker's name in a shared crawl: unique among its workers, and the same
    /// when it restarts, so that it takes up its own work again [default: this
    /// machine's host name].
    #[arg(long, value_name = "NAME", requires = "frontier")]
    pub worker: Option<String>,
    /// How long a worker's claim on a host lasts unless renewed: a worker that dies
    /// gives its hosts back after this long. At least twice --timeout, since a request
    /// starts only when the claim lasts until its end [default: 150s].
    #[arg(long, value_name = "DURATION", requires = "frontier")]
    pub claim_ttl: Option<String>,
}

/// `trawl resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The state directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Settings to change.
    /// Where the queue lives (a worker's directory remembers it: no need to repeat).
    #[command(flatten)]
    pub frontier: FrontierArgs,
    #[command(flatten)]
    pub tune: TuneArgs,
}

/// `trawl recrawl`.
#[derive(Debug, Args, Default)]
pub struct RecrawlArgs {
    /// The crawl's state directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Write the recrawl's records to FILE (JSON Lines, or CSV for a .csv name). By
    /// default, the crawl's output with `-recrawl-N` before its extension.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the recrawl's WARC to FILE. By default, with a crawl that wrote a WARC,
    /// its name with `-recrawl-N` before `.warc`.
    #[arg(long, value_name = "FILE")]
    pub warc: Option<PathBuf>,
    /// Do not refetch a known page whose sitemap `<lastmod>` says it last changed
    /// before DATE (RFC 3339, or YYYY-MM-DD for its UTC midnight): its record says
    /// `skipped-unchanged`. Pages changed at or after DATE are revisited first, and
    /// pages with no `<lastmod>` as usual. By default, every known page is revisited.
    #[arg(long, value_name = "DATE")]
    pub changed_since: Option<String>,
    /// Settings to change.
    #[command(flatten)]
    pub tune: TuneArgs,
}

/// `trawl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state directory (a shared crawl's worker directory shows the whole shared
    /// crawl). Not needed with --frontier.
    #[arg(value_name = "DIR", required_unless_present = "frontier")]
    pub dir: Option<PathBuf>,
    /// Show the shared crawls on this Redis (redis://HOST:PORT/DB or
    /// redis+unix:///PATH), each with its workers.
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub frontier: Option<String>,
    /// With --frontier: only this crawl (its name, as `trawl status DIR` of one of its
    /// workers shows it).
    #[arg(long, value_name = "NAME", requires = "frontier")]
    pub crawl: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `trawl export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// One URL per line.
    Urls,
    /// One JSON object per URL: state, depth, attempts, failure reason.
    Outcomes,
    /// The broken-link report: one JSON object per link target that ended in a 4xx,
    /// a 5xx or a network error, with the pages that link to it and the anchor texts.
    Broken,
}

/// Which URLs `trawl export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Every known URL.
    All,
    /// Waiting to be fetched.
    Queued,
    /// Fetched.
    Done,
    /// Given up on.
    Failed,
}

/// `trawl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The state directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// URLs or outcomes.
    #[arg(long, value_enum, default_value_t = What::Urls)]
    pub what: What,
    /// Only URLs in this state.
    #[arg(long, value_enum, default_value_t = StateFilter::All)]
    pub state: StateFilter,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Instead, package the crawl's WARC files (and its recrawls'), their CDXJ index
    /// and a pages list as a WACZ 1.1.1 file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["what", "state", "output"])]
    pub wacz: Option<PathBuf>,
}

/// The TOML configuration file: the flags of `trawl crawl` by their long names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// Seed URLs.
    pub seeds: Vec<String>,
    /// `--state`.
    pub state: Option<PathBuf>,
    /// `--output`.
    pub output: Option<PathBuf>,
    /// `--format`.
    pub format: Option<Format>,
    /// `--warc`.
    pub warc: Option<PathBuf>,
    /// Scope flags.
    #[serde(flatten)]
    pub scope: ScopeArgs,
    /// Tunable flags.
    #[serde(flatten)]
    pub tune: TuneArgs,
}

/// `--max-depth`: a number of hops, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDepth(pub Option<u16>);

/// Parses `--max-depth`: a number of hops or `none`.
pub fn parse_depth(s: &str) -> Result<MaxDepth, String> {
    match s.trim() {
        "none" | "unlimited" => Ok(MaxDepth(None)),
        t => t
            .parse()
            .map(|n| MaxDepth(Some(n)))
            .map_err(|_| format!("invalid depth {s:?} (a number of hops, or none)")),
    }
}

/// `max-depth` in the TOML file: a number, or the string `"none"`.
fn depth_from_file<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MaxDepth>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Hops(u16),
        Word(String),
    }
    match Raw::deserialize(d)? {
        Raw::Hops(n) => Ok(Some(MaxDepth(Some(n)))),
        Raw::Word(w) => parse_depth(&w).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A trap guard's limit (`--max-query-variants` and the like): a number, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard(pub Option<u32>);

/// Parses a trap guard's limit: a positive number or `none`.
pub fn parse_guard(s: &str) -> Result<Guard, String> {
    match s.trim() {
        "none" | "unlimited" => Ok(Guard(None)),
        t => match t.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Guard(Some(n))),
            _ => Err(format!("invalid limit {s:?} (a positive number, or none)")),
        },
    }
}

/// A trap guard in the TOML file: a number, or the string `"none"`.
fn guard_from_file<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Guard>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Count(u32),
        Word(String),
    }
    match Raw::deserialize(d)? {
        Raw::Count(n) => parse_guard(&n.to_string())
            .map(Some)
            .map_err(serde::de::Error::custom),
        Raw::Word(w) => parse_guard(&w).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Parses a size: bytes, or with a suffix K, M, G (powers of 1024; `KiB`, `MB` and
/// the like are read the same way).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (try 16MiB or 1000000)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size {s:?} (units: K, M, G, T)")),
    };
    Ok((n * mult as f64) as u64)
}

/// Parses a duration such as `90s`, `10m`, `1h30m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t).map_err(|_| format!("invalid duration {s:?} (try 90s, 10m or 2h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_file_uses_the_flag_names() {
        let f: FileConfig = toml::from_str(
            "seeds = [\"https://example.com/\"]\nrate = 2.5\nmax-pages = 10\nno-robots = true\nbudget = [\"/cal/=5\"]\nsubdomains = true\n",
        )
        .expect("toml");
        assert_eq!(f.tune.rate, Some(2.5));
        assert_eq!(f.tune.max_pages, Some(10));
        assert!(f.tune.no_robots && f.scope.subdomains);
        let f: FileConfig = toml::from_str("max-depth = 7\n").expect("toml");
        assert_eq!(f.tune.max_depth, Some(MaxDepth(Some(7))));
        let f: FileConfig = toml::from_str("max-depth = \"none\"\n").expect("toml");
        assert_eq!(f.tune.max_depth, Some(MaxDepth(None)));
        assert_eq!(parse_depth("none"), Ok(MaxDepth(None)));
        assert_eq!(parse_guard("none"), Ok(Guard(None)));
        assert_eq!(parse_guard("20"), Ok(Guard(Some(20))));
        assert!(parse_guard("0").is_err());
        assert!(parse_guard("-1").is_err());
        assert!(parse_depth("deep").is_err());
        assert!(
            toml::from_str::<FileConfig>("rat = 2").is_err(),
            "a typo is an error"
        );
    }
}
