//! Defragment: rewrite the store's file to its live size while the store keeps serving.
//!
//! redb's own `compact()` needs the database to itself, so every read and write would wait for
//! the whole rewrite (etcd blocks its member the same way). Instead the live data is copied
//! into a fresh file beside the store's, `<kv path>.defrag`:
//!
//! 1. **Copy**, no lock held: every `key` row seen by one read transaction, in large
//!    `Durability::None` batches with a bounded page cache, then one durable commit.
//! 2. **Catch up**, no lock held: while more than [`SMALL_TAIL`] revisions were applied
//!    meanwhile, copy the `key` rows after the last copied revision from a newer read
//!    transaction (a few rounds at most). The `key` table is append-only by revision, so these
//!    rows are all that changed — unless a compaction deleted rows meanwhile: then the copy
//!    starts over (a few attempts at most).
//! 3. **Tail**, holding the state lock shared: applies wait; running reads go on (std's
//!    RwLock queues new ones behind a waiting apply). The last `key` rows and the small `meta`,
//!    `lease` and `alarm` tables (copied whole) are committed durably.
//! 4. **Swap**, holding the `db` lock too (reads wait): the file is renamed over the store's
//!    path, its database replaces the old one, the directory is fsync'd.
//!
//! Writes wait only for steps 3–4, which are bounded by the writes of the last round, not by
//! the size of the database. The index and revision bounds do not change: the data is the same.
//! A failure before the rename leaves the old database in use and removes the `.defrag` file
//! (one a crash leaves behind is removed at the next defragment or open); after it only the
//! directory fsync can fail, and its error says the new file is in use.

use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::{AlarmScan, Backend, KeyScan, ReadTx};
use crate::error::{Result, StoreError};
use crate::locks::{lock, read_lock, write_lock};
use crate::overlay::Overlay;
use crate::replace::{NewFile, dir_of};
use crate::revision::Revision;
use crate::store::Store;

/// redb page cache of the copy while it is written (redb's default is 1 GiB).
const COPY_CACHE_BYTES: usize = 64 << 20;

/// Bytes of rows per write transaction of the copy.
const BATCH_BYTES: usize = 32 << 20;

/// Revisions applied meanwhile that are left for the tail, under the lock, without another
/// catch-up round first.
pub const SMALL_TAIL: i64 = 1_000;

/// Catch-up rounds before the tail is copied under the lock whatever its length.
const MAX_ROUNDS: u32 = 4;

/// Copies started over after a compaction before giving up.
const MAX_ATTEMPTS: u32 = 3;

pub use crate::replace::defrag_path;

/// Where a defragment is; handed to the callback of [`Store::defragment_with`], which can stop
/// it there (the old database stays in use and the copy is removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragStage {
    /// The `key` rows up to `revision` (`rows` in all) are in the new file; reads and writes
    /// went on meanwhile. Reported after the copy and after each catch-up round.
    Copied { revision: i64, rows: u64 },
    /// A compaction ran during the copy, which starts over: `attempt` is the copy about to
    /// start (2, 3, …).
    Restarted { attempt: u32 },
    /// Applies are waiting: the new file holds everything up to `revision` (`tail_rows` key
    /// rows of it copied in this last step, with the meta, lease and alarm tables), durably,
    /// and is about to replace the old one. The callback runs under the store's state lock
    /// here: it must not apply anything to the store.
    Swapping { revision: i64, tail_rows: u64 },
}

/// What a defragment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragSummary {
    /// The store's revision when the new file replaced the old.
    pub revision: i64,
    /// `key` rows in the new file.
    pub rows: u64,
    /// Of them, copied while applies waited.
    pub tail_rows: u64,
    /// Copies made (more than one when a compaction ran during a copy).
    pub attempts: u32,
    /// How long applies waited (the tail and the swap).
    pub writes_held: Duration,
}

impl Store {
    /// Rewrites the store's file to the size of its live data, while reads and writes go on;
    /// writes wait only for the last changes to be copied and the files swapped. Synchronous
    /// and slow (it copies the whole database): call it from a blocking thread.
    pub fn defragment(&self) -> Result<DefragSummary> {
        self.defragment_with(&mut |_| ControlFlow::Continue(()))
    }

