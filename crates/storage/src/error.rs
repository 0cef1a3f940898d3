//! The storage crate's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("key not found")]
    KeyNotFound,
    #[error("key is not provided")]
    EmptyKey,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is raised: members disagree on the data.
    #[error("corrupt cluster")]
    ClusterCorrupt,
    #[error("storage backend failed at {context}: {message}")]
    Backend {
        context: &'static str,
        message: String,
    },
    #[error("data dir is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps any redb error with the step that failed.
pub(crate) fn backend<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend {
        context,
        message: e.to_string(),
    }
}
