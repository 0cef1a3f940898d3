//! Connections to one cluster: endpoints tried in turn, optional TLS and authentication,
//! HTTP/2 keepalives (a dead peer is noticed even while a watch is idle), require-leader
//! on every call, and a per-call deadline on unary calls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_proto::etcdserverpb::auth_client::AuthClient;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::watch_client::WatchClient;
use cairn_proto::etcdserverpb::{
    AuthenticateRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, RangeRequest,
    RangeResponse, TxnRequest, TxnResponse,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::ClusterConfig;
use crate::error::{Error, Side};

/// Largest message accepted: a range page or a watch response can be big.
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// One live connection to one endpoint of a cluster, with the clients the mirror uses.
#[derive(Clone)]
pub struct Client {
    pub side: Side,
    pub endpoint: String,
    channel: Channel,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A request with the token, require-leader and (for unary calls) the deadline.
    pub fn request<T>(&self, msg: T, unary: bool) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("hasleader", MetadataValue::from_static("true"));
        if let Some(t) = &self.token
            && let Ok(v) = t.parse()
        {
            r.metadata_mut().insert("token", v);
        }
        if unary {
            r.set_timeout(self.timeout);
        }
        r
    }

    pub fn err(&self, status: tonic::Status) -> Error {
        Error::rpc(self.side, &self.endpoint, status)
    }

    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn watch_client(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        self.kv()
            .range(self.request(req, true))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| self.err(s))
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.kv()
            .txn(self.request(req, true))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| self.err(s))
    }

    /// The cluster's current revision.
    pub async fn current_revision(&self) -> Result<i64, Error> {
        let r = self
            .range(RangeRequest {
                key: vec![0],
                count_only: true,
                ..Default::default()
            })
            .await?;
        Ok(r.header.map(|h| h.revision).unwrap_or(0))
    }

    /// A lease's remaining TTL; -1 when it does not exist (expired or revoked).
    pub async fn time_to_live(&self, id: i64) -> Result<LeaseTimeToLiveResponse, Error> {
        let req = LeaseTimeToLiveRequest { id, keys: false };
        match self
            .lease()
            .lease_time_to_live(self.request(req, true))
            .await
        {
            Ok(r) => Ok(r.into_inner()),
            // etcd answers NotFound for a lease that expired; cairn answers TTL -1.
            Err(s) if s.code() == tonic::Code::NotFound => Ok(LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                ..Default::default()
            }),
            Err(s) => Err(self.err(s)),
        }
    }
}

/// A cluster's connection that callers share: the first [`Pool::get`] connects, a failed
/// call [`Pool::invalidate`]s it, and the next `get` tries the next endpoint.
pub struct Pool {
    side: Side,
    config: ClusterConfig,
    current: Mutex<Option<Client>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(side: Side, config: ClusterConfig) -> Self {
        Pool {
            side,
            config,
            current: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub async fn get(&self) -> Result<Client, Error> {
        // A std mutex: held only to copy or store the handle, never across an await.
        if let Some(c) = self.current.lock().expect("pool lock").clone() {
            return Ok(c);
        }
        let n = self.config.endpoints.len();
        let mut last = String::new();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let ep = &self.config.endpoints[i];
            match connect(self.side, ep, &self.config).await {
                Ok(c) => {
                    // Stay on this endpoint until it fails.
                    self.next.store(i, Ordering::Relaxed);
                    *self.current.lock().expect("pool lock") = Some(c.clone());
                    return Ok(c);
                }
                Err(e @ Error::Config(_)) => return Err(e),
                Err(e) if !e.is_transient() => return Err(e),
                Err(Error::Connect { reason, .. }) => last = format!("{ep}: {reason}"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Connect {
            side: self.side,
            endpoints: self.config.endpoints.join(","),
            reason: last,
        })
    }

    /// Drops the connection after a failure; the next `get` moves to the next endpoint.
    pub fn invalidate(&self) {
        let mut cur = self.current.lock().expect("pool lock");
        if cur.take().is_some() {
            self.next.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn connect(side: Side, endpoint: &str, cfg: &ClusterConfig) -> Result<Client, Error> {
    let tls = cfg.tls.is_some() || endpoint.starts_with("https://");
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    };
    let mut ep = Endpoint::from_shared(url)
        .map_err(|e| Error::Config(format!("bad {side} endpoint {endpoint:?}: {e}")))?
        .connect_timeout(cfg.connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if tls {
        ep = ep
            .tls_config(tls_config(side, cfg)?)
            .map_err(|e| Error::Config(format!("{side} TLS settings: {e}")))?;
    }
    let channel = ep.connect().await.map_err(|e| Error::Connect {
        side,
        endpoints: endpoint.to_string(),
        reason: error_chain(&e),
    })?;
    let mut client = Client {
        side,
        endpoint: endpoint.to_string(),
        channel,
        token: None,
        timeout: cfg.request_timeout,
    };
    if let Some((name, password)) = &cfg.user {
        let req = AuthenticateRequest {
            name: name.clone(),
            password: password.clone(),
        };
        let resp = AuthClient::new(client.channel.clone())
            .authenticate(client.request(req, true))
            .await
            .map_err(|s| client.err(s))?;
        client.token = Some(resp.into_inner().token);
    }
    Ok(client)
}

fn tls_config(side: Side, cfg: &ClusterConfig) -> Result<ClientTlsConfig, Error> {
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| {
            Error::Config(format!(
                "cannot read the {side} {what} {}: {e}",
                p.display()
            ))
        })
    };
    let mut t = ClientTlsConfig::new();
    let Some(files) = &cfg.tls else {
        return Ok(t);
    };
    if let Some(ca) = &files.ca {
        t = t.ca_certificate(Certificate::from_pem(read("CA certificate", ca)?));
    }
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => {
            t = t.identity(Identity::from_pem(read("certificate", c)?, read("key", k)?))
        }
        (None, None) => {}
        _ => {
            return Err(Error::Config(format!(
                "{side} TLS: give both the certificate and the key, or neither"
            )));
        }
    }
    Ok(t)
}

/// `e` and its causes on one line (tonic's transport errors hide the reason in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        // Layers often repeat their cause's text ("tcp connect error: tcp connect error").
        if !s.ends_with(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}
