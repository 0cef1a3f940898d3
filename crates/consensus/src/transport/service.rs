//! The answering side of the peer protocol, served on this member's peer URLs.

use std::sync::Arc;

use cairn_proto::cairnpeer::peer_server::{Peer, PeerServer};
use cairn_proto::cairnpeer::{Envelope, SnapshotChunk};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use tonic::{Request, Response, Status, Streaming};

use super::REMOVED_MESSAGE;
use super::wire::{self, Forward, WireError};
use crate::node::Node;
use crate::types::TypeConfig;

/// What a joining member learns from `Members`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MembersReply {
    pub cluster_id: u64,
    pub members: Vec<crate::types::MemberInfo>,
}

pub struct PeerService {
    node: Arc<Node>,
}

/// The peer gRPC service for `node`, without message size limits (raft batches and
/// snapshot chunks are bounded by raft's own settings).
pub fn peer_server(node: Arc<Node>) -> PeerServer<PeerService> {
    PeerServer::new(PeerService { node })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

impl PeerService {
    /// Refuses messages from another cluster and from removed members.
    fn admit(&self, cluster_id: u64, from: u64) -> Result<(), Status> {
        if cluster_id != self.node.cluster_id {
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: this member ({:x}) belongs to cluster {:x}, the sender ({from:x}) to cluster {cluster_id:x}",
                self.node.member_id, self.node.cluster_id
            )));
        }
        if self.node.removal().is_removed(from) {
            return Err(Status::permission_denied(format!(
                "{REMOVED_MESSAGE} (member {from:x})"
            )));
        }
        Ok(())
    }

    fn reply<T: serde::Serialize>(&self, v: &T) -> Result<Response<Envelope>, Status> {
        let body = wire::encode(v).map_err(Status::internal)?;
        Ok(Response::new(Envelope {
            cluster_id: self.node.cluster_id,
            from: self.node.member_id,
            body,
        }))
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let env = req.into_inner();
        self.admit(env.cluster_id, env.from)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            wire::decode(&env.body).map_err(Status::invalid_argument)?;
        let result = self.node.raft.append_entries(rpc).await;
        self.reply(&result)
    }

    async fn vote(&self, req: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let env = req.into_inner();
        self.admit(env.cluster_id, env.from)?;
        let rpc: VoteRequest<u64> = wire::decode(&env.body).map_err(Status::invalid_argument)?;
        let result = self.node.raft.vote(rpc).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Envelope>, Status> {
        let mut stream = req.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("empty snapshot stream"));
        };
        self.admit(first.cluster_id, first.from)?;
        let body =
            super::snapshot::receive(&self.node.raft, &self.node.snap_dir(), first, stream).await?;
        Ok(Response::new(Envelope {
            cluster_id: self.node.cluster_id,
            from: self.node.member_id,
            body,
        }))
    }

    async fn forward(&self, req: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let env = req.into_inner();
        self.admit(env.cluster_id, env.from)?;
        let fwd: Forward = wire::decode(&env.body).map_err(Status::invalid_argument)?;
        let result: Result<wire::Answer, WireError> = crate::leader::serve(&self.node, fwd)
            .await
            .map_err(WireError::from);
        self.reply(&result)
    }

    async fn hash_kv(&self, req: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let env = req.into_inner();
        self.admit(env.cluster_id, env.from)?;
        let rev: i64 = wire::decode(&env.body).map_err(Status::invalid_argument)?;
        let store = self.node.store.clone();
        let hash = tokio::task::spawn_blocking(move || store.hash_kv(rev))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map(|h| wire::PeerHash {
                hash: h.hash,
                compact_revision: h.compact_revision,
            })
            .map_err(|e| e.to_string());
        self.reply(&hash)
    }

    async fn members(&self, _req: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        self.reply(&MembersReply {
            cluster_id: self.node.cluster_id,
            members: self.node.members(),
        })
    }
}
