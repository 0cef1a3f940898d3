//! HashKV: etcd's consistency hash over the `key` table, so equal histories hash equal across
//! members, across backup and restore, and between Cairn and etcd.

use std::collections::HashSet;

use redb::ReadableTable;

use crate::error::{Result, backend};
use crate::revision::Revision;

/// etcd's kvHasher: CRC-32C fed the bucket name `key`, then each (revision key, KeyValue) row
/// with main <= `rev`, skipping rows at or below the compact revision that a compaction at
/// `rev` would drop (unless nothing would be kept at all, an etcd quirk kept for equality).
pub(crate) fn hash_kv<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    compact_rev: i64,
    rev: i64,
    keep: &HashSet<Revision>,
) -> Result<u32> {
    let mut crc = crc32c::crc32c(b"key");
    let end = Revision::scan_start(rev + 1);
    for row in table
        .range::<&[u8]>(..end.as_slice())
        .map_err(backend("scan key table"))?
    {
        let (k, v) = row.map_err(backend("scan key table"))?;
        let Some((r, _)) = Revision::from_bytes(k.value()) else {
            continue;
        };
        if r.main <= compact_rev && !keep.is_empty() && !keep.contains(&r) {
            continue;
        }
        crc = crc32c::crc32c_append(crc, k.value());
        crc = crc32c::crc32c_append(crc, v.value());
    }
    Ok(crc)
}
