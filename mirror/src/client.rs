//! The mirror's connections: `cairn_client` dials (endpoints in turn, TLS, authentication,
//! require-leader, keepalives); this layer adds which side a connection belongs to, so every
//! error names it and the engine knows which pool to reset, the mirror's message limits, and
//! the few calls the engine makes on both sides.

use cairn_client::{ClientConfig, ClientError, Dialer, Svc};
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::watch_client::WatchClient;
use cairn_proto::etcdserverpb::{
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, RangeRequest, RangeResponse, TxnRequest,
    TxnResponse,
};

use crate::error::{Error, Side};

/// Largest message accepted: a range page or a watch response can be big.
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// One live connection to one endpoint of a cluster, with the clients the mirror uses. The
/// token and `hasleader` are added to every call by `cairn_client`.
#[derive(Clone)]
pub struct Client {
    pub side: Side,
    inner: cairn_client::Client,
}

impl Client {
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// A request; unary calls get the command timeout as their deadline (streams none).
    pub fn request<T>(&self, msg: T, unary: bool) -> tonic::Request<T> {
        if unary {
            self.inner.request(msg)
        } else {
            tonic::Request::new(msg)
        }
    }

    pub fn err(&self, status: tonic::Status) -> Error {
        Error::rpc(self.side, self.inner.endpoint(), status)
    }

    pub fn kv(&self) -> KvClient<Svc> {
        self.inner
            .kv()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn watch_client(&self) -> WatchClient<Svc> {
        self.inner
            .watch()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn lease(&self) -> LeaseClient<Svc> {
        self.inner
            .lease()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
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
    inner: cairn_client::Pool,
}

impl Pool {
    /// Reads the TLS files now: a bad one is a [`Error::Config`] before anything is dialed.
    pub fn new(side: Side, config: ClientConfig) -> Result<Self, Error> {
        let dialer = Dialer::new(config).map_err(|e| from_client(side, e))?;
        Ok(Pool {
            side,
            inner: cairn_client::Pool::new(dialer),
        })
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub async fn get(&self) -> Result<Client, Error> {
        let inner = self
            .inner
            .get()
            .await
            .map_err(|e| from_client(self.side, e))?;
        Ok(Client {
            side: self.side,
            inner,
        })
    }

    /// Drops the connection after a failure; the next `get` moves to the next endpoint.
    pub fn invalidate(&self) {
        self.inner.invalidate();
    }
}

/// `cairn_client`'s error as the engine sorts it: unreachable endpoints and failed calls
/// (authentication) are retried as before, bad flags and files end the mirror.
fn from_client(side: Side, e: ClientError) -> Error {
    match e {
        ClientError::Connect { endpoint, reason } => Error::Connect {
            side,
            endpoints: endpoint,
            reason,
        },
        ClientError::Rpc { endpoint, status } => Error::rpc(side, &endpoint, status),
        e @ (ClientError::Config(_)
        | ClientError::Tls(_)
        | ClientError::NoEndpoint(_)
        | ClientError::File { .. }
        | ClientError::Snapshot(_)) => Error::Config(format!("{side}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_their_kind() {
        let e = from_client(
            Side::Destination,
            ClientError::Connect {
                endpoint: "a:1,b:2".into(),
                reason: "refused".into(),
            },
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "cannot connect to any destination endpoint (a:1,b:2): refused"
        );
        let e = from_client(
            Side::Source,
            ClientError::rpc("a:1", tonic::Status::unavailable("etcdserver: no leader")),
        );
        assert!(
            matches!(
                e,
                Error::Rpc {
                    side: Side::Source,
                    ..
                }
            ) && e.is_transient()
        );
        let e = from_client(Side::Source, ClientError::Config("bad endpoint".into()));
        assert!(!e.is_transient());
        assert_eq!(e.to_string(), "source: bad endpoint");
    }

    #[test]
    fn a_missing_ca_file_fails_the_pool_at_once() {
        let mut cfg = ClientConfig::new(["127.0.0.1:1"]);
        cfg.tls.cacert = Some("/nonexistent/ca.crt".into());
        let Err(e) = Pool::new(Side::Destination, cfg) else {
            panic!("a pool with a missing CA file")
        };
        let text = e.to_string();
        assert!(!e.is_transient(), "{text}");
        assert!(
            text.starts_with("destination: ") && text.contains("/nonexistent/ca.crt"),
            "{text}"
        );
    }
}
