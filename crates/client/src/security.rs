//! When a connection uses TLS, as etcdctl 3.4 decides it, and the endpoint's URI:
//!
//! - `https://HOST:PORT` always uses TLS (the system's roots when no `--cacert`);
//! - `http://HOST:PORT` never does, whatever else is set;
//! - a bare `HOST:PORT` uses TLS when any of `--cacert --cert --key` is given or
//!   `--insecure-transport=false`;
//! - `--insecure-skip-tls-verify` accepts any server certificate (TLS connections only).
//!
//! Pure: no files are read here; [`TlsOptions::connector`] builds the rustls side once.

use std::path::PathBuf;

use cairn_tls::{ClientSettings, Connector};

use crate::error::ClientError;

/// etcdctl's TLS flags (or make-mirror's `--dest-*` ones).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    /// Default true, as etcdctl's: bare endpoints stay plain unless certificates are given.
    pub insecure_transport: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            cacert: None,
            cert: None,
            key: None,
            insecure_skip_tls_verify: false,
            insecure_transport: true,
        }
    }
}

impl TlsOptions {
    /// Whether bare `HOST:PORT` endpoints use TLS.
    pub fn tls_by_default(&self) -> bool {
        self.cacert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || !self.insecure_transport
    }

    /// The dialer for `endpoints`: with rustls settings when any of them uses TLS.
    pub fn connector(&self, endpoints: &[String]) -> Result<Connector, ClientError> {
        let mut any_tls = false;
        for ep in endpoints {
            any_tls |= target(ep, self.tls_by_default())?.starts_with("https://");
        }
        if !any_tls {
            return Ok(Connector::plain());
        }
        let settings = ClientSettings {
            ca_file: self.cacert.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            skip_verify: self.insecure_skip_tls_verify,
            ..Default::default()
        };
        Ok(Connector::new(Some(cairn_tls::client_config(&settings)?)))
    }
}

/// The URI an endpoint is dialed at: its own scheme, or `https://`/`http://` for a bare
/// `HOST:PORT` as `tls_by_default` says.
pub fn target(endpoint: &str, tls_by_default: bool) -> Result<String, ClientError> {
    let ep = endpoint.trim();
    let bad = |why: &str| ClientError::Config(format!("bad endpoint {endpoint:?}: {why}"));
    let (scheme, rest) = match ep.split_once("://") {
        Some((s, rest)) => (s, rest.trim_end_matches('/')),
        None => (
            if tls_by_default { "https" } else { "http" },
            ep.trim_end_matches('/'),
        ),
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad(&format!(
            "scheme {scheme}:// is not supported; use HOST:PORT, http://HOST:PORT or https://HOST:PORT"
        )));
    }
    if rest.is_empty() || rest.contains('/') {
        return Err(bad("expected HOST:PORT"));
    }
    let uri = format!("{scheme}://{rest}");
    uri.parse::<http::Uri>().map_err(|e| bad(&e.to_string()))?;
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_decides_then_flags() {
        assert_eq!(
            target("127.0.0.1:2379", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            target("127.0.0.1:2379", true).unwrap(),
            "https://127.0.0.1:2379"
        );
        assert_eq!(target("http://h:1/", true).unwrap(), "http://h:1");
        assert_eq!(target("https://h:1", false).unwrap(), "https://h:1");
        assert_eq!(target("[::1]:2379", false).unwrap(), "http://[::1]:2379");
        assert!(target("unix://sock", false).is_err());
        assert!(target("http://", false).is_err());
        assert!(target("h:1/v3", false).is_err());
    }

    #[test]
    fn etcdctl_defaults() {
        let mut o = TlsOptions::default();
        assert!(!o.tls_by_default());
        o.cacert = Some("ca.crt".into());
        assert!(o.tls_by_default());
        let o = TlsOptions {
            insecure_transport: false,
            ..Default::default()
        };
        assert!(o.tls_by_default());
        // plain endpoints need no TLS settings at all
        let c = TlsOptions::default()
            .connector(&["127.0.0.1:1".into(), "http://x:2".into()])
            .unwrap();
        assert!(!c.has_tls());
        // a missing CA file is named at once
        let o = TlsOptions {
            cacert: Some("/nonexistent/ca.crt".into()),
            ..Default::default()
        };
        let e = o
            .connector(&["127.0.0.1:1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.crt"), "{e}");
    }
}
