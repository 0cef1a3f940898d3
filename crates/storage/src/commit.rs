//! Committing the overlay (`overlay.rs`) to redb: the committer thread, the durable flush,
//! and a read of redb with every applied write in it.
//!
//! Ordering: a commit begins its redb write transaction while it holds the state lock, so
//! every apply that writes redb itself (compaction, leases, alarms, a full overlay) does so
//! after it, and the applied index in `meta` never goes back. `commit_lock` keeps the
//! committer thread and a flush from both moving batches. Lock order: `commit_lock`, then the
//! store's own (state, lessor, db).
//!
//! Nobody waits for the backend's writer while holding the state lock (every read and apply
//! would wait with them): under the lock they try to begin, and when the writer is taken
//! (a durable flush of a large store takes 200-300 ms, a compaction batch up to 60), they let
//! go, wait for it ([`crate::backend::Backend::wait_for_writer`]) and try again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::backend::ReadTx;
use crate::error::Result;
use crate::gate::Gate;
use crate::locks::{lock, read_lock, write_lock};
use crate::overlay::COMMIT_DELAY;
use crate::state::State;
use crate::store::Store;
use crate::wake::Wake;

/// A commit longer than this is logged (etcd's threshold for its "slow fdatasync" warning).
const SLOW_COMMIT: Duration = Duration::from_secs(1);

/// How long [`Store::committed_read`] waits for a compaction's deletion before it fails.
const COMPACTION_WAIT: Duration = Duration::from_secs(600);

/// Commits the overlay a few milliseconds after each first pending write, until the store is
/// dropped or stops its background threads (it holds the store only while committing).
pub(crate) fn commit_loop(store: Weak<Store>, wake: Arc<Wake>, gate: Arc<Gate>) {
    while store.strong_count() > 0 {
        if !wake.wait(Duration::from_millis(200)) {
            continue;
        }
        std::thread::sleep(COMMIT_DELAY);
        let Some(s) = gate.hold(&store) else { return };
        if let Err(e) = s.commit_overlay(false, &[]) {
            tracing::error!(error = %e, "committing applied writes failed; the next apply writes redb itself");
        }
    }
}

