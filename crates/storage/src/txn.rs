//! Txn logic without I/O: compare evaluation, the branch path, and request validation.

use std::collections::HashSet;

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use cairn_proto::mvccpb::KeyValue;

use crate::error::{Result, StoreError};
use crate::index::KeyRange;

/// Compares one key-value against a compare (etcd's `compareKV`). A missing key is compared as
/// an all-zero KeyValue.
pub fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let int_target = |want: Option<i64>, have: i64| have.cmp(&want.unwrap_or(0));
    let ord = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        CompareTarget::Version => int_target(
            union_int(c, |u| matches!(u, TargetUnion::Version(_))),
            kv.version,
        ),
        CompareTarget::Create => int_target(
            union_int(c, |u| matches!(u, TargetUnion::CreateRevision(_))),
            kv.create_revision,
        ),
        CompareTarget::Mod => int_target(
            union_int(c, |u| matches!(u, TargetUnion::ModRevision(_))),
            kv.mod_revision,
        ),
        CompareTarget::Lease => int_target(
            union_int(c, |u| matches!(u, TargetUnion::Lease(_))),
            kv.lease,
        ),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// The integer in the compare's union when it is the kind `is_kind` accepts.
fn union_int(c: &Compare, is_kind: impl Fn(&TargetUnion) -> bool) -> Option<i64> {
    match &c.target_union {
        Some(u) if is_kind(u) => match u {
            TargetUnion::Version(v)
            | TargetUnion::CreateRevision(v)
            | TargetUnion::ModRevision(v)
            | TargetUnion::Lease(v) => Some(*v),
            TargetUnion::Value(_) => None,
        },
        _ => None,
    }
}

/// Evaluates a compare against the KVs its key range currently holds (etcd's `applyCompare`).
pub fn compare_holds(c: &Compare, kvs: &[KeyValue]) -> bool {
    if kvs.is_empty() {
        // a value cannot be compared on a missing key: nil and empty are the same on the wire
        return c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default());
    }
    kvs.iter().all(|kv| compare_kv(c, kv))
}

pub fn compare_range(c: &Compare) -> KeyRange {
    KeyRange::new(c.key.clone(), c.range_end.clone())
}

/// The ops of the branch a txn takes.
pub fn branch(t: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &t.success } else { &t.failure }
}

/// True when no op (at any depth) writes.
pub fn is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(inner)) => is_read_only(inner),
            _ => false,
        })
}

/// Checks a Put before it is proposed (etcd's `checkPutRequest`).
pub fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

pub fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// Checks a Txn before it is proposed (etcd's `checkTxnRequest` + `checkIntervals`).
pub fn check_txn(t: &TxnRequest, max_ops: usize) -> Result<()> {
    check_txn_shape(t, max_ops)?;
    check_intervals(t)
}

/// Nested txns get what the outer one leaves of the budget, as in etcd.
fn check_txn_shape(t: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
    if ops > max_ops {
        return Err(StoreError::TooManyOps);
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => check_range(r)?,
            Some(Request::RequestPut(r)) => check_put(r)?,
            Some(Request::RequestDeleteRange(r)) => check_delete(r)?,
            Some(Request::RequestTxn(inner)) => check_txn_shape(inner, max_ops - ops)?,
            None => {}
        }
    }
    Ok(())
}

/// etcd's `checkIntervals` on each branch: a key may be written once per branch path.
fn check_intervals(t: &TxnRequest) -> Result<()> {
    branch_writes(&t.success)?;
    branch_writes(&t.failure)?;
    Ok(())
}

