//! Group commit for the raft log: one thread owns every change to the log file.
//!
//! openraft hands `append` one client write at a time; waiting for an fsync on each would
//! serialize all writes behind the disk. Instead `append` queues the encoded entries and
//! returns, and this thread commits everything queued while the previous commit was syncing
//! in one durable redb transaction, then reports each append flushed. Truncate and purge go
//! through the same queue, so every change reaches the file in the order raft made it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use openraft::storage::LogFlushed;
use redb::{Database, Durability};
use tokio::sync::oneshot;

use super::recent::Recent;
use super::{LAST_PURGED, LOG, STATE, io_err};
use crate::types::{LogId, TypeConfig};

pub(super) enum Job {
    /// Entries as (index, encoded bytes), in order.
    Append {
        rows: Vec<(u64, Vec<u8>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    /// Delete entries at `from` and after.
    Truncate {
        from: u64,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    /// Delete entries up to `upto` and remember it as the last purged.
    Purge {
        upto: LogId,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    /// The committed index: written with the next commit, never synced for its own sake.
    Committed(Vec<u8>),
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn start(
    db: Arc<Database>,
    recent: Arc<Mutex<Recent>>,
    flushed: Option<u64>,
) -> std::io::Result<Sender<Job>> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("raft-log-writer".into())
        .spawn(move || run(&db, &recent, flushed, &rx))?;
    Ok(tx)
}

fn run(db: &Database, recent: &Mutex<Recent>, mut flushed: Option<u64>, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let end = log_end_after(flushed, &batch);
        let started = std::time::Instant::now();
        let result = commit(db, &batch);
        tracing::trace!(jobs = batch.len(), took = ?started.elapsed(), "raft log commit");
        if result.is_ok() {
            flushed = end;
            super::lock(recent).set_flushed(flushed);
        }
        for job in batch {
            let outcome = result.as_ref().map(|_| ()).map_err(|e| io_err(e));
            match job {
                Job::Append { flushed, .. } => flushed.log_io_completed(outcome),
                Job::Truncate { done, .. } | Job::Purge { done, .. } => {
                    let _ = done.send(outcome); // the caller may be gone (shutdown)
                }
                Job::Committed(_) => {}
            }
        }
    }
}

/// The last index in the file once `batch` is committed.
fn log_end_after(mut end: Option<u64>, batch: &[Job]) -> Option<u64> {
    for job in batch {
        match job {
            Job::Append { rows, .. } => end = rows.last().map(|(i, _)| *i).or(end),
            Job::Truncate { from, .. } => end = end.filter(|e| e < from),
            Job::Purge { .. } | Job::Committed(_) => {}
        }
    }
    end
}

/// Applies `batch` in order in one transaction: durable unless it only moves the committed
/// index.
fn commit(db: &Database, batch: &[Job]) -> std::io::Result<()> {
    let mut txn = db.begin_write().map_err(io_err)?;
    if batch.iter().all(|j| matches!(j, Job::Committed(_))) {
        txn.set_durability(Durability::None).map_err(io_err)?;
    }
    {
        let mut log = txn.open_table(LOG).map_err(io_err)?;
        let mut state = txn.open_table(STATE).map_err(io_err)?;
        let mut committed: Option<&[u8]> = None;
        for job in batch {
            match job {
                Job::Append { rows, .. } => {
                    for (index, bytes) in rows {
                        log.insert(*index, bytes.as_slice()).map_err(io_err)?;
                    }
                }
                Job::Truncate { from, .. } => {
                    log.retain_in(*from.., |_, _| false).map_err(io_err)?;
                }
                Job::Purge { upto, .. } => {
                    let bytes = serde_json::to_vec(upto).map_err(io_err)?;
                    state
                        .insert(LAST_PURGED, bytes.as_slice())
                        .map_err(io_err)?;
                    log.retain_in(..=upto.index, |_, _| false).map_err(io_err)?;
                }
                Job::Committed(bytes) => committed = Some(bytes),
            }
        }
        if let Some(bytes) = committed {
            state.insert(super::COMMITTED, bytes).map_err(io_err)?;
        }
    }
    txn.commit().map_err(io_err)
}
