//! The crate's one error type.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a bbolt database at all (no valid meta page).
    #[error("{0}")]
    NotBbolt(String),
    /// A bbolt database whose pages are inconsistent; the message names the page and what is
    /// wrong.
    #[error("{0}")]
    Corrupt(String),
}

/// A [`Error::Corrupt`] with its message.
pub(crate) fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt(message.into())
}
