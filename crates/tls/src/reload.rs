//! Values built from files that are re-read on every use, as etcd re-reads its certificate,
//! key and CRL on every handshake: a rotated file takes effect at the next handshake, without
//! a restart.
//!
//! The files are read each time (a few small reads) and the value is rebuilt only when their
//! bytes changed. Unlike etcd, which fails the handshake, a change that does not parse (a
//! certificate written before its key, a half-written file) keeps the last good value in use
//! and is logged once; the next complete change takes over.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::TlsError;

/// Builds the value from the files' bytes, in the order of [`Reloading::new`]'s paths.
pub type Build<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync>;

pub struct Reloading<T> {
    files: Vec<(&'static str, PathBuf)>,
    build: Build<T>,
    /// The bytes the current value was built from, and the value; the bytes of the last
    /// change that failed to build (so it is logged once, not at every handshake).
    state: Mutex<State<T>>,
}

struct State<T> {
    built_from: Vec<Vec<u8>>,
    value: Arc<T>,
    rejected: Option<Vec<Vec<u8>>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T> Reloading<T> {
    /// Reads and builds once; an error here is a start-up error (the files as given are bad).
    pub fn new(files: Vec<(&'static str, PathBuf)>, build: Build<T>) -> Result<Self, TlsError> {
        let bytes = read_all(&files)?;
        let value = Arc::new(build(&bytes)?);
        Ok(Reloading {
            files,
            build,
            state: Mutex::new(State {
                built_from: bytes,
                value,
                rejected: None,
            }),
        })
    }

    /// A value that no file backs: always `value`.
    pub fn fixed(value: T) -> Self {
        Reloading {
            files: Vec::new(),
            build: Box::new(|_| Err(TlsError::Config("a fixed value is never rebuilt".into()))),
            state: Mutex::new(State {
                built_from: Vec::new(),
                value: Arc::new(value),
                rejected: None,
            }),
        }
    }

    /// The value for the files as they are now (or the last good one, see the module doc).
    pub fn current(&self) -> Arc<T> {
        let bytes = match read_all(&self.files) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "TLS file unreadable; keeping the one loaded before");
                return self.lock().value.clone();
            }
        };
        let mut state = self.lock();
        if state.built_from == bytes || state.rejected.as_ref() == Some(&bytes) {
            return state.value.clone();
        }
        match (self.build)(&bytes) {
            Ok(v) => {
                tracing::info!(files = ?self.paths(), "TLS files changed; reloaded");
                state.value = Arc::new(v);
                state.built_from = bytes;
                state.rejected = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but do not load; keeping the ones loaded before");
                state.rejected = Some(bytes);
            }
        }
        state.value.clone()
    }

    fn paths(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // a std mutex: held for a comparison and a parse, never across an await
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_all(files: &[(&'static str, PathBuf)]) -> Result<Vec<Vec<u8>>, TlsError> {
    files
        .iter()
        .map(|(what, path)| crate::pem::read(what, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_number() -> Build<u32> {
        Box::new(|b: &[Vec<u8>]| {
            std::str::from_utf8(&b[0])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| TlsError::Config("not a number".into()))
        })
    }

    #[test]
    fn follows_changes_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let r = Reloading::new(vec![("number", path.clone())], parse_number()).unwrap();
        assert_eq!(*r.current(), 1);
        std::fs::write(&path, "2").unwrap();
        assert_eq!(*r.current(), 2);
        std::fs::write(&path, "half-writ").unwrap();
        assert_eq!(*r.current(), 2, "a bad change keeps the last good value");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(*r.current(), 2, "a missing file keeps the last good value");
        std::fs::write(&path, "3").unwrap();
        assert_eq!(*r.current(), 3);
    }

    #[test]
    fn a_bad_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "x").unwrap();
        assert!(Reloading::new(vec![("number", path.clone())], parse_number()).is_err());
        let missing = dir.path().join("missing");
        let e = Reloading::new(vec![("number file", missing)], parse_number()).unwrap_err();
        assert!(e.to_string().contains("cannot read the number file"), "{e}");
    }
}
