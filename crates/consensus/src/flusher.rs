//! Makes applied writes durable in the store once a second, off the write path.
//!
//! The state machine applies without fsync (the raft log is the durable record); this task
//! commits the store durably when it has unflushed writes and a second has passed, so a
//! restart replays at most about a second of the log. It used to run inside an apply, which
//! made the one write per second that triggered it wait for the store's fsync.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use cairn_storage::Store;
use tokio::sync::watch;

use crate::periodic;

const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until `closing` turns true.
pub(crate) fn start(
    store: Arc<Store>,
    closing: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    periodic::every(FLUSH_INTERVAL, closing, move || {
        let store = store.clone();
        async move {
            if store.has_unflushed() {
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "flushing the store failed; the raft log still holds the writes")
                    }
                    Err(e) => tracing::error!(error = %e, "the store flush task failed"),
                }
            }
            ControlFlow::Continue(())
        }
    })
}
