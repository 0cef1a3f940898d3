//! Compaction: drop history at or below a revision, keeping each key's newest version there.
//!
//! In two steps, as etcd does it (`mvcc/kvstore_compaction.go`):
//! 1. **Schedule**, in the apply of the Compact command: the request is checked, the
//!    compaction point is recorded (`scheduledCompactRev`), the in-memory index is compacted
//!    and the revisions it still needs at or below the point are kept as the [`Compaction`].
//!    From here on reads, watches and HashKV see the compacted store.
//! 2. **Delete**, off the request path (`compactor.rs`): the `key` rows at or below the point
//!    that the index no longer needs are deleted in bounded batches, reads and writes served
//!    between them; the last batch records `finishedCompactRev`. A store opened with the two
//!    marks apart (a crash mid-compaction) schedules the compaction again and resumes it.
//!
//! Until the deletion has finished, the rows it will delete are still in redb: whatever reads
//! `key` rows by revision rather than through the index skips them ([`Compaction::doomed`]),
//! or waits for the deletion to finish (a snapshot, a defragment).

use std::collections::HashSet;
use std::sync::Arc;

use crate::backend::SCHEDULED_COMPACT_REV;
use crate::error::{Result, StoreError, backend};
use crate::index::TreeIndex;
use crate::revision::Revision;
use crate::store::{State, Tables};

/// A compaction scheduled whose rows are not all deleted yet.
#[derive(Debug)]
pub(crate) struct Compaction {
    /// The compaction point.
    pub rev: i64,
    /// The revisions at or below `rev` that the index still needs.
    pub keep: HashSet<Revision>,
}

impl Compaction {
    /// Compacts `index` at `rev`: what the deletion must then remove.
    pub fn of(index: &mut TreeIndex, rev: i64) -> Compaction {
        Compaction {
            rev,
            keep: index.compact(rev),
        }
    }

    /// Whether the row at `r` is one this compaction deletes.
    pub fn doomed(&self, r: Revision) -> bool {
        r.main <= self.rev && !self.keep.contains(&r)
    }
}

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

/// Schedules a compaction at `rev` in the caller's write transaction: the mark, the index,
/// the revision bound. A compaction whose deletion has not finished is superseded: this one
/// deletes everything it would have (its index is already compacted), and more.
pub(crate) fn schedule(state: &mut State, tables: &mut Tables<'_>, rev: i64) -> Result<()> {
    let mark = Revision::new(rev, 0).to_bytes(false);
    tables
        .meta
        .insert(SCHEDULED_COMPACT_REV, mark.as_slice())
        .map_err(backend("write meta"))?;
    state.compacting = Some(Arc::new(Compaction::of(&mut state.index, rev)));
    state.compact_rev = rev;
    Ok(())
}
