//! What can be wrong with a snapshot file, each in words an operator can act on.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::StoreError;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: is a directory, not a snapshot file")]
    IsDirectory(PathBuf),
    #[error("{0}: file is empty")]
    Empty(PathBuf),
    #[error(
        "{path}: not a Cairn snapshot (size {size} bytes is not 32 more than a multiple of 512; the file is truncated or not a snapshot)"
    )]
    BadSize { path: PathBuf, size: u64 },
    #[error("{0}: not a Cairn or etcd snapshot (bad magic bytes)")]
    BadMagic(PathBuf),
    #[error(
        "{path}: written by a newer Cairn (snapshot format {found}, this build reads up to {supported}); use a newer cairnutl"
    )]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{path}: header claims {claimed} bytes but only {available} follow; the file is corrupt"
    )]
    HeaderLength {
        path: PathBuf,
        claimed: u64,
        available: u64,
    },
    #[error("{0}: header checksum mismatch; the file is corrupt")]
    HeaderChecksum(PathBuf),
    #[error("{path}: header does not decode ({reason}); the file is corrupt")]
    HeaderDecode { path: PathBuf, reason: String },
    #[error(
        "{path}: SHA-256 mismatch (file says {expected}, content hashes to {actual}); the file is corrupt or truncated"
    )]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: body is corrupt at record {record}: {reason}")]
    Body {
        path: PathBuf,
        record: u64,
        reason: String,
    },
    #[error("{path}: {bytes} bytes after the body are not the zero padding; the file is corrupt")]
    Padding { path: PathBuf, bytes: usize },
    #[error("{path}: header says {header} {what} but the body holds {body}; the file is corrupt")]
    HeaderMismatch {
        path: PathBuf,
        what: &'static str,
        header: i64,
        body: i64,
    },
    #[error("{0}: body ends without its end record; the file is truncated")]
    MissingEnd(PathBuf),
    #[error("{path}: holds {found} records but its header says {expected}; the file is corrupt")]
    CountMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path}: data hashes to {actual} but the header says {expected}; the file is corrupt")]
    HashMismatch {
        path: PathBuf,
        expected: u32,
        actual: u32,
    },
    /// etcd's restore refuses a file without its digest unless told to skip the check.
    #[error(
        "{0}: snapshot missing hash but --skip-hash-check=false (an etcd database copied out of \
         member/snap/db has no digest: pass --skip-hash-check)"
    )]
    EtcdNoDigest(PathBuf),
    #[error("{path}: expected sha256 {expected}, got {actual}; the file is corrupt or truncated")]
    EtcdDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The bbolt database is damaged.
    #[error("{path}: {error}")]
    Bbolt {
        path: PathBuf,
        error: cairn_bbolt::Error,
    },
    /// The database is sound but a row is not what etcd writes there.
    #[error("{path}: not an etcd backend: {reason}")]
    EtcdSchema { path: PathBuf, reason: String },
    #[error("writing the snapshot failed: {0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}