/// The puts and delete ranges of one branch, nested txns included; an error when a put
/// repeats a put or falls in a delete of the same path. As in etcd, a nested txn's
/// success and failure branches are alternatives, so they may repeat each other, and they are
/// checked only against the deletes of the enclosing level.
fn branch_writes(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<KeyRange>)> {
    let mut dels: Vec<KeyRange> = Vec::new();
    for op in ops {
        // etcd builds the interval [key, "\x00") for a from-key delete, which is empty:
        // such a delete never conflicts with a put; kept for compatibility
        if let Some(Request::RequestDeleteRange(d)) = &op.request
            && d.range_end != [0]
        {
            dels.push(KeyRange::new(d.key.clone(), d.range_end.clone()));
        }
    }
    let in_dels = |dels: &[KeyRange], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(inner)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = branch_writes(&inner.success)?;
        let (puts_else, dels_else) = branch_writes(&inner.failure)?;
        for k in &puts_then {
            if puts.contains(k) || in_dels(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || in_dels(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || in_dels(&dels, &p.key) {
            return Err(StoreError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::compare::{CompareResult as R, CompareTarget as T};

    fn cmp(target: T, result: R, u: TargetUnion) -> Compare {
        Compare {
            result: result as i32,
            target: target as i32,
            key: b"k".to_vec(),
            target_union: Some(u),
            range_end: vec![],
        }
    }

    fn kv(version: i64, value: &[u8]) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            version,
            create_revision: 2,
            mod_revision: 5,
            value: value.to_vec(),
            lease: 0,
        }
    }

    #[test]
    fn compares_each_target() {
        let k = kv(3, b"v");
        assert!(compare_kv(
            &cmp(T::Version, R::Equal, TargetUnion::Version(3)),
            &k
        ));
        assert!(compare_kv(
            &cmp(T::Version, R::Greater, TargetUnion::Version(2)),
            &k
        ));
        assert!(compare_kv(
            &cmp(T::Create, R::Less, TargetUnion::CreateRevision(3)),
            &k
        ));
        assert!(compare_kv(
            &cmp(T::Mod, R::NotEqual, TargetUnion::ModRevision(4)),
            &k
        ));
        assert!(compare_kv(
            &cmp(T::Value, R::Equal, TargetUnion::Value(b"v".to_vec())),
            &k
        ));
        assert!(compare_kv(
            &cmp(T::Lease, R::Equal, TargetUnion::Lease(0)),
            &k
        ));
        assert!(!compare_kv(
            &cmp(T::Value, R::Greater, TargetUnion::Value(b"w".to_vec())),
            &k
        ));
    }

    #[test]
    fn missing_key_compares_as_zero_but_never_on_value() {
        assert!(compare_holds(
            &cmp(T::Version, R::Equal, TargetUnion::Version(0)),
            &[]
        ));
        assert!(compare_holds(
            &cmp(T::Create, R::Equal, TargetUnion::CreateRevision(0)),
            &[]
        ));
        assert!(!compare_holds(
            &cmp(T::Value, R::Equal, TargetUnion::Value(vec![])),
            &[]
        ));
    }

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_keys_are_refused_within_a_branch_only() {
        let same_branch = TxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        assert!(matches!(
            check_txn(&same_branch, 128),
            Err(StoreError::DuplicateKey)
        ));
        let across = TxnRequest {
            success: vec![put("a")],
            failure: vec![put("a")],
            ..Default::default()
        };
        assert!(check_txn(&across, 128).is_ok());
        let put_in_deleted_range = TxnRequest {
            success: vec![del("a", "c"), put("b")],
            ..Default::default()
        };
        assert!(matches!(
            check_txn(&put_in_deleted_range, 128),
            Err(StoreError::DuplicateKey)
        ));
        let after_from_key_delete = TxnRequest {
            success: vec![del("a", "\0"), put("b")],
            ..Default::default()
        };
        assert!(
            check_txn(&after_from_key_delete, 128).is_ok(),
            "etcd treats a from-key delete as an empty interval"
        );
        let nested = TxnRequest {
            success: vec![
                put("a"),
                RequestOp {
                    request: Some(Request::RequestTxn(TxnRequest {
                        success: vec![put("a")],
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        assert!(matches!(
            check_txn(&nested, 128),
            Err(StoreError::DuplicateKey)
        ));
    }

    /// Found by the differential test (seed 0x5eed0002): a nested txn whose success puts a key
    /// its failure deletes is fine, the branches being alternatives.
    #[test]
    fn nested_branches_may_touch_the_same_key() {
        let inner = TxnRequest {
            success: vec![put("b")],
            failure: vec![del("b", "")],
            ..Default::default()
        };
        let t = TxnRequest {
            failure: vec![RequestOp {
                request: Some(Request::RequestTxn(inner)),
            }],
            ..Default::default()
        };
        assert!(check_txn(&t, 128).is_ok());
    }

    #[test]
    fn too_many_ops() {
        let t = TxnRequest {
            success: (0..4).map(|i| put(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        assert!(check_txn(&t, 4).is_ok());
        assert!(matches!(check_txn(&t, 3), Err(StoreError::TooManyOps)));
    }

    #[test]
    fn read_only_detection() {
        let r = RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            })),
        };
        assert!(is_read_only(&TxnRequest {
            success: vec![r.clone()],
            ..Default::default()
        }));
        assert!(!is_read_only(&TxnRequest {
            success: vec![r],
            failure: vec![put("x")],
            ..Default::default()
        }));
    }
}
