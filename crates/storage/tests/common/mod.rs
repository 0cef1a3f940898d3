//! Helpers shared by the storage integration tests.

use cairn_proto::etcdserverpb::{RangeRequest, RangeResponse};
use cairn_storage::Store;

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
