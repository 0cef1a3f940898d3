//! Scheduling a compaction (in the apply of the Compact command) and its background steps
//! (`compact.rs` says what a compaction is). A thread first compacts the in-memory index,
//! [`INDEX_CHUNK`] keys per hold of the state lock, then deletes the `key` rows the scheduled
//! compaction no longer needs, in batches of at most [`crate::compact::CompactionPace::batch_limit`] rows
//! scanned, each its own write transaction, with [`crate::compact::CompactionPace::sleep_interval`] between
//! them (etcd's `--experimental-compaction-batch-limit` and
//! `--experimental-compaction-sleep-interval`). Reads and writes are served between batches
//! and during them: a batch holds the backend's writer, the `db` lock shared and the
//! `commit_lock` (so the committer waits for it before it takes the state lock, not while
//! holding it), never the state lock, which it takes only after committing, to count the
//! bytes freed and, after the last batch, to mark the compaction done. Only an apply that
//! writes the file itself (a lease, an alarm, another compaction) can wait for a batch with
//! the state lock held.
//!
//! The rows are scanned in revision order from the oldest, so a batch that commits never
//! leaves a key's older row behind a newer one it deleted: a crash at any point leaves a file
//! whose compaction a reopen finishes. A compaction scheduled while one is deleting supersedes
//! it (its index is compacted further) and the scan starts over from the oldest row.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::backend::{KeyScan, Tables};
use crate::compact::Compaction;
use crate::error::{Result, StoreError};
use crate::gate::Gate;
use crate::locks::{lock, read_lock, write_lock};
use crate::revision::Revision;
use crate::schema::{FINISHED_COMPACT_REV, SCHEDULED_COMPACT_REV};
use crate::state::{State, row_bytes};
use crate::store::Store;
use crate::wake::Wake;

/// Keys of the index compacted per hold of the state lock (about 1 ms of work).
const INDEX_CHUNK: usize = 5_000;
/// The pause between two chunks of the index, for the reads and applies waiting on the lock.
const INDEX_PAUSE: Duration = Duration::from_millis(1);

/// How long a batch that failed waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Deletes the rows of scheduled compactions until the store is dropped or stops its
/// background threads (it holds the store only during a batch, never during a pause).
pub(crate) fn compact_loop(store: Weak<Store>, wake: Arc<Wake>, gate: Arc<Gate>) {
    let mut cursor = Cursor::default();
    while store.strong_count() > 0 {
        if !wake.wait(Duration::from_millis(200)) {
            continue;
        }
        loop {
            let Some(s) = gate.hold(&store) else { return };
            let pause = match s.compact_batch(&mut cursor) {
                Ok(Step::More) => s.compaction_pace.sleep_interval,
                Ok(Step::Indexing) => INDEX_PAUSE,
                Ok(Step::Idle) => break,
                Err(e) => {
                    tracing::error!(error = %e, "a compaction batch failed; retrying");
                    RETRY_AFTER
                }
            };
            drop(s);
            std::thread::sleep(pause);
        }
    }
}

/// Where the deletion is: the compaction it works for, in which data (the watch hub's epoch,
/// which a snapshot install changes), the first revision key not scanned yet, and what it
/// did so far (for the log line at the end).
#[derive(Default)]
struct Cursor {
    job: Option<Arc<Compaction>>,
    epoch: u64,
    /// The first user key of the index not compacted yet, and what the compacted ones keep.
    index_next: Vec<u8>,
    keep: HashSet<Revision>,
    /// What the chunk under the state lock keeps, moved into `keep` after the lock is let go:
    /// `keep` is a million entries at a million keys, and the first touch of its pages (page
    /// faults, the kernel finding memory) took 241 ms once under the lock. Small and reused.
    chunk_keep: HashSet<Revision>,
    next: Vec<u8>,
    started: Option<Instant>,
    batches: u64,
    deleted: u64,
    longest: Duration,
}

