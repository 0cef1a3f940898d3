//! Installing a snapshot into a live store: how a follower that fell behind the leader's
//! purged log catches up without restarting.
//!
//! The file is checked and restored into `<kv path>.installing` beside the store's file (by
//! [`restore_kv`], so with every check a restore makes), the caller's meta entries are written
//! into it durably, and the in-memory state is rebuilt from it (as [`Store::open`] does) —
//! all before any lock is taken, so reads and applies go on meanwhile. Only then, under the
//! store's locks, the file is renamed over the store's path and the database, index, revision
//! bounds and lessor are swapped; the watch hub is reset so every watcher is replayed from the
//! new data. A failure before the rename leaves the store as it was and no `.installing` file.

use std::path::{Path, PathBuf};

use super::error::{SnapshotError, io};
use super::format::SnapshotHeader;
use super::reader::{BodySummary, read_header};
use super::restore::{RestoreOptions, restore_kv};
use crate::backend::Backend;
use crate::locks::{lock, write_lock};
use crate::replace::{NewFile, dir_of, sibling_path};
use crate::store::{Store, load};

/// What an install put in place.
#[derive(Debug, Clone)]
pub struct InstallSummary {
    /// The snapshot's header: the store is now at `header.revision`, compacted at
    /// `header.compact_revision`.
    pub header: SnapshotHeader,
    /// What the full read of the file found.
    pub body: BodySummary,
    /// The store's revision before the install.
    pub previous_revision: i64,
}

/// `<kv path>.installing`.
pub fn installing_path(kv_path: &Path) -> PathBuf {
    sibling_path(kv_path, "installing")
}

impl Store {
    /// Replaces the whole content of this live store with the snapshot in `snapshot_file`
    /// (key history, revision bounds, leases with their keys, alarms) and writes `meta`
    /// (e.g. the raft applied log id and membership that match the snapshot) durably with it.
    /// The file is verified completely first (header checksum, SHA-256, every record, counts,
    /// HashKV); a bad file is refused with the reason and the store is left unchanged.
    ///
    /// Watchers stay registered: each is replayed from the new data after its position, or
    /// cancelled with the compact revision if its position was compacted. Lease clocks restart
    /// now, as at open. Synchronous and slow (it reads the whole file and writes a new
    /// database): call it from a blocking thread.
    pub fn install_snapshot(
        &self,
        snapshot_file: &Path,
        meta: &[(&str, Vec<u8>)],
    ) -> Result<InstallSummary, SnapshotError> {
        let _one_at_a_time = lock(&self.rewrite);
        let info = read_header(snapshot_file)?;
        let target = installing_path(self.path());
        // a crash during an earlier install can leave one behind; it was never in use
        let file = NewFile::claim(target.clone()).map_err(io(&target))?;
        let body = restore_kv(&info, &target, RestoreOptions::default(), &mut |_| {})?;

        let db = Backend::open(&target)?;
        {
            let txn = db.write(true)?;
            {
                let mut tables = txn.tables()?;
                for (name, value) in meta {
                    tables.meta.insert(name, value)?;
                }
            }
            txn.commit("commit install meta")?;
        }
        let min_ttl = lock(&self.lessor).min_ttl();
        let (state, lessor) = load(&db, min_ttl)?;
        let h = &info.header;
        for (what, header, found) in [
            ("revision", h.revision, state.current_rev),
            ("compact revision", h.compact_revision, state.compact_rev),
        ] {
            if header != found {
                return Err(SnapshotError::HeaderMismatch {
                    path: info.path.clone(),
                    what,
                    header,
                    body: found,
                });
            }
        }

        // the swap: lock order as everywhere (state, lessor, db)
        let mut live_state = write_lock(&self.state);
        let mut live_lessor = lock(&self.lessor);
        let mut live_db = write_lock(&self.db);
        // the rename is durable only once the directory is (fsync'd here); the data already is
        let (old_db, synced) = file
            .swap_in(&mut live_db, db, self.path())
            .map_err(io(self.path()))?;
        let previous_revision = live_state.current_rev;
        *live_state = state;
        *live_lessor = lessor;
        self.publish_auth(&live_state.auth);
        self.hub
            .reset(live_state.current_rev, live_state.compact_rev);
        drop(live_db);
        drop(live_lessor);
        drop(live_state);
        drop(old_db);
        synced.map_err(io(dir_of(self.path())))?;
        tracing::info!(
            revision = h.revision,
            compact_revision = h.compact_revision,
            previous_revision,
            "installed a snapshot"
        );
        Ok(InstallSummary {
            header: info.header,
            body,
            previous_revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_path_appends_a_suffix() {
        assert_eq!(
            installing_path(Path::new("/d/member/kv.redb")),
            PathBuf::from("/d/member/kv.redb.installing")
        );
        assert_eq!(
            installing_path(Path::new("kv.redb")),
            PathBuf::from("kv.redb.installing")
        );
    }
}
