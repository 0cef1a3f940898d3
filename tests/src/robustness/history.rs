//! The record of every client operation: call and return times on one strictly increasing
//! clock, and what each returned; then made ready for the checker as etcd's robustness tests
//! do (an operation whose answer was lost is pending until the end of the history, or until
//! the first read that saw its value, and dropped if nothing ever saw it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use porcupine_rs::Operation;

use super::model::{EtcdKey, KvOp};

/// Nanoseconds since the run began, never the same twice.
pub struct Clock {
    start: Instant,
    last: AtomicI64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            last: AtomicI64::new(0),
        }
    }

    pub fn now(&self) -> i64 {
        let t = self.start.elapsed().as_nanos() as i64;
        let mut last = self.last.load(Ordering::SeqCst);
        loop {
            let next = t.max(last + 1);
            match self
                .last
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// One operation as the client saw it: `returned` is `None` when its answer was lost.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub client: u32,
    pub call: i64,
    pub returned: Option<i64>,
    pub op: KvOp,
}

/// A range over the harness's whole prefix that returned: checked against the history as
/// it stood at its header's revision (see `ranges`).
#[derive(Clone, Debug)]
pub struct RangeSeen {
    pub serializable: bool,
    pub returned: i64,
    pub revision: i64,
    /// (key, value, mod_revision) in key order.
    pub kvs: Vec<(Vec<u8>, Vec<u8>, i64)>,
}

#[derive(Default)]
pub struct History {
    ops: Mutex<Vec<Recorded>>,
    ranges: Mutex<Vec<RangeSeen>>,
    leases: Mutex<Vec<super::leases::LeaseRecord>>,
}

impl History {
    pub fn record(&self, r: Recorded) {
        self.ops.lock().expect("history lock").push(r);
    }

    pub fn record_range(&self, r: RangeSeen) {
        self.ranges.lock().expect("history lock").push(r);
    }

    pub fn record_lease(&self, l: super::leases::LeaseRecord) {
        self.leases.lock().expect("history lock").push(l);
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.ops.lock().expect("history lock").clone()
    }

    pub fn ranges(&self) -> Vec<RangeSeen> {
        self.ranges.lock().expect("history lock").clone()
    }

    pub fn leases(&self) -> Vec<super::leases::LeaseRecord> {
        self.leases.lock().expect("history lock").clone()
    }

    /// The earliest time each revision is known to have existed by: the return of an
    /// operation that wrote it or of a range whose header carried it or a later one.
    /// Sorted by revision; the times only go down as the revisions go down.
    pub fn existed_by(&self) -> Vec<(i64, i64)> {
        let mut known: Vec<(i64, i64)> = Vec::new();
        for r in self.ops.lock().expect("history lock").iter() {
            let rev = match &r.op {
                KvOp::Put {
                    revision: Some(rev),
                    ..
                }
                | KvOp::Txn {
                    outcome: Some(super::model::TxnOutcome::Put(rev)),
                    ..
                } => *rev,
                _ => continue,
            };
            if let Some(ret) = r.returned {
                known.push((rev, ret));
            }
        }
        for r in self.ranges.lock().expect("history lock").iter() {
            known.push((r.revision, r.returned));
        }
        known.sort_unstable();
        // a revision existed by the time any later one did
        let mut min = i64::MAX;
        for k in known.iter_mut().rev() {
            min = min.min(k.1);
            k.1 = min;
        }
        known
    }
}

/// When revision `rev` existed by, from [`History::existed_by`]: the time of the first
/// known revision at or after it.
pub fn existed_at(known: &[(i64, i64)], rev: i64) -> Option<i64> {
    let i = known.partition_point(|k| k.0 < rev);
    known.get(i).map(|k| k.1)
}

/// What the watch streams tell of the writes: every revision's puts, when a stream got all
/// of them (checked for order and holes by `watches`).
pub struct Persisted<'a> {
    /// The revision each value was put at (values are unique to the run).
    pub revision_of: HashMap<u64, i64>,
    /// [`History::existed_by`].
    pub existed: &'a [(i64, i64)],
}

