//! `--auto-compaction-mode periodic` compacts on the leader: with a 2 s retention, history
//! older than that becomes unreadable while recent revisions stay readable.

use std::time::Duration;

use cairn_proto::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest};
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer};

#[test]
fn periodic_retention_compacts_old_history() {
    let s = TestServer::start_with(
        Kind::Cairn,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let first =
            c.kv.put(PutRequest {
                key: "k".into(),
                value: b"0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let first_rev = first.into_inner().header.unwrap().revision;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        // keep writing; wait (with a deadline) until a compaction past the first write shows up
        let compacted = loop {
            c.kv.put(PutRequest {
                key: "k".into(),
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
            let h = c
                .maintenance
                .hash_kv(HashKvRequest { revision: 0 })
                .await
                .unwrap()
                .into_inner();
            if h.compact_revision > first_rev {
                break h.compact_revision;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no auto-compaction within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await; // pacing the writes, not waiting on state
        };
        let old =
            c.kv.range(RangeRequest {
                key: "k".into(),
                revision: first_rev,
                ..Default::default()
            })
            .await;
        assert!(compacted > first_rev);
        let e = old.expect_err("history before the compaction is gone");
        assert_eq!(
            e.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let now =
            c.kv.range(RangeRequest {
                key: "k".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.kvs[0].value, b"x");
    });
}
