//! [`HostKey`]: the one name of a host (scheme, host and port) in the engine.

use url::Url;

/// A host as the engine names it: `scheme://host[:port]`, the port only when it is not
/// the scheme's default, everything lower-case, as a canonical URL spells it.
///
/// It is the string the frontier groups URLs by ([`trawl_frontier::host_of`]) and the
/// origin the fetcher keys its politeness gates by, so one value names a host in every
/// part of the pipeline: queues, gates, stats, budgets and logs. Scope compares
/// [`HostKey::authority`] (`host[:port]`), so that http and https of one site are one
/// host for scope while each keeps its own queue and gate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey(String);

impl HostKey {
    /// The host of a canonical URL string, without parsing it again; `None` when it has
    /// no `scheme://host`.
    pub fn of_canonical(url: &str) -> Option<HostKey> {
        trawl_frontier::host_of(url).map(|h| HostKey(h.to_ascii_lowercase()))
    }

    /// The host of a parsed URL.
    pub fn of_url(url: &Url) -> Option<HostKey> {
        url.host_str()?;
        HostKey::of_canonical(url.as_str())
    }

    /// `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host[:port]`: what scope compares, and the `Host` header.
    pub fn authority(&self) -> &str {
        self.0.split_once("://").map_or(self.0.as_str(), |(_, a)| a)
    }
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_host() {
        let u = Url::parse("HTTP://Example.COM:80/a?b").expect("url");
        let k = HostKey::of_url(&u).expect("host");
        assert_eq!(k.as_str(), "http://example.com");
        assert_eq!(k.authority(), "example.com");
        let k = HostKey::of_canonical("https://127.0.0.1:8443/x").expect("host");
        assert_eq!(k.authority(), "127.0.0.1:8443");
        assert_eq!(
            k,
            HostKey::of_url(&Url::parse("https://127.0.0.1:8443/").expect("url")).expect("host")
        );
        assert_eq!(HostKey::of_canonical("mailto:a@b"), None);
    }
}
