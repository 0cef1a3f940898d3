//! Replicated write commands: what goes into a raft log entry and what applying one returns.
//!
//! A command reuses etcd's request messages; the envelope is our own protobuf so the log
//! stays readable by any protobuf tool and is stable across releases.

use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, TxnRequest, TxnResponse,
};

pub use crate::auth::ops::{AuthOp, AuthReply, AuthRequest, AuthResponse, InternalAuthenticate};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    // tag 8 is the raft layer's batch of commands (consensus `proposer::Batch`): never use it
    #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5, 6, 7, 9")]
    pub op: Option<Op>,
    /// Who asked, for the permission checks made when the command is applied (etcd's
    /// request header `username` and `auth_revision`). `None`: the server itself (lease
    /// expiry, auto-compaction, alarms), never checked.
    #[prost(message, optional, tag = "16")]
    pub auth: Option<RequestAuth>,
}

/// The user a client request runs as, and the auth revision its token was minted at.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RequestAuth {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(uint64, tag = "2")]
    pub revision: u64,
}

impl Command {
    /// `op` made on behalf of `auth` (a client; `None` for the server's own commands).
    pub fn new(op: Op, auth: Option<RequestAuth>) -> Command {
        Command { op: Some(op), auth }
    }
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    #[prost(message, tag = "1")]
    Put(PutRequest),
    #[prost(message, tag = "2")]
    DeleteRange(DeleteRangeRequest),
    #[prost(message, tag = "3")]
    Txn(TxnRequest),
    #[prost(message, tag = "4")]
    Compact(CompactionRequest),
    #[prost(message, tag = "5")]
    LeaseGrant(LeaseGrantRequest),
    #[prost(message, tag = "6")]
    LeaseRevoke(LeaseRevokeRequest),
    /// An alarm change; `member_id` names the member raising it.
    #[prost(message, tag = "7")]
    Alarm(AlarmRequest),
    /// A change of users, roles, the auth switch, or a simple token minted.
    #[prost(message, tag = "9")]
    Auth(AuthOp),
}

impl From<Op> for Command {
    fn from(op: Op) -> Self {
        Command {
            op: Some(op),
            auth: None,
        }
    }
}

/// The result of applying one command. Header fields other than `revision` are the server's.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    Auth(AuthReply),
    /// An entry with no command (raft's blank or membership entries).
    Empty,
}
