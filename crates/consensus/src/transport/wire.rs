//! What travels inside the peer envelopes. openraft's messages and the forwarding requests
//! are bincode; store replies are etcd's protobuf messages already, so they travel as one
//! protobuf envelope ([`Reply`]).

use cairn_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, TxnResponse,
};
use cairn_storage::{CommandResponse, StoreError};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ConsensusError, MembershipError};
use crate::types::MemberInfo;

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(v).map_err(|e| format!("encode peer message: {e}"))
}

pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    bincode::deserialize(b).map_err(|e| format!("decode peer message: {e}"))
}

/// Work a follower hands to the leader (or, for the `Hold*`/`Campaign` steps of a leader
/// transfer, work the leader asks of a member).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forward {
    /// A protobuf-encoded `cairn_storage::Command` to propose.
    Write(Vec<u8>),
    /// The index a linearizable read must wait for (raft's read index).
    ReadIndex,
    AddMember {
        peer_urls: Vec<String>,
        is_learner: bool,
    },
    RemoveMember(u64),
    UpdateMember {
        id: u64,
        peer_urls: Vec<String>,
    },
    PromoteMember(u64),
    /// A started member records its name and client URLs (etcd's publish).
    Publish {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
    LeaseKeepAlive(i64),
    LeaseTimeToLive(i64),
    /// Leader transfer: do not start elections for this many milliseconds.
    HoldElections(u64),
    /// Leader transfer: campaign once the current leader's lease has run out.
    Campaign {
        after_millis: u64,
    },
}

/// The leader's answer to a [`Forward`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// Applied at `index` on the leader; `reply` is a [`Reply`].
    Written {
        index: u64,
        reply: Vec<u8>,
    },
    ReadIndex(u64),
    /// A membership change committed at `index`; `member` is the one changed, `members` all.
    Members {
        index: u64,
        member: Option<MemberInfo>,
        members: Vec<MemberInfo>,
    },
    Lease {
        ttl: i64,
        granted_ttl: i64,
        keys: Vec<Vec<u8>>,
    },
    Done,
}

/// A member's answer to the peer `HashKV` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHash {
    pub hash: u32,
    pub compact_revision: i64,
}

/// A [`ConsensusError`] as it crosses the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    NoLeader,
    NotLeader,
    Membership(MembershipError),
    Store { tag: u8, message: String },
    Other(String),
}

impl From<ConsensusError> for WireError {
    fn from(e: ConsensusError) -> Self {
        match e {
            ConsensusError::NoLeader => WireError::NoLeader,
            ConsensusError::NotLeader => WireError::NotLeader,
            ConsensusError::Membership(m) => WireError::Membership(m),
            ConsensusError::Command(s) => WireError::Store {
                tag: store_tag(&s),
                message: s.to_string(),
            },
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for ConsensusError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NoLeader => ConsensusError::NoLeader,
            WireError::NotLeader => ConsensusError::NotLeader,
            WireError::Membership(m) => ConsensusError::Membership(m),
            WireError::Store { tag, message } => ConsensusError::Command(store_error(tag, message)),
            WireError::Other(m) => ConsensusError::Stopped(format!("on the leader: {m}")),
        }
    }
}

fn store_tag(e: &StoreError) -> u8 {
    use StoreError as S;
    match e {
        S::Compacted => 1,
        S::FutureRevision => 2,
        S::LeaseNotFound => 3,
        S::LeaseExists => 4,
        S::KeyNotFound => 5,
        S::EmptyKey => 6,
        S::ValueProvided => 7,
        S::LeaseProvided => 8,
        S::TooManyOps => 9,
        S::DuplicateKey => 10,
        S::InvalidSortOption => 11,
        S::LeaseTtlTooLarge => 12,
        S::NoSpace => 13,
        S::ClusterCorrupt => 14,
        // auth errors: 100 + their own code
        S::Auth(a) => 100 + a.code(),
        S::Backend { .. } | S::Corrupt(_) => 0,
    }
}

fn store_error(tag: u8, message: String) -> StoreError {
    use StoreError as S;
    match tag {
        1 => S::Compacted,
        2 => S::FutureRevision,
        3 => S::LeaseNotFound,
        4 => S::LeaseExists,
        5 => S::KeyNotFound,
        6 => S::EmptyKey,
        7 => S::ValueProvided,
        8 => S::LeaseProvided,
        9 => S::TooManyOps,
        10 => S::DuplicateKey,
        11 => S::InvalidSortOption,
        12 => S::LeaseTtlTooLarge,
        13 => S::NoSpace,
        14 => S::ClusterCorrupt,
        t if t > 100
            && let Some(a) = cairn_storage::AuthError::from_code(t - 100) =>
        {
            S::Auth(a)
        }
        _ => S::Backend {
            context: "leader",
            message,
        },
    }
}

