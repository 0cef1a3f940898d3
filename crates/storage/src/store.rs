//! The store: opens its file (`backend/`), rebuilds the index, serves reads, applies replicated
//! commands in batches, and runs the watch sync thread.
//!
//! Locking: `state` (index + revision bounds) is a std RwLock held for the length of one read
//! or one apply batch; `lessor` is a separate mutex so keep-alives never wait on reads; the
//! lock order is state, then lessor, then `db`; the watch hub's short mutex may be taken under
//! any of them, never the other way round. A snapshot install (`snapshot/install.rs`) builds
//! the new database and state without them and takes all three only to swap; a defragment
//! (`defrag.rs`) copies without them and holds `state` (shared: reads go on) only to copy the
//! tail, and `db` only to swap. The compactor (`compactor.rs`) holds `state` only to compact
//! a chunk of the index or to count what a batch freed, and during a batch `commit_lock` and
//! `db` shared. Backend calls are synchronous: callers on an async runtime run them on
//! blocking threads.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::{AlarmMember, RangeRequest, RangeResponse};
use cairn_proto::mvccpb::{Event, KeyValue};
use prost::Message;

use crate::auth::{AuthView, SimpleTokens, TokenInfo};
use crate::backend::{AlarmScan, Backend, KeyScan};
use crate::compact::{Compaction, CompactionPace};
use crate::error::{Result, StoreError};
use crate::gate::Gate;
use crate::index::{KeyRange, TreeIndex};
use crate::lease::{Lease, Lessor};
use crate::locks::{lock, read_lock, write_lock};
use crate::open_files::OpenFile;
use crate::overlay::Overlay;
use crate::read::View;
use crate::revision::Revision;
use crate::schema::{
    FINISHED_COMPACT_REV, KeyValueHead, LeaseRecord, SCHEDULED_COMPACT_REV, alarm_from_key,
    meta_revision,
};
use crate::state::{Raised, State, row_bytes};
use crate::wake::{Finished, Wake};
use crate::watch::{WatchHub, event_of};

/// Settings of a store; the defaults match etcd's.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Leases shorter than this are granted this TTL (etcd: 1.5 election timeouts, rounded up).
    pub min_lease_ttl: i64,
    /// How long a simple token stays valid after its last use (etcd's `--auth-token-ttl`).
    pub token_ttl: Duration,
    /// How a compaction's rows are deleted (etcd's compaction batch flags).
    pub compaction: CompactionPace,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            min_lease_ttl: 2,
            token_ttl: Duration::from_secs(300),
            compaction: CompactionPace::default(),
        }
    }
}

/// Result of a HashKV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    pub hash_revision: i64,
}

pub struct Store {
    pub(crate) path: PathBuf,
    pub(crate) db: RwLock<Backend>,
    pub(crate) state: RwLock<State>,
    pub(crate) lessor: Mutex<Lessor>,
    pub(crate) hub: Arc<WatchHub>,
    /// The auth state as checks read it: `State::auth` published after each batch that
    /// changed it (checks take no lock an apply holds).
    pub(crate) auth: RwLock<Arc<AuthView>>,
    /// Simple tokens, registered by applied Authenticate commands.
    pub(crate) tokens: Mutex<SimpleTokens>,
    /// Held for a whole snapshot install or defragment: each builds a new file beside the
    /// store's and swaps it in, so they must not overlap (or share a file).
    pub(crate) rewrite: Mutex<()>,
    /// The file's size as last measured, and when (see [`Store::file_size`]).
    pub(crate) size: Mutex<(Instant, i64)>,
    /// An applied batch is not durable yet (`apply` commits without fsync).
    pub(crate) unflushed: AtomicBool,
    /// Held by whoever moves the overlay's pending batch to redb (`commit.rs`).
    pub(crate) commit_lock: Mutex<()>,
    /// Wakes the committer thread.
    pub(crate) committer: Arc<Wake>,
    /// Wakes the compactor thread (a compaction was scheduled).
    pub(crate) compactor: Arc<Wake>,
    /// Notified when a compaction has deleted its rows.
    pub(crate) compaction_finished: Finished,
    pub(crate) compaction_pace: CompactionPace,
    /// How the background threads hold the store (see `gate.rs`).
    pub(crate) background: Arc<Gate>,
    /// This process has the file open; last, so it is released after `db` is closed.
    pub(crate) _file: OpenFile,
}

