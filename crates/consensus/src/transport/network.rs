//! openraft's network over the peer protocol: AppendEntries and Vote as unary calls, a full
//! snapshot as one client stream (see [`super::snapshot`]).

use std::future::Future;
use std::sync::Arc;

use cairn_storage::Store;
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};

use super::client::{PeerClients, PeerError};
use super::wire;
use crate::types::{Member, Snapshot, TypeConfig, Vote};

#[derive(Clone)]
pub struct Network {
    pub peers: Arc<PeerClients>,
    pub store: Arc<Store>,
}

pub struct PeerLink {
    target: u64,
    url: String,
    peers: Arc<PeerClients>,
    store: Arc<Store>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &Member) -> PeerLink {
        PeerLink {
            target,
            url: node.peer_urls.first().cloned().unwrap_or_default(),
            peers: self.peers.clone(),
            store: self.store.clone(),
        }
    }
}

fn rpc_error<E: std::error::Error>(e: PeerError) -> RPCError<u64, Member, E> {
    match e {
        PeerError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl PeerLink {
    async fn unary<Req, Resp>(
        &self,
        req: &Req,
        option: &RPCOption,
        vote: bool,
    ) -> Result<Resp, RPCError<u64, Member, RaftError<u64>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let body = wire::encode(req).map_err(|e| rpc_error(PeerError::Refused(e)))?;
        let mut client = self.peers.client(&self.url).map_err(rpc_error)?;
        let mut request = tonic::Request::new(self.peers.envelope(body));
        request.set_timeout(option.hard_ttl());
        let call = async {
            if vote {
                client.vote(request).await
            } else {
                client.append_entries(request).await
            }
        };
        let resp = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(s)) => return Err(rpc_error(self.peers.sort_status(&self.url, s))),
            Err(_) => {
                return Err(rpc_error(PeerError::Lost(format!(
                    "peer {}: no answer in {:?}",
                    self.url,
                    option.hard_ttl()
                ))));
            }
        };
        let answer: Result<Resp, RaftError<u64>> =
            wire::decode(&resp.body).map_err(|e| rpc_error(PeerError::Refused(e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.unary(&rpc, &option, false).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.unary(&rpc, &option, true).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let send = super::snapshot::send(&self.peers, &self.store, &self.url, vote, snapshot.meta);
        let answer = tokio::select! {
            r = send => r,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(fatal)) => Err(StreamingError::RemoteError(RemoteError::new(
                self.target,
                fatal,
            ))),
            Err(PeerError::Unreachable(m)) => Err(StreamingError::Unreachable(Unreachable::new(
                &PeerError::Unreachable(m),
            ))),
            Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
        }
    }
}
