//! The raft state machine over the MVCC store.
//!
//! Applying a batch is one redb transaction that also records the last applied log id and the
//! membership (etcd's consistent_index idea), committed without fsync: after a crash the store
//! is back at its last durable commit and raft replays the log from there. A durable commit is
//! forced at least every `FLUSH_INTERVAL` and before every raft snapshot, which is what lets
//! raft purge the log behind it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_storage::{Command, Store};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};
use prost::Message;

use crate::types::{Applied, Entry, LogId, Member, StorageError, StoredMembership, TypeConfig};

pub(crate) const META_APPLIED: &str = "raft_applied";
pub(crate) const META_MEMBERSHIP: &str = "raft_membership";
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

pub struct StateMachine {
    store: Arc<Store>,
    snap_dir: PathBuf,
    last_flush: Instant,
}

type Snapshot = openraft::Snapshot<TypeConfig>;

impl StateMachine {
    pub fn new(store: Arc<Store>, snap_dir: PathBuf) -> Self {
        StateMachine {
            store,
            snap_dir,
            last_flush: Instant::now(),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        let raw = self
            .store
            .meta(name)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        raw.map(|b| {
            serde_json::from_slice(&b).map_err(|e| StorageIOError::read_state_machine(&e).into())
        })
        .transpose()
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snap_dir.join("raft-snapshot.json")
    }
}

/// What a raft snapshot file holds for now: the point it covers. The data itself is the
/// flushed store (see `docs/storage.md`); shipping it to another member comes with the cluster
/// transport.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, Member>,
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.read_meta::<LogId>(META_APPLIED)?;
        let membership = self
            .read_meta::<StoredMembership>(META_MEMBERSHIP)?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut commands = Vec::new();
        let mut last: Option<LogId> = None;
        let mut membership: Option<StoredMembership> = None;
        for e in entries {
            last = Some(e.log_id);
            commands.push(match e.payload {
                EntryPayload::Normal(req) => Some(
                    Command::decode(req.command.as_slice())
                        .map_err(|err| StorageIOError::apply(e.log_id, &err))?,
                ),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(e.log_id), m));
                    None
                }
                EntryPayload::Blank => None,
            });
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        let mut meta = vec![(
            META_APPLIED,
            serde_json::to_vec(&last).map_err(|e| StorageIOError::write_state_machine(&e))?,
        )];
        if let Some(m) = &membership {
            meta.push((
                META_MEMBERSHIP,
                serde_json::to_vec(m).map_err(|e| StorageIOError::write_state_machine(&e))?,
            ));
        }
        let flush = self.last_flush.elapsed() >= FLUSH_INTERVAL;
        if flush {
            self.last_flush = Instant::now();
        }
        let store = self.store.clone();
        let results = tokio::task::spawn_blocking(move || {
            let meta: Vec<(&str, Vec<u8>)> = meta;
            let r = store.apply(&commands, &meta)?;
            if flush {
                store.flush()?;
            }
            Ok::<_, cairn_storage::StoreError>(r)
        })
        .await
        .map_err(|e| StorageIOError::apply(last, &e))?
        .map_err(|e| StorageIOError::apply(last, &e))?;
        Ok(results
            .into_iter()
            .map(|r| Applied { result: Some(r) })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            path: self.snapshot_path(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        Err(StorageIOError::write_snapshot(None, &unsupported()).into())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        _snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        Err(StorageIOError::write_snapshot(Some(meta.signature()), &unsupported()).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.snapshot_path();
        let Ok(bytes) = tokio::fs::read(&path).await else {
            return Ok(None);
        };
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(f),
        }))
    }
}

fn unsupported() -> std::io::Error {
    std::io::Error::other(
        "installing a raft snapshot from another member needs the cluster transport (issue 3)",
    )
}

pub struct SnapshotBuilder {
    store: Arc<Store>,
    path: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let store = self.store.clone();
        let (applied, membership) = tokio::task::spawn_blocking(move || {
            store.flush()?;
            Ok::<_, cairn_storage::StoreError>((
                store.meta(META_APPLIED)?,
                store.meta(META_MEMBERSHIP)?,
            ))
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
        let bytes = serde_json::to_vec(&SnapshotFile { meta: meta.clone() })
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let tmp = self.path.with_extension("tmp");
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        tokio::fs::rename(&tmp, &self.path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let f = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(f),
        })
    }
}
