//! Snapshots: the file format, writing one from a live store, reading and checking one,
//! restoring one into a fresh data dir, and installing one into a live store (a follower
//! catching up from its leader). See `docs/snapshot-format.md`.

pub mod error;
pub mod etcd_export;
pub mod etcd_file;
pub mod format;
pub mod history;
pub mod install;
pub mod reader;
mod records;
pub mod restore;
pub mod writer;

pub use error::SnapshotError;
pub use etcd_export::{EtcdExport, cairn_to_etcd, etcd_to_cairn};
pub use etcd_file::{
    EtcdExtras, EtcdPlan, EtcdSnapshot, EtcdStatus, EtcdVerified, looks_like_etcd,
};
pub use format::{SnapshotHeader, SnapshotMember};
pub use history::{HistoryRow, HistoryWriter, LeaseDrops, RestoredLeases};
pub use install::{InstallSummary, installing_path};
pub use reader::{BodySummary, SnapshotInfo, read_body, read_header};
pub use restore::{RestoreOptions, restore_etcd_kv, restore_kv};
pub use writer::SnapshotSource;

/// A snapshot file of either format, told apart by its content.
pub enum SnapshotFile {
    /// Cairn's own format, its header checked.
    Cairn(SnapshotInfo),
    /// etcd's bbolt database (an `etcdctl snapshot save` file or a `member/snap/db`).
    Etcd(EtcdSnapshot),
}

impl SnapshotFile {
    /// Opens `path` as whichever format it holds; a file of neither gets the Cairn reader's
    /// refusal (bad magic bytes).
    pub fn open(path: &std::path::Path) -> Result<SnapshotFile, SnapshotError> {
        if looks_like_etcd(path) {
            Ok(SnapshotFile::Etcd(EtcdSnapshot::open(path)?))
        } else {
            Ok(SnapshotFile::Cairn(read_header(path)?))
        }
    }

    pub fn file_size(&self) -> u64 {
        match self {
            SnapshotFile::Cairn(info) => info.file_size,
            SnapshotFile::Etcd(snap) => snap.file_size,
        }
    }
}

/// Reads the whole file with every check (digest, records, counts, HashKV).
pub fn verify(
    path: &std::path::Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(SnapshotInfo, BodySummary), SnapshotError> {
    let info = read_header(path)?;
    let summary = read_body(&info, true, progress, &mut |_| Ok(()))?;
    Ok((info, summary))
}
