//! The openraft type configuration: what a log entry carries and what a member is.

use std::fmt;

use cairn_storage::{CommandResponse, StoreError};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Cairn's raft types: member IDs are etcd's u64 member IDs.
    pub TypeConfig:
        D = Request,
        R = Applied,
        NodeId = u64,
        Node = Member,
        SnapshotData = tokio::fs::File,
);

/// A member as raft's membership records it (etcd's `Member` minus the ID, which is the key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.peer_urls.join(","))
    }
}

/// A log entry's payload: a protobuf-encoded `cairn_storage::Command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub command: Vec<u8>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command({} bytes)", self.command.len())
    }
}

/// What applying an entry returned, handed back to the proposer in memory. openraft wants it
/// serializable but never ships it between members, so the payload is not serialized.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    #[serde(skip)]
    pub result: Option<Result<CommandResponse, StoreError>>,
}

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<u64, Member>;
pub type StorageError = openraft::StorageError<u64>;
