//! etcd's TLS flags for the client and peer listeners, and their validation (pure: no file
//! is read here; [`crate::tls`] reads them at start-up).

use std::path::PathBuf;

use anyhow::bail;
use cairn_tls::{Allowed, Policy};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE")]
    pub client_crl_file: Option<PathBuf>,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME")]
    pub client_cert_allowed_hostname: Option<String>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_auto_tls: bool,
    /// Allowed CN for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME")]
    pub peer_cert_allowed_hostname: Option<String>,
    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE")]
    pub peer_crl_file: Option<PathBuf>,
    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub experimental_peer_skip_client_san_verification: bool,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (Go's names; TLS 1.2 only, as in Go; empty means the default list).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version supported by cairn. Possible values: TLS1.2, TLS1.3.
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// Maximum TLS version supported by cairn. Possible values: TLS1.2, TLS1.3 (empty: TLS1.3).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// The validity period of the self-signed certificates (--auto-tls, --peer-auto-tls), in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
}

/// One listener kind's TLS, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    /// `None` with `auto`: a self-signed pair is made at start-up.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    pub auto: bool,
    pub trusted_ca: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl: Option<PathBuf>,
    pub allowed: Allowed,
}

impl Side {
    /// Whether an `https://` listener of this kind can be served.
    pub fn usable(&self) -> bool {
        self.cert_key.is_some() || self.auto
    }

    /// Whether any TLS flag of this kind was given.
    pub fn any(&self) -> bool {
        self.cert_key.is_some() || self.auto || self.trusted_ca.is_some() || self.client_cert_auth
    }
}

/// Both kinds' TLS, validated.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub client: Side,
    pub peer: Side,
    pub policy: Policy,
    pub skip_peer_client_san: bool,
    pub self_signed_validity_days: u32,
}

impl TlsFlags {
    /// Checks what can be checked without reading files. `https_client` and `https_peer`
    /// are the first https:// listen URL of each kind, if any (metrics URLs are client ones).
    pub fn validate(
        &self,
        https_client: Option<&str>,
        https_peer: Option<&str>,
    ) -> anyhow::Result<TlsConfig> {
        // as in etcd, a bad suite or version is fatal even when no listener uses TLS
        let policy = Policy::from_flags(
            &self.tls_min_version,
            &self.tls_max_version,
            &self.cipher_suites,
        )?;
        let client = Side {
            cert_key: pair(&self.cert_file, &self.key_file)?,
            auto: self.auto_tls,
            trusted_ca: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            crl: self.client_crl_file.clone(),
            allowed: Allowed {
                cn: None,
                hostname: self.client_cert_allowed_hostname.clone(),
            },
        };
        if let (Some(cn), Some(host)) =
            (&self.peer_cert_allowed_cn, &self.peer_cert_allowed_hostname)
        {
            bail!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={cn:?}, hostname={host:?})"
            );
        }
        let peer = Side {
            cert_key: pair(&self.peer_cert_file, &self.peer_key_file)?,
            auto: self.peer_auto_tls,
            trusted_ca: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            crl: self.peer_crl_file.clone(),
            allowed: Allowed {
                cn: self.peer_cert_allowed_cn.clone(),
                hostname: self.peer_cert_allowed_hostname.clone(),
            },
        };
        if let Some(url) = https_client
            && !client.usable()
        {
            bail!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
            );
        }
        if let Some(url) = https_peer
            && !peer.usable()
        {
            let hostport = url.trim_start_matches("https://").trim_end_matches('/');
            bail!(
                "cannot listen on TLS for {hostport}: KeyFile and CertFile are not presented \
                 (give --peer-cert-file and --peer-key-file, or --peer-auto-tls)"
            );
        }
        if self.self_signed_cert_validity == 0 && (client.auto || peer.auto) {
            bail!("selfSignedCertValidity is invalid,it should be greater than 0");
        }
        Ok(TlsConfig {
            client,
            peer,
            policy,
            skip_peer_client_san: self.experimental_peer_skip_client_san_verification,
            self_signed_validity_days: self.self_signed_cert_validity.saturating_mul(365),
        })
    }
}

/// `--cert-file` and `--key-file` go together.
fn pair(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
        (None, None) => Ok(None),
        (c, k) => {
            let show = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            bail!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                show(k),
                show(c)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tls: TlsFlags,
    }

    fn flags(args: &[&str]) -> TlsFlags {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .tls
    }

    #[test]
    fn https_needs_a_certificate_as_etcd_says() {
        let e = flags(&[])
            .validate(Some("https://127.0.0.1:2379"), None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        let e = flags(&[])
            .validate(None, Some("https://127.0.0.1:2380"))
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
            ),
            "{e}"
        );
        assert!(
            flags(&["--auto-tls"])
                .validate(Some("https://x:1"), None)
                .is_ok()
        );
        assert!(
            flags(&["--cert-file", "c", "--key-file", "k"])
                .validate(Some("https://x:1"), None)
                .is_ok()
        );
        let e = flags(&["--cert-file", "c"])
            .validate(None, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "KeyFile and CertFile must both be present[key: , cert: c]"
        );
    }

    #[test]
    fn suites_versions_and_names_are_checked_even_without_tls() {
        let e = flags(&["--cipher-suites", "BOGUS"])
            .validate(None, None)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unexpected TLS cipher suite \"BOGUS\""),
            "{e}"
        );
        let e = flags(&[
            "--peer-cert-allowed-cn",
            "a",
            "--peer-cert-allowed-hostname",
            "b",
        ])
        .validate(None, None)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AllowedCN and AllowedHostname are mutually exclusive (cn=\"a\", hostname=\"b\")"
        );
        let c = flags(&["--client-cert-auth", "--trusted-ca-file", "ca"])
            .validate(None, None)
            .unwrap();
        assert!(c.client.client_cert_auth && c.client.any());
        let c = flags(&["--client-cert-auth=false"])
            .validate(None, None)
            .unwrap();
        assert!(!c.client.any());
    }
}
