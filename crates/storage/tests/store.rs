//! The store through its public API, on a real redb file in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::*;
use cairn_proto::mvccpb::event::EventType;
use cairn_storage::{
    Command, CommandResponse, KeyRange, Op, Store, StoreError, StoreOptions, WatchFilters,
};

fn open(dir: &tempfile::TempDir) -> Arc<Store> {
    Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap()
}

fn apply(s: &Store, op: Op) -> Result<CommandResponse, StoreError> {
    s.apply(&[Some(Command::from(op))], &[])
        .unwrap()
        .pop()
        .unwrap()
}

fn put(s: &Store, k: &str, v: &str) -> i64 {
    match apply(
        s,
        Op::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
    )
    .unwrap()
    {
        CommandResponse::Put(r) => r.header.unwrap().revision,
        other => panic!("{other:?}"),
    }
}

fn range(s: &Store, k: &str, end: &str) -> RangeResponse {
    s.range(&RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn revisions_versions_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    assert_eq!(
        s.current_revision(),
        1,
        "a fresh store starts at revision 1 like etcd"
    );
    assert_eq!(put(&s, "a", "1"), 2);
    assert_eq!(put(&s, "a", "2"), 3);
    assert_eq!(put(&s, "b", "x"), 4);
    let r = range(&s, "a", "");
    let kv = &r.kvs[0];
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.value.as_slice()
        ),
        (2, 3, 2, b"2".as_slice())
    );
    let CommandResponse::DeleteRange(d) = apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            prev_kv: true,
            ..Default::default()
        }),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.deleted, d.header.unwrap().revision, d.prev_kvs.len()),
        (1, 5, 1)
    );
    // deleting nothing does not bump the revision
    let CommandResponse::DeleteRange(d) = apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        }),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.unwrap().revision), (0, 5));
    assert!(range(&s, "a", "").kvs.is_empty());
    // recreated key starts a new generation
    assert_eq!(put(&s, "a", "3"), 6);
    let kv = &range(&s, "a", "").kvs[0];
    assert_eq!((kv.create_revision, kv.version), (6, 1));
    // history stays readable
    let old = s
        .range(&RangeRequest {
            key: "a".into(),
            revision: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(old.kvs[0].value, b"2");
    assert_eq!(old.header.unwrap().revision, 6);
}

#[test]
fn range_options() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for (k, v) in [("k1", "c"), ("k2", "a"), ("k3", "b"), ("z", "z")] {
        put(&s, k, v);
    }
    put(&s, "k2", "a2");
    let all = |req: RangeRequest| {
        s.range(&RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            ..req
        })
        .unwrap()
    };
    let r = all(RangeRequest {
        limit: 2,
        ..Default::default()
    });
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
    let r = all(RangeRequest {
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Value as i32,
        ..Default::default()
    });
    let vals: Vec<_> = r.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(vals, vec![b"c".to_vec(), b"b".to_vec(), b"a2".to_vec()]);
    let r = all(RangeRequest {
        count_only: true,
        ..Default::default()
    });
    assert_eq!((r.count, r.kvs.len()), (3, 0));
    let r = all(RangeRequest {
        keys_only: true,
        ..Default::default()
    });
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = all(RangeRequest {
        min_mod_revision: 6,
        ..Default::default()
    });
    assert_eq!(r.kvs.len(), 1);
    assert_eq!(r.count, 3, "count ignores the revision filters, as in etcd");
    let r = all(RangeRequest {
        max_create_revision: 3,
        ..Default::default()
    });
    assert_eq!(r.kvs.len(), 2);
    let from = s
        .range(&RangeRequest {
            key: "k3".into(),
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(from.kvs.len(), 2);
    assert!(matches!(
        s.range(&RangeRequest {
            key: "k".into(),
            revision: 99,
            ..Default::default()
        }),
        Err(StoreError::FutureRevision)
    ));
}

fn cmp_value(k: &str, v: &str) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Value as i32,
        key: k.into(),
        target_union: Some(TargetUnion::Value(v.into())),
        range_end: vec![],
    }
}
fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}
fn op_get(k: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: k.into(),
            ..Default::default()
        })),
    }
}

