//! What a history is checked against: etcd's key-value semantics, one key at a time (the
//! history is partitioned by key, as porcupine's etcd model does), for the `porcupine-rs`
//! linearizability checker.

use porcupine_rs::{Model, Operation};

/// One client operation on a key, with what it returned. `None` results are unknown: the
/// call failed or timed out, so it may or may not have taken effect.
#[derive(Clone, Debug)]
pub enum KvOp {
    /// A put of a value unique to the run; its header revision is the key's new mod_revision.
    Put {
        key: u8,
        value: u64,
        revision: Option<i64>,
    },
    /// A linearizable get: the value and mod_revision found, or `None` (absent).
    Get { key: u8, found: Option<(u64, i64)> },
    /// A delete: whether it deleted the key.
    Delete { key: u8, deleted: Option<bool> },
    /// A txn on one key: if its mod_revision is the one `expect` was read at (`None`: the key
    /// is absent, mod_revision 0) put `value`, else get the key. Values are unique to a run,
    /// so the revision compare holds exactly when the key still holds `expect`'s value.
    Txn {
        key: u8,
        expect: Option<(u64, i64)>,
        value: u64,
        outcome: Option<TxnOutcome>,
    },
}

/// What a txn did: its put's revision, or what its else-branch get found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    Put(i64),
    Got(Option<(u64, i64)>),
}

impl KvOp {
    pub fn key(&self) -> u8 {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Get { key, .. }
            | KvOp::Delete { key, .. }
            | KvOp::Txn { key, .. } => *key,
        }
    }

    /// The value this operation saw the key hold, if it read one.
    pub fn observed(&self) -> Option<u64> {
        match self {
            KvOp::Get {
                found: Some((v, _)),
                ..
            }
            | KvOp::Txn {
                outcome: Some(TxnOutcome::Got(Some((v, _)))),
                ..
            } => Some(*v),
            _ => None,
        }
    }
}

/// A key as a sequence of those operations leaves it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct KeyState {
    pub value: Option<u64>,
    /// The newest revision known to have written the key (None: unknown, after a put whose
    /// answer was lost).
    pub revision: Option<i64>,
}

/// How one key answers operations: the step a [`PerKey`] model takes.
pub trait Semantics: Clone + Send + Sync + std::fmt::Debug {
    fn step(s: &KeyState, op: &KvOp) -> (bool, KeyState);
}

/// A model of keys that are independent of each other: the history is checked key by key.
#[derive(Clone, Debug)]
pub struct PerKey<S>(std::marker::PhantomData<S>);

impl<S: Semantics> Model for PerKey<S> {
    type State = KeyState;
    type Op = KvOp;
    type Metadata = ();

    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut parts: std::collections::BTreeMap<u8, Vec<Operation<Self>>> = Default::default();
        for op in history {
            parts.entry(op.op.key()).or_default().push(op.clone());
        }
        parts.into_values().collect()
    }

    fn init() -> KeyState {
        KeyState {
            value: None,
            revision: Some(0),
        }
    }

    fn step(s: &KeyState, op: &KvOp) -> (bool, KeyState) {
        S::step(s, op)
    }
}

/// etcd's semantics for one key.
pub type EtcdKey = PerKey<Etcd>;

/// A deliberately wrong model (a delete changes nothing): checking a real history that
/// deletes and then reads against it must fail, or the checker proves nothing.
pub type DeletesIgnored = PerKey<IgnoreDeletes>;

#[derive(Clone, Debug)]
pub struct Etcd;

impl Semantics for Etcd {
    fn step(s: &KeyState, op: &KvOp) -> (bool, KeyState) {
        match op {
            KvOp::Put {
                value, revision, ..
            } => put(s, *value, *revision),
            KvOp::Get { found, .. } => get(s, found),
            KvOp::Txn {
                expect,
                value,
                outcome,
                ..
            } => {
                let holds = match expect {
                    None => s.value.is_none(),
                    Some((v, _)) => s.value == Some(*v),
                };
                match outcome {
                    // lost: it did what its compare says, whenever it happened
                    None if holds => put(s, *value, None),
                    None => (true, s.clone()),
                    Some(TxnOutcome::Put(r)) => {
                        let (ok, next) = put(s, *value, Some(*r));
                        (ok && holds, next)
                    }
                    Some(TxnOutcome::Got(found)) => {
                        let (ok, next) = get(s, found);
                        (ok && !holds, next)
                    }
                }
            }
            KvOp::Delete { deleted, .. } => {
                let ok = deleted.is_none_or(|d| d == s.value.is_some());
                let next = KeyState {
                    value: None,
                    revision: s.revision,
                };
                (ok, next)
            }
        }
    }
}

