//! Consensus for Cairn: openraft with its log and state machine persisted under the data dir.
//!
//! # Layout
//! - [`types`]: the openraft type configuration (entries carry storage commands).
//! - [`ids`]: etcd's member and cluster ID derivation.
//! - `log_store`: the raft log in its write-ahead log (one fsync per appended batch), the vote
//!   and IDs in the storage crate's state file.
//! - `state_machine`: applies entries to the MVCC store with the applied index in the same
//!   transaction, without fsync (replay on restart instead).
//! - [`transport`]: the peer protocol over gRPC (raft messages, streamed snapshots,
//!   forwarding), both sides.
//! - [`bootstrap`]: member IDs and first membership, from flags or from a restore; `join`:
//!   a member added at runtime learning its IDs from the cluster.
//! - [`node`]: a member, started from etcd-style settings; forwards what needs the leader.
//! - `leader`, `membership`, `transfer`: what the leader does for followers, membership
//!   changes with etcd's checks, and MoveLeader.
//! - `removal`: removed members, refused and stopped.
//! - [`force_new`]: `--force-new-cluster`, a member that lost its quorum made a cluster of one.
//! - [`offline`]: a stopped member's IDs and membership, for `cairnutl --data-dir`.

pub mod bootstrap;
#[cfg(test)]
mod conformance;
pub mod error;
mod flusher;
pub mod force_new;
pub mod ids;
mod join;
mod leader;
mod log_store;
mod membership;
pub mod node;
pub mod offline;
mod periodic;
mod proposer;
mod removal;
mod snapshot_trigger;
mod state_machine;
mod transfer;
pub mod transport;
pub mod types;

pub use error::{ConsensusError, MembershipError};
pub use node::{Node, NodeConfig, RaftStatus};
pub use types::{Member, MemberInfo};
