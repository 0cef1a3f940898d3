//! A NOSPACE alarm caps the store (etcd's `applierV3Capped`): Puts, Txns with a Put and
//! LeaseGrants fail with `NoSpace` and write nothing; reads, deletes, read-only and delete-only
//! Txns, compaction, lease revocation and alarms still apply; disarming lifts the cap.

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::*;
use cairn_storage::{Command, CommandResponse, Op, Store, StoreError, StoreOptions};

const MEMBER: u64 = 0x8e9e05c52164694d;

fn apply(s: &Store, op: Op) -> Result<CommandResponse, StoreError> {
    s.apply(&[Some(Command::from(op))], &[])
        .unwrap()
        .pop()
        .unwrap()
}

fn put(key: &str) -> Op {
    Op::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

fn alarm(action: AlarmAction, member_id: u64) -> Op {
    Op::Alarm(AlarmRequest {
        action: action as i32,
        member_id,
        alarm: AlarmType::Nospace as i32,
    })
}

fn txn(success: Vec<Request>) -> Op {
    Op::Txn(TxnRequest {
        success: success
            .into_iter()
            .map(|r| RequestOp { request: Some(r) })
            .collect(),
        ..Default::default()
    })
}

fn nested_put(key: &str) -> Request {
    let Op::Txn(inner) = txn(vec![Request::RequestPut(PutRequest {
        key: key.into(),
        ..Default::default()
    })]) else {
        unreachable!()
    };
    Request::RequestTxn(inner)
}

fn is_nospace(r: Result<CommandResponse, StoreError>) -> bool {
    matches!(r, Err(StoreError::NoSpace))
}

#[test]
fn nospace_alarm_refuses_growth_and_allows_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap();
    apply(&s, put("a")).unwrap();
    apply(&s, put("b")).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 60 })).unwrap();
    apply(&s, alarm(AlarmAction::Activate, MEMBER)).unwrap();
    let rev = s.current_revision();

    assert!(is_nospace(apply(&s, put("c"))));
    assert!(is_nospace(apply(
        &s,
        Op::LeaseGrant(LeaseGrantRequest { id: 8, ttl: 60 })
    )));
    let range = Request::RequestRange(RangeRequest {
        key: "a".into(),
        ..Default::default()
    });
    assert!(is_nospace(apply(
        &s,
        txn(vec![
            range.clone(),
            Request::RequestPut(PutRequest {
                key: "c".into(),
                ..Default::default()
            })
        ])
    )));
    assert!(is_nospace(apply(&s, txn(vec![nested_put("c")]))));
    assert_eq!(s.current_revision(), rev, "a refused command wrote nothing");
    assert!(!s.lease_exists(8));

    // what cannot grow the store still applies
    apply(&s, txn(vec![range])).unwrap();
    apply(
        &s,
        txn(vec![Request::RequestDeleteRange(DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        })]),
    )
    .unwrap();
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "b".into(),
            ..Default::default()
        }),
    )
    .unwrap();
    apply(&s, Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })).unwrap();
    apply(
        &s,
        Op::Compact(CompactionRequest {
            revision: s.current_revision(),
            physical: true,
        }),
    )
    .unwrap();
    let got = s
        .range(&RangeRequest {
            key: "a".into(),
            range_end: "z".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(got.count, 0);

    apply(&s, alarm(AlarmAction::Deactivate, MEMBER)).unwrap();
    apply(&s, put("c")).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 8, ttl: 60 })).unwrap();
}

/// Any member's alarm caps every member, from the next command of the same batch on; the
/// cap lasts until the last NOSPACE alarm is disarmed and survives a reopen.
#[test]
fn cap_follows_the_alarm_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    let batch: Vec<Option<Command>> = vec![
        Some(put("a").into()),
        Some(alarm(AlarmAction::Activate, 1).into()),
        Some(alarm(AlarmAction::Activate, 2).into()),
        Some(put("b").into()),
    ];
    let results = s.apply(&batch, &[]).unwrap();
    assert!(results[0].is_ok() && results[1].is_ok() && results[2].is_ok());
    assert!(matches!(results[3], Err(StoreError::NoSpace)));

    apply(&s, alarm(AlarmAction::Deactivate, 1)).unwrap();
    assert!(
        is_nospace(apply(&s, put("b"))),
        "member 2's alarm is still raised"
    );
    drop(s);

    let s = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(
        is_nospace(apply(&s, put("b"))),
        "the cap survives a restart"
    );
    apply(&s, alarm(AlarmAction::Deactivate, 2)).unwrap();
    apply(&s, put("b")).unwrap();
}