/// A store reply in protobuf, one field per kind.
#[derive(Clone, PartialEq, Message)]
pub struct Reply {
    #[prost(oneof = "ReplyKind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    pub kind: Option<ReplyKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ReplyKind {
    #[prost(message, tag = "1")]
    Put(PutResponse),
    #[prost(message, tag = "2")]
    DeleteRange(DeleteRangeResponse),
    #[prost(message, tag = "3")]
    Txn(TxnResponse),
    #[prost(message, tag = "4")]
    Compact(CompactionResponse),
    #[prost(message, tag = "5")]
    LeaseGrant(LeaseGrantResponse),
    #[prost(message, tag = "6")]
    LeaseRevoke(LeaseRevokeResponse),
    #[prost(message, tag = "7")]
    Alarm(AlarmResponse),
    #[prost(bool, tag = "8")]
    Empty(bool),
    #[prost(message, tag = "9")]
    Auth(cairn_storage::command::AuthReply),
}

pub fn encode_reply(r: CommandResponse) -> Vec<u8> {
    let kind = match r {
        CommandResponse::Put(x) => ReplyKind::Put(x),
        CommandResponse::DeleteRange(x) => ReplyKind::DeleteRange(x),
        CommandResponse::Txn(x) => ReplyKind::Txn(x),
        CommandResponse::Compact(x) => ReplyKind::Compact(x),
        CommandResponse::LeaseGrant(x) => ReplyKind::LeaseGrant(x),
        CommandResponse::LeaseRevoke(x) => ReplyKind::LeaseRevoke(x),
        CommandResponse::Alarm(x) => ReplyKind::Alarm(x),
        CommandResponse::Auth(x) => ReplyKind::Auth(x),
        CommandResponse::Empty => ReplyKind::Empty(true),
    };
    Reply { kind: Some(kind) }.encode_to_vec()
}

pub fn decode_reply(b: &[u8]) -> Result<CommandResponse, String> {
    let r = Reply::decode(b).map_err(|e| format!("decode leader reply: {e}"))?;
    Ok(match r.kind {
        Some(ReplyKind::Put(x)) => CommandResponse::Put(x),
        Some(ReplyKind::DeleteRange(x)) => CommandResponse::DeleteRange(x),
        Some(ReplyKind::Txn(x)) => CommandResponse::Txn(x),
        Some(ReplyKind::Compact(x)) => CommandResponse::Compact(x),
        Some(ReplyKind::LeaseGrant(x)) => CommandResponse::LeaseGrant(x),
        Some(ReplyKind::LeaseRevoke(x)) => CommandResponse::LeaseRevoke(x),
        Some(ReplyKind::Alarm(x)) => CommandResponse::Alarm(x),
        Some(ReplyKind::Auth(x)) => CommandResponse::Auth(x),
        Some(ReplyKind::Empty(_)) | None => CommandResponse::Empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_cross_the_wire_unchanged() {
        for e in [
            StoreError::Auth(cairn_storage::AuthError::PermissionDenied),
            StoreError::Auth(cairn_storage::AuthError::AuthOldRevision),
            StoreError::Compacted,
            StoreError::FutureRevision,
            StoreError::LeaseNotFound,
            StoreError::LeaseExists,
            StoreError::KeyNotFound,
            StoreError::EmptyKey,
            StoreError::ValueProvided,
            StoreError::LeaseProvided,
            StoreError::TooManyOps,
            StoreError::DuplicateKey,
            StoreError::InvalidSortOption,
            StoreError::LeaseTtlTooLarge,
            StoreError::NoSpace,
            StoreError::ClusterCorrupt,
        ] {
            let text = e.to_string();
            let w: WireError =
                decode(&encode(&WireError::from(ConsensusError::Command(e))).unwrap()).unwrap();
            match ConsensusError::from(w) {
                ConsensusError::Command(back) => assert_eq!(back.to_string(), text),
                other => panic!("{text} came back as {other}"),
            }
        }
    }

    #[test]
    fn replies_round_trip() {
        let put = CommandResponse::Put(PutResponse {
            header: None,
            prev_kv: None,
        });
        let back = decode_reply(&encode_reply(put)).unwrap();
        assert!(matches!(back, CommandResponse::Put(_)));
        assert!(matches!(
            decode_reply(&encode_reply(CommandResponse::Empty)).unwrap(),
            CommandResponse::Empty
        ));
    }
}