    /// [`Store::defragment`], reporting each stage to `progress`, which may stop it there.
    pub fn defragment_with(
        &self,
        progress: &mut dyn FnMut(DefragStage) -> ControlFlow<()>,
    ) -> Result<DefragSummary> {
        // an install or another defragment would swap the database under this copy
        let _one_at_a_time = lock(&self.rewrite);
        let started = Instant::now();
        let progress = &mut |stage: DefragStage| {
            tracing::debug!(
                ?stage,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "defragment"
            );
            progress(stage)
        };
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                proceed(progress(DefragStage::Restarted { attempt }), "restarting")?;
            }
            if let Some(mut summary) = self.defragment_once(progress)? {
                summary.attempts = attempt;
                tracing::info!(
                    revision = summary.revision,
                    rows = summary.rows,
                    tail_rows = summary.tail_rows,
                    attempts = attempt,
                    writes_held_ms = summary.writes_held.as_millis() as u64,
                    took_ms = started.elapsed().as_millis() as u64,
                    "defragmented"
                );
                return Ok(summary);
            }
            tracing::info!(
                attempt,
                "a compaction ran during the defragment copy; copying again"
            );
        }
        Err(StoreError::Backend {
            context: "defragment",
            message: format!(
                "a compaction ran during each of {MAX_ATTEMPTS} copies; run defragment again"
            ),
        })
    }

    /// One copy and swap; `None` when a compaction ran meanwhile (nothing was swapped).
    fn defragment_once(
        &self,
        progress: &mut dyn FnMut(DefragStage) -> ControlFlow<()>,
    ) -> Result<Option<DefragSummary>> {
        let path = defrag_path(self.path());
        let file = NewFile::claim(path.clone()).map_err(io("remove an earlier copy", &path))?;
        let path = file.path();

        // 1. the copy, with a bounded cache; reopened as the store opens its file
        let start = self.read_point()?;
        let mut rows = {
            let db = Backend::open_with_cache(path, COPY_CACHE_BYTES)?;
            let rows = copy_key_rows(&start.txn, &db, 0, false)?;
            db.flush()?;
            rows
        };
        drop(start.txn);
        let db = Backend::open(path)?;
        let mut copied = start.revision;
        proceed(
            progress(DefragStage::Copied {
                revision: copied,
                rows,
            }),
            "copying",
        )?;

        // 2. catch up with what was applied meanwhile
        for _ in 0..MAX_ROUNDS {
            let now = self.read_point()?;
            if now.compact != start.compact {
                return Ok(None);
            }
            if now.revision - copied <= SMALL_TAIL {
                break;
            }
            rows += copy_key_rows(&now.txn, &db, copied, true)?;
            copied = now.revision;
            proceed(
                progress(DefragStage::Copied {
                    revision: copied,
                    rows,
                }),
                "catching up",
            )?;
        }

        // 3. the tail: applies wait (they take the state lock exclusively), reads go on
        let state = read_lock(&self.state);
        let held = Instant::now();
        if state.compact_rev != start.compact {
            return Ok(None);
        }
        let txn = read_lock(&self.db).read()?;
        let tail_rows = copy_key_rows(&txn, &db, copied, false)?;
        copy_small_tables(&txn, &db, &state.overlay)?;
        drop(txn);
        rows += tail_rows;
        proceed(
            progress(DefragStage::Swapping {
                revision: state.current_rev,
                tail_rows,
            }),
            "swapping",
        )?;

        // 4. the swap: reads wait too, for a rename and a directory fsync
        let mut live = write_lock(&self.db);
        let (old, synced) = file
            .swap_in(&mut live, db, self.path())
            .map_err(io("rename the defragment copy", self.path()))?;
        let revision = state.current_rev;
        drop(live);
        drop(state);
        let writes_held = held.elapsed();
        drop(old);
        synced.map_err(io(
            "fsync the data directory (the defragmented file is in use)",
            dir_of(self.path()),
        ))?;
        Ok(Some(DefragSummary {
            revision,
            rows,
            tail_rows,
            attempts: 1,
            writes_held,
        }))
    }

    /// A read transaction with the revision bounds it reflects.
    fn read_point(&self) -> Result<ReadPoint> {
        let (txn, (revision, compact)) =
            self.committed_read(|state| (state.current_rev, state.compact_rev))?;
        Ok(ReadPoint {
            txn,
            revision,
            compact,
        })
    }
}

struct ReadPoint {
    txn: ReadTx,
    revision: i64,
    compact: i64,
}

/// Copies the `key` rows after revision `after` from `from` into `to`, in batches of about
/// [`BATCH_BYTES`], each committed durably when `durable`; returns how many.
fn copy_key_rows(from: &ReadTx, to: &Backend, after: i64, durable: bool) -> Result<u64> {
    let source = from.keys()?;
    let start = Revision::scan_start(after + 1);
    let mut rows = source
        .range(Bound::Included(start.as_slice()), Bound::Unbounded)?
        .peekable();
    let mut copied = 0;
    while rows.peek().is_some() {
        let txn = to.write(durable)?;
        {
            let mut tables = txn.tables()?;
            let mut bytes = 0;
            while bytes < BATCH_BYTES
                && let Some(row) = rows.next()
            {
                let row = row?;
                tables.key.insert(row.key(), row.value())?;
                bytes += row.key().len() + row.value().len();
                copied += 1;
            }
        }
        txn.commit("commit defragment copy")?;
    }
    Ok(copied)
}

/// Copies the `meta`, `lease` and `alarm` tables whole (they are small and rows of them are
/// overwritten and removed, unlike `key` rows), committed durably with everything before.
///
/// The `overlay`'s rows and meta go in last: what was applied after `from` began, which the
/// live store commits to its own file later.
fn copy_small_tables(from: &ReadTx, to: &Backend, overlay: &Overlay) -> Result<()> {
    let txn = to.write(true)?;
    {
        let mut tables = txn.tables()?;
        from.meta()?.each(|name, v| tables.meta.insert(name, v))?;
        from.leases()?.each(|id, v| tables.lease.insert(id, v))?;
        from.alarms()?.each_key(|k| tables.alarm.insert(k))?;
        overlay.write_to(&mut tables)?;
    }
    txn.commit("commit defragment copy")
}

/// Stops the defragment when the caller's callback asks to.
fn proceed(flow: ControlFlow<()>, stage: &str) -> Result<()> {
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(StoreError::Backend {
            context: "defragment",
            message: format!("stopped by the caller while {stage}; the store is unchanged"),
        }),
    }
}

fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Backend {
        context,
        message: format!("{}: {e}", path.display()),
    }
}