#[test]
fn txn_branches_and_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    put(&s, "a", "1");
    let t = TxnRequest {
        compare: vec![cmp_value("a", "1")],
        success: vec![
            op_put("b", "2"),
            op_get("b"),
            RequestOp {
                request: Some(Request::RequestTxn(TxnRequest {
                    compare: vec![cmp_value("b", "2")],
                    success: vec![op_put("c", "yes")],
                    failure: vec![op_put("c", "no")],
                })),
            },
        ],
        failure: vec![op_put("x", "x")],
    };
    let CommandResponse::Txn(r) = apply(&s, Op::Txn(t)).unwrap() else {
        panic!()
    };
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 3, "one revision per txn");
    let Some(Response::ResponseRange(got)) = &r.responses[1].response else {
        panic!()
    };
    assert_eq!(
        got.kvs[0].value, b"2",
        "reads inside a txn see its earlier writes"
    );
    // nested compares see the state before the txn: b did not exist, so the nested txn failed
    let Some(Response::ResponseTxn(inner)) = &r.responses[2].response else {
        panic!()
    };
    assert!(!inner.succeeded);
    assert_eq!(range(&s, "c", "").kvs[0].value, b"no");
    let kvs = range(&s, "a", "d").kvs;
    assert!(
        kvs.iter().all(|kv| kv.mod_revision <= 3)
            && kvs.iter().filter(|kv| kv.mod_revision == 3).count() == 2
    );

    let failing = TxnRequest {
        compare: vec![cmp_value("a", "nope")],
        success: vec![],
        failure: vec![op_get("a")],
    };
    let CommandResponse::Txn(r) = apply(&s, Op::Txn(failing)).unwrap() else {
        panic!()
    };
    assert!(!r.succeeded);
    assert_eq!(
        r.header.unwrap().revision,
        3,
        "a read-only branch does not bump the revision"
    );
}

#[test]
fn leases_attach_and_revoke_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let CommandResponse::LeaseGrant(g) =
        apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 1 })).unwrap()
    else {
        panic!()
    };
    assert_eq!((g.id, g.ttl), (7, 2), "TTL raised to the minimum");
    assert!(matches!(
        apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 5 })),
        Err(StoreError::LeaseExists)
    ));
    assert!(matches!(
        apply(
            &s,
            Op::Put(PutRequest {
                key: "k".into(),
                lease: 8,
                ..Default::default()
            })
        ),
        Err(StoreError::LeaseNotFound)
    ));
    assert_eq!(s.current_revision(), 1, "a failed put writes nothing");
    apply(
        &s,
        Op::Put(PutRequest {
            key: "k1".into(),
            lease: 7,
            ..Default::default()
        }),
    )
    .unwrap();
    apply(
        &s,
        Op::Put(PutRequest {
            key: "k2".into(),
            lease: 7,
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(s.lease(7).unwrap().keys.len(), 2);
    let CommandResponse::LeaseRevoke(r) =
        apply(&s, Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        r.header.unwrap().revision,
        4,
        "both keys deleted in one revision"
    );
    assert!(range(&s, "k", "l").kvs.is_empty());
    assert!(matches!(
        apply(&s, Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })),
        Err(StoreError::LeaseNotFound)
    ));
}

fn churn(s: &Store) {
    for i in 0..5 {
        put(s, "a", &i.to_string());
    }
    put(s, "b", "b");
    apply(
        s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "b".into(),
            ..Default::default()
        }),
    )
    .unwrap();
}

#[test]
fn compaction_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    churn(&s);
    let before = s.hash_kv(0).unwrap();
    assert_eq!(
        (before.hash_revision, before.compact_revision),
        (8, -1),
        "etcd reports -1 before any compaction"
    );
    assert_ne!(before.hash, s.hash_kv(4).unwrap().hash);
    apply(
        &s,
        Op::Compact(CompactionRequest {
            revision: 4,
            physical: true,
        }),
    )
    .unwrap();
    assert_eq!(s.compact_revision(), 4);
    assert!(matches!(
        s.range(&RangeRequest {
            key: "a".into(),
            revision: 3,
            ..Default::default()
        }),
        Err(StoreError::Compacted)
    ));
    assert_eq!(
        s.range(&RangeRequest {
            key: "a".into(),
            revision: 4,
            ..Default::default()
        })
        .unwrap()
        .kvs[0]
            .value,
        b"2"
    );
    // the same history compacted at the same revision hashes the same on another store
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(&other_dir);
    churn(&other);
    apply(
        &other,
        Op::Compact(CompactionRequest {
            revision: 4,
            physical: false,
        }),
    )
    .unwrap();
    assert_eq!(s.hash_kv(0).unwrap(), other.hash_kv(0).unwrap());
    assert!(matches!(s.hash_kv(3), Err(StoreError::Compacted)));
    assert!(matches!(
        apply(
            &s,
            Op::Compact(CompactionRequest {
                revision: 4,
                physical: false
            })
        ),
        Err(StoreError::Compacted)
    ));
    assert!(matches!(
        apply(
            &s,
            Op::Compact(CompactionRequest {
                revision: 100,
                physical: false
            })
        ),
        Err(StoreError::FutureRevision)
    ));
}

