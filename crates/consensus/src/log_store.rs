//! The raft log, vote and committed index: entries in a write-ahead log, the vote and IDs in
//! the storage crate's [`StateFile`] (`member/raft.redb`).
//!
//! Entries go to a write-ahead log (`log_store/wal.rs`). openraft 0.9 waits for each append to
//! be durable before it takes the next, so `append` writes and syncs in place (one contiguous
//! write and one fdatasync, about 0.1 ms): handing it to another thread only added two thread
//! wake-ups per write. Concurrent client writes are batched before they reach raft
//! (`proposer.rs`), which is where group commit comes from. Recent entries are also kept in
//! memory (`log_store/recent.rs`) and read from there. The vote is
//! written durably on its own. The committed index is not stored (openraft's default): the
//! state machine records what it applied, and the leader tells a restarted member the rest;
//! writing it made every log commit rewrite one more table. The state file is synchronous:
//! its reads and writes run on blocking threads.

mod recent;
mod wal;

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_proto::stages::{self, Stage};
use cairn_storage::StateFile;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError, Vote};

use crate::types::{Entry, LogId, StorageError, TypeConfig};
use recent::Recent;
use wal::Wal;

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
/// Page cache of the state file (its backend's default is 1 GiB; the file holds a few values).
const LOG_CACHE_BYTES: usize = 32 << 20;

