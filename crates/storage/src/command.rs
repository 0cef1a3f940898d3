//! Replicated write commands: what goes into a raft log entry and what applying one returns.
//!
//! A command reuses etcd's request messages; the envelope is our own protobuf so the log
//! stays readable by any protobuf tool and is stable across releases.

use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, TxnRequest, TxnResponse,
};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub op: Option<Op>,
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
}

impl From<Op> for Command {
    fn from(op: Op) -> Self {
        Command { op: Some(op) }
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
    /// An entry with no command (raft's blank or membership entries).
    Empty,
}
