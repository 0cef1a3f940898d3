//! A single member through raft: writes are applied, survive a restart, and IDs are stable.

use std::time::Duration;

use cairn_consensus::{Node, NodeConfig};
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_storage::{Command, CommandResponse, Op, StoreOptions};

fn config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        name: "default".into(),
        initial_cluster: vec![("default".into(), vec!["http://localhost:2380".into()])],
        join_existing: false,
        initial_cluster_token: "etcd-cluster".into(),
        initial_advertise_peer_urls: vec!["http://localhost:2380".into()],
        heartbeat_interval: Duration::from_millis(100),
        election_timeout: Duration::from_millis(1000),
        snapshot_count: 50,
        snapshot_catchup_entries: 5000,
        store: StoreOptions::default(),
        peer_connector: cairn_tls::Connector::plain(),
        force_new_cluster: false,
    }
}

fn put(k: &str, v: &str) -> Command {
    Command::from(Op::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::start(config(dir.path())).await.unwrap();
        assert_eq!(format!("{:x}", node.member_id), "8e9e05c52164694d");
        assert!(
            node.wait_leader(Duration::from_secs(10)).await,
            "a single member elects itself"
        );
        // more writes than --snapshot-count: a raft snapshot is built and the log purged
        for i in 0..120 {
            let r = node
                .write(put(&format!("k{i:03}"), &i.to_string()))
                .await
                .unwrap();
            let CommandResponse::Put(p) = r else {
                panic!("{r:?}")
            };
            assert_eq!(p.header.unwrap().revision, i + 2);
        }
        node.linearizable().await.unwrap();
        // metrics update asynchronously: wait (with a deadline) for apply to catch up
        node.raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.last_applied.map(|l| l.index) == m.last_log_index,
                "applied catches up with the log",
            )
            .await
            .unwrap();
        let status = node.status();
        assert!(status.is_leader);
        assert_eq!(status.applied_index, status.last_index);
        // no final flush: the restart must replay the log
        node.close(false).await;
    }
    let node = Node::start(config(dir.path())).await.unwrap();
    assert!(node.wait_leader(Duration::from_secs(10)).await);
    node.linearizable().await.unwrap();
    let r = node
        .store
        .range(&RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 120);
    assert_eq!(r.header.unwrap().revision, 121);
    let (members, me) = (node.members(), node.member_id);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, me);
    assert_eq!(members[0].member.name, "default");
    node.close(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.name = "other".into();
    let err = Node::start(cfg).await.err().expect("must fail");
    assert!(
        err.to_string()
            .contains("couldn't find local name \"other\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_client_urls_are_published_into_the_membership() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path())).await.unwrap();
    assert!(node.wait_leader(Duration::from_secs(10)).await);
    let moved = vec!["http://127.0.0.1:32379".to_string()];
    node.publish("default", &moved).await.unwrap();
    // membership metrics update asynchronously: wait for them with a deadline
    let urls = moved.clone();
    node.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            move |m| {
                m.membership_config
                    .membership()
                    .nodes()
                    .any(|(_, n)| n.client_urls == urls)
            },
            "the new client URLs in the membership",
        )
        .await
        .unwrap();
    assert_eq!(node.members()[0].member.client_urls, moved);
    let before = node.status().last_index;
    node.publish("default", &moved).await.unwrap();
    assert_eq!(
        node.status().last_index,
        before,
        "unchanged URLs propose nothing"
    );
    node.close(true).await;
}