/// A fresh store in a temporary directory, for unit tests (the directory goes with the guard).
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap();
    (dir, store)
}

/// How old a measured file size [`Store::file_size`] may return.
const SIZE_MAX_AGE: Duration = Duration::from_millis(10);

/// The bytes a database file takes on disk: its length, or less when redb grew it with a
/// sparse tail it has not written yet (it doubles files below 4 GiB; a fresh defragmented
/// file would otherwise look twice its size to Status and the quota).
pub fn file_bytes(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.len().min(m.blocks() * 512) as i64)
        .unwrap_or(0)
}

impl Store {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The auth state as of the last applied batch.
    pub fn auth(&self) -> Arc<AuthView> {
        read_lock(&self.auth).clone()
    }

    /// What a simple token stands for (its TTL restarted); `None` if unknown or expired.
    pub fn token(&self, token: &str) -> Option<TokenInfo> {
        lock(&self.tokens).lookup(token, Instant::now())
    }

    /// Publishes the state's auth view for checks (after an apply or an install changed it).
    pub(crate) fn publish_auth(&self, view: &Arc<AuthView>) {
        if Arc::ptr_eq(&read_lock(&self.auth), view) {
            return;
        }
        *write_lock(&self.auth) = view.clone();
    }

    pub fn current_revision(&self) -> i64 {
        read_lock(&self.state).current_rev
    }

    pub fn compact_revision(&self) -> i64 {
        read_lock(&self.state).compact_rev
    }

    /// Runs `f` over a consistent view of the current data.
    fn with_view<R>(&self, f: impl FnOnce(&View<'_>) -> Result<R>) -> Result<R> {
        let state = read_lock(&self.state);
        // the lock keeps a defragment from closing the file under the table
        let db = read_lock(&self.db);
        let table = db.read()?.keys()?;
        let view = View {
            index: &state.index,
            overlay: &state.overlay,
            table: &table,
            current_rev: state.current_rev,
            compact_rev: state.compact_rev,
        };
        f(&view)
    }

    /// etcd's Range with every option.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.with_view(|v| v.range(req))
    }

