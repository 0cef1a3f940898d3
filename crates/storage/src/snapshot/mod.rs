//! Snapshots: the file format, writing one from a live store, reading and checking one,
//! restoring one into a fresh data dir, and installing one into a live store (a follower
//! catching up from its leader). See `docs/snapshot-format.md`.

pub mod error;
pub mod format;
pub mod install;
pub mod reader;
mod records;
pub mod restore;
pub mod writer;

pub use error::SnapshotError;
pub use format::{SnapshotHeader, SnapshotMember};
pub use install::{InstallSummary, installing_path};
pub use reader::{BodySummary, SnapshotInfo, read_body, read_header};
pub use restore::{RestoreOptions, restore_kv};
pub use writer::SnapshotSource;

/// Reads the whole file with every check (digest, records, counts, HashKV).
pub fn verify(
    path: &std::path::Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(SnapshotInfo, BodySummary), SnapshotError> {
    let info = read_header(path)?;
    let summary = read_body(&info, true, progress, &mut |_| Ok(()))?;
    Ok((info, summary))
}
