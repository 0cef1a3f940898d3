//! Waiting on observable state with a deadline, never on a fixed sleep.

use std::time::{Duration, Instant};

/// How often [`until`] re-checks its condition.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
