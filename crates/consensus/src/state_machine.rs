//! The raft state machine over the MVCC store.
//!
//! Applying a batch is one store transaction that also records the last applied log id and the
//! membership (etcd's consistent_index idea), committed without fsync: after a crash the store
//! is back at its last durable commit and raft replays the log from there. A durable commit is
//! made about once a second (`flusher.rs`) and before every raft snapshot, which is what lets
//! raft purge the log behind it.
//!
//! Entries at or below the stored applied index are skipped. That is what makes a snapshot
//! from the leader safe to install even though its data is newer than the raft snapshot's log
//! id (see `transport::snapshot`): raft replays the entries in between and they are no-ops.
//!
//! Until it has, the store's applied log id is ahead of the one raft knows applied (and of
//! what it knows committed), and a raft snapshot must not claim it: openraft requires a
//! snapshot's log id to be committed, and panicked when one was not (found by the robustness
//! soak: a member restarted after a full disk installed the leader's copy, then built a
//! snapshot of its own, and its raft stopped for good while the process went on serving).
//! So the builder waits until raft has applied (or skipped) up to the store's log id.

// openraft's `StorageError` is the error type its storage traits require, large or not.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_proto::stages::{self, Stage};
use cairn_storage::Store;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::watch;

use crate::proposer::{Writers, answer, commands_of};
use crate::removal::Removal;
use crate::snapshot_trigger::AppliedCount;
use crate::types::{
    Applied, Entry, LogId, Snapshot, SnapshotData, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

pub(crate) const META_APPLIED: &str = "raft_applied";
pub(crate) const META_MEMBERSHIP: &str = "raft_membership";
/// Members removed from the cluster over its life (a JSON list of IDs).
pub(crate) const META_REMOVED: &str = "raft_removed";
/// Most commands applied on the calling thread (see `apply`).
const INLINE_COMMANDS: usize = 64;
/// How long a snapshot build waits for raft to apply up to the store's log id (see above)
/// before it claims only what raft has applied.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The raft meta entries a snapshot carries along with the data.
pub(crate) const REPLICATED_META: &[&str] = &[META_APPLIED, META_MEMBERSHIP, META_REMOVED];

pub struct StateMachine {
    store: Arc<Store>,
    snap_dir: PathBuf,
    removal: Removal,
    /// Commands applied, counted for `snapshot_trigger`.
    applied_commands: AppliedCount,
    /// What the store holds (cached; the store is the truth).
    applied: Option<LogId>,
    membership: StoredMembership,
    removed: BTreeSet<u64>,
    /// The last log id raft has handed to `apply` (skipped entries too) or installed: what
    /// it knows applied. Behind `applied` after a snapshot whose data was newer.
    raft_applied: watch::Sender<Option<LogId>>,
}

fn read_meta<T: serde::de::DeserializeOwned>(
    store: &Store,
    name: &str,
) -> Result<Option<T>, StorageError> {
    let raw = store
        .meta(name)
        .map_err(|e| StorageIOError::read_state_machine(&e))?;
    raw.map(|b| {
        serde_json::from_slice(&b).map_err(|e| StorageIOError::read_state_machine(&e).into())
    })
    .transpose()
}

impl StateMachine {
    pub fn new(
        store: Arc<Store>,
        snap_dir: PathBuf,
        removal: Removal,
        applied_commands: AppliedCount,
    ) -> Result<Self, StorageError> {
        let mut sm = StateMachine {
            store,
            snap_dir,
            removal,
            applied_commands,
            applied: None,
            membership: StoredMembership::default(),
            removed: BTreeSet::new(),
            raft_applied: watch::channel(None).0,
        };
        sm.reload()?;
        sm.raft_applied.send_replace(sm.applied);
        Ok(sm)
    }

    /// Re-reads the cached raft meta from the store.
    fn reload(&mut self) -> Result<(), StorageError> {
        self.applied = read_meta(&self.store, META_APPLIED)?;
        self.membership = read_meta(&self.store, META_MEMBERSHIP)?.unwrap_or_default();
        self.removed = read_meta(&self.store, META_REMOVED)?.unwrap_or_default();
        self.removal.set(self.removed.clone());
        Ok(())
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snap_dir.join("raft-snapshot.json")
    }
}

/// What a raft snapshot file holds: the point it covers. The data itself is the flushed store
/// (see `docs/cluster.md`).
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
}

