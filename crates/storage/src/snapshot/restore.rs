//! Restoring a snapshot into a fresh `kv.redb`: every record is checked while it is written,
//! and the result is durable before this returns. The caller builds the data dir in a
//! temporary place and renames it only on success, so a failure leaves nothing behind.

use std::path::Path;

use prost::Message;
use redb::{Database, Durability};

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

/// Rows per write transaction while restoring.
const BATCH: usize = 20_000;

/// Writes the snapshot's data into a new database at `kv_path` (which must not exist).
pub fn restore_kv(
    info: &SnapshotInfo,
    kv_path: &Path,
    opts: RestoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<BodySummary, SnapshotError> {
    let db = Database::create(kv_path).map_err(|e| SnapshotError::Io {
        path: kv_path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut pending: Vec<Record> = Vec::with_capacity(BATCH);
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
    let summary = read_body(info, !opts.skip_hash_check, progress, &mut |r: &Record| {
        pending.push(r.clone());
        if pending.len() >= BATCH {
            flush(&mut pending)?;
        }
        Ok(())
    })?;
    flush(&mut pending)?;

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
