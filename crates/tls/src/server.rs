//! The TLS side of a listener: etcd's `--cert-file --key-file --trusted-ca-file
//! --client-cert-auth --client-crl-file --client-cert-allowed-hostname` (and their `--peer-*`
//! twins) as a rustls `ServerConfig`.
//!
//! - The certificate and key are re-read at every handshake ([`crate::reload`]), so a rotated
//!   pair is served from the next handshake on; so is the CRL. The CA pool is read once, as
//!   etcd does.
//! - A client certificate is required when `--trusted-ca-file` or `--client-cert-auth` is
//!   set (etcd's rule); without a CA file it must chain to the system's roots.
//! - Revocation follows etcd: a certificate whose serial a CRL lists is refused; a CRL from
//!   an unrelated issuer does not make other certificates fail.
//! - ALPN offers `h2` and `http/1.1`: gRPC clients and curl/HTTP 1.1 clients share a port
//!   (rustls, unlike Go, aborts a handshake whose ALPN lists share nothing).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::error::TlsError;
use crate::identity::Allowed;
use crate::pem;
use crate::policy::Policy;
use crate::reload::Reloading;

/// One listener kind's TLS flags (client or peer).
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` / `--peer-client-cert-auth`.
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// `--client-cert-allowed-hostname`, `--peer-cert-allowed-cn/-hostname`.
    pub allowed: Allowed,
    pub policy: Policy,
}

impl ServerSettings {
    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.trusted_ca_file.is_some() || self.client_cert_auth
    }
}

/// The rustls configuration for `s`; every file is read and checked now, so a bad one is a
/// start-up error that names it.
pub fn server_config(s: &ServerSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = s.policy.provider();
    let resolver = Arc::new(CertResolver::new(
        s.cert_file.clone(),
        s.key_file.clone(),
        provider.clone(),
    )?);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&s.policy.versions())
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
    let mut config = if s.requires_client_cert() {
        let verifier = ClientVerifier::new(s, provider)?;
        builder
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(resolver)
    } else {
        builder.with_no_client_auth().with_cert_resolver(resolver)
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The trust anchors of a CA file, or the system's when there is none.
pub(crate) fn roots(ca_file: Option<&std::path::Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bytes = pem::read("trusted CA file", path)?;
            for cert in pem::certificates("trusted CA file", path, &bytes)? {
                roots.add(cert).map_err(|e| {
                    TlsError::file(
                        "trusted CA file",
                        path,
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // the system store may hold certificates webpki cannot use; skip those
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::Config(
                    "no trusted CA: give a CA file (the system has no usable root certificates)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// Serves the certificate and key files as they are at each handshake.
#[derive(Debug)]
pub(crate) struct CertResolver(Reloading<CertifiedKey>);

impl CertResolver {
    pub(crate) fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let (c, k) = (cert_file.clone(), key_file.clone());
        let build = Box::new(move |bytes: &[Vec<u8>]| {
            let chain = pem::certificates("certificate file", &c, &bytes[0])?;
            let key = pem::private_key(&k, &bytes[1])?;
            CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
                TlsError::file(
                    "key file",
                    &k,
                    format!("does not fit the certificate {} ({e})", c.display()),
                )
            })
        });
        Ok(CertResolver(Reloading::new(
            vec![("certificate file", cert_file), ("key file", key_file)],
            build,
        )?))
    }

    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.0.current()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// webpki's chain check (rebuilt when the CRL file changes), then the allowed names.
#[derive(Debug)]
struct ClientVerifier {
    chain: Reloading<Arc<dyn ClientCertVerifier>>,
    allowed: Allowed,
    hints: Vec<DistinguishedName>,
}

impl ClientVerifier {
    fn new(s: &ServerSettings, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let roots = Arc::new(roots(s.trusted_ca_file.as_deref())?);
        let hints = roots.subjects();
        let make = move |crl: Option<(&std::path::Path, &[u8])>| {
            let mut b =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            if let Some((path, bytes)) = crl {
                b = b
                    .with_crls(pem::crls(path, bytes)?)
                    .allow_unknown_revocation_status();
            }
            b.build()
                .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))
        };
        let chain = match &s.crl_file {
            Some(path) => {
                let p = path.clone();
                Reloading::new(
                    vec![("CRL file", path.clone())],
                    Box::new(move |b: &[Vec<u8>]| make(Some((&p, &b[0])))),
                )?
            }
            None => {
                let fixed = make(None)?;
                Reloading::fixed(fixed)
            }
        };
        Ok(ClientVerifier {
            chain,
            allowed: s.allowed.clone(),
            hints,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain
            .current()
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed
            .check(end_entity)
            .map_err(crate::identity::refusal)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain
            .current()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain
            .current()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.current().supported_verify_schemes()
    }
}
