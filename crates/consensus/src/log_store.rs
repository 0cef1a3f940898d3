//! The raft log, vote and committed index in their own redb file (`member/raft.redb`).
//!
//! Every append is one durable (fsync'd) redb commit; openraft hands over all entries that
//! queued up meanwhile, so one fsync covers a whole batch of client writes. The committed
//! index is written without fsync (see `save_committed`). redb is synchronous:
//! each call runs on a blocking thread.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, RaftLogReader, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::types::{Entry, LogId, StorageError, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    recent: Arc<Mutex<Recent>>,
}

/// The most recently appended entries, kept in memory so applying and replicating them does
/// not read them back from the file and decode them again (bounded by their payload bytes).
#[derive(Default)]
struct Recent {
    entries: BTreeMap<u64, Entry>,
    bytes: usize,
}

/// Payload bytes of recent entries kept in memory.
const RECENT_BYTES: usize = 64 << 20;

fn payload_len(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(r) => r.command.len() + 64,
        _ => 256,
    }
}

impl Recent {
    fn push(&mut self, e: Entry) {
        self.bytes += payload_len(&e);
        self.entries.insert(e.log_id.index, e);
        while self.bytes > RECENT_BYTES {
            let Some((_, old)) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= payload_len(&old);
        }
    }

    /// Drops entries at `from` and after (truncate) or up to `upto` (purge).
    fn drop_range(&mut self, range: impl RangeBounds<u64>) {
        let gone: Vec<u64> = self.entries.range(range).map(|(i, _)| *i).collect();
        for i in gone {
            if let Some(e) = self.entries.remove(&i) {
                self.bytes -= payload_len(&e);
            }
        }
    }

    /// All entries of `start..end` if every one is here.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = *self.entries.keys().next()?;
        if start < first || end <= start {
            return None;
        }
        let out: Vec<Entry> = self
            .entries
            .range(start..end)
            .map(|(_, e)| e.clone())
            .collect();
        (out.len() as u64 == end - start).then_some(out)
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl LogStore {
    pub fn open(path: &Path) -> Result<Self, String> {
        let db =
            Database::create(path).map_err(|e| format!("open raft log {}: {e}", path.display()))?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(LOG).map_err(|e| e.to_string())?;
        txn.open_table(STATE).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(LogStore {
            db: Arc::new(db),
            recent: Arc::default(),
        })
    }

    /// Runs a redb job on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, std::io::Error> + Send + 'static,
    ) -> Result<T, std::io::Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io_err)?
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        db: &Database,
        name: &str,
    ) -> Result<Option<T>, std::io::Error> {
        let txn = db.begin_read().map_err(io_err)?;
        let t = txn.open_table(STATE).map_err(io_err)?;
        match t.get(name).map_err(io_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(io_err)?)),
            None => Ok(None),
        }
    }

    fn put_state<T: serde::Serialize>(
        db: &Database,
        name: &str,
        value: &T,
    ) -> Result<(), std::io::Error> {
        Self::put_state_with(db, name, value, Durability::Immediate)
    }

    fn put_state_with<T: serde::Serialize>(
        db: &Database,
        name: &str,
        value: &T,
        durability: Durability,
    ) -> Result<(), std::io::Error> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        let mut txn = db.begin_write().map_err(io_err)?;
        txn.set_durability(durability).map_err(io_err)?;
        txn.open_table(STATE)
            .map_err(io_err)?
            .insert(name, bytes.as_slice())
            .map_err(io_err)?;
        txn.commit().map_err(io_err)
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
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

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        if let Some(end) = end
            && let Some(hit) = self.recent().get(start, end)
        {
            return Ok(hit);
        }
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(io_err)?;
            let t = txn.open_table(LOG).map_err(io_err)?;
            let iter = match end {
                Some(e) if e <= start => return Ok(Vec::new()),
                Some(e) => t.range(start..e),
                None => t.range(start..),
            }
            .map_err(io_err)?;
            let mut out = Vec::new();
            for row in iter {
                let (_, v) = row.map_err(io_err)?;
                out.push(bincode::deserialize::<Entry>(v.value()).map_err(io_err)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(|db| {
            let last_purged: Option<LogId> = Self::get_state(db, LAST_PURGED)?;
            let txn = db.begin_read().map_err(io_err)?;
            let t = txn.open_table(LOG).map_err(io_err)?;
            let last = match t.last().map_err(io_err)? {
                Some((_, v)) => Some(
                    bincode::deserialize::<Entry>(v.value())
                        .map_err(io_err)?
                        .log_id,
                ),
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
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

    /// Not fsync'd: openraft calls this on every commit, inline in its core loop, and a
    /// committed index is only a lower bound used to apply sooner after a restart; it becomes
    /// durable with the next append (a redb commit makes earlier non-durable ones durable).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(move |db| Self::put_state_with(db, COMMITTED, &committed, Durability::None))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(|db| Ok(Self::get_state::<Option<LogId>>(db, COMMITTED)?.flatten()))
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| bincode::serialize(e).map(|b| (e.log_id.index, b)))
            .collect::<Result<_, _>>()
            .map_err(|e| StorageIOError::write_logs(&io_err(e)))?;
        let result = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(io_err)?;
                {
                    let mut t = txn.open_table(LOG).map_err(io_err)?;
                    for (index, bytes) in &encoded {
                        t.insert(*index, bytes.as_slice()).map_err(io_err)?;
                    }
                }
                txn.commit().map_err(io_err)
            })
            .await;
        if result.is_ok() {
            let mut recent = self.recent();
            for e in entries {
                recent.push(e);
            }
        }
        let flushed = result.as_ref().map(|_| ()).map_err(|e| io_err(e));
        callback.log_io_completed(flushed);
        result.map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_range(log_id.index..);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(io_err)?;
            txn.open_table(LOG)
                .map_err(io_err)?
                .retain_in(log_id.index.., |_, _| false)
                .map_err(io_err)?;
            txn.commit().map_err(io_err)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().drop_range(..=log_id.index);
        self.blocking(move |db| {
            let bytes = serde_json::to_vec(&log_id).map_err(io_err)?;
            let txn = db.begin_write().map_err(io_err)?;
            txn.open_table(STATE)
                .map_err(io_err)?
                .insert(LAST_PURGED, bytes.as_slice())
                .map_err(io_err)?;
            txn.open_table(LOG)
                .map_err(io_err)?
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(io_err)?;
            txn.commit().map_err(io_err)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Request;
    use openraft::{CommittedLeaderId, LogId};

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request {
                command: vec![0; bytes],
            }),
        }
    }

    #[test]
    fn recent_entries_are_served_whole_or_not_at_all() {
        let mut r = Recent::default();
        for i in 1..=10 {
            r.push(entry(i, 100));
        }
        assert_eq!(r.get(3, 6).map(|v| v.len()), Some(3));
        assert!(r.get(0, 4).is_none(), "index 0 was never here");
        assert!(r.get(9, 12).is_none(), "11 is not here yet");
        r.drop_range(8..);
        assert!(r.get(7, 9).is_none());
        r.drop_range(..=2);
        assert!(r.get(2, 4).is_none());
        assert_eq!(r.get(3, 8).map(|v| v.len()), Some(5));
    }

    #[test]
    fn recent_entries_stay_within_their_byte_budget() {
        let mut r = Recent::default();
        let big = RECENT_BYTES / 4;
        for i in 1..=10 {
            r.push(entry(i, big));
        }
        assert!(r.bytes <= RECENT_BYTES);
        assert!(r.get(1, 2).is_none(), "the oldest were evicted");
        assert!(r.get(10, 11).is_some());
    }
}
