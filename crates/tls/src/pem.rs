//! Reading PEM files: certificates, one private key, CRLs. Each parser takes the bytes and the
//! path they came from, so a reload can re-parse what it read and every error names the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::TlsError;

/// Reads a whole file (certificates, keys and CRLs are small).
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, in order (a leaf first, then its intermediates), each
/// checked to be a well-formed X.509 certificate.
pub fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let cert = item.map_err(|e| TlsError::file(what, path, format!("bad PEM: {e}")))?;
        if let Err(e) = x509_parser::parse_x509_certificate(&cert) {
            return Err(TlsError::file(
                what,
                path,
                format!("certificate {} is not valid X.509: {e}", certs.len() + 1),
            ));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(TlsError::file(
            what,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----); is it the right file?",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::Error;
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        let problem = match e {
            Error::NoItemsFound => "holds no PEM private key (-----BEGIN PRIVATE KEY-----, \
                 RSA PRIVATE KEY or EC PRIVATE KEY); is it the right file?"
                .to_string(),
            other => format!("bad PEM: {other}"),
        };
        TlsError::file("key file", path, problem)
    })
}

/// Every CRL in a PEM file (an empty file is an error: it would revoke nothing by mistake).
pub fn crls(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for item in CertificateRevocationListDer::pem_slice_iter(pem) {
        out.push(item.map_err(|e| TlsError::file("CRL file", path, format!("bad PEM: {e}")))?);
    }
    if out.is_empty() {
        return Err(TlsError::file(
            "CRL file",
            path,
            "holds no PEM CRL (-----BEGIN X509 CRL-----); is it the right file?",
        ));
    }
    Ok(out)
}

/// The subject common name of a DER certificate, if it has one.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_wrong_files_are_named() {
        let p = Path::new("/etc/x/ca.crt");
        let e = certificates("trusted CA file", p, b"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/x/ca.crt") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = private_key(
            Path::new("k.pem"),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("k.pem") && e.contains("no PEM private key"),
            "{e}"
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = certificates("certificate file", p, garbage)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid X.509"), "{e}");
        let e = crls(p, b"nothing").unwrap_err().to_string();
        assert!(e.contains("no PEM CRL"), "{e}");
    }

    #[test]
    fn generated_certificate_round_trips() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "member-1");
        let cert = params.self_signed(&key).unwrap();
        let p = Path::new("c.pem");
        let certs = certificates("certificate file", p, cert.pem().as_bytes()).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(common_name(&certs[0]).as_deref(), Some("member-1"));
        private_key(p, key.serialize_pem().as_bytes()).unwrap();
    }
}
