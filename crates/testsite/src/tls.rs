//! TLS for the test site: a CA and a leaf certificate for 127.0.0.1 and localhost,
//! made fresh at every start with rcgen, and the rustls server config that offers h2
//! and http/1.1 by ALPN.
//!
//! A fresh CA per start means no key is ever checked in, and a client trusts one
//! running site only: a test that forgets the CA fails with an unknown issuer, as a
//! crawler meeting a private CA would.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The certificates of one running site.
pub(crate) struct SiteTls {
    /// The CA certificate, PEM: what a client must trust.
    pub(crate) ca_pem: String,
    /// The server side: the leaf certificate and its key.
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for SiteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteTls").finish_non_exhaustive()
    }
}

fn other(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("cannot make the tls {what}: {e}"))
}

/// Makes a CA, a leaf certificate for `127.0.0.1`, `::1` and `localhost` signed by
/// it, and the server config serving the leaf.
pub(crate) fn make() -> std::io::Result<SiteTls> {
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| other("ca certificate", e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "trawl-testsite CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(|e| other("ca key", e))?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| other("ca certificate", e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    // `new` turns names that parse as IP addresses into IP subject alternative names.
    let mut leaf_params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ])
    .map_err(|e| other("server certificate", e))?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "trawl-testsite");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(|e| other("server key", e))?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(|e| other("server certificate", e))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| other("server config", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| other("server config", e))?;
    // h2 first: a client offering both gets HTTP/2, as from most real servers.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(SiteTls {
        ca_pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    })
}
