//! The Cairn server: etcd's v3 gRPC API over the consensus and storage crates.
//!
//! # Layout
//! - `authority`: client connections accept etcdctl 3.4 `--cluster`'s URL as `:authority`.
//! - [`config`]: etcd's flags (and `ETCD_*` variables), validated once into `Config`.
//! - [`server`]: `run(config, shutdown)`: bind, start the member, serve, drain.
//! - `context`: what every service shares; response headers, proposals, linearizable reads.
//! - `grpc/`: one file per gRPC service.
//! - `http`: `/health`, `/metrics`, `/version`.
//! - `quota`: `--quota-backend-bytes`; raises the NOSPACE alarm before a write overflows it.
//! - `background`: lease expiry and auto-compaction on the leader.
//! - `corruption`: HashKV compared between members at start and periodically (CORRUPT alarm).
//! - [`errors`]: the one table from internal errors to etcd's gRPC codes and messages.

mod authority;
mod background;
pub mod config;
mod context;
mod corruption;
pub mod errors;
mod grpc;
mod http;
mod quota;
pub mod server;

pub use config::{Config, Flags};
