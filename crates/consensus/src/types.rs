//! The openraft type configuration: what a log entry carries and what a member is.

use std::fmt;
use std::path::{Path, PathBuf};

use cairn_storage::{CommandResponse, StoreError};
use serde::{Deserialize, Serialize};

use crate::proposer::Writers;

openraft::declare_raft_types!(
    /// Cairn's raft types: member IDs are etcd's u64 member IDs.
    pub TypeConfig:
        D = Request,
        R = Applied,
        NodeId = u64,
        Node = Member,
        SnapshotData = SnapshotData,
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

/// A log entry's payload: a protobuf-encoded `cairn_storage::Command`, or a batch of them
/// (`proposer::Batch`). Encoded as one byte
/// string (bincode's encoding of a `Vec<u8>` either way, so old logs read the same), not
/// byte by byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
    /// The writers waiting for this entry on the member that proposed it. In memory only: an
    /// entry read back from the log or received from the leader has none.
    #[serde(skip)]
    pub(crate) writers: Writers,
}

impl Request {
    /// An entry's payload with no writer waiting for it here.
    pub fn new(command: Vec<u8>) -> Request {
        Request {
            command,
            writers: Writers::default(),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command({} bytes)", self.command.len())
    }
}

/// What applying an entry returned, handed back to the proposer in memory: one result per
/// command it carried (see `proposer.rs`; a blank or membership entry counts as one), none
/// for an entry whose writers the apply answered itself. openraft wants it serializable but
/// never ships it between members, so the payload is not serialized.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    #[serde(skip)]
    pub results: Vec<Result<CommandResponse, StoreError>>,
}

/// What a raft snapshot carries on this member.
#[derive(Debug)]
pub enum SnapshotData {
    /// This member's own snapshot: the store itself, flushed at the snapshot point. It is
    /// streamed from a read transaction when a follower needs it (see `transport::snapshot`).
    Local,
    /// A copy of the leader's store received over the peer transport, in Cairn's snapshot
    /// format, with the raft meta entries read in the same transaction as the data.
    Received {
        file: ReceivedFile,
        meta: Vec<(String, Vec<u8>)>,
    },
}

/// A snapshot file received from the leader, removed when the snapshot carrying it is dropped.
/// Raft owns it once it is handed over, so the file lives until the install is over even when
/// the call that received it is cancelled (a leader that gives up waiting for the answer).
#[derive(Debug)]
pub struct ReceivedFile(PathBuf);

impl ReceivedFile {
    /// Takes charge of the file at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ReceivedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A member as the Cluster API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub member: Member,
    pub is_learner: bool,
}

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<u64, Member>;
pub type StorageError = openraft::StorageError<u64>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, Member>;
pub type Vote = openraft::Vote<u64>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs written before the payload was encoded as a byte string read back the same.
    #[test]
    fn request_encoding_is_unchanged() {
        #[derive(Serialize)]
        struct Before {
            command: Vec<u8>,
        }
        let command = vec![1u8, 2, 3, 250];
        let old = bincode::serialize(&Before {
            command: command.clone(),
        })
        .unwrap();
        let new = bincode::serialize(&Request::new(command.clone())).unwrap();
        assert_eq!(old, new);
        let back: Request = bincode::deserialize(&old).unwrap();
        assert_eq!(back.command, command);
    }
}
