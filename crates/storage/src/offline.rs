//! Opening a stopped member's `kv.redb` for the offline tools (`cairnutl --data-dir`).
//!
//! [`Store::open`] creates what is missing, which suits a server; an operations tool must
//! instead refuse a data dir that is not there, is not Cairn's, or that a running server still
//! holds — and leave it untouched in each case. [`check_file`] tells those apart before
//! anything is opened for writing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::StoreError;
use crate::backend::Probe;
use crate::store::{Store, StoreOptions};

/// Why a data dir cannot be used offline.
#[derive(Debug, Error)]
pub enum OfflineError {
    #[error(
        "data dir {} is in use by a running cairn (stop it first, or use the online command with --endpoints)",
        dir.display()
    )]
    InUse { dir: PathBuf },
    #[error("{} is not a Cairn data dir: {} does not exist", dir.display(), file.display())]
    Missing { dir: PathBuf, file: PathBuf },
    #[error("{} is not a Cairn database ({message}); check --data-dir", file.display())]
    NotCairn { file: PathBuf, message: String },
    #[error("data dir {}: {source}", dir.display())]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// `DIR/member/kv.redb`.
pub fn kv_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("kv.redb")
}

/// Checks that `file` (a redb file under `data_dir`) exists, is a redb database and is not
/// held by a running process ([`crate::backend::probe`]).
pub fn check_file(data_dir: &Path, file: &Path) -> Result<(), OfflineError> {
    if !file.is_file() {
        return Err(OfflineError::Missing {
            dir: data_dir.to_path_buf(),
            file: file.to_path_buf(),
        });
    }
    match crate::backend::probe(file) {
        Probe::Free => Ok(()),
        Probe::InUse => Err(OfflineError::InUse {
            dir: data_dir.to_path_buf(),
        }),
        Probe::Foreign(message) => Err(OfflineError::NotCairn {
            file: file.to_path_buf(),
            message,
        }),
    }
}

/// Opens the store of a stopped member's data dir; refuses a missing, foreign or in-use one
/// without modifying it.
pub fn open_store(data_dir: &Path) -> Result<Arc<Store>, OfflineError> {
    let file = kv_path(data_dir);
    check_file(data_dir, &file)?;
    Store::open(&file, StoreOptions::default()).map_err(|source| store_error(data_dir, source))
}

/// Maps a store error of an offline run, recognising redb's lock error (a server that started
/// between the check and the open).
pub fn store_error(data_dir: &Path, source: StoreError) -> OfflineError {
    if source.to_string().contains("Cannot acquire lock") {
        OfflineError::InUse {
            dir: data_dir.to_path_buf(),
        }
    } else {
        OfflineError::Store {
            dir: data_dir.to_path_buf(),
            source,
        }
    }
}

/// What [`disable_auth`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthDisabled {
    pub was_enabled: bool,
    /// The auth revision afterwards (older tokens are refused).
    pub revision: u64,
}

/// Turns authentication off in a stopped member's data dir: the way back in when the root
/// password is lost. Run it on every member's data dir while they are all stopped: it makes
/// the same change in each (the auth revision moves by one everywhere), so they agree
/// again when they start; then set a new root password (`user passwd root`) and
/// `auth enable`. It is applied like a replicated command, so it is written durably.
pub fn disable_auth(data_dir: &Path) -> Result<AuthDisabled, OfflineError> {
    use crate::command::{AuthOp, AuthRequest, Command, Op};
    let store = open_store(data_dir)?;
    let was_enabled = store.auth().enabled;
    if was_enabled {
        let disable = Op::Auth(AuthOp {
            request: Some(AuthRequest::Disable(Default::default())),
        });
        let results = store
            .apply(&[Some(Command::from(disable))], &[])
            .map_err(|e| store_error(data_dir, e))?;
        for r in results {
            r.map_err(|e| store_error(data_dir, e))?;
        }
        store.flush().map_err(|e| store_error(data_dir, e))?;
    }
    Ok(AuthDisabled {
        was_enabled,
        revision: store.auth().revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_foreign_and_in_use() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_store(dir.path()),
            Err(OfflineError::Missing { .. })
        ));
        assert!(!dir.path().join("member").exists(), "nothing created");

        std::fs::create_dir_all(dir.path().join("member")).unwrap();
        std::fs::write(kv_path(dir.path()), b"not a database").unwrap();
        assert!(matches!(
            open_store(dir.path()),
            Err(OfflineError::NotCairn { .. })
        ));
        std::fs::remove_file(kv_path(dir.path())).unwrap();

        let held = Store::open(&kv_path(dir.path()), StoreOptions::default()).unwrap();
        let err = open_store(dir.path()).err().expect("refused while held");
        assert!(matches!(err, OfflineError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("is in use by a running cairn"));
        drop(held);
    }

    #[test]
    fn disabling_auth_offline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("member")).unwrap();
        assert_eq!(
            disable_auth(dir.path())
                .err()
                .map(|e| e.to_string().contains("does not exist")),
            Some(true)
        );
        {
            let s = Store::open(&kv_path(dir.path()), StoreOptions::default()).unwrap();
            let view = s.auth();
            assert!(!view.enabled);
        }
        let done = disable_auth(dir.path()).unwrap();
        assert_eq!(
            done,
            AuthDisabled {
                was_enabled: false,
                revision: 1
            }
        );
    }
}
