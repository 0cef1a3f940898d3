//! Who a verified certificate must name: etcd's `--client-cert-allowed-hostname`,
//! `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname`. Pure checks on DER bytes.

use rustls_pki_types::{CertificateDer, ServerName};

/// The names a certificate that chains to a trusted CA must also carry; empty: any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// The subject common name must be this.
    pub cn: Option<String>,
    /// The certificate must be valid for this host name or IP address (its SANs).
    pub hostname: Option<String>,
}

impl Allowed {
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.hostname.is_none()
    }

    /// As etcd: with both set, either one matching is enough.
    pub fn check(&self, cert: &CertificateDer<'_>) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        if let Some(cn) = &self.cn
            && crate::pem::common_name(cert).as_deref() == Some(cn.as_str())
        {
            return Ok(());
        }
        if let Some(host) = &self.hostname
            && valid_for(cert, host)
        {
            return Ok(());
        }
        let name = crate::pem::common_name(cert).unwrap_or_default();
        let mut wanted = Vec::new();
        if let Some(cn) = &self.cn {
            wanted.push(format!("common name {cn:?}"));
        }
        if let Some(h) = &self.hostname {
            wanted.push(format!("host name {h:?}"));
        }
        Err(format!(
            "certificate (common name {name:?}) does not carry the allowed {}",
            wanted.join(" or ")
        ))
    }
}

/// A name check's refusal as rustls reports it (a `bad_certificate` alert to the peer; the
/// text in our log).
pub(crate) fn refusal(problem: String) -> rustls::Error {
    #[derive(Debug)]
    struct NotAllowed(String);
    impl std::fmt::Display for NotAllowed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for NotAllowed {}
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(NotAllowed(problem)),
    )))
}

/// etcd's check on peer (and https metrics) listeners, after the handshake: a client
/// certificate that lists SANs must list the address it connects from, as an IP SAN or as a
/// DNS SAN that resolves to it. A certificate without SANs passes. Unlike etcd, no reverse
/// lookup is made, so wildcard DNS SANs never match here.
pub async fn san_covers_remote(
    cert: &CertificateDer<'_>,
    remote: std::net::IpAddr,
) -> Result<(), String> {
    let remote = remote.to_canonical();
    let (ips, dns) = sans(cert);
    if ips.is_empty() && dns.is_empty() {
        return Ok(());
    }
    if ips.contains(&remote) {
        return Ok(());
    }
    if dns.is_empty() {
        let listed: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "x509: certificate is valid for {}, not {remote}",
            listed.join(", ")
        ));
    }
    let mut last_error = String::new();
    for name in dns.iter().filter(|n| !n.starts_with("*.")) {
        match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(addrs) => {
                if addrs.into_iter().any(|a| a.ip().to_canonical() == remote) {
                    return Ok(());
                }
            }
            Err(e) => last_error = format!(" (lookup {name}: {e})"),
        }
    }
    Err(format!(
        "tls: {:?} does not match any of DNSNames {dns:?}{last_error}",
        remote.to_string()
    ))
}

/// The IP and DNS subject alternative names of a certificate.
fn sans(cert: &CertificateDer<'_>) -> (Vec<std::net::IpAddr>, Vec<String>) {
    use x509_parser::extensions::GeneralName;
    let (mut ips, mut dns) = (Vec::new(), Vec::new());
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return (ips, dns);
    };
    if let Ok(Some(ext)) = parsed.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(std::net::IpAddr::from(
                        <[u8; 4]>::try_from(*b).unwrap_or_default(),
                    )),
                    16 => ips.push(
                        std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                            .to_canonical(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (ips, dns)
}

/// Whether the certificate's SANs cover `host` (a DNS name, wildcards allowed, or an IP).
pub fn valid_for(cert: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_san_must_cover_the_remote_address() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            san_covers_remote(&cert("none", &[]), lo).await.is_ok(),
            "no SANs pass"
        );
        assert!(
            san_covers_remote(&cert("ip", &["127.0.0.1"]), lo)
                .await
                .is_ok()
        );
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(
            san_covers_remote(&cert("ip", &["127.0.0.1"]), mapped)
                .await
                .is_ok()
        );
        let e = san_covers_remote(&cert("ip", &["10.9.9.9"]), lo)
            .await
            .unwrap_err();
        assert_eq!(e, "x509: certificate is valid for 10.9.9.9, not 127.0.0.1");
        assert!(
            san_covers_remote(&cert("dns", &["localhost"]), lo)
                .await
                .is_ok()
        );
        let e = san_covers_remote(&cert("dns", &["10.9.9.9", "nonexistent.invalid"]), lo)
            .await
            .unwrap_err();
        assert!(
            e.starts_with(
                "tls: \"127.0.0.1\" does not match any of DNSNames [\"nonexistent.invalid\"]"
            ),
            "{e}"
        );
    }

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn cn_or_hostname() {
        let c = cert("peer-a", &["a.example.com", "10.0.0.7"]);
        assert!(Allowed::default().check(&c).is_ok());
        let by_cn = Allowed {
            cn: Some("peer-a".into()),
            hostname: None,
        };
        assert!(by_cn.check(&c).is_ok());
        let wrong_cn = Allowed {
            cn: Some("peer-b".into()),
            hostname: None,
        };
        let e = wrong_cn.check(&c).unwrap_err();
        assert!(e.contains("peer-a") && e.contains("peer-b"), "{e}");
        for host in ["a.example.com", "10.0.0.7"] {
            let a = Allowed {
                cn: None,
                hostname: Some(host.into()),
            };
            assert!(a.check(&c).is_ok(), "{host}");
        }
        let either = Allowed {
            cn: Some("nope".into()),
            hostname: Some("a.example.com".into()),
        };
        assert!(either.check(&c).is_ok());
        let wild = cert("w", &["*.example.com"]);
        assert!(!valid_for(&wild, "example.com"));
        assert!(valid_for(&wild, "b.example.com"));
        assert!(!valid_for(&wild, "example.org"));
    }
}
