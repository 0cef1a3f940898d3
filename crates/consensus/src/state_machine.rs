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

// openraft's `StorageError` is the error type its storage traits require, large or not.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_proto::stages::{self, Stage};
use cairn_storage::Store;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};

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
        };
        sm.reload()?;
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
        let mut membership_changed = false;
        for e in entries {
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
