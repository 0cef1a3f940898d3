//! Many clients writing at once, the same body against cairn and real etcd (the oracle).
//!
//! Cairn packs writes that arrive together into one raft entry (`crates/consensus/src/
//! proposer.rs`); from outside, every write must still be its own: one revision each, in one
//! total order, its own result and its own error.
//!
//! - every successful put and every txn that took its success branch made exactly one
//!   revision, and together they made every revision from the start to the end;
//! - a txn's compare saw the key as of the writes ordered before it (a compare-and-swap
//!   counter loses no increment);
//! - a put naming a lease that does not exist fails alone, with etcd's error, while the
//!   writes around it succeed.

use std::collections::BTreeSet;

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use cairn_tests::{Clients, Kind, TestServer};
use tokio::task::JoinSet;

const CLIENTS: usize = 48;
const ROUNDS: usize = 20;

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Revisions of its successful writes.
    revisions: Vec<i64>,
    /// Increments of the counter it made.
    increments: usize,
    lease_errors: Vec<String>,
}

/// Reads the counter and writes it back plus one if nobody changed it meanwhile.
async fn increment(kv: &mut Clients) -> Option<i64> {
    let got = kv
        .kv
        .range(RangeRequest {
            key: b"counter".to_vec(),
            ..Default::default()
        })
        .await
        .expect("read the counter")
        .into_inner();
    let (value, mod_rev) = got.kvs.first().map_or((0, 0), |kv| {
        let v = String::from_utf8_lossy(&kv.value).parse::<u64>().unwrap();
        (v, kv.mod_revision)
    });
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"counter".to_vec(),
            target: CompareTarget::Mod as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(TargetUnion::ModRevision(mod_rev)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b"counter".to_vec(),
                value: (value + 1).to_string().into_bytes(),
                ..Default::default()
            })),
        }],
        failure: vec![],
    };
    let resp = kv.kv.txn(txn).await.expect("txn").into_inner();
    let revision = resp.header.expect("txn header").revision;
    resp.succeeded.then_some(revision)
}

async fn client(mut c: Clients, id: usize) -> Seen {
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let put = PutRequest {
            key: format!("k/{id}/{round}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let rev = c.kv.put(put).await.expect("put").into_inner();
        seen.revisions
            .push(rev.header.expect("put header").revision);
        if let Some(rev) = increment(&mut c).await {
            seen.revisions.push(rev);
            seen.increments += 1;
        }
        if round % 5 == id % 5 {
            let leased = PutRequest {
                key: format!("leased/{id}/{round}").into_bytes(),
                value: b"v".to_vec(),
                lease: 0x7777_0000 + id as i64,
                ..Default::default()
            };
            match c.kv.put(leased).await {
                Ok(r) => panic!("a put with a lease that does not exist succeeded: {r:?}"),
                Err(e) => seen.lease_errors.push(e.message().to_string()),
            }
        }
    }
    seen
}

async fn writes_stay_separate(kind: Kind) {
    let server = TestServer::start(kind);
    let clients = Clients::connect(&server.endpoint()).await.expect("connect");
    let mut c = clients.clone();
    let start =
        c.kv.range(RangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner()
        .header
        .expect("header")
        .revision;
    let mut tasks = JoinSet::new();
    for id in 0..CLIENTS {
        tasks.spawn(client(clients.clone(), id));
    }
    let seen = tasks.join_all().await;

    let mut revisions = BTreeSet::new();
    let mut increments = 0;
    for s in &seen {
        for r in &s.revisions {
            assert!(
                revisions.insert(*r),
                "{kind:?}: two writes got revision {r}"
            );
        }
        increments += s.increments;
        assert_eq!(s.lease_errors.len(), ROUNDS / 5);
        for e in &s.lease_errors {
            assert_eq!(e, "etcdserver: requested lease not found", "{kind:?}");
        }
    }
    let end = start + (CLIENTS * ROUNDS + increments) as i64;
    assert_eq!(
        revisions,
        (start + 1..=end).collect::<BTreeSet<i64>>(),
        "{kind:?}: every revision from {start} on made by exactly one acknowledged write"
    );
    let counter =
        c.kv.range(RangeRequest {
            key: b"counter".to_vec(),
            ..Default::default()
        })
        .await
        .expect("read the counter")
        .into_inner();
    assert_eq!(counter.header.expect("header").revision, end);
    let kv = &counter.kvs[0];
    assert_eq!(
        String::from_utf8_lossy(&kv.value),
        increments.to_string(),
        "{kind:?}: the counter lost increments"
    );
    assert_eq!(kv.version as usize, increments);
    assert!(increments > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_get_their_own_revisions_and_results() {
    writes_stay_separate(Kind::Cairn).await;
    if cairn_tests::require_etcd() {
        writes_stay_separate(Kind::Etcd).await;
    }
}
