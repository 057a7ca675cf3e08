//! [`CrawlConfig::validate`]: the one place where a configuration is checked. What it
//! returns, a [`ValidConfig`], is the only thing a crawl starts from.

use std::net::IpAddr;

use trawl_fetcher::{AcceptTypes, MediaRange};
use url::Url;

use crate::config::CrawlConfig;
use crate::error::Error;
use crate::scope::Scope;

/// A configuration that passed [`CrawlConfig::validate`], with what checking it
/// produced: the parsed seeds and the scope.
#[derive(Debug)]
pub struct ValidConfig {
    pub(crate) config: CrawlConfig,
    pub(crate) seeds: Vec<Url>,
    pub(crate) scope: Scope,
    /// The contents of [`FetchConfig::ca_certs`](crate::FetchConfig::ca_certs).
    pub(crate) ca_pems: Vec<Vec<u8>>,
    /// The bodies pages are downloaded for: HTML and
    /// [`FetchConfig::accept_types`](crate::FetchConfig::accept_types), or every one
    /// with WARC output.
    pub(crate) accept: AcceptTypes,
    /// [`FetchConfig::resolve`](crate::FetchConfig::resolve), parsed.
    pub(crate) resolves: Vec<Resolve>,
}

/// One `HOST:PORT:ADDR` of [`FetchConfig::resolve`](crate::FetchConfig::resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolve {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addrs: Vec<IpAddr>,
}

/// Parses `HOST:PORT:ADDR[,ADDR...]` (an IPv6 host or address in brackets), or says
/// what is wrong.
pub(crate) fn parse_resolve(s: &str) -> Result<Resolve, String> {
    let shape = || format!("{s:?}: expected HOST:PORT:ADDR, like example.com:443:127.0.0.1");
    let (host, rest) = match s.strip_prefix('[') {
        Some(v6) => {
            let (h, rest) = v6.split_once("]:").ok_or_else(shape)?;
            (h, rest)
        }
        None => s.split_once(':').ok_or_else(shape)?,
    };
    let (port, addrs) = rest.split_once(':').ok_or_else(shape)?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!("{s:?}: {host:?} is not a host name"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?}: {port:?} is not a port (1 to 65535)"))?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            let a = a.trim();
            let bare = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
            bare.parse::<IpAddr>()
                .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resolve {
        host: host.to_ascii_lowercase(),
        port,
        addrs,
    })
}

impl ValidConfig {
    /// The configuration.
    pub fn config(&self) -> &CrawlConfig {
        &self.config
    }

