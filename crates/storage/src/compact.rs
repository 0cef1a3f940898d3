//! Compaction: drop history at or below a revision, keeping each key's newest version there.

use std::collections::HashSet;

use redb::ReadableTable;

use crate::backend::{FINISHED_COMPACT_REV, SCHEDULED_COMPACT_REV};
use crate::error::{Result, StoreError, backend};
use crate::revision::Revision;
use crate::store::{State, Tables, row_bytes};

/// Checks a compaction request against the current bounds (etcd's `updateCompactRev`).
pub(crate) fn check(state: &State, rev: i64) -> Result<()> {
    if rev <= state.compact_rev {
        return Err(StoreError::Compacted);
    }
    if rev > state.current_rev {
        return Err(StoreError::FutureRevision);
    }
    Ok(())
}

/// Compacts the index and deletes the table rows it no longer needs, in the caller's write
/// transaction, recording progress in `meta` under etcd's key names.
pub(crate) fn compact(state: &mut State, tables: &mut Tables<'_>, rev: i64) -> Result<usize> {
    let mark = Revision::new(rev, 0).to_bytes(false);
    tables
        .meta
        .insert(SCHEDULED_COMPACT_REV, mark.as_slice())
        .map_err(backend("write meta"))?;
    let keep = state.index.compact(rev);
    let (removed, freed) = delete_unkept(tables, rev, &keep)?;
    state.data_bytes -= freed;
    tables
        .meta
        .insert(FINISHED_COMPACT_REV, mark.as_slice())
        .map_err(backend("write meta"))?;
    state.compact_rev = rev;
    Ok(removed)
}

/// Deletes the rows at or below `rev` that `keep` does not name; returns how many and their
/// bytes.
fn delete_unkept(
    tables: &mut Tables<'_>,
    rev: i64,
    keep: &HashSet<Revision>,
) -> Result<(usize, i64)> {
    let end = Revision::scan_start(rev + 1);
    let mut doomed = Vec::new();
    for row in tables
        .key
        .range::<&[u8]>(..end.as_slice())
        .map_err(backend("scan key table"))?
    {
        let (k, _) = row.map_err(backend("scan key table"))?;
        let k = k.value();
        let Some((r, _)) = Revision::from_bytes(k) else {
            continue;
        };
        if !keep.contains(&r) {
            doomed.push(k.to_vec());
        }
    }
    let mut freed = 0;
    for k in &doomed {
        if let Some(v) = tables
            .key
            .remove(k.as_slice())
            .map_err(backend("compact key table"))?
        {
            freed += row_bytes(k, v.value());
        }
    }
    Ok((doomed.len(), freed))
}
