//! The store files open in this process. redb lets one handle hold a file; a store whose last
//! handle a background thread happened to drop (the committer, watch replay; see `gate.rs`)
//! closes a moment later on that thread, so opening the same file again first waits for
//! that close instead of failing with "Database already open".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::locks::lock;

static OPEN: LazyLock<(Mutex<HashMap<PathBuf, usize>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashMap::new()), Condvar::new()));

/// How long an open waits for a store of this process to close the same file.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The registration of one open store file, dropped after the database is closed.
pub(crate) struct OpenFile(PathBuf);

impl OpenFile {
    /// Registers `path`, first waiting (up to [`CLOSE_WAIT`]) while a store of this process
    /// has it open. A file still open after that is left for redb to refuse, as before.
    pub fn claim(path: &Path) -> OpenFile {
        let (open, closed) = &*OPEN;
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut files = lock(open);
        while files.contains_key(path) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            files = closed
                .wait_timeout(files, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *files.entry(path.to_path_buf()).or_default() += 1;
        OpenFile(path.to_path_buf())
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        let (open, closed) = &*OPEN;
        let mut files = lock(open);
        if let Some(n) = files.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                files.remove(&self.0);
            }
        }
        closed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_waits_for_the_file_to_be_released_on_another_thread() {
        let path = PathBuf::from("/nonexistent/open-files-test/kv.redb");
        let first = OpenFile::claim(&path);
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            // taken before the release: the claim may wake before this thread runs again
            let releasing = Instant::now();
            drop(first);
            releasing
        });
        let second = OpenFile::claim(&path);
        let claimed = Instant::now();
        assert!(
            claimed >= released.join().unwrap(),
            "claimed only after the release"
        );
        drop(second);
        assert!(!lock(&OPEN.0).contains_key(&path));
    }
}
