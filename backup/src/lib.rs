//! Continuous backups (`cairnutl backup`): a full snapshot on a schedule and, between them,
//! every revision after the snapshot's, recorded from a watch in sealed segments, so a
//! restore can stop at any revision (design: `docs/backup.md`).
//!
//! # Layout
//! - [`segment`]: the segment file: one [`segment::Change`] per revision (and per compaction),
//!   zstd-compressed, sealed with its revision range and a SHA-256; written under a temporary
//!   name and renamed when sealed, so a crash loses only the open segment's tail.
//! - [`target`]: where a backup lives: a directory, or a prefix in object storage; listing,
//!   fetching into a local cache, uploading.
//! - [`timeline`]: a backup's files read back: full snapshots, segments, their chains, and
//!   `backup verify`.
//! - [`run`]: `backup run`, the long-running command: snapshot, watch, seal, resume;
//!   [`progress`]: what it reports; `upload`: its uploads to an object store, from the spool.
//! - [`stats`]: how far behind the backup is (status lines, the Prometheus page).
//! - [`crypt`]: client-side encryption of the files with age public keys.
//! - [`lock`]: one run per target (a file lock; a lease on an object store, with a fence).
//! - [`retention`]: which chains are kept whole, thinned to their snapshot, or removed.
//! - [`restore`]: what a point-in-time restore starts from and writes on top.

pub mod crypt;
pub mod lock;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod run;
pub mod segment;
pub mod stats;
pub mod target;
pub mod timeline;
mod upload;