/// Entries an older Cairn kept in `raft.redb` move to the write-ahead log once.
fn move_legacy_entries(file: &StateFile, wal: &mut Wal) -> Result<(), std::io::Error> {
    if !file.has_legacy_entries().map_err(io_err)? {
        return Ok(());
    }
    if wal.is_empty() {
        let rows = file.legacy_entries().map_err(io_err)?;
        if let Some((_, v)) = rows.last() {
            let last = bincode::deserialize::<Entry>(v).map_err(io_err)?.log_id;
            wal.append(&rows, last)?;
        }
    }
    file.clear_legacy_entries().map_err(io_err)
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<StateFile>,
    wal: Arc<Mutex<Wal>>,
    recent: Arc<Mutex<Recent>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens the raft state in `path` (`member/raft.redb`) and the log entries in the `wal`
    /// directory beside it.
    pub fn open(path: &Path) -> Result<Self, String> {
        let db = StateFile::open(path, LOG_CACHE_BYTES)?;
        let purged: Option<LogId> = Self::get_state(&db, LAST_PURGED).map_err(|e| e.to_string())?;
        let mut wal = Wal::open(&path.with_file_name("wal"), purged.map(|p| p.index))
            .map_err(|e| e.to_string())?;
        move_legacy_entries(&db, &mut wal).map_err(|e| {
            format!(
                "move the raft log of {} to its write-ahead log: {e}",
                path.display()
            )
        })?;
        let last = wal.last();
        let recent = Arc::new(Mutex::new(Recent::default()));
        lock(&recent).set_flushed(last.map(|l| l.index));
        Ok(LogStore {
            db: Arc::new(db),
            wal: Arc::new(Mutex::new(wal)),
            recent,
        })
    }

    /// Runs a job on the write-ahead log on a blocking thread; afterwards what the log holds
    /// is durable.
    async fn on_wal(
        &self,
        job: impl FnOnce(&StateFile, &mut Wal) -> Result<(), std::io::Error> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        let (db, wal, recent) = (self.db.clone(), self.wal.clone(), self.recent.clone());
        tokio::task::spawn_blocking(move || {
            let mut wal = lock(&wal);
            job(&db, &mut wal)?;
            lock(&recent).set_flushed(wal.last().map(|l| l.index));
            Ok(())
        })
        .await
        .map_err(io_err)?
    }

    /// Runs a state file job on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateFile) -> Result<T, std::io::Error> + Send + 'static,
    ) -> Result<T, std::io::Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io_err)?
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        db: &StateFile,
        name: &str,
    ) -> Result<Option<T>, std::io::Error> {
        match db.get(name).map_err(io_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(io_err)?)),
            None => Ok(None),
        }
    }

    fn put_state<T: serde::Serialize>(
        db: &StateFile,
        name: &str,
        value: &T,
    ) -> Result<(), std::io::Error> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        db.put(name, &bytes).map_err(io_err)
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        lock(&self.recent)
    }

    /// A small named value kept beside the log (member and cluster IDs).
    pub fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, String> {
        Self::get_state(&self.db, name).map_err(|e| e.to_string())
    }

    pub fn write_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), String> {
        Self::put_state(&self.db, name, value).map_err(|e| e.to_string())
    }

    /// Writes `entries` to the write-ahead log and syncs them; also kept in memory. The one
    /// way entries are appended: raft's `append`, and `--force-new-cluster` before raft runs.
    pub(crate) fn write_entries(&self, entries: Vec<Entry>) -> std::io::Result<()> {
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(());
        };
        let rows: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| bincode::serialize(e).map(|b| (e.log_id.index, b)))
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        {
            let mut recent = self.recent();
            for e in entries {
                recent.push(e);
            }
        }
        lock(&self.wal).append(&rows, last)?;
        self.recent().set_flushed(Some(last.index));
        Ok(())
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => Some(e + 1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

/// The entries at `places` (located under the lock, read outside it), and whether all of
/// them were. An entry whose bytes no longer check out may have been rewritten since it was
/// located: raft truncated a conflicting tail (a restarted ex-leader's, when the new leader's
/// entries arrive) and appended over it, or purged it. It is looked at again under the lock,
/// which every change holds: gone, the answer stops short before it (raft allows a range to
/// end early, and what follows is not the entries asked about); still there and still bad, it
/// is damage. Found by the robustness soak: a restarted ex-leader's replication task read its
/// old tail while the new leader's entries replaced it, took that for a damaged log, and the
/// member stopped.
fn read_located(
    wal: &Mutex<Wal>,
    places: Vec<(
        u64,
        std::sync::Arc<std::fs::File>,
        std::path::PathBuf,
        wal::Loc,
    )>,
) -> Result<(Vec<Entry>, bool), std::io::Error> {
    let mut out = Vec::with_capacity(places.len());
    for (index, file, path, loc) in places {
        match wal::read_entry(&file, &path, index, loc) {
            Ok(e) => out.push(e),
            Err(first) => {
                let wal = lock(wal);
                match wal.locate(index, index + 1).pop() {
                    None => return Ok((out, false)),
                    Some((_, file, path, now)) => match wal::read_entry(&file, &path, index, now) {
                        Ok(e) => {
                            let rewritten = now != loc;
                            out.push(e);
                            if rewritten {
                                // what follows was rewritten too: stop here
                                return Ok((out, false));
                            }
                        }
                        Err(_) => return Err(first),
                    },
                }
            }
        }
    }
    Ok((out, true))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        let end = match end {
            Some(e) => e,
            None => self.recent().last_index().map_or(u64::MAX, |l| l + 1),
        };
        if end <= start {
            return Ok(Vec::new());
        }
        // what is in memory first: an entry missing there was flushed before this look, so
        // the file read below has it (unless raft purged it meanwhile)
        let (file_end, tail) = self.recent().tail(start, end);
        if file_end == start {
            return Ok(tail);
        }
        let places = lock(&self.wal).locate(start, file_end);
        let wal = self.wal.clone();
        let (mut out, whole) = tokio::task::spawn_blocking(move || read_located(&wal, places))
            .await
            .map_err(io_err)
            .and_then(|r| r)
            .map_err(|e| StorageError::from(StorageIOError::read_logs(&e)))?;
        if whole {
            out.extend(tail);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let queued = self.recent().last().map(|e| e.log_id);
        let written = lock(&self.wal).last();
        self.blocking(move |db| {
            let last_purged: Option<LogId> = Self::get_state(db, LAST_PURGED)?;
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: queued.or(written).or(last_purged),
            })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |db| Self::put_state(db, VOTE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.blocking(|db| Self::get_state(db, VOTE))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Writes the entries to the write-ahead log and syncs them, then calls `flushed`; they are
    /// also kept in memory for the apply and for replication that follow.
    async fn append<I>(
        &mut self,
        entries: I,
        flushed: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        stages::mark(Stage::Append);
        let written = self.write_entries(entries.into_iter().collect());
        stages::mark(Stage::Synced);
        flushed.log_io_completed(written.as_ref().map(|_| ()).map_err(io_err));
        written.map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_range(log_id.index..);
        self.on_wal(move |_, wal| wal.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    /// Records `log_id` as purged (durably, before anything is deleted), then drops the
    /// entries up to it.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_range(..=log_id.index);
        self.on_wal(move |db, wal| {
            Self::put_state(db, LAST_PURGED, &log_id)?;
            wal.purge(log_id.index)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
