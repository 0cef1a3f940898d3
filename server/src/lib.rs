//! The Cairn server: etcd's v3 gRPC API over the consensus and storage crates.
//!
//! # Layout
//! - `authority`: client connections accept etcdctl 3.4 `--cluster`'s URL as `:authority`.
//! - [`config`]: etcd's flags (and `ETCD_*` variables), validated once into `Config`.
//! - [`server`]: `run(config, shutdown)`: bind, start the member, serve, drain.
//! - `context`: what every service shares; response headers, proposals, linearizable reads.
//! - `grpc/`: one file per gRPC service.
//! - `gateway/`: etcd's JSON gateway (`/v3/...`), calling the gRPC services' methods.
//! - `http`: `/health`, `/metrics`, `/version`.
//! - `listen`: binding listen URLs, plain or TLS (`cairn_tls`), served by axum.
//! - [`tls_flags`]: etcd's TLS flags, validated; `tls`: the files read and the acceptors
//!   and peer connector built at start-up.
//! - `quota`: `--quota-backend-bytes`; raises the NOSPACE alarm before a write overflows it.
//! - `background`: lease expiry and auto-compaction on the leader.
//! - `corruption`: HashKV compared between members at start and periodically (CORRUPT alarm).
//! - `tokens`: `--auth-token` simple and JWT tokens.
//! - [`errors`]: the one table from internal errors to etcd's gRPC codes and messages.

mod authority;
mod background;
pub mod config;
mod context;
mod corruption;
pub mod errors;
mod gateway;
mod grpc;
mod http;
mod listen;
mod quota;
pub mod server;
mod tls;
pub mod tls_flags;
mod tokens;

pub use config::{Config, Flags};