    /// The key as it was at `rev` (watch prev_kv); `None` if absent or compacted.
    pub fn get_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        self.with_view(|v| {
            Ok(v.range_kvs(&KeyRange::new(key.to_vec(), vec![]), rev, 1)?
                .0
                .pop())
        })
        .ok()
        .flatten()
    }

    /// HashKV at `rev` (0 = current).
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash> {
        // rows a compaction still has to delete are told apart by its keep set
        self.with_indexed_state(|state| {
            // etcd refuses a hash at the compact revision itself too
            if rev > 0 && rev <= state.compact_rev {
                return Err(StoreError::Compacted);
            }
            if rev > state.current_rev {
                return Err(StoreError::FutureRevision);
            }
            let rev = if rev == 0 { state.current_rev } else { rev };
            let keep = state.index.keep(rev);
            // the lock keeps a defragment from closing the file under the table
            let db = read_lock(&self.db);
            let table = db.read()?.keys()?;
            let hash = crate::hash::hash_kv(
                &table,
                &state.overlay,
                state.compact_rev,
                rev,
                &keep,
                state.compacting.as_deref(),
            )?;
            Ok(KvHash {
                hash,
                compact_revision: state.compact_rev,
                hash_revision: rev,
            })
        })?
    }

    /// A hash of every stored row of every table (Maintenance.Hash); differs between members
    /// whose raft metadata differs, like etcd's.
    pub fn hash_all(&self) -> Result<u32> {
        // as etcd's backend hash, after committing what was applied
        let (txn, ()) = self.committed_read(|_| ())?;
        let mut crc = 0u32;
        for row in txn.keys()?.iter()? {
            let row = row?;
            crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, row.key()), row.value());
        }
        txn.meta()?.each(|name, value| {
            crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, name.as_bytes()), value);
            Ok(())
        })?;
        Ok(crc)
    }

    pub fn watch_hub(&self) -> &WatchHub {
        &self.hub
    }

    /// Keep-alive; `None` when the lease does not exist.
    pub fn lease_renew(&self, id: i64) -> Option<i64> {
        lock(&self.lessor).renew(id, Instant::now())
    }

    pub fn lease(&self, id: i64) -> Option<Lease> {
        lock(&self.lessor).get(id).cloned()
    }

    pub fn lease_exists(&self, id: i64) -> bool {
        lock(&self.lessor).contains(id)
    }

    pub fn lease_ids(&self) -> Vec<i64> {
        lock(&self.lessor).ids()
    }

    pub fn effective_lease_ttl(&self, ttl: i64) -> i64 {
        lock(&self.lessor).effective_ttl(ttl)
    }

    /// Leases whose time is up (the leader revokes them through consensus).
    pub fn expired_leases(&self) -> Vec<i64> {
        lock(&self.lessor).expired(Instant::now())
    }

    /// Restarts every lease clock; called when this member becomes leader.
    pub fn promote_leases(&self, extend: Duration) {
        lock(&self.lessor).promote(Instant::now(), extend);
    }

    pub fn alarms(&self) -> Result<Vec<AlarmMember>> {
        let mut out = Vec::new();
        read_lock(&self.db).read()?.alarms()?.each_key(|k| {
            if let Some((member_id, alarm)) = alarm_from_key(k) {
                out.push(AlarmMember { member_id, alarm });
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads a meta value written with an apply batch (e.g. raft state).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let state = read_lock(&self.state);
        if let Some(v) = state.overlay.meta(name) {
            return Ok(Some(v.to_vec()));
        }
        read_lock(&self.db).read()?.meta()?.get(name)
    }

    /// Whether writes were applied since the last [`Store::flush`].
    pub fn has_unflushed(&self) -> bool {
        self.unflushed.load(Ordering::Acquire)
    }

    /// The backend's size for the quota (etcd's backend size): the database file on disk
    /// (see [`file_bytes`]), or the bytes of the key table's rows when more — the file shows
    /// applied writes only once they are flushed, up to a second later. Measured at most
    /// `SIZE_MAX_AGE` ago: the quota checks it before every write, and one `stat` per write
    /// was a few percent of a put's CPU.
    pub fn backend_size(&self) -> i64 {
        let mut size = lock(&self.size);
        if size.0.elapsed() >= SIZE_MAX_AGE {
            // callers are on the async runtime: while a compaction, a defragment's tail or a
            // commit holds the state, the last measure stands
            let rows = match self.state.try_read() {
                Ok(state) => Some(state.data_bytes),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().data_bytes),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(rows) = rows {
                *size = (Instant::now(), file_bytes(&self.path).max(rows));
            }
        }
        size.1
    }

    /// Size of the database file on disk (see [`file_bytes`]), and the bytes in use: the
    /// key table's rows, counted as they are written and compacted (constant time; redb's
    /// own statistics walk every page of the file while holding its write lock).
    ///
    /// Writes applied since the last flush are flushed first (one durable commit): until then
    /// redb keeps their pages in memory and the file would not show them. A flush already
    /// under way (the background one clears `unflushed` before it commits) is waited for.
    pub fn db_size(&self) -> Result<(i64, i64)> {
        if self.unflushed.load(Ordering::Acquire) {
            self.flush()?;
        } else {
            drop(lock(&self.commit_lock));
        }
        let total = file_bytes(&self.path);
        let in_use = read_lock(&self.state).data_bytes;
        Ok((total, in_use.min(total)))
    }

    /// Number of keys that exist now.
    pub fn key_count(&self) -> usize {
        read_lock(&self.state).index.live_keys()
    }

    /// Stored events with revision in `from..=upto` whose key is in `range` (watch replay).
    pub(crate) fn events_between(
        &self,
        range: &KeyRange,
        from: i64,
        upto: i64,
    ) -> Result<Vec<Event>> {
        let state = read_lock(&self.state);
        // the lock keeps a defragment from closing the file under the table
        let db = read_lock(&self.db);
        let table = db.read()?.keys()?;
        let start = Revision::scan_start(from);
        let end = Revision::scan_start(upto + 1);
        let mut out = Vec::new();
        let bounds = (Bound::Included(&start[..]), Bound::Excluded(&end[..]));
        state
            .overlay
            .for_each_row(&table, bounds.0, bounds.1, |k, v| {
                let Some((rev, tombstone)) = Revision::from_bytes(k) else {
                    return Ok(());
                };
                let kv = KeyValue::decode(v).map_err(|e| {
                    StoreError::Corrupt(format!("KeyValue at revision {}: {e}", rev.main))
                })?;
                if range.contains(&kv.key) {
                    out.push(event_of(kv, rev.main, tombstone));
                }
                Ok(())
            })?;
        Ok(out)
    }
}

/// Everything the store keeps in memory, rebuilt from a database: the index and revision
/// bounds, the alarms raised, and the lessor (leases from the `lease` table, keys attached as their KeyValues
/// say, every clock starting now).
pub(crate) fn load(db: &Backend, min_lease_ttl: i64) -> Result<(State, Lessor)> {
    let mut lessor = Lessor::new(min_lease_ttl);
    let mut restored = Vec::new();
    let (mut state, leased) = rebuild(db)?;
    let now = Instant::now();
    {
        let txn = db.read()?;
        state.raised = Raised::read(&txn.alarms()?)?;
        state.auth = Arc::new(crate::auth::load(&txn)?);
        txn.leases()?.each(|_, v| {
            let rec = LeaseRecord::decode(v)
                .map_err(|e| StoreError::Corrupt(format!("lease record: {e}")))?;
            if rec.remaining_ttl > 0 {
                lessor.insert_restored(rec.id, rec.ttl, rec.remaining_ttl, now);
                restored.push(rec);
            } else {
                lessor.insert(rec.id, rec.ttl, now);
            }
            Ok(())
        })?;
    }
    if !restored.is_empty() {
        // the time left is this start's only: a later restart gives the full TTL, as etcd
        // does without a checkpoint (every member clears it alike at its first start)
        let txn = db.write(true)?;
        {
            let mut t = txn.tables()?;
            for rec in restored {
                let cleared = LeaseRecord {
                    remaining_ttl: 0,
                    ..rec
                };
                t.lease.insert(cleared.id, &cleared.encode_to_vec())?;
            }
        }
        txn.commit("clear the restored leases' time left")?;
    }
    for (key, id) in leased {
        lessor.move_key(&key, id);
    }
    Ok((state, lessor))
}

/// Scans the `key` table once: rebuilds the index, the revision bounds, and which lease each
/// live key holds.
fn rebuild(db: &Backend) -> Result<(State, HashMap<Vec<u8>, i64>)> {
    let txn = db.read()?;
    let meta = txn.meta()?;
    // etcd's compact revision is -1 until the first compaction (HashKV reports it)
    let finished = meta_revision(meta.get(FINISHED_COMPACT_REV)?).unwrap_or(-1);
    let scheduled = meta_revision(meta.get(SCHEDULED_COMPACT_REV)?).unwrap_or(-1);
    if scheduled < finished {
        return Err(StoreError::Corrupt(format!(
            "the compaction finished at revision {finished} was scheduled at {scheduled} only; restore from a snapshot"
        )));
    }
    let table = txn.keys()?;
    let mut index = TreeIndex::default();
    let mut leased: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut last = 0;
    let mut data_bytes = 0;
    for row in table.iter()? {
        let row = row?;
        data_bytes += row_bytes(row.key(), row.value());
        let (rev, tombstone) = Revision::from_bytes(row.key())
            .ok_or_else(|| StoreError::Corrupt("a key table row has no revision key".into()))?;
        let kv = KeyValueHead::decode(row.value())
            .map_err(|e| StoreError::Corrupt(format!("KeyValue at revision {}: {e}", rev.main)))?;
        index.restore(&kv.key, kv.create_revision, rev, kv.version, tombstone);
        if tombstone || kv.lease == 0 {
            leased.remove(&kv.key);
        } else {
            leased.insert(kv.key.clone(), kv.lease);
        }
        last = rev.main;
    }
    // a compaction scheduled and not finished (a crash during its deletion) is scheduled
    // again: the index compacted as it was, the rows left deleted in the background
    let compacting =
        (scheduled > finished).then(|| Arc::new(Compaction::of(&mut index, scheduled)));
    let current_rev = last.max(scheduled).max(1);
    Ok((
        State {
            index,
            current_rev,
            compact_rev: scheduled,
            compacting,
            data_bytes,
            overlay: Overlay::default(),
            raised: Raised::default(),
            auth: Arc::new(AuthView::default()),
        },
        leased,
    ))
}
