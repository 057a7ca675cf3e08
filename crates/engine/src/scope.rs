//! [`Scope`]: which URLs belong to a crawl.

use std::collections::HashSet;
use std::net::IpAddr;

use regex::Regex;
use url::Url;

use crate::config::CrawlConfig;
use crate::error::Error;
use crate::host::HostKey;

/// The public suffix list (Mozilla, MPL 2.0), as shipped in Debian's `publicsuffix`
/// package. Update by replacing `data/public_suffix_list.dat`.
const PUBLIC_SUFFIX_LIST: &str = include_str!("../../../data/public_suffix_list.dat");

/// Why a URL is not crawled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not http or https, or no host.
    Scheme,
    /// Its host is not in scope.
    Host,
    /// It matches an exclude pattern, or no include pattern.
    Pattern,
    /// Its host is a special-purpose IP address and private addresses are not allowed.
    Address,
}

impl Refusal {
    /// A stable lower-case name for statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Scheme => "scheme",
            Refusal::Host => "out-of-scope",
            Refusal::Pattern => "excluded",
            Refusal::Address => "special-address",
        }
    }
}

/// Decides which URLs belong to a crawl: the seed hosts, optionally their subdomains
/// or registrable domains, extra hosts, and include/exclude patterns.
///
/// A host is compared with its port when the port is not the scheme's default, so
/// `http://example.com/` and `https://example.com/` are one host for scope (a site
/// that moves to https stays in scope), while `127.0.0.1:8001` and `127.0.0.1:8002`
/// are two.
#[derive(Debug)]
pub struct Scope {
    hosts: HashSet<String>,
    any_port: HashSet<String>,
    seed_names: Vec<String>,
    subdomains: bool,
    domains: HashSet<String>,
    psl: Option<publicsuffix::List>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    /// Hosts the user named (the seeds' and `--allow-host`'s), trusted on
    /// special-purpose addresses: the address guard keeps *discovered* links away from
    /// internal addresses, it does not override what the user asked for.
    seed_hosts: HashSet<String>,
    named_any_port: HashSet<String>,
    allow_private: bool,
}

fn registrable(psl: &publicsuffix::List, host: &str) -> Option<String> {
    use publicsuffix::Psl;
    psl.domain(host.as_bytes())
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok().map(String::from))
}