impl Cursor {
    /// Starts over from the first key and the oldest row unless it already works for `job`
    /// in `epoch`. `keys` sizes the keep set (at most one revision per key of the index), so
    /// merging the chunks into it never rehashes a million entries.
    fn follow(&mut self, job: &Arc<Compaction>, epoch: u64, keys: usize) {
        let same = self.epoch == epoch && self.job.as_ref().is_some_and(|j| Arc::ptr_eq(j, job));
        if !same {
            *self = Cursor {
                job: Some(job.clone()),
                epoch,
                keep: HashSet::with_capacity(keys),
                started: Some(Instant::now()),
                ..Cursor::default()
            };
        }
    }
}

enum Step {
    /// A batch of rows was deleted; more may follow.
    More,
    /// A chunk of the index was compacted; more may follow.
    Indexing,
    /// No compaction is deleting rows.
    Idle,
}

impl Store {
    /// Waits until no compaction at or above `rev` is deleting rows (`i64::MIN`: none at
    /// all); false if one still is after `timeout`.
    pub fn wait_compacted(&self, rev: i64, timeout: Duration) -> bool {
        let done = |s: &State| s.compacting.as_ref().is_none_or(|c| c.rev < rev);
        self.when_state(done, timeout, |_| ()).is_some()
    }

    /// Runs `f` on the state as soon as `ready` holds of it (checked again after each step
    /// of a compaction finishes), under the same hold of the state lock; `None` if it still
    /// does not after `timeout`.
    fn when_state<R>(
        &self,
        ready: impl Fn(&State) -> bool,
        timeout: Duration,
        f: impl FnOnce(&State) -> R,
    ) -> Option<R> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.compaction_finished.generation();
            {
                let state = read_lock(&self.state);
                if ready(&state) {
                    return Some(f(&state));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.compaction_finished.wait_past(seen, deadline - now);
        }
    }

    /// [`Store::wait_compacted`] for anything that needs the file without rows a compaction is
    /// still to delete (a snapshot, a defragment): an error after `timeout`.
    pub(crate) fn wait_no_compaction(&self, timeout: Duration) -> Result<()> {
        if self.wait_compacted(i64::MIN, timeout) {
            return Ok(());
        }
        Err(StoreError::Backend {
            context: "wait for a compaction",
            message: format!(
                "a compaction is still deleting rows after {}s",
                timeout.as_secs()
            ),
        })
    }

    /// One batch of the deletion: up to `batch_limit` rows from the cursor, those the
    /// compaction dooms deleted, in one write transaction (the last also records the
    /// compaction finished).
    fn compact_batch(&self, cursor: &mut Cursor) -> Result<Step> {
        let indexing = {
            let state = read_lock(&self.state);
            let job = state.compacting.clone().filter(|job| !job.is_indexed());
            job.map(|job| (job, self.hub.epoch(), state.index.len()))
        };
        if let Some((job, epoch, keys)) = indexing {
            cursor.follow(&job, epoch, keys);
            return self.compact_index_chunk(cursor, &job);
        }
        // the committer waits here, not for the backend's writer while it holds the state
        // lock (which would hold up every read for the batch)
        let _no_commit = lock(&self.commit_lock);
        let state = read_lock(&self.state);
        let Some(job) = state.compacting.clone() else {
            return Ok(Step::Idle);
        };
        if !job.is_indexed() {
            // a newer compaction came in between
            return Ok(Step::Indexing);
        }
        let epoch = self.hub.epoch();
        cursor.follow(&job, epoch, 0);
        // the db lock before the state's is released: no install or defragment swaps the file
        // between the job read and its batch
        let db = read_lock(&self.db);
        drop(state);

        let batch_started = Instant::now();
        let limit = self.compaction_pace.batch_limit.max(1);
        let end = Revision::scan_start(job.rev + 1);
        let txn = db.write(false)?;
        let (freed, done) = {
            let mut tables = txn.tables()?;
            // the batch's last row first (a read), then one pass that drops the doomed rows
            // of `next..=last` (one walk of those pages, not one descent per row)
            let mut scanned = 0;
            let mut last = Vec::new();
            if cursor.next.as_slice() < end.as_slice() {
                let rows = tables.key.range(
                    Bound::Included(cursor.next.as_slice()),
                    Bound::Excluded(end.as_slice()),
                )?;
                for row in rows.take(limit) {
                    let row = row?;
                    scanned += 1;
                    last.clear();
                    last.extend_from_slice(row.key());
                }
            }
            let mut freed = 0;
            if scanned > 0 {
                let (mut deleted, from) = (0, std::mem::take(&mut cursor.next));
                tables
                    .key
                    .retain_in(from.as_slice(), last.as_slice(), |k, v| {
                        let doomed = Revision::from_bytes(k)
                            .is_some_and(|(r, _)| job.doomed(r) == Some(true));
                        if doomed {
                            deleted += 1;
                            freed += row_bytes(k, v);
                        }
                        !doomed
                    })?;
                cursor.deleted += deleted;
                cursor.next = successor(&last);
            }
            let done = scanned < limit;
            if done {
                let mark = Revision::new(job.rev, 0).to_bytes(false);
                tables.meta.insert(FINISHED_COMPACT_REV, mark.as_slice())?;
            }
            (freed, done)
        };
        txn.commit("commit compaction batch")?;
        drop(db);
        cursor.batches += 1;
        cursor.longest = cursor.longest.max(batch_started.elapsed());

        let mut state = write_lock(&self.state);
        if self.hub.epoch() == epoch {
            state.data_bytes -= freed;
        }
        if done {
            if state
                .compacting
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &job))
            {
                state.compacting = None;
            }
            drop(state);
            self.compaction_finished.notify();
            tracing::info!(
                revision = job.rev,
                deleted = cursor.deleted,
                batches = cursor.batches,
                took_ms = cursor.started.map_or(0, |s| s.elapsed().as_millis() as u64),
                longest_batch_ms = cursor.longest.as_secs_f64() * 1000.0,
                "finished scheduled compaction"
            );
        }
        Ok(Step::More)
    }
}