/// The operations to check: a failed read is dropped (it observed nothing). A put (or txn)
/// whose answer was lost is settled by the complete watch history when there is one, as
/// etcd's robustness tests do: if its value was never put, it never took effect and is
/// dropped (a txn that failed its compare only read); if it was, it ends by the time its
/// revision is known to have existed, or by the return of the first read that saw its value.
/// Without a complete watch history it ends by that read, if one did; else it is dropped when
/// nothing could have observed it (no later delete of its key that deleted something: found
/// by the soak, a lost put a delete then removed), and otherwise stays pending to the end, as
/// any other lost write (a lost delete always does).
///
/// Settling them matters: pending writes multiply the orders the checker must try, and a run
/// with a member out of disk for a while (a hundred lost answers) could not be decided in a
/// minute (found by the hour-long soak).
pub fn prepare(ops: &[Recorded], persisted: Option<&Persisted<'_>>) -> Vec<Operation<EtcdKey>> {
    let mut first_seen: HashMap<u64, i64> = HashMap::new();
    // the latest call of a delete that deleted something, per key
    let mut deleted_after: HashMap<u8, i64> = HashMap::new();
    for r in ops {
        if let KvOp::Delete {
            key,
            deleted: Some(true),
        } = &r.op
        {
            let e = deleted_after.entry(*key).or_insert(r.call);
            *e = (*e).max(r.call);
        }
        if let (Some(v), Some(ret)) = (r.op.observed(), r.returned) {
            let e = first_seen.entry(v).or_insert(ret);
            *e = (*e).min(ret);
        }
    }
    let mut out = Vec::new();
    for r in ops {
        let return_time = match (&r.op, r.returned) {
            (_, Some(ret)) => ret,
            (KvOp::Get { .. }, None) => continue,
            (KvOp::Put { key, value, .. } | KvOp::Txn { key, value, .. }, None) => {
                let seen = first_seen.get(value).copied();
                match persisted {
                    Some(p) => match p.revision_of.get(value) {
                        None => continue,
                        Some(&rev) => {
                            let by = existed_at(p.existed, rev).unwrap_or(i64::MAX);
                            by.min(seen.unwrap_or(i64::MAX))
                        }
                    },
                    None => match seen {
                        Some(seen) => seen,
                        None if deleted_after.get(key).is_some_and(|&at| at > r.call) => i64::MAX,
                        None => continue,
                    },
                }
            }
            (KvOp::Delete { .. }, None) => i64::MAX,
        };
        out.push(Operation {
            client_id: Some(r.client),
            call_time: r.call,
            return_time,
            op: r.op.clone(),
            metadata: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use porcupine_rs::{CheckResult, check_operations_timeout};

    fn rec(call: i64, returned: Option<i64>, op: KvOp) -> Recorded {
        Recorded {
            client: 0,
            call,
            returned,
            op,
        }
    }

    /// Regression (found by the first soak): a put whose answer was lost in a kill, which no
    /// read saw but a later delete removed, was dropped, so the delete's `deleted: true`
    /// looked impossible.
    #[test]
    fn a_lost_put_a_delete_removed_is_kept() {
        let ops = [
            rec(
                0,
                None,
                KvOp::Put {
                    key: 1,
                    value: 9,
                    revision: None,
                },
            ),
            rec(
                10,
                Some(20),
                KvOp::Delete {
                    key: 1,
                    deleted: Some(true),
                },
            ),
            rec(
                30,
                Some(40),
                KvOp::Get {
                    key: 1,
                    found: None,
                },
            ),
        ];
        let prepared = prepare(&ops, None);
        assert_eq!(prepared.len(), 3);
        assert_eq!(
            check_operations_timeout(&prepared, std::time::Duration::from_secs(5)),
            CheckResult::Ok
        );
        // with nothing that could have seen it, it is dropped
        assert_eq!(prepare(&ops[..1], None).len(), 0);
    }

    /// With the complete watch history, a lost put is settled: dropped if its value was never
    /// put, else ended by the time its revision is known to have existed.
    #[test]
    fn the_watch_history_settles_lost_puts() {
        let put = |call, value| {
            rec(
                call,
                None,
                KvOp::Put {
                    key: 1,
                    value,
                    revision: None,
                },
            )
        };
        let ops = [
            put(0, 7),
            put(1, 8),
            rec(
                10,
                Some(20),
                KvOp::Get {
                    key: 1,
                    found: Some((7, 5)),
                },
            ),
        ];
        let persisted = Persisted {
            revision_of: HashMap::from([(7, 5)]),
            existed: &[(5, 15)],
        };
        let prepared = prepare(&ops, Some(&persisted));
        // the put of 8 never happened; the put of 7 ended by 15, when revision 5 existed
        assert_eq!(prepared.len(), 2);
        assert_eq!(prepared[0].return_time, 15);
        assert_eq!(
            check_operations_timeout(&prepared, std::time::Duration::from_secs(5)),
            CheckResult::Ok
        );
    }
}
