//! Revisions after a snapshot, written on top of its restore: what a point-in-time restore
//! from a continuous backup (`cairnutl snapshot restore --from-backup`) adds to the snapshot
//! it starts from. Rows are written with their recorded revisions, so the restored member
//! holds the original revision numbers, versions and create revisions, and its HashKV at the
//! target revision is the source's.

use std::path::Path;

use cairn_proto::mvccpb::KeyValue;
use prost::Message;

use super::error::SnapshotError;
use crate::backend::Backend;
use crate::revision::Revision;
use crate::schema::{FINISHED_COMPACT_REV, LeaseRecord, SCHEDULED_COMPACT_REV, meta_revision};

/// Page cache while writing (as for a restore).
const CACHE_BYTES: usize = 64 << 20;
/// Rows per write transaction.
const BATCH: usize = 100_000;

/// One change of a recorded revision: the `sub`th event of `revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub revision: i64,
    pub sub: i64,
    /// A delete: the row is etcd's tombstone (the key alone).
    pub tombstone: bool,
    /// The event's KeyValue (a put's as the watch delivered it).
    pub kv: KeyValue,
}

/// The leases a restore removes from the snapshot's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeaseDrops {
    /// None.
    #[default]
    None,
    /// These (revoked or expired after the snapshot).
    Listed(Vec<i64>),
    /// Every lease but these (the backup saw the whole list of leases after the snapshot).
    AllBut(Vec<i64>),
}

/// The leases of the target revision, relative to the restored snapshot's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoredLeases {
    /// Granted after the snapshot, or put keys on: (ID, granted TTL); added when the file
    /// does not hold them yet.
    pub added: Vec<(i64, i64)>,
    /// The snapshot's leases gone by the target.
    pub drops: LeaseDrops,
    /// Seconds each lease had left at the target, as far as the backup saw (ID, seconds):
    /// written as the record's remaining TTL, so the restored member's clock starts there.
    pub left: Vec<(i64, i64)>,
}

/// Writes recorded history into a restored `kv.redb`, in revision order, all after the
/// restored snapshot's revision: rows batch by batch as they come ([`HistoryWriter::write`]),
/// then the leases and the compaction mark ([`HistoryWriter::finish`], durable when it
/// returns).
pub struct HistoryWriter {
    db: Backend,
}

impl HistoryWriter {
    pub fn open(kv_path: &Path) -> Result<HistoryWriter, SnapshotError> {
        Ok(HistoryWriter {
            db: Backend::open_with_cache(kv_path, CACHE_BYTES)?,
        })
    }

    /// Writes `rows` as `key` rows with their recorded revisions (a delete as etcd's
    /// tombstone: the key alone).
    pub fn write(&mut self, rows: &[HistoryRow]) -> Result<(), SnapshotError> {
        for batch in rows.chunks(BATCH) {
            let txn = self.db.write(false)?;
            {
                let mut t = txn.tables()?;
                for row in batch {
                    let key = Revision::new(row.revision, row.sub).to_bytes(row.tombstone);
                    let value = if row.tombstone {
                        KeyValue {
                            key: row.kv.key.clone(),
                            ..Default::default()
                        }
                    } else {
                        row.kv.clone()
                    };
                    t.key.insert(&key, &value.encode_to_vec())?;
                }
            }
            txn.commit("commit restored history")?;
        }
        Ok(())
    }

    /// Settles the leases (drops, additions, the time each had left), schedules the recorded
    /// compaction `compacted` (the member finishes it when it starts, as after a crash during
    /// a compaction: HashKV tells its rows apart meanwhile), and with `compact_to` marks
    /// everything up to it compacted (`--bump-revision --mark-compacted`); durable when it
    /// returns.
    pub fn finish(
        self,
        leases: &RestoredLeases,
        compacted: Option<i64>,
        compact_to: Option<i64>,
    ) -> Result<(), SnapshotError> {
        let drops = &leases.drops;
        let db = self.db;
        let txn = db.write(true)?;
        {
            let mut t = txn.tables()?;
            let mut held = db_leases(&db)?;
            let gone: Vec<i64> = match drops {
                LeaseDrops::None => Vec::new(),
                LeaseDrops::Listed(ids) => ids.clone(),
                LeaseDrops::AllBut(keep) => {
                    let keep: std::collections::HashSet<i64> = keep.iter().copied().collect();
                    held.keys()
                        .copied()
                        .filter(|id| !keep.contains(id))
                        .collect()
                }
            };
            for id in gone {
                t.lease.remove(id)?;
                held.remove(&id);
            }
            for &(id, ttl) in &leases.added {
                if let std::collections::hash_map::Entry::Vacant(e) = held.entry(id) {
                    e.insert(ttl);
                    let rec = LeaseRecord {
                        id,
                        ttl,
                        remaining_ttl: 0,
                    };
                    t.lease.insert(id, &rec.encode_to_vec())?;
                }
            }
            for &(id, left) in &leases.left {
                if let Some(&ttl) = held.get(&id) {
                    let rec = LeaseRecord {
                        id,
                        ttl,
                        remaining_ttl: left.clamp(1, ttl.max(1)),
                    };
                    t.lease.insert(id, &rec.encode_to_vec())?;
                }
            }
            let scheduled = meta_revision(t.meta.get(SCHEDULED_COMPACT_REV)?).unwrap_or(-1);
            if let Some(rev) = compacted.filter(|rev| *rev > scheduled) {
                let mark = Revision::new(rev, 0).to_bytes(false);
                t.meta.insert(SCHEDULED_COMPACT_REV, &mark)?;
            }
            if let Some(rev) = compact_to {
                let mark = Revision::new(rev, 0).to_bytes(false);
                t.meta.insert(SCHEDULED_COMPACT_REV, &mark)?;
                t.meta.insert(FINISHED_COMPACT_REV, &mark)?;
            }
        }
        txn.commit("commit restored history")?;
        Ok(())
    }
}

/// The leases the file holds: ID -> TTL.
fn db_leases(db: &Backend) -> Result<std::collections::HashMap<i64, i64>, SnapshotError> {
    let mut held = std::collections::HashMap::new();
    db.read()?.leases()?.each(|id, v| {
        let rec = LeaseRecord::decode(v)
            .map_err(|e| crate::error::StoreError::Corrupt(format!("lease record {id}: {e}")))?;
        held.insert(id, rec.ttl);
        Ok(())
    })?;
    Ok(held)
}
