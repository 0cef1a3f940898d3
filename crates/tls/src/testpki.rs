//! Certificates for tests, made by the tests (feature `test-pki`): a CA, leaf certificates
//! with IP SANs for loopback, client certificates by common name, expired ones, CRLs. Nothing
//! here is ever committed; every run makes its own keys.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};

/// A certificate authority that signs test certificates and CRLs.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    next_serial: u64,
}

/// A signed certificate and its key, as PEM, with its serial number (for CRLs).
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: u64,
}

/// What a leaf certificate says.
#[derive(Clone)]
pub struct Leaf {
    pub common_name: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Valid from an hour ago for this long; `None` (via [`Leaf::expired`]) for one that
    /// ended an hour ago.
    pub valid_for: Option<Duration>,
}

impl Leaf {
    /// Valid for a day, for 127.0.0.1, ::1 and localhost: a server or peer on loopback, also
    /// usable as a client certificate.
    pub fn loopback(common_name: &str) -> Leaf {
        Leaf {
            common_name: common_name.into(),
            sans: vec!["127.0.0.1".into(), "::1".into(), "localhost".into()],
            valid_for: Some(Duration::from_secs(86_400)),
        }
    }

    pub fn expired(mut self) -> Leaf {
        self.valid_for = None;
        self
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn at(since_epoch: Duration) -> time::OffsetDateTime {
    rcgen::date_time_ymd(1970, 1, 1) + since_epoch
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate CA key");
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = at(unix_now() - Duration::from_secs(3600));
        p.not_after = at(unix_now() + Duration::from_secs(10 * 86_400));
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).expect("self-sign the CA"),
            next_serial: 1000,
        }
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn issue(&mut self, leaf: &Leaf) -> Issued {
        let key = KeyPair::generate().expect("generate leaf key");
        let mut p = CertificateParams::new(leaf.sans.clone()).expect("SANs");
        p.distinguished_name
            .push(DnType::CommonName, leaf.common_name.clone());
        let now = unix_now();
        match leaf.valid_for {
            Some(d) => {
                p.not_before = at(now - Duration::from_secs(3600));
                p.not_after = at(now + d);
            }
            None => {
                p.not_before = at(now - Duration::from_secs(2 * 86_400));
                p.not_after = at(now - Duration::from_secs(3600));
            }
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.next_serial += 1;
        let serial = self.next_serial;
        p.serial_number = Some(SerialNumber::from(serial));
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }

    /// A CRL listing `serials` as revoked.
    pub fn crl_pem(&self, serials: &[u64]) -> String {
        let now = unix_now();
        let p = CertificateRevocationListParams {
            this_update: at(now - Duration::from_secs(60)),
            next_update: at(now + Duration::from_secs(86_400)),
            crl_number: SerialNumber::from(now.as_secs()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: at(now - Duration::from_secs(60)),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        p.signed_by(&self.issuer)
            .expect("sign CRL")
            .pem()
            .expect("CRL PEM")
    }
}

/// Writes `<dir>/<name>.crt` and `<dir>/<name>.key`; returns their paths.
pub fn write_pair(dir: &Path, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.cert_pem).expect("write test certificate");
    std::fs::write(&key, &issued.key_pem).expect("write test key");
    (cert, key)
}

/// Writes `<dir>/<name>` with `contents`; returns its path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write test PKI file");
    p
}
