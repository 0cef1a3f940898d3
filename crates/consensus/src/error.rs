//! The consensus crate's error type.

use cairn_storage::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConsensusError {
    /// The command itself was refused by the store (wrong lease, compacted revision, ...).
    #[error(transparent)]
    Command(#[from] StoreError),
    #[error("no leader")]
    NoLeader,
    #[error("raft stopped: {0}")]
    Stopped(String),
    #[error("{0}")]
    Config(String),
    #[error("data dir: {0}")]
    Storage(String),
}
