//! Helpers shared by the storage integration tests.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use cairn_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest, RangeResponse};
use cairn_storage::{Command, Op, Store};

/// Applies one command, which must succeed.
pub fn apply(s: &Store, op: Op) {
    s.apply(&[Some(Command::from(op))], &[])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
}

/// A put of `value` at `key`, attached to `lease` (0: none).
pub fn put(key: &str, value: impl AsRef<[u8]>, lease: i64) -> Op {
    Op::Put(PutRequest {
        key: key.into(),
        value: value.as_ref().to_vec(),
        lease,
        ..Default::default()
    })
}

/// A physical compaction at `revision`.
pub fn compact(revision: i64) -> Op {
    Op::Compact(CompactionRequest {
        revision,
        physical: true,
    })
}

/// Every key as of `revision` (0: the current one).
pub fn all(s: &Store, revision: i64) -> RangeResponse {
    s.range(&RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision,
        ..Default::default()
    })
    .unwrap()
}

/// Everything a client can observe is the same in both stores, and so are every row (meta
/// included), the leases, the alarms and the `meta` entries named.
pub fn assert_same(a: &Store, b: &Store, meta: &[&str]) {
    assert_eq!(
        (a.current_revision(), a.compact_revision()),
        (b.current_revision(), b.compact_revision())
    );
    assert_eq!(all(a, 0), all(b, 0));
    assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
    let oldest = b.compact_revision() + 1;
    if oldest < b.current_revision() {
        assert_eq!(
            all(a, oldest),
            all(b, oldest),
            "history since the compaction"
        );
        assert_eq!(a.hash_kv(oldest).unwrap(), b.hash_kv(oldest).unwrap());
    }
    assert_eq!(
        a.hash_all().unwrap(),
        b.hash_all().unwrap(),
        "every row, meta too"
    );
    assert_eq!(a.lease_ids(), b.lease_ids());
    for id in b.lease_ids() {
        let (la, lb) = (a.lease(id).unwrap(), b.lease(id).unwrap());
        assert_eq!((la.ttl, la.keys), (lb.ttl, lb.keys), "lease {id}");
    }
    assert_eq!(a.alarms().unwrap(), b.alarms().unwrap());
    for name in meta {
        assert_eq!(a.meta(name).unwrap(), b.meta(name).unwrap(), "{name}");
    }
}
