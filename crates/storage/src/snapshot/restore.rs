//! Restoring a snapshot into a fresh `kv.redb`: every record is checked while it is written,
//! and the result is durable before this returns. The caller builds the data dir in a
//! temporary place and renames it only on success, so a failure leaves nothing behind.

use std::path::Path;

use prost::Message;
use redb::Durability;

use super::error::SnapshotError;
use super::format::{Record, RecordKind};
use super::reader::{BodySummary, SnapshotInfo, read_body};
use crate::backend::{
    ALARM, FINISHED_COMPACT_REV, KEY, LEASE, LeaseRecord, META, SCHEDULED_COMPACT_REV, alarm_key,
};
use crate::error::backend;
use crate::revision::Revision;

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

/// Writes the snapshot's data into a new database at `kv_path` (which must not exist).
pub fn restore_kv(
    info: &SnapshotInfo,
    kv_path: &Path,
    opts: RestoreOptions,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<BodySummary, SnapshotError> {
    // a bounded page cache keeps memory flat with snapshot size (redb's default is 1 GiB)
    let db = redb::Builder::new()
        .set_cache_size(RESTORE_CACHE_BYTES)
        .create(kv_path)
        .map_err(|e| SnapshotError::Io {
            path: kv_path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let flush = |pending: &mut Vec<Record>| -> Result<(), SnapshotError> {
        let mut txn = db.begin_write().map_err(backend("begin write"))?;
        txn.set_durability(Durability::None)
            .map_err(backend("set durability"))?;
        {
            let mut keys = txn.open_table(KEY).map_err(backend("open key table"))?;
            let mut leases = txn.open_table(LEASE).map_err(backend("open lease table"))?;
            let mut alarms = txn.open_table(ALARM).map_err(backend("open alarm table"))?;
            for r in pending.drain(..) {
                match r.kind {
                    Some(RecordKind::Kv(row)) => {
                        keys.insert(row.rev_key.as_slice(), row.value.as_slice())
                            .map_err(backend("write key table"))?;
                    }
                    Some(RecordKind::Lease(l)) => {
                        let rec = LeaseRecord {
                            id: l.id,
                            ttl: l.ttl,
                        }
                        .encode_to_vec();
                        leases
                            .insert(l.id, rec.as_slice())
                            .map_err(backend("write lease table"))?;
                    }
                    Some(RecordKind::Alarm(a)) => {
                        alarms
                            .insert(alarm_key(a.member_id, a.alarm).as_slice(), ())
                            .map_err(backend("write alarm table"))?;
                    }
                    _ => {}
                }
            }
        }
        txn.commit().map_err(backend("commit restore batch"))?;
        Ok(())
    };
    // Two threads: this one writes batches into redb while the reader decompresses, checks
    // and parses the next ones; a bounded channel keeps memory at a few batches.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(2);
    let check_digest = !opts.skip_hash_check;
    let (read, written) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut pending = Vec::with_capacity(BATCH);
            let stopped =
                || SnapshotError::Write(std::io::Error::other("the restore writer stopped"));
            let summary = read_body(info, check_digest, progress, &mut |r: Record| {
                pending.push(r);
                if pending.len() >= BATCH {
                    tx.send(std::mem::replace(&mut pending, Vec::with_capacity(BATCH)))
                        .map_err(|_| stopped())?;
                }
                Ok(())
            })?;
            tx.send(pending).map_err(|_| stopped())?;
            Ok::<_, SnapshotError>(summary)
        });
        let written = rx.iter().try_for_each(|mut batch| flush(&mut batch));
        drop(rx); // unblocks a reader still sending after a write failure
        let read = reader.join().unwrap_or_else(|_| {
            Err(SnapshotError::Write(std::io::Error::other(
                "the restore reader panicked",
            )))
        });
        (read, written)
    });
    // a write failure explains a reader that stopped; otherwise the reader's verdict counts
    written?;
    let summary = read?;

    // compaction marks: the snapshot's, or the bumped one; committed durably with everything
    let h = &info.header;
    let compact = if opts.mark_compacted {
        h.revision + opts.bump_revision
    } else {
        h.compact_revision
    };
    let mut txn = db.begin_write().map_err(backend("begin write"))?;
    txn.set_durability(Durability::Immediate)
        .map_err(backend("set durability"))?;
    {
        let mut meta = txn.open_table(META).map_err(backend("open meta table"))?;
        if compact >= 0 {
            let mark = Revision::new(compact, 0).to_bytes(false);
            meta.insert(SCHEDULED_COMPACT_REV, mark.as_slice())
                .map_err(backend("write meta"))?;
            meta.insert(FINISHED_COMPACT_REV, mark.as_slice())
                .map_err(backend("write meta"))?;
        }
    }
    txn.commit().map_err(backend("commit restore"))?;
    Ok(summary)
}
