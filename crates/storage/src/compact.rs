//! Compaction: drop history at or below a revision, keeping each key's newest version there.
//!
//! In two steps, as etcd does it (`mvcc/kvstore_compaction.go`):
//! 1. **Schedule**, in the apply of the Compact command: the request is checked, the
//!    compaction point is recorded (`scheduledCompactRev`) and the compact revision moves:
//!    from here on reads and watches below it are refused, as after the compaction.
//! 2. **Compact the index**, off the request path (`compactor.rs`), a chunk of keys at a time
//!    under the state lock, as etcd compacts its `treeIndex` one key at a time: the revisions
//!    still needed at or below the point become the [`Compaction`]'s keep set. Until a key's
//!    turn its older revisions are still in the index, which no read can reach (they are all
//!    below the compact revision).
//! 3. **Delete**, off the request path too: the `key` rows at or below the point that the
//!    index no longer needs are deleted in bounded batches, reads and writes served between
//!    them; the last batch records `finishedCompactRev`. A store opened with the two marks
//!    apart (a crash mid-compaction) compacts its index at open and resumes the deletion.
//!
//! Scheduling and the two later steps are `compactor.rs`'s.
//!
//! Until the deletion has finished, the rows it will delete are still in the file: whatever reads
//! `key` rows by revision rather than through the index skips them ([`Compaction::doomed`],
//! HashKV, after waiting for the keep set), or waits for the deletion to finish (a snapshot, a
//! defragment).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use crate::index::TreeIndex;
use crate::revision::Revision;

/// A compaction scheduled whose rows are not all deleted yet.
#[derive(Debug)]
pub(crate) struct Compaction {
    /// The compaction point.
    pub rev: i64,
    /// The revisions at or below `rev` that the index still needs, once the index is
    /// compacted.
    keep: OnceLock<HashSet<Revision>>,
}

impl Compaction {
    /// A compaction at `rev` whose index is still to compact.
    pub fn scheduled(rev: i64) -> Compaction {
        Compaction {
            rev,
            keep: OnceLock::new(),
        }
    }

    /// Compacts `index` at `rev` at once (at open, where nothing waits for the state).
    pub fn of(index: &mut TreeIndex, rev: i64) -> Compaction {
        let c = Compaction::scheduled(rev);
        c.indexed(index.compact(rev));
        c
    }

    /// The index is compacted; `keep` is what it still needs at or below the point.
    pub fn indexed(&self, keep: HashSet<Revision>) {
        let _ = self.keep.set(keep);
    }

    pub fn is_indexed(&self) -> bool {
        self.keep.get().is_some()
    }

    /// Whether the row at `r` is one this compaction deletes; `None` until the index is
    /// compacted.
    pub fn doomed(&self, r: Revision) -> Option<bool> {
        let keep = self.keep.get()?;
        Some(r.main <= self.rev && !keep.contains(&r))
    }
}

/// How the deletion of a compaction proceeds; the defaults are etcd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPace {
    /// Rows scanned per batch (etcd's `--experimental-compaction-batch-limit`, 1000).
    pub batch_limit: usize,
    /// The pause after each batch (etcd's `--experimental-compaction-sleep-interval`, 10 ms).
    pub sleep_interval: Duration,
}

impl Default for CompactionPace {
    fn default() -> Self {
        CompactionPace {
            batch_limit: 1000,
            sleep_interval: Duration::from_millis(10),
        }
    }
}