async fn write_marker(path: &std::path::Path, meta: &SnapshotMeta) -> Result<(), StorageError> {
    let sig = || Some(meta.signature());
    let bytes = serde_json::to_vec(&SnapshotFile { meta: meta.clone() })
        .map_err(|e| StorageIOError::write_snapshot(sig(), &e))?;
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, &bytes)
        .await
        .map_err(|e| StorageIOError::write_snapshot(sig(), &e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| StorageIOError::write_snapshot(sig(), &e))?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(v).map_err(|e| StorageIOError::write_state_machine(&e).into())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.reload()?;
        // raft takes this as what it has applied
        self.raft_applied.send_replace(self.applied);
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        stages::mark(Stage::Apply);
        let done = self.applied.map(|l| l.index);
        let mut commands = Vec::new();
        // per applied entry, to hand it its own results: its number of commands, its index
        // and the writers waiting for it on this member
        let mut per_entry = Vec::new();
        let mut skipped = 0usize;
        let mut last: Option<LogId> = None;
        let mut last_handed: Option<LogId> = None;
        let mut membership_changed = false;
        for e in entries {
            last_handed = Some(e.log_id);
            if done.is_some_and(|d| e.log_id.index <= d) {
                // already in the store (installed from a newer snapshot)
                skipped += 1;
                continue;
            }
            last = Some(e.log_id);
            let first = commands.len();
            let mut writers = Writers::default();
            match e.payload {
                EntryPayload::Normal(req) => {
                    commands.extend(
                        commands_of(&req.command)
                            .map_err(|err| StorageIOError::apply(e.log_id, &err))?
                            .into_iter()
                            .map(Some),
                    );
                    writers = req.writers;
                }
                EntryPayload::Membership(m) => {
                    let before: BTreeSet<u64> = self
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .collect();
                    let after: BTreeSet<u64> = m.nodes().map(|(id, _)| *id).collect();
                    self.removed.extend(before.difference(&after));
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    membership_changed = true;
                    commands.push(None);
                }
                EntryPayload::Blank => commands.push(None),
            }
            per_entry.push((commands.len() - first, e.log_id.index, writers));
        }
        let mut out: Vec<Applied> = (0..skipped).map(|_| Applied::default()).collect();
        let Some(last) = last else {
            if last_handed.is_some() {
                self.raft_applied.send_replace(last_handed);
            }
            return Ok(out);
        };
        let mut meta = vec![(META_APPLIED, json(&last)?)];
        if membership_changed {
            meta.push((META_MEMBERSHIP, json(&self.membership)?));
            meta.push((META_REMOVED, json(&self.removed)?));
        }
        // a small batch whose locks are free is applied here: a hop to a blocking thread
        // costs more than it (tens of microseconds); anything else goes to one
        let inline = (commands.len() <= INLINE_COMMANDS)
            .then(|| self.store.try_apply(&commands, &meta))
            .flatten();
        let results = match inline {
            Some(r) => r,
            None => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.apply(&commands, &meta))
                    .await
                    .map_err(|e| StorageIOError::apply(last, &e))?
            }
        }
        .map_err(|e| StorageIOError::apply(last, &e))?;
        self.applied = Some(last);
        self.raft_applied.send_replace(last_handed);
        self.applied_commands.add(results.len());
        if membership_changed {
            self.removal.set(self.removed.clone());
        }
        stages::mark(Stage::Applied);
        let mut results = results.into_iter();
        for (n, index, writers) in per_entry {
            let results: Vec<_> = results.by_ref().take(n).collect();
            // writers waiting on this member are answered here, not through raft's core
            let writers = writers.take();
            if writers.is_empty() {
                out.push(Applied { results });
            } else {
                answer(writers, index, results);
                out.push(Applied::default());
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            path: self.snapshot_path(),
            raft_applied: self.raft_applied.subscribe(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        // snapshots arrive whole through the peer transport, never in raft's chunks
        Err(StorageIOError::write_snapshot(
            None,
            &std::io::Error::other("chunked snapshot transfer is not used"),
        )
        .into())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let SnapshotData::Received {
            file,
            meta: entries,
        } = *snapshot
        else {
            return Err(StorageIOError::write_snapshot(
                Some(meta.signature()),
                &std::io::Error::other("only a snapshot received from the leader can be installed"),
            )
            .into());
        };
        let store = self.store.clone();
        let signature = meta.signature();
        let summary = tokio::task::spawn_blocking(move || {
            let entries: Vec<(&str, Vec<u8>)> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            store.install_snapshot(file.path(), &entries)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?
        .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        tracing::info!(?summary, last_log_id = ?meta.last_log_id, "installed the leader's snapshot");
        self.reload()?;
        // raft takes the snapshot's log id as applied; the data may be newer
        self.raft_applied.send_replace(meta.last_log_id);
        write_marker(&self.snapshot_path(), meta).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.snapshot_path();
        let Ok(bytes) = tokio::fs::read(&path).await else {
            return Ok(None);
        };
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(SnapshotData::Local),
        }))
    }
}

