//! Wake-ups between the store and its threads.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::locks::lock;

/// Wakes a thread (the committer at the overlay's first pending write, the compactor at a
/// compaction scheduled).
#[derive(Default)]
pub(crate) struct Wake {
    due: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    pub fn poke(&self) {
        let mut due = lock(&self.due);
        if !*due {
            *due = true;
            self.cv.notify_one();
        }
    }

    /// Whether a poke came within `timeout`; consumes it.
    pub fn wait(&self, timeout: Duration) -> bool {
        let due = lock(&self.due);
        let (mut due, _) = self
            .cv
            .wait_timeout_while(due, timeout, |due| !*due)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *due)
    }
}

/// Tells waiters that a compaction finished deleting.
#[derive(Default)]
pub(crate) struct Finished {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Finished {
    pub fn notify(&self) {
        *lock(&self.generation) += 1;
        self.cv.notify_all();
    }

    pub fn generation(&self) -> u64 {
        *lock(&self.generation)
    }

    /// Waits until a notification after `seen`, at most `timeout`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let g = lock(&self.generation);
        let _ = self
            .cv
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
    }
}