    /// The seeds, parsed.
    pub fn seeds(&self) -> &[Url] {
        &self.seeds
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The bodies of pages that are downloaded (sitemaps are read as
    /// [`AcceptTypes::sitemaps`]).
    pub fn accept(&self) -> &AcceptTypes {
        &self.accept
    }
}

fn invalid(setting: &'static str, message: impl Into<String>) -> Error {
    Error::Config {
        setting: Some(setting),
        message: message.into(),
    }
}

/// A number of seconds that must be finite and at least `min` (exclusive when
/// `positive`).
fn seconds(setting: &'static str, v: f64, positive: bool) -> Result<(), Error> {
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) {
        return Err(invalid(
            setting,
            if positive {
                "must be a positive duration"
            } else {
                "must be zero or a positive duration"
            },
        ));
    }
    Ok(())
}

impl CrawlConfig {
    /// Checks every setting and returns the configuration with its parsed seeds and
    /// scope. Settings are named in errors by their flag and file-key names (`rate`,
    /// `per-host-concurrency`, …) in [`Error::Config`]'s `setting`.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid setting: no seed, a seed that is not an
    /// absolute http(s) URL with a host, a pattern that is not a regular expression, a
    /// zero concurrency or burst, a negative or non-finite rate or duration, an empty
    /// User-Agent, a budget prefix that does not start with `/`, an accept type that is
    /// not a media range, a `resolve` entry that is not `HOST:PORT:ADDR`, a zero host
    /// cache, a recrawl's `changed-since` that is not a date.
    pub fn validate(self) -> Result<ValidConfig, Error> {
        if self.seeds.is_empty() {
            return Err(Error::Config {
                setting: None,
                message: "no seed URL given".into(),
            });
        }
        let mut seeds = Vec::with_capacity(self.seeds.len());
        for s in &self.seeds {
            let url = Url::parse(s).map_err(|e| Error::Config {
                setting: None,
                message: format!("invalid seed URL {s:?}: {e}"),
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Error::Config {
                    setting: None,
                    message: format!(
                        "invalid seed URL {s:?}: only http:// and https:// URLs with a host can be crawled"
                    ),
                });
            }
            seeds.push(url);
        }
        let p = &self.politeness;
        if p.concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        if p.per_host_concurrency == 0 {
            return Err(invalid("per-host-concurrency", "must be at least 1"));
        }
        if !(p.rate >= 0.0 && p.rate.is_finite()) {
            return Err(invalid(
                "rate",
                "must be 0 (no limit) or a positive number of requests per second",
            ));
        }
        if p.burst == 0 {
            return Err(invalid("burst", "must be at least 1"));
        }
        if p.user_agent.trim().is_empty() {
            return Err(invalid("user-agent", "must not be empty"));
        }
        seconds("max-crawl-delay", p.max_crawl_delay_secs, false)?;
        seconds("backoff-base", p.backoff_base_secs, false)?;
        let f = &self.fetch;
        seconds("connect-timeout", f.connect_timeout_secs, true)?;
        seconds("read-timeout", f.read_timeout_secs, true)?;
        seconds("timeout", f.total_timeout_secs, true)?;
        if f.max_attempts == 0 {
            return Err(invalid("max-attempts", "must be at least 1"));
        }
        if f.host_cache == 0 {
            return Err(invalid("host-cache", "must be at least 1"));
        }
        if let Some(t) = self.limits.max_time_secs {
            seconds("max-time", t, false)?;
        }
        for b in &self.limits.budgets {
            if !b.prefix.starts_with('/') {
                return Err(invalid(
                    "budget",
                    format!("{:?}: the prefix must start with /", b.prefix),
                ));
            }
        }
        seconds("grace", self.state.grace_secs, false)?;
        for h in &self.scope.extra_hosts {
            if h.trim().is_empty() || h.contains('/') {
                return Err(invalid(
                    "allow-host",
                    format!("{h:?} is not a host (give `host` or `host:port`)"),
                ));
            }
        }
        // WARC output keeps every body: an archive of what was served needs them all.
        let mut accept = if self.output.warc.is_some() {
            AcceptTypes::any()
        } else {
            AcceptTypes::html()
        };
        for t in &f.accept_types {
            let range: MediaRange = t.parse().map_err(|_| {
                invalid(
                    "accept-type",
                    format!("{t:?} is not a media type: give type/subtype, type/* or */*"),
                )
            })?;
            accept = accept.with(range);
        }
        let mut ca_pems = Vec::new();
        for path in &self.fetch.ca_certs {
            let pem = std::fs::read(path)
                .map_err(|e| invalid("ca-cert", format!("cannot read {}: {e}", path.display())))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(invalid(
                    "ca-cert",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            ca_pems.push(pem);
        }
        let resolves = self
            .fetch
            .resolve
            .iter()
            .map(|r| parse_resolve(r).map_err(|m| invalid("resolve", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = self.recrawl.as_ref().and_then(|r| r.changed_since.as_deref()) {
            crate::recrawl::parse_changed_since(d).map_err(|m| invalid("changed-since", m))?;
        }
        let scope = Scope::new(&self, &seeds)?;
        Ok(ValidConfig {
            config: self,
            seeds,
            scope,
            ca_pems,
            accept,
            resolves,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(c: CrawlConfig) -> Option<&'static str> {
        match c.validate() {
            Err(Error::Config { setting, .. }) => setting,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = || CrawlConfig::new(["https://example.com/"]);
        let mut c = base();
        c.politeness.rate = -1.0;
        assert_eq!(setting(c), Some("rate"));
        let mut c = base();
        c.politeness.rate = f64::NAN;
        assert_eq!(setting(c), Some("rate"));
        let mut c = base();
        c.politeness.per_host_concurrency = 0;
        assert_eq!(setting(c), Some("per-host-concurrency"));
        let mut c = base();
        c.politeness.burst = 0;
        assert_eq!(setting(c), Some("burst"));
        let mut c = base();
        c.politeness.user_agent = "  ".into();
        assert_eq!(setting(c), Some("user-agent"));
        let mut c = base();
        c.fetch.total_timeout_secs = 0.0;
        assert_eq!(setting(c), Some("timeout"));
        let mut c = base();
        c.scope.exclude = vec!["[".into()];
        assert_eq!(setting(c), Some("exclude"));
        for bad in ["pdf", "*/html", "text/html; q=1", ""] {
            let mut c = base();
            c.fetch.accept_types = vec!["image/*".into(), bad.into()];
            assert_eq!(setting(c), Some("accept-type"), "{bad:?}");
        }
        let mut c = base();
        c.fetch.host_cache = 0;
        assert_eq!(setting(c), Some("host-cache"));
        for bad in ["yesterday", "2026-02-30", "2026-10-22T10:00"] {
            let mut c = base();
            c.recrawl = Some(crate::RecrawlConfig::new(1, "/x".into()).with_changed_since(bad));
            assert_eq!(setting(c), Some("changed-since"), "{bad:?}");
        }
        let mut c = base();
        c.recrawl = Some(crate::RecrawlConfig::new(1, "/x".into()).with_changed_since("2026-10-22"));
        assert!(c.validate().is_ok());
        for bad in [
            "example.com",
            "example.com:443",
            "example.com:x:127.0.0.1",
            "example.com:0:127.0.0.1",
            ":80:127.0.0.1",
            "example.com:80:localhost",
            "example.com:80:",
        ] {
            let mut c = base();
            c.fetch.resolve = vec![bad.into()];
            assert_eq!(setting(c), Some("resolve"), "{bad}");
        }
        assert_eq!(setting(CrawlConfig::new(Vec::<String>::new())), None);
        assert_eq!(setting(CrawlConfig::new(["ftp://example.com/"])), None);
        let v = base().validate().expect("valid");
        assert_eq!(v.seeds()[0].as_str(), "https://example.com/");
        assert_eq!(v.accept(), &AcceptTypes::html(), "HTML only by default");
        let mut c = base();
        c.fetch.accept_types = vec!["Application/PDF".into(), "image/*".into()];
        let v = c.validate().expect("valid");
        assert!(v.accept().accepts(Some("application/pdf")) && v.accept().accepts(Some("image/png")));
        assert!(v.accept().accepts(Some("text/html")));
        assert!(!v.accept().accepts(Some("application/octet-stream")));
        let mut c = base();
        c.output.warc = Some("out.warc.gz".into());
        let v = c.validate().expect("valid");
        assert_eq!(v.accept(), &AcceptTypes::any(), "WARC keeps every body");
        let mut c = base();
        c.fetch.resolve = vec![
            "Staging.Example.com:8443:10.0.0.5,[::1]".into(),
            "[::1]:80:127.0.0.1".into(),
        ];
        let v = c.validate().expect("valid");
        assert_eq!(
            v.resolves,
            [
                Resolve {
                    host: "staging.example.com".into(),
                    port: 8443,
                    addrs: vec!["10.0.0.5".parse().expect("ip"), "::1".parse().expect("ip")],
                },
                Resolve {
                    host: "::1".into(),
                    port: 80,
                    addrs: vec!["127.0.0.1".parse().expect("ip")],
                },
            ]
        );
    }
}
