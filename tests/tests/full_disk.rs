//! A full disk during snapshot save and restore: one clear error, a non-zero exit, and
//! nothing left behind (no FILE, no FILE.part, no data dir, no temporary directory).
//! The disk is a small tmpfs mounted for the test, which needs root (as in CI); where
//! mounting is not permitted the test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer, cairnutl_bin};

/// A tmpfs of `bytes` mounted on a fresh temp dir, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("full_disk: cannot mount a tmpfs here (not root?); nothing tested");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn entries(&self) -> Vec<PathBuf> {
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

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/snapshots/v1-small.snap")
}

#[test]
fn restore_onto_a_full_disk_leaves_nothing() {
    let Some(disk) = SmallDisk::mount(64 * 1024) else {
        return;
    };
    let target = disk.path().join("restored");
    let out = Command::new(cairnutl_bin())
        .args(["snapshot", "restore"])
        .arg(fixture())
        .arg("--data-dir")
        .arg(&target)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "restore onto a 64 KiB disk must fail"
    );
    assert!(
        err.to_lowercase().contains("space"),
        "the error names the full disk: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        disk.entries().is_empty(),
        "nothing left behind: {:?}",
        disk.entries()
    );
}

#[test]
fn save_onto_a_full_disk_leaves_nothing() {
    let Some(disk) = SmallDisk::mount(512 * 1024) else {
        return;
    };
    let server = TestServer::start(Kind::Cairn);
    block_on(async {
        let mut c = Clients::connect(&server.endpoint()).await.unwrap();
        for batch in 0..30u32 {
            let ops = (0..100u32)
                .map(|i| {
                    // incompressible values: the snapshot cannot fit in 512 KiB
                    let mut x = ((batch * 100 + i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let value: Vec<u8> = (0..1024)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    let put = PutRequest {
                        key: format!("k{batch:03}{i:03}").into(),
                        value,
                        ..Default::default()
                    };
                    RequestOp {
                        request: Some(Request::RequestPut(put)),
                    }
                })
                .collect();
            c.kv.txn(TxnRequest {
                success: ops,
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
    let file = disk.path().join("backup.snap");
    let out = Command::new(cairnutl_bin())
        .args(["--endpoints", &server.endpoint(), "snapshot", "save"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "saving ~3 MB onto a 512 KiB disk must fail"
    );
    assert!(
        err.to_lowercase().contains("space"),
        "the error names the full disk: {err}"
    );
    assert!(
        disk.entries().is_empty(),
        "no FILE and no FILE.part: {:?}",
        disk.entries()
    );
}
