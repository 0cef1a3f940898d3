//! Restoring a snapshot into a fresh `kv.redb`: every record is checked while it is written,
//! and the result is durable before this returns. The caller builds the data dir in a
//! temporary place and renames it only on success, so a failure leaves nothing behind.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use prost::Message;

use super::error::SnapshotError;
use super::etcd_file::{EtcdPlan, EtcdSnapshot};
use super::format::{Record, RecordKind};
use super::reader::{BodySummary, SnapshotInfo, read_body};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::revision::Revision;
use crate::schema::{
    AUTH_ENABLED, AUTH_REVISION, FINISHED_COMPACT_REV, LeaseRecord, SCHEDULED_COMPACT_REV,
    alarm_key,
};
use cairn_proto::authpb::{Role, User};

#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Skip the SHA-256 comparison (etcdutl's `--skip-hash-check`); records are still checked.
    pub skip_hash_check: bool,
    /// With `mark_compacted`: the next revision becomes `revision + bump_revision + 1` and
    /// everything up to `revision + bump_revision` counts as compacted, so watchers resuming
    /// from before the restore get ErrCompacted instead of silently missing events.
    pub bump_revision: i64,
    pub mark_compacted: bool,
}

/// redb page cache while restoring.
const RESTORE_CACHE_BYTES: usize = 64 << 20;

/// Rows per write transaction while restoring.
const BATCH: usize = 5_000;

/// Records for one write transaction; the last one also writes the compaction marks and
/// commits durably, which syncs everything before it.
struct Batch {
    records: Vec<Record>,
    last: bool,
}

/// Writes the snapshot's data into a new database at `kv_path` (which must not exist).
///
/// Three threads: this one writes batches into redb while a reader decompresses, checks and
/// parses the next ones (a bounded channel keeps memory at a few batches), and a third has
/// the kernel write the file back as it grows (see [`sync_behind`]). The reader sends the
/// last batch as soon as it has the header's count of records, so the final durable commit
/// overlaps the checks that need the whole body (HashKV, counts); a file that then fails them
/// is refused all the same, and the caller removes what was written.
pub fn restore_kv(
    info: &SnapshotInfo,
    kv_path: &Path,
    opts: RestoreOptions,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<BodySummary, SnapshotError> {
    // compaction marks: the snapshot's, or the bumped one
    let h = &info.header;
    let compact = if opts.mark_compacted {
        h.revision + opts.bump_revision
    } else {
        h.compact_revision
    };
    let expected = h.record_count;
    let check_digest = !opts.skip_hash_check;
    restore_records(kv_path, compact, move |out: &mut Batches| {
        let mut seen = 0u64;
        read_body(info, check_digest, progress, &mut |r: Record| {
            seen += 1;
            out.push(r, seen == expected)
        })
    })
}

/// [`restore_kv`] for an etcd snapshot file that passed [`EtcdSnapshot::preflight`] (its
/// digest and consistency): its rows are written as a Cairn snapshot's are.
pub fn restore_etcd_kv(
    snap: &EtcdSnapshot,
    plan: &EtcdPlan,
    kv_path: &Path,
    opts: RestoreOptions,
) -> Result<BodySummary, SnapshotError> {
    let compact = if opts.mark_compacted {
        plan.revision + opts.bump_revision
    } else {
        plan.extras.compact_revision
    };
    restore_records(kv_path, compact, move |out: &mut Batches| {
        snap.read(&plan.extras, &mut |r: Record| out.push(r, false))
            .map(|(summary, _)| summary)
    })
}

/// The restore's machinery: `produce` hands every record to the [`Batches`] it is given,
/// marking the last one when it knows it; this thread writes them, `compact` becoming the
/// compaction marks.
fn restore_records(
    kv_path: &Path,
    compact: i64,
    produce: impl FnOnce(&mut Batches) -> Result<BodySummary, SnapshotError> + Send,
) -> Result<BodySummary, SnapshotError> {
    // a bounded page cache keeps memory flat with snapshot size (redb's default is 1 GiB)
    let db =
        Backend::open_with_cache(kv_path, RESTORE_CACHE_BYTES).map_err(|e| SnapshotError::Io {
            path: kv_path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let (tx, rx) = sync_channel::<Batch>(2);
    let (read, written) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut out = Batches {
                tx: Some(tx),
                records: Vec::with_capacity(BATCH),
            };
            let summary = produce(&mut out)?;
            out.finish()?;
            Ok(summary)
        });
        let (kick, kicked) = sync_channel::<()>(1);
        scope.spawn(move || sync_behind(kv_path, kicked));
        let mut finished = false;
        let written = rx.iter().try_for_each(|batch| {
            finished |= batch.last;
            write_batch(&db, batch, compact)?;
            let _ = kick.try_send(()); // full: a sync is already due, it covers this batch
            Ok::<_, SnapshotError>(())
        });
        drop(kick);
        drop(rx); // unblocks a reader still sending after a write failure
        let read = reader.join().unwrap_or_else(|_| {
            Err(SnapshotError::Write(std::io::Error::other(
                "the restore reader panicked",
            )))
        });
        (read, written.map(|()| finished))
    });
    // a write failure explains a reader that stopped; otherwise the reader's verdict counts
    let finished = written?;
    let summary = read?;
    if !finished {
        // cannot happen: a reader that succeeded has sent its last batch
        return Err(SnapshotError::Write(std::io::Error::other(
            "the restore reader stopped before its last batch",
        )));
    }
    Ok(summary)
}

