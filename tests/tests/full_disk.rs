//! A full disk during snapshot save and restore: one clear error, a non-zero exit, and
//! nothing left behind (no FILE, no FILE.part, no data dir, no temporary directory). A
//! member whose own disk fills up exits with the reason and, restarted with room, has every
//! write it acknowledged.
//! The disk is a small tmpfs mounted for the test, which needs root (as in CI); where
//! mounting is not permitted the test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use cairn_tests::disk::SmallDisk;
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer, cairnutl_bin};

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

#[test]
fn a_member_whose_disk_fills_up_exits_and_loses_no_acknowledged_write() {
    let Some(disk) = SmallDisk::mount(150 << 20) else {
        return;
    };
    let mut server = TestServer::start_prepared(Kind::Cairn, "s1", &[], |data_dir, _| {
        disk.hold_data_dir(data_dir)
    });
    let value = vec![b'v'; 100_000];
    let key = |i: usize| format!("k{i:05}");
    let (acknowledged, refusal) = block_on(async {
        let mut c = Clients::connect(&server.endpoint()).await.unwrap();
        // 150 MB cannot hold 300 MB of values (and the log that carries them)
        for i in 0..3000 {
            let put = PutRequest {
                key: key(i).into(),
                value: value.clone(),
                ..Default::default()
            };
            if let Err(status) = c.kv.put(put).await {
                return (i, status);
            }
        }
        panic!("3000 puts of 100 KB fit on a 150 MB disk");
    });
    assert!(
        acknowledged > 100,
        "only {acknowledged} puts before the disk was full: {refusal:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("a member whose disk is full exits");
    assert!(!status.success(), "with a failure status: {status}");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("raft stopped on an error") && log.contains("No space left on device"),
        "the log says why: {}",
        server.log_tail(10)
    );

    disk.grow(512 << 20);
    server.restart();
    block_on(async {
        let mut c = Clients::connect(&server.endpoint()).await.unwrap();
        for i in 0..acknowledged {
            let got =
                c.kv.range(RangeRequest {
                    key: key(i).into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.kvs.len(), 1, "acknowledged {} is there", key(i));
            assert!(got.kvs[0].value == value, "{} has its value", key(i));
        }
        let put = PutRequest {
            key: b"after".to_vec(),
            value: b"restart".to_vec(),
            ..Default::default()
        };
        c.kv.put(put)
            .await
            .expect("writes again once there is room");
    });
}
