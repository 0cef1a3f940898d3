//! TLS at start-up: the validated flags ([`crate::tls_flags`]) become the acceptors of the
//! https:// listeners and the connector this member dials its peers with. Every file is read
//! here, so a bad one stops the start with an error that names it.
//!
//! Where Cairn differs from etcd (docs/security.md):
//! - `--auto-tls` keeps `--trusted-ca-file`, `--client-cert-auth` and `--client-crl-file` in
//!   force (etcd silently drops them, serving TLS to anyone); its certificate lists the
//!   advertised hosts as well as the listen hosts.
//! - `--peer-auto-tls` drops client verification on peer listeners, as etcd does, but says so:
//!   self-signed peer certificates cannot be verified.

use std::path::Path;

use cairn_tls::{Acceptor, ClientSettings, Connector, ServerSettings};

use crate::tls_flags::{Side, TlsConfig};

/// What the listeners and the peer transport use.
pub struct Prepared {
    /// For https:// client listeners.
    pub client: Option<Acceptor>,
    /// For https:// metrics listeners: the client settings plus etcd's SAN check.
    pub metrics: Option<Acceptor>,
    /// For https:// peer listeners.
    pub peer: Option<Acceptor>,
    /// How this member dials its peers.
    pub peer_connector: Connector,
}

/// Which listeners use TLS, and the hosts a self-signed certificate must cover.
pub struct Needs<'a> {
    pub client: bool,
    pub metrics: bool,
    pub peer: bool,
    /// Some member's peer URL is https:// (this member dials it).
    pub dials_https_peers: bool,
    pub client_hosts: &'a [String],
    pub peer_hosts: &'a [String],
}

pub fn prepare(cfg: &TlsConfig, data_dir: &Path, needs: &Needs<'_>) -> anyhow::Result<Prepared> {
    let mut prepared = Prepared {
        client: None,
        metrics: None,
        peer: None,
        peer_connector: Connector::plain(),
    };
    warn_unused(&cfg.client, "client", needs.client || needs.metrics);
    warn_unused(&cfg.peer, "peer", needs.peer);
    if needs.client || needs.metrics {
        let (cert, key) = pair(&cfg.client, cfg, data_dir, "client", needs.client_hosts)?;
        let client = acceptor(
            "client",
            ServerSettings {
                cert_file: cert,
                key_file: key,
                trusted_ca_file: cfg.client.trusted_ca.clone(),
                client_cert_auth: cfg.client.client_cert_auth,
                crl_file: cfg.client.crl.clone(),
                allowed: cfg.client.allowed.clone(),
                policy: cfg.policy.clone(),
            },
        )?;
        prepared.metrics = Some(client.clone().check_client_san(true));
        prepared.client = Some(client);
    }
    // a member without a peer certificate can still dial https:// peers (no client cert)
    let peer_cert = if cfg.peer.usable() && (needs.peer || needs.dials_https_peers) {
        Some(pair(&cfg.peer, cfg, data_dir, "peer", needs.peer_hosts)).transpose()?
    } else {
        None
    };
    let self_signed_peers = cfg.peer.auto && cfg.peer.cert_key.is_none();
    if needs.peer {
        let (cert, key) = peer_cert
            .clone()
            .expect("validated: https peer URLs have a certificate");
        if self_signed_peers && (cfg.peer.trusted_ca.is_some() || cfg.peer.client_cert_auth) {
            tracing::warn!(
                "--peer-auto-tls: peer certificates are self-signed and cannot be verified, so \
                 --peer-trusted-ca-file and --peer-client-cert-auth are ignored (as in etcd)"
            );
        }
        let peer = acceptor(
            "peer",
            ServerSettings {
                cert_file: cert,
                key_file: key,
                trusted_ca_file: if self_signed_peers {
                    None
                } else {
                    cfg.peer.trusted_ca.clone()
                },
                client_cert_auth: !self_signed_peers && cfg.peer.client_cert_auth,
                crl_file: cfg.peer.crl.clone(),
                allowed: cfg.peer.allowed.clone(),
                policy: cfg.policy.clone(),
            },
        )?;
        prepared.peer = Some(peer.check_client_san(!cfg.skip_peer_client_san));
    }
    if needs.dials_https_peers || needs.peer {
        let (cert_file, key_file) = match peer_cert {
            Some((c, k)) => (Some(c), Some(k)),
            None => (None, None),
        };
        let settings = ClientSettings {
            ca_file: cfg.peer.trusted_ca.clone(),
            cert_file,
            key_file,
            skip_verify: self_signed_peers,
            allowed: cfg.peer.allowed.clone(),
            policy: cfg.policy.clone(),
        };
        prepared.peer_connector = Connector::new(Some(cairn_tls::client_config(&settings)?));
    }
    Ok(prepared)
}

/// One listener kind's acceptor, logged as etcd logs "starting with client TLS".
fn acceptor(kind: &str, settings: ServerSettings) -> anyhow::Result<Acceptor> {
    let config = cairn_tls::server_config(&settings)?;
    tracing::info!(
        cert = %settings.cert_file.display(),
        trusted_ca = ?settings.trusted_ca_file,
        client_cert_auth = settings.requires_client_cert(),
        crl = ?settings.crl_file,
        "starting with {kind} TLS"
    );
    Ok(Acceptor::new(config))
}

/// The certificate and key of one side: given, or self-signed under
/// `<data-dir>/fixtures/<kind>` with `--auto-tls`/`--peer-auto-tls`.
fn pair(
    side: &Side,
    cfg: &TlsConfig,
    data_dir: &Path,
    kind: &str,
    hosts: &[String],
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    if let Some(pair) = &side.cert_key {
        if side.auto {
            tracing::warn!("ignoring {kind} auto TLS since certs given");
        }
        return Ok(pair.clone());
    }
    let dir = data_dir.join("fixtures").join(kind);
    Ok(cairn_tls::selfcert::self_signed(
        &dir,
        hosts,
        cfg.self_signed_validity_days,
    )?)
}

/// etcd's warnings for TLS flags that no https:// listener uses.
fn warn_unused(side: &Side, kind: &str, https: bool) {
    if https {
        return;
    }
    if side.cert_key.is_some() {
        tracing::warn!(
            "{kind} URLs are http://: scheme is HTTP while key and cert files are present; ignoring key and cert files"
        );
    }
    if side.client_cert_auth {
        tracing::warn!(
            "{kind} URLs are http://: scheme is HTTP while client cert auth is enabled; ignoring client cert auth for this URL"
        );
    }
}
