//! The layer under HTTP: the DNS resolver with its cache and its special-purpose
//! address filter, the rustls client config, and reading reqwest's errors by the type
//! of their cause (never by their text).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::fetch::Error;
use crate::ssrf::is_special;

/// The TLS settings of the client: rustls on ring, the system's root certificates
/// (through rustls-platform-verifier: on Linux it reads the CA files, it links no
/// system library) plus `extra_pems`, and ALPN offering h2, then http/1.1. Built here
/// rather than by reqwest so that no process-wide default crypto provider has to be
/// installed, which would be a surprise to a program using this library.
pub(crate) fn tls_config(extra_pems: &[Vec<u8>]) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut extra = Vec::new();
    for (k, pem) in extra_pems.iter().enumerate() {
        let before = extra.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Config(format!("ca certificate {}: {e}", k + 1)))?;
            extra.push(cert);
        }
        if extra.len() == before {
            return Err(Error::Config(format!(
                "ca certificate {} holds no pem certificate",
                k + 1
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let given = !extra.is_empty();
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()) {
            Ok(v) => Arc::new(v),
            Err(e) if given => return Err(Error::Config(format!("invalid ca certificate: {e}"))),
            // No CA files on this system and none given: plain HTTP still works, and
            // every TLS handshake fails with an error that says why.
            Err(e) => {
                tracing::warn!(error = %e, "no trusted ca certificates: https will fail");
                Arc::new(NoRoots {
                    provider: provider.clone(),
                })
            }
        };
    // `dangerous()` is just how rustls takes a verifier of one's own; this one
    // verifies as strictly as rustls's default (it is what reqwest itself installs).
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The verifier when no root certificate could be loaded: it trusts no server.
#[derive(Debug)]
struct NoRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(
            "no trusted ca certificates: none on the system and none given".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The most host names the DNS cache holds; past it, expired entries go, and if that
/// is not enough, all of them.
const DNS_CACHE_MAX: usize = 16_384;

/// When a name was resolved, and to what.
type DnsEntry = (std::time::Instant, Arc<[SocketAddr]>);

/// Resolved addresses by host name, reused for a TTL.
pub(crate) struct DnsCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, DnsEntry>>,
    /// Lookups made (cache hits not counted), for `Fetcher::dns_lookups`.
    pub(crate) lookups: std::sync::atomic::AtomicU64,
    /// Tests' stand-in for the system's resolver: a name here answers after its delay
    /// (on tokio's clock, so paused-time tests work) with its address, or fails
    /// without one.
    #[cfg(test)]
    pub(crate) fake: Mutex<HashMap<String, (Duration, Option<std::net::IpAddr>)>>,
}

impl DnsCache {
    pub(crate) fn new(ttl: Duration) -> DnsCache {
        DnsCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            lookups: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            fake: Mutex::new(HashMap::new()),
        }
    }

    /// The cached addresses of `host`, if they are fresh; never a lookup.
    pub(crate) fn get(&self, host: &str) -> Option<Arc<[SocketAddr]>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, addrs) = entries.get(host)?;
        (at.elapsed() < self.ttl).then(|| addrs.clone())
    }

    fn put(&self, host: String, addrs: Arc<[SocketAddr]>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= DNS_CACHE_MAX {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= DNS_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(host, (std::time::Instant::now(), addrs));
    }

    /// [`DnsCache::resolve`] without a runtime: the system's resolver on this thread
    /// on a miss.
    pub(crate) fn resolve_blocking(&self, host: &str) -> std::io::Result<Arc<[SocketAddr]>> {
        if let Some(addrs) = self.get(host) {
            return Ok(addrs);
        }
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(test)]
        if let Some((_, ip)) = self.faked(host) {
            let addrs: Arc<[SocketAddr]> = ip.map(|ip| SocketAddr::new(ip, 0)).into_iter().collect();
            if addrs.is_empty() {
                return Err(std::io::Error::other("no such name (fake)"));
            }
            self.put(host.to_string(), addrs.clone());
            return Ok(addrs);
        }
        let addrs: Arc<[SocketAddr]> = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))?.collect();
        self.put(host.to_string(), addrs.clone());
        Ok(addrs)
    }

    /// The addresses of `host`: from the cache, or looked up without blocking the
    /// runtime (`tokio::net::lookup_host` runs the system's resolver on the blocking
    /// pool).
    pub(crate) async fn resolve(&self, host: &str) -> std::io::Result<Arc<[SocketAddr]>> {
        if let Some(addrs) = self.get(host) {
            return Ok(addrs);
        }
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(test)]
        if let Some((delay, ip)) = self.faked(host) {
            tokio::time::sleep(delay).await;
            let addrs: Arc<[SocketAddr]> = ip.map(|ip| SocketAddr::new(ip, 0)).into_iter().collect();
            if addrs.is_empty() {
                return Err(std::io::Error::other("no such name (fake)"));
            }
            self.put(host.to_string(), addrs.clone());
            return Ok(addrs);
        }
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((host, 0)).await?.collect();
        self.put(host.to_string(), addrs.clone());
        Ok(addrs)
    }
}

#[cfg(test)]
impl DnsCache {
    fn faked(&self, host: &str) -> Option<(Duration, Option<std::net::IpAddr>)> {
        self.fake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .copied()
    }
}

/// The filtering resolver's refusal: every address of the name is special-purpose.
/// A type of its own so that a failed request is told apart by downcasting reqwest's
/// error chain ([`cause_in_chain`]), not by its message.
#[derive(Debug)]
struct SpecialOnly {
    host: String,
}