pub struct SnapshotBuilder {
    store: Arc<Store>,
    path: PathBuf,
    raft_applied: watch::Receiver<Option<LogId>>,
}

impl SnapshotBuilder {
    /// `data`, the store's applied log id, once raft has applied up to it; if it has not
    /// within [`CATCH_UP_WAIT`], what raft has applied (the data holds more: installed
    /// elsewhere, the entries in between are skipped).
    async fn committed_part(&mut self, data: Option<LogId>) -> Option<LogId> {
        let index = |l: &Option<LogId>| l.map(|l| l.index);
        let caught_up = tokio::time::timeout(
            CATCH_UP_WAIT,
            self.raft_applied.wait_for(|r| index(r) >= index(&data)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if caught_up {
            return data;
        }
        // raft did not get there in time (or the state machine is gone: shutting down)
        let raft = *self.raft_applied.borrow();
        tracing::warn!(store = ?data, raft = ?raft, "raft has not applied up to the store's log id; the snapshot claims what raft applied");
        raft.min(data)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let store = self.store.clone();
        // the applied log id and membership as made durable with the data they describe
        let (applied, membership) = tokio::task::spawn_blocking(move || {
            let mut meta = store
                .flush_meta(&[META_APPLIED, META_MEMBERSHIP])?
                .into_iter();
            Ok::<_, cairn_storage::StoreError>((meta.next().flatten(), meta.next().flatten()))
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, &e))?
        .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let parse = |b: Option<Vec<u8>>| -> Option<serde_json::Value> {
            b.and_then(|b| serde_json::from_slice(&b).ok())
        };
        let last_log_id: Option<LogId> =
            parse(applied).and_then(|v| serde_json::from_value(v).ok());
        let last_log_id = self.committed_part(last_log_id).await;
        let last_membership: StoredMembership = parse(membership)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let snapshot_id = last_log_id
            .map(|l| format!("{}-{}", l.leader_id, l.index))
            .unwrap_or_else(|| "empty".into());
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        write_marker(&self.path, &meta).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Local),
        })
    }
}

