//! A small disk for tests: a tmpfs of a given size on a fresh temp dir (root only), to fill
//! up and to grow again, as an operator freeing space does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `bytes` mounted on a fresh temp dir, unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (not root?): no small disk");
            return None;
        }
        Some(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the disk `bytes` in all: more (an operator freeing space), or barely more than
    /// it holds (a disk about to fill up).
    pub fn grow(&self, bytes: u64) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {} with {bytes} bytes", self.path().display());
    }

    pub fn entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

impl SmallDisk {
    /// Bytes in use on it.
    pub fn used(&self) -> u64 {
        Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(self.path())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Puts `server`'s data dir on this disk (a symlink to a fresh directory on it); for a
    /// `start_prepared` hook, which may run again on a repeated start attempt.
    pub fn hold_data_dir(&self, data_dir: &Path) {
        let on_disk = self.path().join("data");
        let _ = std::fs::remove_dir_all(&on_disk);
        std::fs::create_dir_all(&on_disk).expect("a data dir on the small disk");
        let _ = std::fs::remove_file(data_dir);
        std::os::unix::fs::symlink(&on_disk, data_dir).expect("link the data dir");
    }
}
