//! Continuous backups (`cairnutl backup`): a full snapshot on a schedule and, between them,
//! every revision after the snapshot's, recorded from a watch in sealed segments, so a
//! restore can stop at any revision (design: `docs/backup.md`).
//!
//! # Layout
//! - [`segment`]: the segment file: one [`segment::Change`] per revision (and per compaction),
//!   zstd-compressed, sealed with its revision range and a SHA-256; written under a temporary
//!   name and renamed when sealed, so a crash loses only the open segment's tail.

//! - [`timeline`]: a backup directory read back: full snapshots, segments, their chains, and
//!   `backup verify`.
//! - [`run`]: `backup run`, the long-running command: snapshot, watch, seal, resume.
//! - [`restore`]: what a point-in-time restore starts from and writes on top.

pub mod restore;
pub mod run;
pub mod segment;
pub mod timeline;
