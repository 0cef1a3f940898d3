//! Which TLS versions and cipher suites a listener or client allows: etcd's
//! `--tls-min-version`, `--tls-max-version` and `--cipher-suites` (Go's names) on rustls,
//! whose one crypto provider in every Cairn binary is ring.
//!
//! As in Go, `--cipher-suites` restricts TLS 1.2 only; TLS 1.3's suites are always all on.
//! Go's names for suites rustls does not implement (CBC, RC4, 3DES, RSA key exchange) are
//! refused by name: rustls implements only AEAD suites with forward secrecy.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as ring;

use crate::error::TlsError;

/// A TLS protocol version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    Tls12,
    Tls13,
}

impl Version {
    /// etcd's spelling and message: `TLS1.2` or `TLS1.3` (etcd refuses 1.0 and 1.1 too).
    pub fn parse(flag: &str, value: &str) -> Result<Version, TlsError> {
        match value {
            "TLS1.2" => Ok(Version::Tls12),
            "TLS1.3" => Ok(Version::Tls13),
            other => Err(TlsError::Config(format!(
                "{flag}: unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Version::Tls12 => "TLS1.2",
            Version::Tls13 => "TLS1.3",
        }
    }
}

/// The versions and TLS 1.2 cipher suites in force.
#[derive(Debug, Clone)]
pub struct Policy {
    pub min: Version,
    pub max: Version,
    /// `None`: every TLS 1.2 suite rustls has.
    pub tls12_suites: Option<Vec<SupportedCipherSuite>>,
}

impl Default for Policy {
    /// etcd's defaults: TLS 1.2 and 1.3, every suite.
    fn default() -> Self {
        Policy {
            min: Version::Tls12,
            max: Version::Tls13,
            tls12_suites: None,
        }
    }
}

impl Policy {
    /// From the three flags' values (empty strings: the defaults).
    pub fn from_flags(min: &str, max: &str, cipher_suites: &str) -> Result<Policy, TlsError> {
        let mut p = Policy::default();
        if !min.is_empty() {
            p.min = Version::parse("--tls-min-version", min)?;
        }
        if !max.is_empty() {
            p.max = Version::parse("--tls-max-version", max)?;
        }
        if p.min > p.max {
            return Err(TlsError::Config(format!(
                "min version ({}) is greater than max version ({})",
                p.min.name(),
                p.max.name()
            )));
        }
        let names: Vec<&str> = cipher_suites
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !names.is_empty() {
            if p.min == Version::Tls13 {
                return Err(TlsError::Config(
                    "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
                ));
            }
            let mut suites = Vec::new();
            for name in names {
                // etcd accepts TLS 1.3's names and they change nothing (1.3 is not configurable)
                if TLS13_NAMES.contains(&name) {
                    continue;
                }
                let suite = cipher_suite(name)?;
                if !suites.contains(&suite) {
                    suites.push(suite);
                }
            }
            p.tls12_suites = Some(suites);
        }
        Ok(p)
    }

    /// ring with the chosen suites.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(chosen) = &self.tls12_suites {
            provider
                .cipher_suites
                .retain(|s| s.tls13().is_some() || chosen.contains(s));
        }
        Arc::new(provider)
    }

    pub fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.min <= Version::Tls12 && self.max >= Version::Tls12 {
            v.push(&rustls::version::TLS12);
        }
        if self.max >= Version::Tls13 {
            v.push(&rustls::version::TLS13);
        }
        v
    }
}

/// Go's name of a TLS 1.2 suite to rustls' suite, or why it cannot be had.
pub fn cipher_suite(name: &str) -> Result<SupportedCipherSuite, TlsError> {
    let suite = match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ if GO_ONLY.contains(&name) => {
            return Err(TlsError::Config(format!(
                "--cipher-suites {name}: cairn does not support this suite (rustls implements only AEAD suites with ECDHE key exchange); use {}",
                SUPPORTED.join(", ")
            )));
        }
        _ => {
            return Err(TlsError::Config(format!(
                "unexpected TLS cipher suite {name:?} in --cipher-suites; use {}",
                SUPPORTED.join(", ")
            )));
        }
    };
    Ok(suite)
}

/// TLS 1.3's suites: always on, accepted in `--cipher-suites` without effect.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Go's names that map to a rustls suite.
pub const SUPPORTED: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// Names etcd (Go) accepts for suites rustls does not implement.
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_suites() {
        let p = Policy::from_flags("", "", "").unwrap();
        assert_eq!(p.versions().len(), 2);
        let p = Policy::from_flags("TLS1.3", "", "").unwrap();
        assert_eq!(p.versions(), vec![&rustls::version::TLS13]);
        let p = Policy::from_flags("", "TLS1.2", "").unwrap();
        assert_eq!(p.versions(), vec![&rustls::version::TLS12]);
        assert!(Policy::from_flags("TLS1.3", "TLS1.2", "").is_err());
        let e = Policy::from_flags("TLS1.1", "", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unexpected TLS version \"TLS1.1\""), "{e}");
        let e = Policy::from_flags("TLS1.3", "TLS1.2", "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        let p = Policy::from_flags("", "", "TLS_AES_128_GCM_SHA256").unwrap();
        assert_eq!(p.tls12_suites, Some(vec![]));

        let p = Policy::from_flags(
            "",
            "",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        )
        .unwrap();
        let provider = p.provider();
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .collect();
        assert_eq!(tls12.len(), 2);
        assert_eq!(
            provider.cipher_suites.len(),
            2 + 3,
            "TLS 1.3 suites stay on"
        );
    }

    #[test]
    fn go_only_and_unknown_suites_are_refused_by_name() {
        let e = cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("TLS_RSA_WITH_AES_128_CBC_SHA") && e.contains("does not support"),
            "{e}"
        );
        let e = cipher_suite("TLS_NONSENSE").unwrap_err().to_string();
        assert!(e.contains("unexpected TLS cipher suite"), "{e}");
        for name in SUPPORTED {
            cipher_suite(name).unwrap();
        }
        assert!(Policy::from_flags("TLS1.3", "", SUPPORTED[0]).is_err());
    }
}
