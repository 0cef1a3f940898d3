//! Consensus for Cairn: openraft with its log and state machine persisted under the data dir.
//!
//! # Layout
//! - [`types`]: the openraft type configuration (entries carry storage commands).
//! - [`ids`]: etcd's member and cluster ID derivation.
//! - `log_store`: the raft log in its own redb file, one fsync per appended batch.
//! - `state_machine`: applies entries to the MVCC store with the applied index in the same
//!   transaction, without fsync (replay on restart instead).
//! - `network`: peer messages (single-member for now).
//! - [`bootstrap`]: member IDs and first membership, from flags or from a restore.
//! - [`node`]: a member, started from etcd-style settings.
//! - [`offline`]: a stopped member's IDs and membership, for `cairnutl --data-dir`.

pub mod bootstrap;
pub mod error;
pub mod ids;
mod log_store;
mod network;
pub mod node;
pub mod offline;
mod state_machine;
pub mod types;

pub use error::ConsensusError;
pub use node::{Node, NodeConfig, RaftStatus};
pub use types::Member;