#[cfg(test)]
mod tests {
    use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};
    use cairn_storage::{Command, CommandResponse, Op, StoreOptions};

    use prost::Message;
    use tokio::sync::oneshot;

    use super::*;
    use crate::proposer::{Batch, Outcome};
    use crate::types::{ReceivedFile, Request};

    fn open(dir: &std::path::Path) -> Arc<Store> {
        Store::open(&dir.join("kv.redb"), StoreOptions::default()).unwrap()
    }

    /// The received file belongs to the snapshot handed to raft, not to the call that
    /// received it: it is there for the install however long that takes, and gone after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_received_snapshot_installs_from_its_own_file_and_removes_it() {
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = open(leader_dir.path());
        let puts: Vec<Option<Command>> = (0..20)
            .map(|i| {
                Some(Command::from(Op::Put(PutRequest {
                    key: format!("k/{i:02}").into(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })))
            })
            .collect();
        leader.apply(&puts, &[]).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let snap_dir = dir.path().join("snap");
        std::fs::create_dir_all(&snap_dir).unwrap();
        let path = snap_dir.join("incoming-test-0.snap");
        let file = ReceivedFile::new(path.clone());
        let mut out = std::fs::File::create(&path).unwrap();
        let entries = crate::transport::snapshot::write_copy(&leader, &mut out).unwrap();
        drop(out);
        let snapshot = Box::new(SnapshotData::Received {
            file,
            meta: entries,
        });

        let store = open(dir.path());
        let mut sm =
            StateMachine::new(store.clone(), snap_dir, Removal::new(1), Default::default())
                .unwrap();
        sm.install_snapshot(&SnapshotMeta::default(), snapshot)
            .await
            .unwrap();
        let all = store
            .range(&RangeRequest {
                key: b"k/".to_vec(),
                range_end: b"k0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.count, 20);
        assert!(
            !path.exists(),
            "the received file is removed once installed"
        );
    }

    fn log(i: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), i)
    }

    /// A member's state machine in `dir` after installing a leader's copy whose data is at
    /// log index 30 under a raft snapshot at 10 (the data is newer, as the leader streams
    /// its current store).
    async fn installed_newer_than_its_snapshot(dir: &std::path::Path) -> StateMachine {
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = open(leader_dir.path());
        let put = Some(Command::from(Op::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })));
        leader
            .apply(
                &[put],
                &[(META_APPLIED, serde_json::to_vec(&log(30)).unwrap())],
            )
            .unwrap();
        let snap_dir = dir.join("snap");
        std::fs::create_dir_all(&snap_dir).unwrap();
        let path = snap_dir.join("incoming-test-0.snap");
        let mut out = std::fs::File::create(&path).unwrap();
        let entries = crate::transport::snapshot::write_copy(&leader, &mut out).unwrap();
        drop(out);
        let snapshot = Box::new(SnapshotData::Received {
            file: ReceivedFile::new(path),
            meta: entries,
        });
        let mut sm =
            StateMachine::new(open(dir), snap_dir, Removal::new(1), Default::default()).unwrap();
        let meta = SnapshotMeta {
            last_log_id: Some(log(10)),
            ..Default::default()
        };
        sm.install_snapshot(&meta, snapshot).await.unwrap();
        sm
    }

    /// Regression (found by the robustness soak): after installing the leader's copy, whose
    /// data is newer than the raft snapshot's log id, a snapshot built on this member claimed
    /// the data's log id, beyond what raft knew committed, and openraft panicked. The builder
    /// now waits until raft has applied (here: skipped) up to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_after_a_newer_install_waits_for_raft_to_apply_up_to_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = installed_newer_than_its_snapshot(dir.path()).await;
        let mut builder = sm.get_snapshot_builder().await;
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        // raft replays 11..=30, all already in the data: skipped
        let blanks = (11..=30).map(|i| Entry {
            log_id: log(i),
            payload: EntryPayload::Blank,
        });
        sm.apply(blanks).await.unwrap();
        let built = build.await.unwrap().unwrap();
        assert_eq!(built.meta.last_log_id, Some(log(30)));
    }

    /// The same, when raft never gets there: the snapshot claims only what raft applied.
    /// (Tokio's clock, paused: the wait runs out at once.)
    #[tokio::test(start_paused = true)]
    async fn a_snapshot_after_a_newer_install_claims_only_what_raft_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = installed_newer_than_its_snapshot(dir.path()).await;
        let mut builder = sm.get_snapshot_builder().await;
        let built = builder.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log(10)));
    }

    fn put(key: &str) -> Vec<u8> {
        Command::from(Op::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        }))
        .encode_to_vec()
    }

    fn entry(index: u64, request: Request) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(request),
        }
    }

    /// The writers an entry carries are answered by the apply, each with its own result;
    /// raft's answer then carries none. An entry without writers (a follower's, or one read
    /// back from the log) hands its results to raft; a skipped entry leaves its writers to
    /// the proposer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_apply_answers_the_writers_its_entry_carries() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut sm = StateMachine::new(
            store,
            dir.path().join("snap"),
            Removal::new(1),
            Default::default(),
        )
        .unwrap();
        let (tx_a, rx_a) = oneshot::channel();
        let (tx_b, rx_b) = oneshot::channel();
        let batch = Batch {
            commands: vec![put("a"), put("b")],
        };
        let carried = Request {
            command: batch.encode_to_vec(),
            writers: Writers::new(vec![tx_a, tx_b]),
        };
        let out = sm
            .apply(vec![entry(1, carried), entry(2, Request::new(put("c")))])
            .await
            .unwrap();
        let revision = |o: Outcome| match o.unwrap() {
            (index, CommandResponse::Put(r)) => (index, r.header.unwrap().revision),
            other => panic!("not a put: {other:?}"),
        };
        assert_eq!(revision(rx_a.await.unwrap()), (1, 2));
        assert_eq!(revision(rx_b.await.unwrap()), (1, 3));
        assert!(out[0].results.is_empty(), "answered here, not through raft");
        assert_eq!(
            out[1].results.len(),
            1,
            "no writers here: the results go to raft"
        );

        let (tx, _rx) = oneshot::channel();
        let writers = Writers::new(vec![tx]);
        let again = Request {
            command: put("d"),
            writers: writers.clone(),
        };
        let out = sm.apply(vec![entry(2, again)]).await.unwrap();
        assert!(out[0].results.is_empty());
        assert_eq!(
            writers.take().len(),
            1,
            "a skipped entry's writer is left waiting"
        );
    }
}
