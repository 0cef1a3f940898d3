//! Applied writes that are not in redb yet (etcd's backend batch transaction and read buffer).
//!
//! A Put, DeleteRange or Txn is applied in memory: the index and revision move at once, its
//! key-table rows and the batch's raft metadata go to the *pending* batch, and the reply does
//! not wait for redb. The committer thread (`Store::commit_overlay`) moves the pending batch
//! to *committing* and writes it in one redb transaction a few milliseconds later, without the
//! state lock; the batch stays readable here until that commit has landed. Commands that need
//! the other tables (compaction, leases, alarms) write the overlay's rows and their own changes
//! in one transaction instead (`Store::apply`), as do readers that need redb complete (a
//! snapshot, a defragment).
//!
//! Nothing durable is lost by this: applies were already committed without fsync, the raft log
//! is the durable record, and each commit writes rows and the applied index together. Every
//! row here is newer than every row in redb, except a committing batch that has just landed,
//! which both hold with the same bytes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{KeyScan, Tables};
use crate::error::Result;

/// How long the committer waits after the first pending write, so one redb commit takes many.
pub(crate) const COMMIT_DELAY: Duration = Duration::from_millis(5);

/// Pending bytes past which an apply writes them to redb itself instead of leaving them to the
/// committer (it keeps memory bounded when redb cannot keep up).
const MAX_PENDING_BYTES: usize = 64 << 20;

/// Key-table rows and meta values of applied commands, keyed as redb keys them.
#[derive(Default)]
pub(crate) struct Batch {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.meta.is_empty()
    }

    /// Inserts every row and meta value into `tables`.
    pub fn write_to(&self, tables: &mut Tables<'_>) -> Result<()> {
        for (k, v) in &self.rows {
            tables.key.insert(k, v)?;
        }
        for (name, v) in &self.meta {
            tables.meta.insert(name, v)?;
        }
        Ok(())
    }
}

/// The pending batch and the one being committed.
#[derive(Default)]
pub(crate) struct Overlay {
    pending: Batch,
    committing: Option<Arc<Batch>>,
    /// The last commit failed: applies write redb themselves until one succeeds, so a redb
    /// that keeps failing fails them (and raft stops) instead of growing memory unseen.
    commit_failed: bool,
}

impl Overlay {
    /// A key-table row, newest first.
    pub fn row(&self, key: &[u8]) -> Option<&[u8]> {
        self.batches()
            .find_map(|b| b.rows.get(key))
            .map(Vec::as_slice)
    }

    pub fn meta(&self, name: &str) -> Option<&[u8]> {
        self.batches()
            .find_map(|b| b.meta.get(name))
            .map(Vec::as_slice)
    }

    /// Newest first: pending, then committing.
    fn batches(&self) -> impl Iterator<Item = &Batch> {
        std::iter::once(&self.pending).chain(self.committing.as_deref())
    }

    pub fn insert_row(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.bytes += key.len() + value.len();
        self.pending.rows.insert(key, value);
    }

    pub fn set_meta(&mut self, name: &str, value: &[u8]) {
        self.pending.bytes += name.len() + value.len();
        self.pending.meta.insert(name.to_owned(), value.to_vec());
    }

    /// Whether an apply may leave its rows here: room left, and the last commit landed.
    pub fn takes_more(&self) -> bool {
        self.pending.bytes < MAX_PENDING_BYTES && !self.commit_failed
    }

    /// Nothing pending and nothing being committed: redb holds every applied write.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.committing.is_none()
    }

    /// Forgets everything: the caller committed [`Overlay::write_to`]'s writes.
    pub fn clear(&mut self) {
        *self = Overlay::default();
    }

    /// Moves the pending batch to committing; `None` when nothing is pending. Only the
    /// committer calls this, after the previous batch landed or failed (a batch still marked
    /// committing, which only a panic mid-commit leaves, goes back to pending first).
    pub fn start_commit(&mut self) -> Option<Arc<Batch>> {
        if let Some(left) = self.committing.clone() {
            self.failed(&left);
        }
        if self.pending.is_empty() {
            return None;
        }
        let batch = Arc::new(std::mem::take(&mut self.pending));
        self.committing = Some(batch.clone());
        Some(batch)
    }

    /// The committing batch is in redb now (a store swapped in meanwhile has its own overlay).
    pub fn landed(&mut self, batch: &Arc<Batch>) {
        if self
            .committing
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, batch))
        {
            self.committing = None;
            self.commit_failed = false;
        }
    }

    /// The committing batch did not land: its rows and meta go back to pending (whose own,
    /// newer values win), for the next commit.
    pub fn failed(&mut self, batch: &Arc<Batch>) {
        if !self
            .committing
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, batch))
        {
            return;
        }
        self.committing = None;
        self.commit_failed = true;
        let pending = &mut self.pending;
        for (k, v) in &batch.rows {
            if !pending.rows.contains_key(k) {
                pending.bytes += k.len() + v.len();
                pending.rows.insert(k.clone(), v.clone());
            }
        }
        for (name, v) in &batch.meta {
            if !pending.meta.contains_key(name) {
                pending.bytes += name.len() + v.len();
                pending.meta.insert(name.clone(), v.clone());
            }
        }
    }

    /// Everything here written into `tables`, oldest first: an apply that writes redb itself
    /// takes the committing batch too (its commit is in flight, or failed), so that after it
    /// redb holds every applied write and a compaction in it deletes what it should; and a
    /// defragment's copy.
    pub fn write_to(&self, tables: &mut Tables<'_>) -> Result<()> {
        if let Some(c) = &self.committing {
            c.write_to(tables)?;
        }
        self.pending.write_to(tables)
    }

    /// Calls `f` with each key-table row in `start..end` of `table` and of this overlay, in
    /// key order, each once.
    pub fn for_each_row(
        &self,
        table: &impl KeyScan,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        if is_empty_range(start, end) {
            // redb returns nothing for it; BTreeMap::range would panic
            return Ok(());
        }
        let mut last: Option<Vec<u8>> = None;
        for row in table.range(start, end)? {
            let row = row?;
            f(row.key(), row.value())?;
            last = Some(row.key().to_vec());
        }
        // rows here are newer than redb's, but a batch that just landed is in both
        let batches = self
            .committing
            .as_deref()
            .into_iter()
            .chain([&self.pending]);
        for batch in batches {
            for (k, v) in batch.rows.range::<[u8], _>((start, end)) {
                if last.as_deref().is_none_or(|l| k.as_slice() > l) {
                    f(k, v)?;
                    last = Some(k.clone());
                }
            }
        }
        Ok(())
    }
}