#[test]
fn state_survives_reopen_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir);
        apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 3, ttl: 60 })).unwrap();
        apply(
            &s,
            Op::Put(PutRequest {
                key: "a".into(),
                value: "v".into(),
                lease: 3,
                ..Default::default()
            }),
        )
        .unwrap();
        put(&s, "a", "w");
        put(&s, "b", "x");
        apply(
            &s,
            Op::Compact(CompactionRequest {
                revision: 3,
                physical: true,
            }),
        )
        .unwrap();
        s.apply(&[None], &[("raft_applied", b"42".to_vec())])
            .unwrap();
        s.flush().unwrap();
    }
    let s = open(&dir);
    assert_eq!((s.current_revision(), s.compact_revision()), (4, 3));
    assert_eq!(range(&s, "a", "").kvs[0].version, 2);
    assert_eq!(s.meta("raft_applied").unwrap(), Some(b"42".to_vec()));
    assert!(
        s.lease(3).unwrap().keys.is_empty(),
        "the second put dropped the lease"
    );
    assert_eq!(put(&s, "c", "y"), 5);
}

/// In-use bytes follow the rows written and compacted away, and a reopened store counts the
/// same from its file.
#[test]
fn in_use_bytes_follow_writes_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let (_, empty) = s.db_size().unwrap();
    assert_eq!(empty, 0);
    let value = "v".repeat(1000);
    for i in 0..50 {
        put(&s, "k", &format!("{i}{value}"));
    }
    // applied without fsync: Status's sizes flush first, so the file shows the writes
    let (total, written) = s.db_size().unwrap();
    assert!(written >= 50 * 1000, "50 values of 1000+ bytes: {written}");
    assert!(written <= total, "in use {written} > file {total}");
    let rev = s.current_revision();
    apply(
        &s,
        Op::Compact(CompactionRequest {
            revision: rev,
            physical: true,
        }),
    )
    .unwrap();
    // the rows go in the background, in batches; the in-use bytes follow
    assert!(s.wait_compacted(rev, std::time::Duration::from_secs(10)));
    let (_, compacted) = s.db_size().unwrap();
    assert!(
        (1000..2 * 1000 + 200).contains(&compacted),
        "one version of one key is left: {compacted}"
    );
    s.flush().unwrap();
    drop(s);
    let s = open(&dir);
    assert_eq!(s.db_size().unwrap().1, compacted, "counted again at open");
}

#[test]
fn watch_live_replay_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    put(&s, "w/1", "a");
    put(&s, "other", "x");
    put(&s, "w/2", "b");
    let hub = s.watch_hub();
    // from history: replayed by the sync thread
    let (_, mut rx) = hub.watch(
        KeyRange::new("w/".into(), "w0".into()),
        2,
        WatchFilters::default(),
    );
    let b = rx.blocking_recv().unwrap();
    let keys: Vec<_> = b
        .events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().key.clone())
        .collect();
    assert_eq!(keys, vec![b"w/1".to_vec(), b"w/2".to_vec()]);
    // then live
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "w/1".into(),
            ..Default::default()
        }),
    )
    .unwrap();
    let b = rx.blocking_recv().unwrap();
    assert_eq!(b.events[0].r#type, EventType::Delete as i32);
    assert_eq!(b.events[0].kv.as_ref().unwrap().mod_revision, 5);
    // NOPUT filter
    let (_, mut nodel) = hub.watch(
        KeyRange::new("w/".into(), "w0".into()),
        0,
        WatchFilters {
            no_put: false,
            no_delete: true,
        },
    );
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "w/2".into(),
            ..Default::default()
        }),
    )
    .unwrap();
    put(&s, "w/3", "c");
    assert_eq!(
        nodel.blocking_recv().unwrap().events[0]
            .kv
            .as_ref()
            .unwrap()
            .key,
        b"w/3"
    );
    // a start below the compact revision is cancelled with the compact revision
    apply(
        &s,
        Op::Compact(CompactionRequest {
            revision: 5,
            physical: true,
        }),
    )
    .unwrap();
    let (_, mut old) = hub.watch(
        KeyRange::new("w/".into(), vec![]),
        2,
        WatchFilters::default(),
    );
    let b = old.blocking_recv().unwrap();
    assert_eq!(b.compact_revision, 5);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while old.blocking_recv().is_some() {
        assert!(std::time::Instant::now() < deadline);
    }
}
