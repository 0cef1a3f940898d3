//! `backup run`'s uploads to an object-store target. The run writes every file into its
//! spool directory first (segments are sealed there, full snapshots saved there), and hands
//! each finished file here; one task uploads them in the order they were finished, removes
//! each from the spool once the store has it, and keeps the target's lock renewed.
//!
//! When the store cannot be reached the files wait in the spool: each upload is retried with
//! a growing pause (each failure reported with how many files wait), and the watch goes on
//! sealing segments meanwhile, so nothing is lost while the store is away and the backup
//! catches up when it is back. A run stopped before its spool is empty leaves the files there;
//! the next run uploads them before anything new.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::lock::{LockError, RENEW, StoreLock};
use crate::progress::{Progress, Reporter};
use crate::retention::{self, Retention};
use crate::segment::parse_sealed_name;
use crate::stats::Stats;
use crate::target::Target;
use crate::timeline::parse_full_name;

/// The longest pause between two tries of one upload.
const MAX_PAUSE: Duration = Duration::from_secs(30);

pub(crate) struct Uploader {
    tx: mpsc::UnboundedSender<PathBuf>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
    failed: Arc<Mutex<Option<LockError>>>,
    pending: Arc<AtomicUsize>,
}

impl Uploader {
    pub(crate) fn start(
        target: Arc<Target>,
        lock: StoreLock,
        retention: Retention,
        report: Reporter,
        stats: Arc<Stats>,
    ) -> Uploader {
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(Mutex::new(None));
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(uploads(
            Work {
                target,
                lock,
                retention,
                report,
                stats: stats.clone(),
                pending: pending.clone(),
            },
            rx,
            failed.clone(),
        ));
        Uploader {
            tx,
            stats,
            task,
            failed,
            pending,
        }
    }

    /// Queues a finished file of the spool.
    pub(crate) fn send(&self, path: PathBuf) {
        let n = self.pending.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.spooled(n);
        let _ = self.tx.send(path);
    }

    /// Why the uploads stopped for good (the lock was taken over), if they did.
    pub(crate) fn failure(&self) -> Option<LockError> {
        self.failed.lock().ok().and_then(|mut f| f.take())
    }

    /// Uploads what is queued, for at most `grace`; the number of files left in the spool.
    pub(crate) async fn finish(self, grace: Duration) -> usize {
        drop(self.tx);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        self.pending.load(Ordering::SeqCst)
    }
}

struct Work {
    target: Arc<Target>,
    lock: StoreLock,
    retention: Retention,
    report: Reporter,
    stats: Arc<Stats>,
    pending: Arc<AtomicUsize>,
}

async fn uploads(
    mut w: Work,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
    failed: Arc<Mutex<Option<LockError>>>,
) {
    let mut renew = tokio::time::interval(RENEW / 3);
    let outcome = loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(path) = next else { break Ok(()) };
                if let Err(e) = upload(&mut w, &path).await {
                    break Err(e);
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Some(revision) = parse_full_name(&name) {
                    w.stats.full_stored(revision, crate::lock::now_ms());
                    retention::apply(&w.target, w.retention, &w.report).await;
                } else if let Some((_, last)) = parse_sealed_name(&name) {
                    w.stats.stored(last);
                }
            }
            _ = renew.tick() => {
                if let Err(e) = renew_if_due(&mut w).await {
                    break Err(e);
                }
            }
        }
    };
    match outcome {
        Ok(()) => w.lock.release(&w.target).await,
        Err(e) => {
            if let Ok(mut f) = failed.lock() {
                *f = Some(e);
            }
        }
    }
}

/// Renews the lock when due; only a takeover is an error (an unreachable store is retried
/// at the next tick, and uploads wait while the lease is in doubt).
async fn renew_if_due(w: &mut Work) -> Result<(), LockError> {
    if !w.lock.due() {
        return Ok(());
    }
    match w.lock.renew(&w.target).await {
        Err(e @ LockError::Fenced { .. }) => Err(e),
        Err(other) => {
            (w.report)(Progress::Retrying {
                why: format!("renewing the lock: {other}"),
            });
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// Uploads one file until the store has it, then removes it from the spool.
async fn upload(w: &mut Work, path: &std::path::Path) -> Result<(), LockError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut pause = Duration::from_secs(1);
    loop {
        renew_if_due(w).await?;
        let started = Instant::now();
        let tried = if w.lock.held() {
            w.target.upload(path).await.map_err(|e| e.to_string())
        } else {
            Err("the lock could not be renewed: uploads wait until it is".to_string())
        };
        match tried {
            Ok(()) => {
                let _ = std::fs::remove_file(path);
                let left = w.pending.fetch_sub(1, Ordering::SeqCst) - 1;
                w.stats.uploaded(bytes);
                w.stats.spooled(left);
                (w.report)(Progress::Uploaded {
                    name,
                    bytes,
                    to: w.target.describe(),
                    seconds: started.elapsed().as_secs_f64(),
                });
                return Ok(());
            }
            Err(why) => {
                w.stats.upload_failed();
                w.stats.spooled(w.pending.load(Ordering::SeqCst));
                (w.report)(Progress::UploadRetrying {
                    name: name.clone(),
                    why,
                    pending: w.pending.load(Ordering::SeqCst),
                });
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