impl Scope {
    /// The scope of `config`, whose seeds are `seeds` (parsed by
    /// [`CrawlConfig::validate`], which is how a scope is made).
    pub(crate) fn new(config: &CrawlConfig, seeds: &[Url]) -> Result<Scope, Error> {
        let sc = &config.scope;
        let mut hosts = HashSet::new();
        let mut seed_names = Vec::new();
        for url in seeds {
            if let Some(k) = HostKey::of_url(url) {
                hosts.insert(k.authority().to_string());
            }
            seed_names.push(url.host_str().unwrap_or_default().to_ascii_lowercase());
        }
        let mut seed_hosts = hosts.clone();
        let mut any_port = HashSet::new();
        for h in &sc.extra_hosts {
            let h = h.trim().to_ascii_lowercase();
            if h.contains(':') && !h.starts_with('[') || h.contains("]:") {
                seed_hosts.insert(h.clone());
                hosts.insert(h);
            } else {
                any_port.insert(h);
            }
        }
        let psl = if sc.registrable_domain {
            Some(
                PUBLIC_SUFFIX_LIST
                    .parse::<publicsuffix::List>()
                    .map_err(|e| Error::Config {
                        setting: Some("domain"),
                        message: format!("the public suffix list does not load: {e}"),
                    })?,
            )
        } else {
            None
        };
        let domains = psl
            .as_ref()
            .map(|psl| seed_names.iter().filter_map(|n| registrable(psl, n)).collect())
            .unwrap_or_default();
        let compile = |setting: &'static str, pats: &[String]| -> Result<Vec<Regex>, Error> {
            pats.iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| {
                        // regex explains over several lines; the last one says what is wrong.
                        let why = e.to_string();
                        let why = why
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim()
                            .trim_start_matches("error: ");
                        Error::Config {
                            setting: Some(setting),
                            message: format!("invalid pattern {p:?}: {why}"),
                        }
                    })
                })
                .collect()
        };
        Ok(Scope {
            hosts,
            named_any_port: any_port.clone(),
            any_port,
            seed_names,
            subdomains: sc.subdomains,
            domains,
            psl,
            include: compile("include", &sc.include)?,
            exclude: compile("exclude", &sc.exclude)?,
            seed_hosts,
            allow_private: config.politeness.allow_private_ips,
        })
    }

    /// The hosts the user named, seeds and `--allow-host` (`host[:port]`, or `host` for
    /// any port): trusted on special-purpose addresses, as the fetcher must trust them
    /// too.
    pub fn named_hosts(&self) -> impl Iterator<Item = &str> {
        self.seed_hosts
            .iter()
            .chain(self.named_any_port.iter())
            .map(String::as_str)
    }

    /// The seed hosts (`host[:port]`), which may be on private addresses.
    pub fn seed_hosts(&self) -> impl Iterator<Item = &str> {
        self.seed_hosts.iter().map(String::as_str)
    }

    /// Whether `url` belongs to the crawl, or why not.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check(&self, url: &Url) -> Result<(), Refusal> {
        self.check_str(url.as_str())
    }

    /// [`Scope::check`] on a URL in canonical form (as `Url` serializes it: lower-case
    /// scheme and host, no default port), without parsing it again.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check_str(&self, url: &str) -> Result<(), Refusal> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Refusal::Scheme);
        };
        if scheme != "http" && scheme != "https" {
            return Err(Refusal::Scheme);
        }
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let key = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let name = if key.starts_with('[') {
            &key[..key.find(']').map_or(key.len(), |i| i + 1)]
        } else {
            key.rsplit_once(':').map_or(key, |(h, _)| h)
        };
        if name.is_empty() {
            return Err(Refusal::Scheme);
        }
        let host_ok = self.hosts.contains(key)
            || self.any_port.contains(name)
            || (self.subdomains
                && self.seed_names.iter().any(|s| {
                    name.len() > s.len()
                        && name.ends_with(s.as_str())
                        && name[..name.len() - s.len()].ends_with('.')
                }))
            || self
                .psl
                .as_ref()
                .is_some_and(|psl| registrable(psl, name).is_some_and(|d| self.domains.contains(&d)));
        if !host_ok {
            return Err(Refusal::Host);
        }
        if !self.allow_private && !self.seed_hosts.contains(key) && !self.named_any_port.contains(name) {
            let bare = name.trim_start_matches('[').trim_end_matches(']');
            if bare.parse::<IpAddr>().is_ok_and(trawl_fetcher::is_special) {
                return Err(Refusal::Address);
            }
        }
        if self.exclude.iter().any(|r| r.is_match(url)) {
            return Err(Refusal::Pattern);
        }
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(url)) {
            return Err(Refusal::Pattern);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScopeConfig;

    fn scope(seeds: &[&str], sc: ScopeConfig) -> Scope {
        let mut c = CrawlConfig::new(seeds.iter().copied());
        c.scope = sc;
        c.validate().expect("scope").scope
    }

    fn ok(s: &Scope, u: &str) -> Result<(), Refusal> {
        s.check(&Url::parse(u).expect("url"))
    }

    #[test]
    fn the_seed_hosts_are_the_default_scope() {
        let s = scope(
            &["https://example.com/", "http://127.0.0.1:8001/"],
            ScopeConfig::default(),
        );
        assert_eq!(ok(&s, "https://example.com/a"), Ok(()));
        assert_eq!(
            ok(&s, "http://EXAMPLE.com/b"),
            Ok(()),
            "http and https are one host"
        );
        assert_eq!(ok(&s, "https://example.com:8443/"), Err(Refusal::Host));
        assert_eq!(ok(&s, "https://blog.example.com/"), Err(Refusal::Host));
        assert_eq!(
            ok(&s, "http://127.0.0.1:8001/x"),
            Ok(()),
            "a seed on loopback is allowed"
        );
        assert_eq!(ok(&s, "http://127.0.0.1:8002/x"), Err(Refusal::Host));
        assert_eq!(ok(&s, "ftp://example.com/"), Err(Refusal::Scheme));
        assert_eq!(ok(&s, "mailto:a@example.com"), Err(Refusal::Scheme));
    }

    #[test]
    fn subdomains_domains_extra_hosts_and_patterns() {
        let sub = scope(
            &["https://example.com/"],
            ScopeConfig {
                subdomains: true,
                ..Default::default()
            },
        );
        assert_eq!(ok(&sub, "https://blog.example.com/"), Ok(()));
        assert_eq!(ok(&sub, "https://badexample.com/"), Err(Refusal::Host));

        let dom = scope(
            &["https://www.example.co.uk/"],
            ScopeConfig {
                registrable_domain: true,
                ..Default::default()
            },
        );
        assert_eq!(ok(&dom, "https://shop.example.co.uk/"), Ok(()));
        assert_eq!(ok(&dom, "https://other.co.uk/"), Err(Refusal::Host));

        let extra = scope(
            &["https://example.com/"],
            ScopeConfig {
                extra_hosts: vec!["cdn.example.net".into(), "10.0.0.5:8080".into()],
                include: vec!["^https?://[^/]+/(docs|blog)/".into()],
                exclude: vec!["\\.pdf$".into()],
                ..Default::default()
            },
        );
        assert_eq!(ok(&extra, "https://cdn.example.net:444/docs/x"), Ok(()));
        assert_eq!(
            ok(&extra, "https://example.com/docs/a.pdf"),
            Err(Refusal::Pattern)
        );
        assert_eq!(ok(&extra, "https://example.com/shop/"), Err(Refusal::Pattern));
        assert_eq!(
            ok(&extra, "http://10.0.0.5:8080/docs/"),
            Ok(()),
            "a host the user named is trusted on a private address, as a seed is"
        );
        assert_eq!(
            ok(&extra, "http://10.0.0.6:8080/docs/"),
            Err(Refusal::Host),
            "another private address is still out of scope"
        );
        let wide = scope(
            &["https://example.com/"],
            ScopeConfig {
                registrable_domain: true,
                extra_hosts: vec!["127.0.0.1:9000".into()],
                ..Default::default()
            },
        );
        assert_eq!(ok(&wide, "http://127.0.0.1:9000/"), Ok(()));
    }

    #[test]
    fn bad_seeds_and_patterns_are_config_errors() {
        for seeds in [vec!["not a url"], vec!["ftp://example.com/"]] {
            let c = CrawlConfig::new(seeds);
            assert!(matches!(c.validate(), Err(Error::Config { .. })));
        }
        let mut c = CrawlConfig::new(["https://example.com/"]);
        c.scope.include = vec!["(".into()];
        let err = c.validate().expect_err("bad regex");
        assert!(err.to_string().contains("invalid pattern"), "{err}");
    }
}