impl Store {
    /// Writes the pending batch to redb in one transaction (fsync'd when `durable`, which
    /// also makes every earlier commit durable); returns the `meta` values named in
    /// `meta_names` as that transaction committed them.
    pub(crate) fn commit_overlay(
        &self,
        durable: bool,
        meta_names: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let _one = lock(&self.commit_lock);
        // the transaction begins under the state lock (see the module's ordering note), but
        // is never waited for there: when the writer is taken, wait without the lock
        let (db, txn, batch) = loop {
            let mut state = write_lock(&self.state);
            let db = read_lock(&self.db);
            if state.overlay.is_empty() && !durable && meta_names.is_empty() {
                return Ok(Vec::new());
            }
            match db.try_write(durable)? {
                Some(txn) => {
                    let batch = state.overlay.start_commit();
                    break (db, txn, batch);
                }
                None => {
                    drop(state);
                    db.wait_for_writer()?;
                }
            }
        };
        let started = Instant::now();
        let committed = (|| {
            let meta = {
                let mut tables = txn.tables()?;
                if let Some(batch) = &batch {
                    batch.write_to(&mut tables)?;
                }
                meta_names
                    .iter()
                    .map(|name| tables.meta.get(name))
                    .collect::<Result<Vec<_>>>()?
            };
            txn.commit("commit applied writes")?;
            Ok(meta)
        })();
        drop(db);
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            // as etcd's "slow fdatasync": the disk is slower than the load needs
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                durable,
                "slow backend commit"
            );
        }
        if let Some(batch) = &batch {
            let mut state = write_lock(&self.state);
            match committed {
                Ok(_) => state.overlay.landed(batch),
                Err(_) => state.overlay.failed(batch),
            }
        }
        committed
    }

    /// Makes every applied write durable (applies reach redb without fsync; the raft log is
    /// the durable record until this runs).
    pub fn flush(&self) -> Result<()> {
        self.flush_meta(&[]).map(|_| ())
    }

    /// [`Store::flush`], returning the `meta` values named in `names` exactly as made durable
    /// (a raft snapshot's applied log id must not run ahead of the data it describes).
    pub fn flush_meta(&self, names: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        // cleared first, so an apply during the commit leaves it set; set again on failure,
        // so the next flush retries
        self.unflushed.store(false, Ordering::Release);
        let flushed = self.commit_overlay(true, names);
        if flushed.is_err() {
            self.unflushed.store(true, Ordering::Release);
        }
        flushed
    }

    /// A read transaction holding every applied write and no row a compaction is still to
    /// delete, and `facts` of the state at the same point: a compaction deleting rows is
    /// waited for, then pending writes are committed, under the state lock (applies wait for
    /// that commit; reads do not wait longer than for any apply).
    pub(crate) fn committed_read<R>(&self, facts: impl FnOnce(&State) -> R) -> Result<(ReadTx, R)> {
        loop {
            self.wait_no_compaction(COMPACTION_WAIT)?;
            let mut state = write_lock(&self.state);
            if state.compacting.is_some() {
                continue;
            }
            let db = read_lock(&self.db);
            if !state.overlay.is_empty() {
                // after a commit in flight (whose batch is then in the file too), never
                // waiting for it under the state lock
                let Some(txn) = db.try_write(false)? else {
                    drop(state);
                    db.wait_for_writer()?;
                    continue;
                };
                state.overlay.write_to(&mut txn.tables()?)?;
                txn.commit("commit applied writes")?;
                state.overlay.clear();
            }
            return Ok((db.read()?, facts(&state)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KeyScan;
    use crate::command::{Command, CommandResponse, Op};
    use crate::index::KeyRange;
    use crate::store::temp_store;
    use crate::{StoreOptions, command};
    use cairn_proto::etcdserverpb::{
        Compare, LeaseGrantRequest, PutRequest, RangeRequest, TxnRequest, compare,
    };

    /// Status during the background flush (which clears `unflushed` before it commits) must
    /// wait for that commit, not read the file before it lands.
    #[test]
    fn db_size_waits_for_a_flush_under_way() {
        let (_dir, store) = temp_store();
        store.unflushed.store(false, Ordering::Release);
        let flushing = lock(&store.commit_lock);
        let s = store.clone();
        let sized = std::thread::spawn(move || {
            s.db_size().unwrap();
            std::time::Instant::now()
        });
        std::thread::sleep(Duration::from_millis(50));
        let released = std::time::Instant::now();
        drop(flushing);
        assert!(
            sized.join().unwrap() >= released,
            "sized before the flush landed"
        );
    }

    fn put(key: &str, value: &str, prev_kv: bool) -> Option<Command> {
        Some(Command::from(Op::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            prev_kv,
            ..Default::default()
        })))
    }

    fn value_of(store: &Store, key: &str) -> Vec<u8> {
        let got = store
            .range(&RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .unwrap();
        got.kvs[0].value.clone()
    }

    fn rows_in_redb(store: &Store) -> u64 {
        let db = read_lock(&store.db);
        db.read().unwrap().keys().unwrap().len().unwrap()
    }

    #[test]
    fn reads_see_applied_writes_before_they_reach_redb() {
        let (_dir, store) = temp_store();
        let hash_after;
        {
            let _committer_stopped = lock(&store.commit_lock);
            store.apply(&[put("k", "v1", false)], &[]).unwrap();
            let r = store.apply(&[put("k", "v2", true)], &[("applied", b"2".to_vec())]);
            let Ok(CommandResponse::Put(p)) = &r.unwrap()[0] else {
                panic!("put failed")
            };
            assert_eq!(p.prev_kv.as_ref().unwrap().value, b"v1");
            assert_eq!(rows_in_redb(&store), 0, "nothing committed yet");

            assert_eq!(value_of(&store, "k"), b"v2");
            assert_eq!(store.get_at(b"k", 2).unwrap().value, b"v1");
            let events = store.events_between(&KeyRange::all(), 1, 3).unwrap();
            assert_eq!(events.len(), 2, "watch replay sees the overlay");
            assert_eq!(store.meta("applied").unwrap().as_deref(), Some(&b"2"[..]));
            let txn = Op::Txn(TxnRequest {
                compare: vec![Compare {
                    key: b"k".to_vec(),
                    target: compare::CompareTarget::Value as i32,
                    result: compare::CompareResult::Equal as i32,
                    target_union: Some(compare::TargetUnion::Value(b"v2".to_vec())),
                    ..Default::default()
                }],
                ..Default::default()
            });
            let r = store.apply(&[Some(command::Command::from(txn))], &[]);
            let Ok(CommandResponse::Txn(t)) = &r.unwrap()[0] else {
                panic!("txn failed")
            };
            assert!(t.succeeded, "a compare reads the overlay");
            hash_after = store.hash_kv(0).unwrap();
        }
        store.flush().unwrap();
        assert_eq!(rows_in_redb(&store), 2);
        assert!(read_lock(&store.state).overlay.is_empty());
        assert_eq!(
            store.hash_kv(0).unwrap(),
            hash_after,
            "same rows, same hash"
        );
        assert_eq!(store.meta("applied").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_lease_grant_commits_pending_rows_with_its_own() {
        let (_dir, store) = temp_store();
        let _committer_stopped = lock(&store.commit_lock);
        store
            .apply(&[put("a", "1", false)], &[("applied", b"1".to_vec())])
            .unwrap();
        let grant = Some(Command::from(Op::LeaseGrant(LeaseGrantRequest {
            id: 9,
            ttl: 60,
        })));
        store
            .apply(&[grant], &[("applied", b"2".to_vec())])
            .unwrap();
        assert_eq!(
            rows_in_redb(&store),
            1,
            "the pending put went with the grant"
        );
        assert!(read_lock(&store.state).overlay.is_empty());
        let db = read_lock(&store.db);
        let meta = db.read().unwrap().meta().unwrap();
        assert_eq!(meta.get("applied").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn the_committer_lands_applied_writes_and_a_reopen_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        store.apply(&[put("a", "1", false)], &[]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rows_in_redb(&store) == 0 {
            assert!(std::time::Instant::now() < deadline, "never committed");
            std::thread::yield_now();
        }
        store.apply(&[put("b", "2", false)], &[]).unwrap();
        assert!(store.close().is_ok(), "the only handle");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(store.key_count(), 2, "closing commits what was pending");
    }

    #[test]
    fn a_compaction_during_a_commit_in_flight_deletes_from_its_batch_too() {
        let (_dir, store) = temp_store();
        let committer_stopped = lock(&store.commit_lock);
        store
            .apply(&[put("k", "v1", false), put("k", "v2", false)], &[])
            .unwrap();
        // as the committer does before it writes, and never finishes here
        let in_flight = write_lock(&store.state).overlay.start_commit().unwrap();
        let compact = Some(Command::from(Op::Compact(
            cairn_proto::etcdserverpb::CompactionRequest {
                revision: 3,
                physical: false,
            },
        )));
        store.apply(&[compact], &[]).unwrap();
        assert!(read_lock(&store.state).overlay.is_empty());
        let hash = store.hash_kv(0).unwrap();
        // the commit in flight lands; the compaction's deletion (which waits for commits) runs
        write_lock(&store.state).overlay.landed(&in_flight);
        drop(committer_stopped);
        assert!(store.wait_compacted(3, Duration::from_secs(10)), "deleted");
        assert_eq!(rows_in_redb(&store), 1, "k@3 kept, k@2 compacted away");
        store.flush().unwrap();
        assert_eq!(store.hash_kv(0).unwrap(), hash);
        assert_eq!(value_of(&store, "k"), b"v2");
    }

    /// A compaction applied while a durable flush held the writer took the state lock and
    /// waited there, so every read and put waited for the flush too (272 ms at 1M keys).
    #[test]
    fn an_apply_waiting_for_the_writer_does_not_hold_up_reads() {
        let (_dir, store) = temp_store();
        store.apply(&[put("k", "v", false)], &[]).unwrap();
        let writing = read_lock(&store.db).write(false).unwrap();
        let s = store.clone();
        let grant = std::thread::spawn(move || {
            let grant = Some(Command::from(Op::LeaseGrant(LeaseGrantRequest {
                id: 1,
                ttl: 60,
            })));
            s.apply(&[grant], &[]).map(|r| r.len())
        });
        let (done, reads) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + Duration::from_millis(300);
            let mut n = 0;
            while std::time::Instant::now() < until {
                assert_eq!(value_of(&s, "k"), b"v");
                n += 1;
            }
            done.send(n).unwrap();
        });
        let served = reads.recv_timeout(Duration::from_secs(10));
        drop(writing);
        assert!(
            served.is_ok(),
            "reads waited for the writer behind the apply"
        );
        assert_eq!(grant.join().unwrap().unwrap(), 1, "the grant applied after");
        assert!(store.lease_exists(1));
    }

    #[test]
    fn a_snapshot_holds_pending_writes() {
        let (_dir, store) = temp_store();
        let _committer_stopped = lock(&store.commit_lock);
        store.apply(&[put("a", "1", false)], &[]).unwrap();
        let (txn, rev) = store.committed_read(|s| s.current_rev).unwrap();
        assert_eq!(rev, 2);
        assert_eq!(txn.keys().unwrap().len().unwrap(), 1);
    }
}
