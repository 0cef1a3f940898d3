//! Replacing a live store's database file with a new one built beside it: what a snapshot
//! install (`snapshot/install.rs`) and a defragment (`defrag.rs`) share.
//!
//! Both build `<kv path>.<suffix>` without the store's locks, and hold a [`NewFile`] for it
//! meanwhile, which removes the file on any failure. Once the file is complete and durable, the
//! caller takes the store's locks and calls [`NewFile::swap_in`]: the file is renamed over the
//! store's path, its database takes the old one's place, and the directory is fsync'd so the
//! rename survives a crash. After a crash the path holds either the old or the new file, each
//! complete.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::backend::Backend;

/// `<kv path>.defrag`: a defragment's copy (removed at open if a crash left it).
pub fn defrag_path(kv_path: &Path) -> PathBuf {
    sibling_path(kv_path, "defrag")
}

/// `<kv path>.<suffix>`, beside the store's file (same file system, so the rename is atomic).
pub(crate) fn sibling_path(kv_path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(kv_path.as_os_str());
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// A file being built to replace the store's; removed when dropped unless swapped in, so
/// nothing half-written survives a failure.
pub(crate) struct NewFile {
    path: PathBuf,
    armed: bool,
}

impl NewFile {
    /// Claims `path` for a new file, removing one a crash left behind (it was never in use).
    pub(crate) fn claim(path: PathBuf) -> io::Result<NewFile> {
        remove_if_present(&path)?;
        Ok(NewFile { path, armed: true })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Under the store's locks: renames the file over `store_path` and puts `db` (opened on
    /// this file) in `live`'s place. Returns the old database — drop it after releasing the
    /// locks, closing it takes time — and the result of fsyncing the directory: when that
    /// fails the new database is in use, but the rename may not survive a crash. A failed
    /// rename changes nothing (`db` is closed and the file removed).
    pub(crate) fn swap_in(
        mut self,
        live: &mut Backend,
        db: Backend,
        store_path: &Path,
    ) -> io::Result<(Backend, io::Result<()>)> {
        if let Err(e) = std::fs::rename(&self.path, store_path) {
            drop(db);
            return Err(e);
        }
        self.armed = false;
        let old = std::mem::replace(live, db);
        Ok((old, sync_dir(store_path)))
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove_if_present(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove an unfinished file");
        }
    }
}

/// Removes `path`; absent is fine.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Fsyncs the directory holding `file`, so a rename into it survives a crash.
pub(crate) fn sync_dir(file: &Path) -> io::Result<()> {
    std::fs::File::open(dir_of(file))?.sync_all()
}

/// The directory holding `file` (`.` for a bare file name).
pub(crate) fn dir_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_path_appends_a_suffix() {
        assert_eq!(
            sibling_path(Path::new("/d/member/kv.redb"), "defrag"),
            PathBuf::from("/d/member/kv.redb.defrag")
        );
        assert_eq!(
            sibling_path(Path::new("kv.redb"), "installing"),
            PathBuf::from("kv.redb.installing")
        );
    }

    #[test]
    fn an_unswapped_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb.new");
        std::fs::write(&path, b"left by a crash").unwrap();
        let file = NewFile::claim(path.clone()).unwrap();
        assert!(!path.exists(), "a leftover is removed when claimed");
        std::fs::write(file.path(), b"half written").unwrap();
        drop(file);
        assert!(!path.exists(), "removed on drop");
    }

    #[test]
    fn swap_in_renames_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("kv.redb");
        let mut live = Backend::open(&store_path).unwrap();
        let file = NewFile::claim(sibling_path(&store_path, "new")).unwrap();
        let db = Backend::open(file.path()).unwrap();
        let new_path = file.path().to_path_buf();
        let (old, synced) = file.swap_in(&mut live, db, &store_path).unwrap();
        synced.unwrap();
        drop(old);
        assert!(!new_path.exists());
        assert!(store_path.exists());
    }
}
