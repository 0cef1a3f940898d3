//! The TLS side of a client: etcdctl's `--cacert --cert --key --insecure-skip-tls-verify`,
//! and a member's peer flags when it dials other members, as a rustls `ClientConfig`.
//!
//! - Without a CA file the system's roots are trusted (etcdctl with `https://` and no
//!   `--cacert`).
//! - The client certificate and key are re-read at every handshake, like the server's.
//! - Endpoints given by IP address send no SNI and are verified against the certificate's IP
//!   SANs, as Go does.
//! - ALPN offers `h2` only: every Cairn client speaks gRPC.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::identity::Allowed;
use crate::policy::Policy;
use crate::server::{CertResolver, roots};

#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// `None`: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (`--insecure-skip-tls-verify`, and peers under
    /// `--peer-auto-tls` as in etcd). Handshake signatures are still checked.
    pub skip_verify: bool,
    /// Names the server's certificate must carry (a member dialing a peer checks
    /// `--peer-cert-allowed-cn/-hostname` both ways, as etcd does).
    pub allowed: Allowed,
    pub policy: Policy,
}

pub fn client_config(s: &ClientSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = s.policy.provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&s.policy.versions())
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if s.skip_verify {
        Arc::new(AnyServer(provider.clone()))
    } else {
        let roots = Arc::new(roots(s.ca_file.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("server certificate verifier: {e}")))?;
        Arc::new(ServerVerifier {
            webpki,
            allowed: s.allowed.clone(),
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let resolver = CertResolver::new(cert.clone(), key.clone(), provider)?;
            builder.with_client_cert_resolver(Arc::new(ClientCert(resolver)))
        }
        (None, None) => builder.with_no_client_auth(),
        (cert, key) => {
            let show = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            return Err(TlsError::Config(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]: give --cert and --key together",
                show(key),
                show(cert)
            )));
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The client certificate, re-read at each handshake.
#[derive(Debug)]
struct ClientCert(CertResolver);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// webpki's check, then the allowed names.
#[derive(Debug)]
struct ServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    allowed: Allowed,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        self.allowed
            .check(end_entity)
            .map_err(crate::identity::refusal)?;
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Any certificate, but a real handshake signature by its key.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
