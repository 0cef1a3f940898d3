//! The peer transport: members talk over gRPC (`cairnpeer.Peer`, crates/proto) on their peer
//! URLs.
//!
//! - [`wire`]: what the envelopes carry (bincode for raft, protobuf for store replies).
//! - [`client`]: channels to peers and error sorting.
//! - [`network`]: openraft's `RaftNetwork` over the client.
//! - [`snapshot`]: streaming a copy of the store to a follower, and receiving one.
//! - [`service`]: the server side.

pub mod client;
pub mod network;
pub mod service;
pub mod snapshot;
pub mod wire;

/// How a member tells a removed member that it was removed (the removed member stops).
pub const REMOVED_MESSAGE: &str = "cairn: the member has been permanently removed from the cluster";
