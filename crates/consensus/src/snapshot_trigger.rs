//! When to take a raft snapshot: after `--snapshot-count` applied writes, as etcd counts.
//!
//! openraft counts log entries, but an entry here carries every write that arrived with it
//! (`proposer.rs`), so counting entries would let the log grow far past what etcd keeps
//! between snapshots. The state machine counts the commands it applies; this task asks raft
//! for a snapshot each time `every` more have been applied. Raft then purges the log behind
//! the snapshot, keeping `--experimental-snapshot-catchup-entries` entries.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::periodic;
use crate::types::Raft;

/// How often the count is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Applied commands since the last snapshot was asked for, shared with the state machine.
#[derive(Clone, Default)]
pub(crate) struct AppliedCount(Arc<AtomicU64>);

impl AppliedCount {
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Runs until `closing` turns true.
pub(crate) fn start(
    raft: Raft,
    count: AppliedCount,
    every: u64,
    closing: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    periodic::every(CHECK_EVERY, closing, move || {
        let (raft, count) = (raft.clone(), count.clone());
        async move {
            if count.0.load(Ordering::Relaxed) < every.max(1) {
                return ControlFlow::Continue(());
            }
            count.0.store(0, Ordering::Relaxed);
            match raft.trigger().snapshot().await {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a raft snapshot");
                    ControlFlow::Break(())
                }
            }
        }
    })
}