impl Store {
    /// One chunk of the index compacted at the job's point, under the state lock; the last
    /// one hands the job its keep set (and wakes whoever waits for it, HashKV).
    fn compact_index_chunk(&self, cursor: &mut Cursor, job: &Arc<Compaction>) -> Result<Step> {
        let mut state = write_lock(&self.state);
        let current = state
            .compacting
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, job));
        if !current {
            // superseded meanwhile: the next step follows the new job
            return Ok(Step::Indexing);
        }
        cursor.chunk_keep.clear();
        let next = state.index.compact_chunk(
            &cursor.index_next,
            job.rev,
            INDEX_CHUNK,
            &mut cursor.chunk_keep,
        );
        drop(state);
        // each revision belongs to one key, and each key is in one chunk: the union is the
        // keep set of the whole index
        cursor.keep.extend(cursor.chunk_keep.drain());
        match next {
            Some(key) => cursor.index_next = key,
            None => {
                // a newer compaction may have superseded this one meanwhile; it has its own
                job.indexed(std::mem::take(&mut cursor.keep));
                self.compaction_finished.notify();
            }
        }
        Ok(Step::Indexing)
    }

    /// Runs `f` on the state once no compaction's index is left to compact (a compaction
    /// still deleting rows is fine: its keep set says which).
    pub(crate) fn with_indexed_state<R>(&self, f: impl FnOnce(&State) -> R) -> Result<R> {
        let indexed = |s: &State| s.compacting.as_ref().is_none_or(|c| c.is_indexed());
        self.when_state(indexed, INDEX_WAIT, f)
            .ok_or_else(|| StoreError::Backend {
                context: "wait for a compaction",
                message: format!(
                    "the index is still being compacted after {}s",
                    INDEX_WAIT.as_secs()
                ),
            })
    }
}

/// How long [`Store::with_indexed_state`] waits.
const INDEX_WAIT: Duration = Duration::from_secs(60);

/// The smallest key after `k`.
fn successor(k: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(k.len() + 1);
    next.extend_from_slice(k);
    next.push(0);
    next
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

/// Schedules a compaction at `rev` in the caller's write transaction: the mark and the
/// revision bound; the compactor thread does the rest. A compaction not finished yet is
/// superseded: this one compacts the index further and deletes everything it would have.
pub(crate) fn schedule(state: &mut State, tables: &mut Tables<'_>, rev: i64) -> Result<()> {
    let mark = Revision::new(rev, 0).to_bytes(false);
    tables.meta.insert(SCHEDULED_COMPACT_REV, mark.as_slice())?;
    state.compacting = Some(Arc::new(Compaction::scheduled(rev)));
    state.compact_rev = rev;
    Ok(())
}