/// Whether `start..end` holds no key at all (start past end, or equal with one side excluded).
fn is_empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    use Bound::{Excluded, Included};
    match (start, end) {
        (Included(s), Included(e)) => s > e,
        (Included(s) | Excluded(s), Excluded(e)) | (Excluded(s), Included(e)) => s >= e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_batch_wins_and_landing_forgets_only_that_batch() {
        let mut o = Overlay::default();
        o.set_meta("applied", b"1");
        o.insert_row(b"r1".to_vec(), b"a".to_vec());
        let first = o.start_commit().expect("pending");
        assert!(o.pending.is_empty(), "nothing pending after the move");
        o.set_meta("applied", b"2");
        assert_eq!(o.meta("applied"), Some(&b"2"[..]));
        assert_eq!(
            o.row(b"r1"),
            Some(&b"a"[..]),
            "committing rows stay readable"
        );
        o.landed(&Arc::new(Batch::default()));
        assert_eq!(
            o.row(b"r1"),
            Some(&b"a"[..]),
            "another batch landing changes nothing"
        );
        o.landed(&first);
        assert_eq!(o.row(b"r1"), None);
        assert_eq!(o.meta("applied"), Some(&b"2"[..]));
    }

    #[test]
    fn a_failed_commit_goes_back_to_pending_under_newer_values() {
        let mut o = Overlay::default();
        o.set_meta("applied", b"1");
        o.insert_row(b"r1".to_vec(), b"a".to_vec());
        let first = o.start_commit().expect("pending");
        o.set_meta("applied", b"2");
        o.insert_row(b"r2".to_vec(), b"b".to_vec());
        o.failed(&first);
        assert!(o.committing.is_none());
        assert_eq!(o.meta("applied"), Some(&b"2"[..]), "the newer value stays");
        assert_eq!(
            o.row(b"r1"),
            Some(&b"a"[..]),
            "the failed rows are pending again"
        );
        assert!(
            !o.takes_more(),
            "after a failed commit, applies write redb themselves"
        );
        let retry = o.start_commit().expect("pending");
        assert_eq!(retry.rows.len(), 2);
        o.landed(&retry);
        assert!(
            o.takes_more(),
            "a commit that lands opens the overlay again"
        );
    }

    #[test]
    fn a_batch_left_committing_goes_back_to_pending_at_the_next_commit() {
        let mut o = Overlay::default();
        o.insert_row(b"r1".to_vec(), b"a".to_vec());
        let _lost = o.start_commit().expect("pending");
        // neither landed nor failed (a panic mid-commit)
        o.insert_row(b"r2".to_vec(), b"b".to_vec());
        let next = o.start_commit().expect("pending");
        assert_eq!(next.rows.len(), 2, "the left batch is not dropped");
    }

    #[test]
    fn empty_ranges_are_recognised_before_they_reach_btreemap() {
        use Bound::{Excluded, Included, Unbounded};
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(is_empty_range(Included(b), Excluded(a)));
        assert!(is_empty_range(Included(a), Excluded(a)));
        assert!(is_empty_range(Excluded(a), Included(a)));
        assert!(is_empty_range(Included(b), Included(a)));
        assert!(!is_empty_range(Included(a), Included(a)));
        assert!(!is_empty_range(Included(a), Excluded(b)));
        assert!(!is_empty_range(Unbounded, Excluded(a)));
        assert!(!is_empty_range(Included(b), Unbounded));
    }
}
