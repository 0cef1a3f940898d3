//! MVCC key-value storage on redb, shaped like etcd's `mvcc` package.
//!
//! # Layout
//! - [`revision`]: `(main, sub)` revisions and etcd's 17/18-byte key encoding.
//! - [`key_index`], [`index`]: the in-memory history of each key (etcd's keyIndex/treeIndex).
//! - `backend`: the only module that names redb: the file, its transactions and tables, the
//!   raft state file, and (tests) a file that loses power.
//! - `schema`, `state`, `locks`, `wake`: the record encodings and meta names, the in-memory
//!   state, lock helpers, wake-ups — the bottom layer the rest imports.
//! - [`store`]: the store and its reads; `open`: opening, its threads, closing; `apply`:
//!   replicated commands in batches; `overlay`: applied writes not in the file yet; `commit`:
//!   the thread that commits them, and the durable flush.
//! - [`defrag`]: rewriting the file to its live size while the store serves; `replace`: the
//!   file swap it shares with a snapshot install.
//! - `write`: one command's changes (put, delete, txn); `read`: range with every option.
//! - [`txn`]: compare evaluation and request checks, pure.
//! - `compact`, `hash`: compaction (scheduled in the apply) and etcd's HashKV; `compactor`:
//!   the thread that deletes a compaction's rows in batches, off the request path.
//! - [`lease`]: the lessor; [`watch`]: the watch hub and its replay.
//! - [`auth`]: users, roles, permissions, simple tokens; the checks made at apply.
//! - [`command`]: what a raft log entry carries.
//! - [`snapshot`]: the snapshot file: write from a live store, read, verify, restore, and
//!   install into a live store (a follower catching up from its leader).
//! - [`offline`]: opening a stopped member's data dir for `cairnutl --data-dir`.
//!
//! Design notes: `docs/storage.md`.

mod apply;
pub mod auth;
mod backend;
pub mod command;
mod commit;
mod compact;
mod compactor;
#[cfg(test)]
mod crash_consistency;
pub mod defrag;
pub mod error;
mod gate;
mod hash;
pub mod index;
pub mod key_index;
pub mod lease;
mod locks;
pub mod offline;
mod open;
mod open_files;
mod overlay;
mod read;
mod replace;
pub mod revision;
mod schema;
pub mod snapshot;
mod state;
pub mod store;
pub mod txn;
mod wake;
pub mod watch;
mod write;

pub use auth::{AuthView, Need, TokenInfo};
pub use backend::{Probe, StateFile, probe};
pub use command::{Command, CommandResponse, Op, RequestAuth};
pub use compact::CompactionPace;
pub use defrag::{DefragStage, DefragSummary};
pub use error::{AuthError, Result, StoreError};
pub use index::KeyRange;
pub use store::{KvHash, Store, StoreOptions, file_bytes};
pub use watch::{Progress, WatchBatch, WatchFilters, WatchHub, WatcherId};
