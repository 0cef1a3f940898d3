//! The make-mirror engine: keeps a destination cluster's prefix equal to a source cluster's,
//! continuously, against Cairn or etcd on either side. `cairnutl make-mirror` is a thin
//! command on top; this crate never prints — it reports through [`progress::Event`]s and
//! [`progress::Stats`].
//!
//! # Layout
//! - [`engine`]: the top loop (claim, checkpoint, copy or resume, watch, retry, re-sync).
//! - [`sync`]: the full copy at one revision and the prune; [`watch_loop`]: the steady state.
//! - [`checkpoint`]: the progress record written in the same txn as the data;
//!   [`fence`]: one mirror per destination prefix; [`destination`]: fenced txns;
//!   [`pipeline`]: the watch phase's chained txns in flight.
//! - [`leases`]: `--with-leases`; [`keys`]: prefix rewrite and the reserved namespace;
//!   [`batch`]: cutting operations into txns; [`pager`]: paged range reads.
//! - [`client`]: `cairn_client`'s connections (endpoints in turn, TLS, auth, require-leader,
//!   keepalives) with the side they belong to and mirror-sized message limits.
//! - [`progress`], [`metrics`]: what the caller sees; [`check`]: `make-mirror --check`.
//!
//! The design (checkpoint key, fencing, resume, compaction, leases) is in docs/mirror.md.

pub mod batch;
pub mod check;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod destination;
pub mod engine;
pub mod error;
pub mod fence;
pub mod keys;
pub mod leases;
pub mod metrics;
pub mod pager;
pub mod pipeline;
pub mod progress;
pub mod sync;
pub mod watch_loop;

pub use config::Config;
pub use engine::run;
pub use error::{Error, Side};
pub use keys::KeyMap;
pub use progress::{Event, Reporter, Stats};
