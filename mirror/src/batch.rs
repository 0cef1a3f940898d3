//! Destination operations and how they are cut into txns: at most `max_ops` operations and
//! `max_bytes` of keys and values each, order kept.

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RequestOp};

/// One change at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Every key in `[key, end)` (`end` `\0`: every key from `key` on). Only the blind prune
    /// makes these; they never meet the watch phase's merging.
    DeleteRange {
        key: Vec<u8>,
        end: Vec<u8>,
    },
}

impl Op {
    pub fn bytes(&self) -> usize {
        match self {
            Op::Put { key, value, .. } => key.len() + value.len() + 16,
            Op::Delete { key } => key.len() + 8,
            Op::DeleteRange { key, end } => key.len() + end.len() + 8,
        }
    }

    pub fn into_request(self) -> RequestOp {
        let request = match self {
            Op::Put { key, value, lease } => Request::RequestPut(PutRequest {
                key,
                value,
                lease,
                ..Default::default()
            }),
            Op::Delete { key } => Request::RequestDeleteRange(DeleteRangeRequest {
                key,
                ..Default::default()
            }),
            Op::DeleteRange { key, end } => Request::RequestDeleteRange(DeleteRangeRequest {
                key,
                range_end: end,
                ..Default::default()
            }),
        };
        RequestOp {
            request: Some(request),
        }
    }
}

/// Splits `ops` into runs of at most `max_ops` operations and (unless a single op is larger)
/// `max_bytes` bytes.
pub fn chunks(ops: Vec<Op>, max_ops: usize, max_bytes: usize) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let mut cur: Vec<Op> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let b = op.bytes();
        if !cur.is_empty() && (cur.len() >= max_ops || bytes + b > max_bytes) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += b;
        cur.push(op);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One destination txn of the watch phase: its operations, the checkpoint revision it moves
/// to, and (for all but the last txn of a split revision) how much of the next revision it
/// completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub ops: Vec<Op>,
    /// Every source revision up to this one is applied once the txn is.
    pub revision: i64,
    /// Set on the leading txns of a split revision: (that revision, its ops applied).
    pub partial: Option<(i64, usize)>,
    /// Source events the txn completes.
    pub events: u64,
}

/// A source revision's changes: `(revision, ops, events, ops already applied)`.
pub struct Revision {
    pub revision: i64,
    pub ops: Vec<Op>,
    pub events: u64,
    /// Ops of this revision applied before (a resumed split); `ops` holds the rest.
    pub already: usize,
}

/// Cuts consecutive source revisions into destination txns, in order. A revision larger
/// than one txn is split (the leading parts carry `partial`). With `merge`, whole revisions
/// share a txn while they fit and touch distinct keys (a txn may not name a key twice), so
/// a mirror that is behind catches up in fewer, larger txns; each revision still applies
/// atomically and in order. Without `merge`, each revision is its own txn.
pub fn plan(
    revisions: Vec<Revision>,
    max_ops: usize,
    max_bytes: usize,
    merge: bool,
) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    let mut cur: Option<Planned> = None;
    let mut keys: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut bytes = 0usize;
    for r in revisions {
        let size: usize = r.ops.iter().map(Op::bytes).sum();
        if r.already > 0 || r.ops.len() > max_ops || (size > max_bytes && r.ops.len() > 1) {
            out.extend(cur.take());
            let parts = chunks(r.ops, max_ops, max_bytes);
            let last = parts.len().saturating_sub(1);
            let mut applied = r.already;
            for (i, part) in parts.into_iter().enumerate() {
                applied += part.len();
                out.push(if i == last {
                    Planned {
                        ops: part,
                        revision: r.revision,
                        partial: None,
                        events: r.events,
                    }
                } else {
                    Planned {
                        ops: part,
                        revision: r.revision - 1,
                        partial: Some((r.revision, applied)),
                        events: 0,
                    }
                });
            }
            continue;
        }
        let fits = cur.as_ref().is_some_and(|c| {
            merge
                && c.ops.len() + r.ops.len() <= max_ops
                && bytes + size <= max_bytes
                && r.ops.iter().all(|op| !keys.contains(op_key(op)))
        });
        if !fits {
            out.extend(cur.take());
            keys.clear();
            bytes = 0;
        }
        let c = cur.get_or_insert_with(|| Planned {
            ops: Vec::new(),
            revision: r.revision,
            partial: None,
            events: 0,
        });
        if merge {
            keys.extend(r.ops.iter().map(|op| op_key(op).to_vec()));
        }
        bytes += size;
        c.ops.extend(r.ops);
        c.revision = r.revision;
        c.events += r.events;
    }
    out.extend(cur);
    out
}

fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Put { key, .. } | Op::Delete { key } | Op::DeleteRange { key, .. } => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(i: usize, size: usize) -> Op {
        Op::Put {
            key: format!("k{i}").into_bytes(),
            value: vec![b'x'; size],
            lease: 0,
        }
    }

    #[test]
    fn splits_by_count_and_size_in_order() {
        let ops: Vec<Op> = (0..300).map(|i| put(i, 1)).collect();
        let c = chunks(ops.clone(), 127, usize::MAX);
        assert_eq!(
            c.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![127, 127, 46]
        );
        assert_eq!(c.concat(), ops);
        let big: Vec<Op> = (0..10).map(|i| put(i, 400)).collect();
        let c = chunks(big, 127, 1000);
        assert!(c.iter().all(|t| t.len() == 2), "{c:?}");
        assert_eq!(chunks(vec![put(0, 5000)], 10, 1000).len(), 1);
        assert!(chunks(Vec::new(), 10, 10).is_empty());
    }

    fn rev(revision: i64, keys: &[usize]) -> Revision {
        Revision {
            revision,
            ops: keys.iter().map(|i| put(*i, 1)).collect(),
            events: keys.len() as u64,
            already: 0,
        }
    }

    type Shape = (usize, i64, Option<(i64, usize)>, u64);

    fn shape(p: &[Planned]) -> Vec<Shape> {
        p.iter()
            .map(|t| (t.ops.len(), t.revision, t.partial, t.events))
            .collect()
    }

    #[test]
    fn plan_merges_whole_revisions_with_distinct_keys() {
        let revs = vec![
            rev(5, &[1, 2]),
            rev(6, &[3]),
            rev(7, &[1]),
            rev(8, &[4, 5, 6, 7]),
        ];
        // 7 touches key 1 again: a new txn. 8 would make 5 ops > 4: a new txn.
        assert_eq!(
            shape(&plan(revs, 4, usize::MAX, true)),
            vec![(3, 6, None, 3), (1, 7, None, 1), (4, 8, None, 4)]
        );
        let strict = plan(vec![rev(5, &[1, 2]), rev(6, &[3])], 4, usize::MAX, false);
        assert_eq!(shape(&strict), vec![(2, 5, None, 2), (1, 6, None, 1)]);
    }

    #[test]
    fn plan_splits_large_revisions_with_partial_checkpoints() {
        let big: Vec<usize> = (10..20).collect();
        let p = plan(
            vec![rev(5, &[1]), rev(6, &big), rev(7, &[2])],
            4,
            usize::MAX,
            true,
        );
        assert_eq!(
            shape(&p),
            vec![
                (1, 5, None, 1),
                (4, 5, Some((6, 4)), 0),
                (4, 5, Some((6, 8)), 0),
                (2, 6, None, 10),
                (1, 7, None, 1)
            ]
        );
        // A resumed split: the first 8 ops were applied before.
        let mut rest = rev(6, &[18, 19]);
        rest.already = 8;
        rest.events = 10;
        assert_eq!(
            shape(&plan(vec![rest], 4, usize::MAX, true)),
            vec![(2, 6, None, 10)]
        );
    }
}
