//! The calling side of the peer protocol: one lazily connected gRPC channel per peer URL,
//! envelopes stamped with this member's cluster and member IDs, and errors sorted into what
//! raft and the forwarding code need to know.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::cairnpeer::peer_client::PeerClient;
use cairn_proto::cairnpeer::{Envelope, SnapshotChunk};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::REMOVED_MESSAGE;
use super::wire::{self, Answer, Forward, WireError};
use crate::error::ConsensusError;
use crate::removal::Removal;

/// How long connecting to a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a peer call failed.
#[derive(Debug)]
pub enum PeerError {
    /// Nothing reached the peer (refused connection, unknown host): safe to retry elsewhere.
    Unreachable(String),
    /// Sent, but no answer in time or the connection broke: the outcome is unknown.
    Lost(String),
    /// The peer answered with a refusal (another cluster, a bad message).
    Refused(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Unreachable(m) | PeerError::Lost(m) | PeerError::Refused(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for PeerError {}

impl From<PeerError> for ConsensusError {
    fn from(e: PeerError) -> Self {
        ConsensusError::LeaderUnreachable(e.to_string())
    }
}

pub struct PeerClients {
    /// 0 until a joining member learned its cluster's ID.
    cluster_id: AtomicU64,
    member_id: u64,
    channels: Mutex<HashMap<String, Channel>>,
    removal: Removal,
    /// TCP, and TLS for `https://` peer URLs.
    connector: cairn_tls::Connector,
}

impl PeerClients {
    pub fn new(
        cluster_id: u64,
        member_id: u64,
        removal: Removal,
        connector: cairn_tls::Connector,
    ) -> Self {
        PeerClients {
            cluster_id: AtomicU64::new(cluster_id),
            member_id,
            channels: Mutex::new(HashMap::new()),
            removal,
            connector,
        }
    }

    pub fn set_cluster_id(&self, id: u64) {
        self.cluster_id.store(id, Ordering::Relaxed);
    }

    pub fn envelope(&self, body: Vec<u8>) -> Envelope {
        Envelope {
            cluster_id: self.cluster_id.load(Ordering::Relaxed),
            from: self.member_id,
            body,
        }
    }

    pub fn chunk(&self, head: Vec<u8>, data: Vec<u8>, done: bool) -> SnapshotChunk {
        SnapshotChunk {
            cluster_id: self.cluster_id.load(Ordering::Relaxed),
            from: self.member_id,
            head,
            data,
            done,
        }
    }

    /// A client for the peer at `url` (the connection is made on first use and kept).
    pub fn client(&self, url: &str) -> Result<PeerClient<Channel>, PeerError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(url) {
            Some(c) => c.clone(),
            None => {
                let c = Endpoint::from_shared(url.to_string())
                    .map_err(|e| PeerError::Refused(format!("bad peer URL {url:?}: {e}")))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_while_idle(true)
                    // the connector sets TCP_NODELAY itself
                    .connect_with_connector_lazy(self.connector.clone());
                channels.insert(url.to_string(), c.clone());
                c
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Sorts a failed call's status; a peer saying this member was removed is recorded.
    pub fn sort_status(&self, url: &str, s: Status) -> PeerError {
        if s.code() == Code::PermissionDenied && s.message().starts_with(REMOVED_MESSAGE) {
            self.removal.removed_by_peer();
            return PeerError::Refused(format!("{url}: {}", s.message()));
        }
        let what = format!("peer {url}: {}", s.message());
        match s.code() {
            // tonic reports failed connects as Unavailable before anything was sent
            Code::Unavailable if is_connect_failure(&s) => PeerError::Unreachable(what),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                PeerError::Lost(what)
            }
            _ => PeerError::Refused(what),
        }
    }

    /// Hands `req` to the member at `url` and returns its answer.
    pub async fn forward(
        &self,
        url: &str,
        req: &Forward,
        timeout: Duration,
    ) -> Result<Result<Answer, WireError>, PeerError> {
        let body = wire::encode(req).map_err(PeerError::Refused)?;
        let mut client = self.client(url)?;
        let resp = self
            .answered(url, timeout, client.forward(self.request(body, timeout)))
            .await?;
        wire::decode(&resp.body).map_err(PeerError::Refused)
    }

    /// The HashKV of the member at `url` at `rev`; `Ok(Err(_))` is the member's refusal
    /// (compacted, future revision).
    pub async fn hash_kv(
        &self,
        url: &str,
        rev: i64,
        timeout: Duration,
    ) -> Result<Result<wire::PeerHash, String>, PeerError> {
        let body = wire::encode(&rev).map_err(PeerError::Refused)?;
        let mut client = self.client(url)?;
        let resp = self
            .answered(url, timeout, client.hash_kv(self.request(body, timeout)))
            .await?;
        wire::decode(&resp.body).map_err(PeerError::Refused)
    }

    /// An envelope of `body` with `timeout` as its deadline.
    fn request(&self, body: Vec<u8>, timeout: Duration) -> tonic::Request<Envelope> {
        let mut request = tonic::Request::new(self.envelope(body));
        request.set_timeout(timeout);
        request
    }

    /// The answer of a unary call to `url`, or why there is none within `timeout`.
    async fn answered(
        &self,
        url: &str,
        timeout: Duration,
        call: impl std::future::Future<Output = Result<tonic::Response<Envelope>, Status>>,
    ) -> Result<Envelope, PeerError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(self.sort_status(url, s)),
            Err(_) => Err(PeerError::Lost(format!(
                "peer {url}: no answer in {timeout:?}"
            ))),
        }
    }
}

fn is_connect_failure(s: &Status) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = s.source();
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("Connection refused")
            || text.contains("error trying to connect")
            || text.contains("dns error")
            || text.contains("tcp connect error")
            || text.contains("TLS handshake")
        {
            return true;
        }
        source = e.source();
    }
    s.message().contains("tcp connect error") || s.message().contains("Connection refused")
}
