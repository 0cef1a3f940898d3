//! Opening and closing a store: the file (`backend/`), the state rebuilt from it
//! (`store::load`), the background threads (the committer, the compactor, watch replay)
//! and their gate; closing commits what the committer has not.
//!
//! Apart from `store.rs` so that the store's type and reads sit below the threads' files,
//! which use them (`commit.rs`, `compactor.rs`), and this file above all of them.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::auth::SimpleTokens;
use crate::backend::Backend;
use crate::commit::commit_loop;
use crate::compactor::compact_loop;
use crate::error::{Result, StoreError};
use crate::gate::Gate;
use crate::locks::read_lock;
use crate::open_files::OpenFile;
use crate::store::{Store, StoreOptions, file_bytes, load};
use crate::wake::{Finished, Wake};
use crate::watch::WatchHub;

impl Store {
    /// Opens (or creates) the store at `path` and rebuilds its in-memory state.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Arc<Store>> {
        let file = OpenFile::claim(path);
        let db = Backend::open(path)?;
        // a defragment cut short by a crash leaves its copy behind; this process now holds
        // the store's file lock, so no other one is still writing it
        let stale = crate::replace::defrag_path(path);
        crate::replace::remove_if_present(&stale).map_err(|e| StoreError::Backend {
            context: "remove an unfinished defragment copy",
            message: format!("{}: {e}", stale.display()),
        })?;
        Self::with_backend(path, db, file, opts)
    }

    /// A store on a simulated file (`path` only names it: nothing is written there unless
    /// the test defragments or installs a snapshot).
    #[cfg(test)]
    pub(crate) fn open_on(
        path: &Path,
        crash_file: crate::backend::crash::CrashFile,
        opts: StoreOptions,
    ) -> Result<Arc<Store>> {
        let file = OpenFile::claim(path);
        Self::with_backend(path, Backend::open_on(crash_file)?, file, opts)
    }

    fn with_backend(
        path: &Path,
        db: Backend,
        file: OpenFile,
        opts: StoreOptions,
    ) -> Result<Arc<Store>> {
        let (state, lessor) = load(&db, opts.min_lease_ttl)?;
        let hub = Arc::new(WatchHub::new(state.current_rev, state.compact_rev));
        let auth = RwLock::new(state.auth.clone());
        let store = Arc::new(Store {
            path: path.to_path_buf(),
            auth,
            tokens: Mutex::new(SimpleTokens::new(opts.token_ttl)),
            db: RwLock::new(db),
            state: RwLock::new(state),
            lessor: Mutex::new(lessor),
            hub,
            rewrite: Mutex::new(()),
            size: Mutex::new((Instant::now(), file_bytes(path))),
            unflushed: AtomicBool::new(false),
            commit_lock: Mutex::new(()),
            committer: Arc::new(Wake::default()),
            compactor: Arc::new(Wake::default()),
            compaction_finished: Finished::default(),
            compaction_pace: opts.compaction,
            background: Arc::new(Gate::default()),
            _file: file,
        });
        store.spawn_background("watch-sync", store.hub.clone(), sync_loop)?;
        store.spawn_background("store-commit", store.committer.clone(), commit_loop)?;
        store.spawn_background("store-compact", store.compactor.clone(), compact_loop)?;
        if read_lock(&store.state).compacting.is_some() {
            // a compaction cut short: its deletion resumes
            store.compactor.poke();
        }
        Ok(store)
    }

    /// Stops the background threads (the committer, watch replay) from taking the store
    /// again and waits for the one at work, so that the caller's handles and those it knows
    /// of are the last: for closing the store and reopening its file in the same process.
    /// Applied writes the committer has not written yet go to redb when the store is dropped
    /// (or with [`Store::flush`]).
    pub fn stop_background(&self) {
        self.background.close_and_wait();
    }

    /// Closes the store on this thread ([`Store::stop_background`], then drops this handle):
    /// when it returns `Ok`, the database file is closed and free. A handle held elsewhere is
    /// given back as the error.
    pub fn close(self: Arc<Self>) -> std::result::Result<(), Arc<Self>> {
        self.stop_background();
        Arc::try_unwrap(self).map(drop)
    }
}

impl Drop for Store {
    /// What the committer has not written yet goes to redb (without fsync, as every apply).
    fn drop(&mut self) {
        self.background.close();
        if let Err(e) = self.commit_overlay(false, &[]) {
            tracing::error!(error = %e, "committing applied writes at close failed; the raft log still holds them");
        }
    }
}

impl Store {
    /// Starts a background thread running `run(store, part, gate)`: it holds the store
    /// weakly and through the [`Gate`], and `part` (what wakes or feeds it) strongly.
    fn spawn_background<P: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        part: P,
        run: fn(Weak<Store>, P, Arc<Gate>),
    ) -> Result<()> {
        let (weak, gate) = (Arc::downgrade(self), self.background.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(weak, part, gate))
            .map(|_| ())
            .map_err(|e| StoreError::Backend {
                context: "start a store thread",
                message: format!("{name}: {e}"),
            })
    }
}

/// Replays history to unsynced watchers until the store is dropped. It holds the store only
/// while replaying, so dropping the last handle closes the database promptly.
fn sync_loop(store: Weak<Store>, hub: Arc<WatchHub>, gate: Arc<Gate>) {
    const MAX_REVS_PER_ROUND: i64 = 1000;
    while store.strong_count() > 0 {
        let (jobs, current) = hub.take_jobs(Duration::from_millis(200));
        if jobs.is_empty() {
            continue;
        }
        let Some(s) = gate.hold(&store) else { return };
        let mut progressed = false;
        for job in jobs {
            let upto = current.min(job.from + MAX_REVS_PER_ROUND - 1);
            match s.events_between(&job.range, job.from, upto) {
                Ok(events) => progressed |= hub.deliver(&job, events, upto),
                Err(e) => tracing::error!(error = %e, watcher = job.id, "watch replay failed"),
            }
        }
        drop(s);
        if !progressed {
            // every unsynced watcher's channel is full: give its reader time
            std::thread::sleep(crate::watch::FULL_CHANNEL_RETRY);
        }
    }
}
