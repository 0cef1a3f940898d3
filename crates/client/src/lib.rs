//! The one client library of the workspace: how `cairnutl`, the mirror, the load generator
//! and the tests reach an etcd-API cluster (Cairn or etcd).
//!
//! # Layout
//! - [`flags`]: etcdctl's global connection flags and `ETCDCTL_*` variables (clap).
//! - [`config`]: [`ClientConfig`], what a cluster connection needs.
//! - [`security`]: when a connection uses TLS (etcdctl's rules) and the endpoint's URI.
//! - [`dial`]: [`Dialer`], connections through `cairn_tls` with write coalescing; tokens.
//! - [`session`]: [`Client`], one endpoint's connection with every service's client.
//! - [`sniff`]: a connection the server refuses after connecting (a TLS port over http://,
//!   a client certificate refused under TLS 1.3) fails saying why.
//! - [`prompt`]: passwords typed on the terminal or piped in, as etcdctl reads them.
//! - [`auth`]: what etcdctl's auth commands do beyond one call (`auth enable`).
//! - [`pool`]: one shared connection with failover across endpoints.
//! - [`snapshot`]: saving a snapshot to a file (checked, atomic) or a writer.
//! - [`metrics`]: the `/metrics` page of the long-running tools.
//! - [`signals`]: SIGTERM or Ctrl-C, the end of a server or a long-running command.
//! - [`error`], [`ClientError`]: the one error type.

pub mod auth;
pub mod config;
pub mod dial;
pub mod error;
pub mod flags;
pub mod metrics;
pub mod pool;
pub mod prompt;
pub mod security;
pub mod session;
pub mod signals;
pub mod snapshot;
pub mod sniff;

pub use config::ClientConfig;
pub use dial::Dialer;
pub use error::ClientError;
pub use pool::Pool;
pub use security::TlsOptions;
pub use session::{Client, Svc};