impl std::fmt::Display for SpecialOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to special-purpose addresses", self.host)
    }
}

impl std::error::Error for SpecialOnly {}

/// The first error of type `T` in `err`'s `source()` chain, `err` included. An
/// `io::Error` that wraps another error is stepped into through `get_ref()`: its own
/// `source()` skips the wrapped error (it returns that error's source), and reqwest's
/// connector wraps rustls's error in two of them.
pub(crate) fn cause_in_chain<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        next = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Whether `name` is `localhost` or a name under it, which RFC 6761 (section 6.3)
/// reserves for loopback: resolved without DNS.
pub(crate) fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.len() > 10 && name[name.len() - 10..].eq_ignore_ascii_case(".localhost")
}

/// The loopback addresses a `*.localhost` name resolves to, IPv4 first (port 0: the
/// URL's port is used).
fn loopback() -> Arc<[SocketAddr]> {
    Arc::new([
        SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    ])
}

/// A DNS resolver that drops special-purpose addresses (unless allowed), with a cache.
/// `localhost` and `*.localhost` are loopback without a lookup (then filtered like
/// any answer), and the names in `overrides` resolve to the addresses the user gave,
/// unfiltered.
pub(crate) struct FilteringResolver {
    /// Keep special-purpose addresses of every name (`allow_private_ips`).
    pub(crate) allow_private: bool,
    /// Names (`host` or `host:port`) whose special-purpose addresses are kept.
    pub(crate) allowed: Vec<String>,
    pub(crate) cache: Arc<DnsCache>,
    /// Names this client resolves to given addresses (`FetcherBuilder::resolve`). A
    /// client serves one address set per name; the fetcher keeps a client per
    /// combination of `(host, port)` overrides it needs.
    pub(crate) overrides: HashMap<String, Arc<[SocketAddr]>>,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        if let Some(addrs) = self.overrides.get(&host) {
            // The user named these addresses for this host: used as given.
            let addrs: Vec<SocketAddr> = addrs.to_vec();
            return Box::pin(async move { Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs) });
        }
        let allow = self.allow_private
            || self
                .allowed
                .iter()
                .any(|a| a == &host || a.split(':').next() == Some(&host));
        let cache = self.cache.clone();
        Box::pin(async move {
            let addrs = if is_localhost(&host) {
                loopback()
            } else {
                cache.resolve(&host).await?
            };
            let kept: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow || !is_special(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(SpecialOnly { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The ALPN name of an HTTP version.
pub(crate) fn protocol_name(version: reqwest::Version) -> &'static str {
    match version {
        reqwest::Version::HTTP_2 => "h2",
        reqwest::Version::HTTP_3 => "h3",
        reqwest::Version::HTTP_10 => "http/1.0",
        reqwest::Version::HTTP_09 => "http/0.9",
        _ => "http/1.1",
    }
}

/// The error of a request that got no response (or whose body broke off), by the
/// type of its cause: a TLS failure, the resolver's special-purpose refusal, a
/// timeout, or any other connection or exchange failure.
pub(crate) fn classify_send_error(url: Url, e: reqwest::Error) -> Error {
    if let Some(tls) = cause_in_chain::<rustls::Error>(&e) {
        return Error::Tls {
            url,
            detail: tls.to_string(),
        };
    }
    if cause_in_chain::<SpecialOnly>(&e).is_some() {
        return Error::Forbidden { url };
    }
    if e.is_timeout() {
        return Error::Timeout { url };
    }
    Error::Request { url, source: e }
}

/// An error with its causes, `a: b: c`, for logs.
pub(crate) struct DisplayChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_answers_are_cached_for_their_ttl() {
        // `localhost` through the system's resolver (/etc/hosts): the resolver never
        // asks for it, but the cache is below that rule.
        let cache = DnsCache::new(Duration::from_secs(300));
        let first = cache.resolve("localhost").await.expect("localhost resolves");
        assert!(first.iter().any(|a| a.ip().is_loopback()), "{first:?}");
        let again = futures_util::future::join_all((0..8).map(|_| cache.resolve("localhost"))).await;
        assert!(again.iter().all(|r| r.is_ok()));
        assert_eq!(cache.lookups.load(std::sync::atomic::Ordering::Relaxed), 1);
        let uncached = DnsCache::new(Duration::ZERO);
        for _ in 0..3 {
            uncached.resolve("localhost").await.expect("localhost resolves");
        }
        assert_eq!(uncached.lookups.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn localhost_names_are_recognised() {
        for name in [
            "localhost",
            "LOCALHOST",
            "h1.localhost",
            "a.b.localhost",
            "h1.localhost.",
        ] {
            assert!(is_localhost(name), "{name}");
        }
        for name in [
            "localhost.example.com",
            "mylocalhost",
            "xlocalhost",
            "example.com",
            "",
        ] {
            assert!(!is_localhost(name), "{name}");
        }
    }

    #[test]
    fn causes_are_found_by_type_through_io_errors() {
        let special = SpecialOnly {
            host: "intranet".into(),
        };
        // As reqwest's connector wraps rustls's error: an io::Error in an io::Error,
        // whose `source()` skips the innermost error.
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, special));
        assert!(std::error::Error::source(&io).is_none_or(|e| e.downcast_ref::<SpecialOnly>().is_none()));
        let outer = Error::Body {
            url: Url::parse("http://example.com/").expect("url"),
            detail: "x".into(),
        };
        assert!(cause_in_chain::<SpecialOnly>(&io).is_some(), "inside io::Errors");
        assert!(cause_in_chain::<SpecialOnly>(&outer).is_none());
    }
}
