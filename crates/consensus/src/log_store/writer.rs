//! Group commit for the raft log: one thread owns every change to it.
//!
//! `append` queues the encoded entries and returns; this thread writes everything queued
//! while the previous write was syncing with one fdatasync of the write-ahead log, then
//! reports each append flushed. Truncate and purge go through the same queue, so every change
//! reaches the disk in the order raft made it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use openraft::storage::LogFlushed;
use redb::Database;
use tokio::sync::oneshot;

use super::recent::Recent;
use super::wal::Wal;
use super::{LAST_PURGED, STATE, io_err, lock};
use crate::types::{LogId, TypeConfig};

pub(super) enum Job {
    /// Entries as (index, encoded bytes), in order; `last` is the last one's id.
    Append {
        rows: Vec<(u64, Vec<u8>)>,
        last: LogId,
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
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn start(
    db: Database,
    wal: Arc<Mutex<Wal>>,
    recent: Arc<Mutex<Recent>>,
) -> std::io::Result<(Arc<Database>, Sender<Job>)> {
    let db = Arc::new(db);
    let (tx, rx) = channel();
    let shared = db.clone();
    std::thread::Builder::new()
        .name("raft-log-writer".into())
        .spawn(move || run(&shared, &wal, &recent, &rx))?;
    Ok((db, tx))
}

fn run(db: &Database, wal: &Mutex<Wal>, recent: &Mutex<Recent>, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut appends: Vec<Job> = Vec::new();
        for job in batch {
            match job {
                Job::Append { .. } => appends.push(job),
                other => {
                    // what was queued before it goes first
                    write_appends(wal, recent, std::mem::take(&mut appends));
                    let (outcome, done) = match other {
                        Job::Truncate { from, done } => (lock(wal).truncate(from), done),
                        Job::Purge { upto, done } => (purge(db, wal, upto), done),
                        Job::Append { .. } => unreachable!("appends are collected above"),
                    };
                    if outcome.is_ok() {
                        lock(recent).set_flushed(lock(wal).last().map(|l| l.index));
                    }
                    let _ = done.send(outcome); // the caller may be gone (shutdown)
                }
            }
        }
        write_appends(wal, recent, appends);
    }
}

/// Writes queued appends with one sync and tells each of them how it went.
fn write_appends(wal: &Mutex<Wal>, recent: &Mutex<Recent>, appends: Vec<Job>) {
    let mut rows: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut callbacks = Vec::with_capacity(appends.len());
    let mut last = None;
    for job in appends {
        if let Job::Append {
            rows: r,
            last: l,
            flushed,
        } = job
        {
            rows.extend(r);
            last = Some(l);
            callbacks.push(flushed);
        }
    }
    let Some(last) = last else {
        return;
    };
    let started = std::time::Instant::now();
    let result = lock(wal).append(&rows, last);
    tracing::trace!(appends = callbacks.len(), entries = rows.len(), took = ?started.elapsed(), "raft log write");
    if result.is_ok() {
        lock(recent).set_flushed(Some(last.index));
    }
    for flushed in callbacks {
        flushed.log_io_completed(result.as_ref().map(|_| ()).map_err(io_err));
    }
}

/// Records `upto` as purged (durably, before anything is deleted), then drops the entries.
fn purge(db: &Database, wal: &Mutex<Wal>, upto: LogId) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&upto).map_err(io_err)?;
    let txn = db.begin_write().map_err(io_err)?;
    txn.open_table(STATE)
        .map_err(io_err)?
        .insert(LAST_PURGED, bytes.as_slice())
        .map_err(io_err)?;
    txn.commit().map_err(io_err)?;
    lock(wal).purge(upto.index)
}
