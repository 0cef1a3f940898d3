//! HashKV: etcd's consistency hash over the `key` table, so equal histories hash equal across
//! members, across backup and restore, and between Cairn and etcd.

use std::collections::HashSet;
use std::ops::Bound;

use crate::backend::KeyScan;
use crate::compact::Compaction;
use crate::error::Result;
use crate::overlay::Overlay;
use crate::revision::Revision;

/// etcd's kvHasher: CRC-32C fed the bucket name `key`, then each (revision key, KeyValue) row
/// with main <= `rev`, skipping rows at or below the compact revision that a compaction at
/// `rev` would drop (unless nothing would be kept at all, an etcd quirk kept for equality).
/// `overlay` holds the applied rows `table` does not have yet; rows a compaction whose deletion
/// is under way will delete (`compacting`, whose index must be compacted) count as deleted
/// already.
pub(crate) fn hash_kv(
    table: &impl KeyScan,
    overlay: &Overlay,
    compact_rev: i64,
    rev: i64,
    keep: &HashSet<Revision>,
    compacting: Option<&Compaction>,
) -> Result<u32> {
    let mut crc = crc32c::crc32c(b"key");
    let end = Revision::scan_start(rev + 1);
    overlay.for_each_row(table, Bound::Unbounded, Bound::Excluded(&end), |k, v| {
        let Some((r, _)) = Revision::from_bytes(k) else {
            return Ok(());
        };
        if compacting.is_some_and(|c| c.doomed(r) == Some(true)) {
            return Ok(());
        }
        if r.main <= compact_rev && !keep.is_empty() && !keep.contains(&r) {
            return Ok(());
        }
        crc = crc32c::crc32c_append(crc, k);
        crc = crc32c::crc32c_append(crc, v);
        Ok(())
    })?;
    Ok(crc)
}
