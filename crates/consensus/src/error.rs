//! The consensus crate's error type.

use cairn_storage::StoreError;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConsensusError {
    /// The command itself was refused by the store (wrong lease, compacted revision, ...).
    #[error(transparent)]
    Command(#[from] StoreError),
    #[error("no leader")]
    NoLeader,
    /// The call needs the leader and this member does not lead (MoveLeader).
    #[error("not leader")]
    NotLeader,
    /// A membership change etcd would refuse.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The leader could not be reached, or did not answer in time; the request may or may not
    /// have been applied.
    #[error("leader unreachable: {0}")]
    LeaderUnreachable(String),
    #[error("raft stopped: {0}")]
    Stopped(String),
    #[error("{0}")]
    Config(String),
    #[error("data dir: {0}")]
    Storage(String),
}

/// Membership changes refused the way etcd refuses them (each maps to one etcd error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("member not found")]
    MemberNotFound,
    #[error("peer URLs already exist")]
    PeerUrlExists,
    #[error("member ID already exists")]
    MemberIdExists,
    #[error("given member URLs are invalid")]
    BadUrls,
    #[error("can only promote a learner member")]
    NotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("bad leader transferee")]
    BadLeaderTransferee,
}