/// A put of `value` at `revision` (unknown when its answer was lost): revisions of one key
/// only go up.
fn put(s: &KeyState, value: u64, revision: Option<i64>) -> (bool, KeyState) {
    let ok = match (revision, s.revision) {
        (Some(r), Some(m)) => r > m,
        _ => true,
    };
    let next = KeyState {
        value: Some(value),
        revision,
    };
    (ok, next)
}

/// A linearizable read that found `found`: the key's value and mod_revision now.
fn get(s: &KeyState, found: &Option<(u64, i64)>) -> (bool, KeyState) {
    match found {
        None => (s.value.is_none(), s.clone()),
        Some((v, r)) => {
            let ok = s.value == Some(*v) && s.revision.is_none_or(|m| m == *r);
            let next = KeyState {
                value: Some(*v),
                revision: Some(*r),
            };
            (ok, next)
        }
    }
}

#[derive(Clone, Debug)]
pub struct IgnoreDeletes;

impl Semantics for IgnoreDeletes {
    fn step(s: &KeyState, op: &KvOp) -> (bool, KeyState) {
        match op {
            KvOp::Delete { .. } => (true, s.clone()),
            other => Etcd::step(s, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porcupine_rs::{CheckResult, check_operations_timeout};
    use std::time::Duration;

    fn op<M: Model<Op = KvOp>>(call: i64, ret: i64, op: KvOp) -> Operation<M> {
        Operation {
            client_id: None,
            call_time: call,
            return_time: ret,
            op,
            metadata: None,
        }
    }

    fn put(value: u64, revision: i64) -> KvOp {
        KvOp::Put {
            key: 0,
            value,
            revision: Some(revision),
        }
    }

    fn get(found: Option<(u64, i64)>) -> KvOp {
        KvOp::Get { key: 0, found }
    }

    #[test]
    fn a_stale_read_is_caught_and_a_deleted_read_only_by_the_right_model() {
        let t = Duration::from_secs(5);
        let fine: Vec<Operation<EtcdKey>> = vec![
            op(0, 10, put(1, 2)),
            op(20, 30, get(Some((1, 2)))),
            op(
                40,
                50,
                KvOp::Delete {
                    key: 0,
                    deleted: Some(true),
                },
            ),
            op(60, 70, get(None)),
        ];
        assert_eq!(check_operations_timeout(&fine, t), CheckResult::Ok);
        let stale: Vec<Operation<EtcdKey>> = vec![
            op(0, 10, put(1, 2)),
            op(20, 30, put(2, 3)),
            op(40, 50, get(Some((1, 2)))),
        ];
        assert_eq!(check_operations_timeout(&stale, t), CheckResult::Illegal);
        let wrong: Vec<Operation<DeletesIgnored>> = fine
            .iter()
            .map(|o| op(o.call_time, o.return_time, o.op.clone()))
            .collect();
        assert_eq!(check_operations_timeout(&wrong, t), CheckResult::Illegal);
        // a put whose answer was lost may have happened (a later read saw it)
        let lost: Vec<Operation<EtcdKey>> = vec![
            op(
                0,
                i64::MAX,
                KvOp::Put {
                    key: 0,
                    value: 7,
                    revision: None,
                },
            ),
            op(20, 30, get(Some((7, 5)))),
        ];
        assert_eq!(check_operations_timeout(&lost, t), CheckResult::Ok);
    }

    fn txn(expect: Option<(u64, i64)>, value: u64, outcome: Option<TxnOutcome>) -> KvOp {
        KvOp::Txn {
            key: 0,
            expect,
            value,
            outcome,
        }
    }

    #[test]
    fn a_txn_must_follow_its_compare() {
        let t = Duration::from_secs(5);
        let check = |ops: Vec<KvOp>| {
            let ops: Vec<Operation<EtcdKey>> = ops
                .into_iter()
                .enumerate()
                .map(|(i, o)| op(i as i64 * 10, i as i64 * 10 + 5, o))
                .collect();
            check_operations_timeout(&ops, t)
        };
        // create-if-absent, then a CAS on what was read, then a CAS that lost its race
        assert_eq!(
            check(vec![
                txn(None, 1, Some(TxnOutcome::Put(2))),
                get(Some((1, 2))),
                txn(Some((1, 2)), 2, Some(TxnOutcome::Put(3))),
                txn(Some((1, 2)), 3, Some(TxnOutcome::Got(Some((2, 3))))),
            ]),
            CheckResult::Ok
        );
        // a CAS that succeeded although the value had changed
        assert_eq!(
            check(vec![
                put(1, 2),
                put(2, 3),
                txn(Some((1, 2)), 3, Some(TxnOutcome::Put(4))),
            ]),
            CheckResult::Illegal
        );
        // a create-if-absent that failed on an absent key
        assert_eq!(
            check(vec![txn(None, 1, Some(TxnOutcome::Got(None)))]),
            CheckResult::Illegal
        );
    }
}
