//! Raft snapshots follow `--snapshot-count` applied writes, however the writes travel.
//!
//! openraft's own policy is off (it counts log entries, and an entry carries every write that
//! arrived with it); a task counts applied writes instead. Without a working trigger the raft
//! log would never be purged, so this checks that the snapshot marker appears once enough
//! writes were applied, from many concurrent clients (whose writes share entries).

use std::time::Duration;

use cairn_proto::etcdserverpb::{PutRequest, StatusRequest};
use cairn_tests::{Clients, Kind, TestServer, wait};
use tokio::task::JoinSet;

const CLIENTS: usize = 32;
const PUTS_EACH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_follow_the_write_count() {
    let server = TestServer::start_with(
        Kind::Cairn,
        &[
            "--snapshot-count",
            "200",
            "--experimental-snapshot-catchup-entries",
            "10",
        ],
    );
    let marker = server
        .data_dir()
        .join("member")
        .join("snap")
        .join("raft-snapshot.json");
    assert!(!marker.exists(), "a fresh member has no raft snapshot");
    let clients = Clients::connect(&server.endpoint()).await.expect("connect");
    let mut tasks = JoinSet::new();
    for c in 0..CLIENTS {
        let mut clients = clients.clone();
        tasks.spawn(async move {
            for i in 0..PUTS_EACH {
                clients
                    .kv
                    .put(PutRequest {
                        key: format!("k/{c}/{i}").into_bytes(),
                        value: vec![b'v'; 100],
                        ..Default::default()
                    })
                    .await
                    .expect("put");
            }
        });
    }
    tasks.join_all().await;
    let status = clients
        .clone()
        .maintenance
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    eprintln!(
        "{} puts from {CLIENTS} clients took {} raft entries",
        CLIENTS * PUTS_EACH,
        status.raft_index
    );
    let snapshot = wait::until(
        Duration::from_secs(10),
        "a raft snapshot after 640 writes with --snapshot-count 200",
        || std::fs::read_to_string(&marker).ok(),
    );
    let meta: serde_json::Value = serde_json::from_str(&snapshot).expect("marker is JSON");
    let index = meta["meta"]["last_log_id"]["index"]
        .as_u64()
        .expect("the marker names the log index it covers");
    assert!(index > 0, "{snapshot}");
}