/// The reader's side of the channel: records gathered into batches of [`BATCH`].
struct Batches {
    /// `None` once the last batch is sent: records past it are not written (a Cairn file
    /// holding more records than its header's count is then refused by the count check).
    tx: Option<SyncSender<Batch>>,
    records: Vec<Record>,
}

impl Batches {
    fn push(&mut self, r: Record, last: bool) -> Result<(), SnapshotError> {
        let Some(sender) = &self.tx else {
            return Ok(());
        };
        self.records.push(r);
        if self.records.len() >= BATCH || last {
            let records = std::mem::replace(&mut self.records, Vec::with_capacity(BATCH));
            sender
                .send(Batch { records, last })
                .map_err(|_| stopped())?;
            if last {
                self.tx = None;
            }
        }
        Ok(())
    }

    /// Sends what is left as the last batch, unless the last one went already.
    fn finish(mut self) -> Result<(), SnapshotError> {
        if let Some(tx) = self.tx.take() {
            let records = std::mem::take(&mut self.records);
            tx.send(Batch {
                records,
                last: true,
            })
            .map_err(|_| stopped())?;
        }
        Ok(())
    }
}

fn stopped() -> SnapshotError {
    SnapshotError::Write(std::io::Error::other("the restore writer stopped"))
}

/// One write transaction: rows, leases, alarms, and with the last batch the compaction marks.
fn write_batch(db: &Backend, batch: Batch, compact: i64) -> Result<(), SnapshotError> {
    let txn = db.write(batch.last)?;
    {
        let mut t = txn.tables()?;
        for r in batch.records {
            match r.kind {
                Some(RecordKind::Kv(row)) => {
                    t.key.insert(&row.rev_key, &row.value)?;
                }
                Some(RecordKind::Lease(l)) => {
                    let rec = LeaseRecord {
                        id: l.id,
                        ttl: l.ttl,
                        remaining_ttl: 0,
                    }
                    .encode_to_vec();
                    t.lease.insert(l.id, &rec)?;
                }
                Some(RecordKind::Alarm(a)) => {
                    t.alarm.insert(&alarm_key(a.member_id, a.alarm))?;
                }
                Some(RecordKind::AuthUser(row)) => {
                    let user = User::decode(row.encoded.as_ref())
                        .map_err(|e| StoreError::Corrupt(format!("a snapshot user record: {e}")))?;
                    let name = String::from_utf8_lossy(&user.name).into_owned();
                    t.users.insert(&name, &row.encoded)?;
                }
                Some(RecordKind::AuthRole(row)) => {
                    let role = Role::decode(row.encoded.as_ref())
                        .map_err(|e| StoreError::Corrupt(format!("a snapshot role record: {e}")))?;
                    let name = String::from_utf8_lossy(&role.name).into_owned();
                    t.roles.insert(&name, &row.encoded)?;
                }
                Some(RecordKind::AuthMeta(m)) => {
                    t.meta.insert(AUTH_ENABLED, &[u8::from(m.enabled)])?;
                    t.meta.insert(AUTH_REVISION, &m.revision.to_be_bytes())?;
                }
                _ => {}
            }
        }
    }
    if !batch.last {
        txn.commit("commit restore batch")?;
        return Ok(());
    }
    if compact >= 0 {
        let mark = Revision::new(compact, 0).to_bytes(false);
        let mut t = txn.tables()?;
        t.meta.insert(SCHEDULED_COMPACT_REV, &mark)?;
        t.meta.insert(FINISHED_COMPACT_REV, &mark)?;
    }
    txn.commit("commit restore")?;
    Ok(())
}

/// Writeback while inserting: each kick (one per batch committed) has the kernel write the
/// file so far, through a second handle. Only the final commit's own sync counts for
/// durability; this one only keeps the dirty pages few. Without it the whole file (about
/// 1.3x the data) is written back during the final sync and the syncs redb makes whenever
/// the file grows, with the inserts stalled meanwhile. A failure here changes nothing: the
/// final sync reports the same error.
fn sync_behind(kv_path: &Path, kicked: Receiver<()>) {
    let Ok(file) = std::fs::File::open(kv_path) else {
        return;
    };
    while kicked.recv().is_ok() {
        let _ = file.sync_data();
    }
}
