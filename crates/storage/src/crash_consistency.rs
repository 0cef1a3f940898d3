//! Crash-consistency tests in redb's style: the store runs on a [`CrashFile`] that loses power
//! at its Nth write or fsync; the file a restart would find (nothing, all, or part of what
//! was written since the last fsync) is opened again and must hold a state the store really
//! passed through, no older than the last durable flush.
//!
//! The workload is batches of puts, deletes, txns, lease grants, attachments and revocations,
//! and compactions, each batch applied with its index in `meta` (as the raft state machine
//! records its applied log id) and a flush after every other one (the point where a member
//! acknowledges to raft that the batches are on disk). The check after each crash: the store
//! opens; the applied index is at least the last flushed one; HashKV, the revision bounds, the
//! leases and their keys equal those of a run without a crash stopped at that index (nothing
//! half-applied: a batch is all there or not at all); a compaction interrupted by the crash
//! resumes and the hash stays the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, RequestOp, TxnRequest, compare, request_op,
};

use crate::backend::crash::{CrashFile, CrashPlan, Torn};
use crate::command::{Command, Op};
use crate::{Store, StoreOptions};

const BATCHES: u64 = 40;
const APPLIED: &str = "applied";

/// What a store holds after a batch, as far as a client can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    hash: u32,
    revision: i64,
    compact_revision: i64,
    leases: BTreeMap<i64, Vec<Vec<u8>>>,
}

fn seen(store: &Store) -> Seen {
    let hash = store.hash_kv(0).expect("hash").hash;
    let leases = store
        .lease_ids()
        .into_iter()
        .map(|id| {
            let keys = store.lease(id).map(|l| l.keys.into_iter().collect());
            (id, keys.unwrap_or_default())
        })
        .collect();
    Seen {
        hash,
        revision: store.current_revision(),
        compact_revision: store.compact_revision(),
        leases,
    }
}

fn cmd(op: Op) -> Option<Command> {
    Some(Command::from(op))
}

fn put(key: &str, value: String, lease: i64) -> Op {
    Op::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    })
}

/// Batch `i` of the workload (1-based); `revision` is the store's before it.
fn batch(i: u64, revision: i64) -> Vec<Option<Command>> {
    let key = |n: u64| format!("key/{}", n % 7);
    let mut ops = vec![cmd(put(&key(i), format!("v{i}-{}", "x".repeat(200)), 0))];
    if i.is_multiple_of(3) {
        ops.push(cmd(Op::DeleteRange(DeleteRangeRequest {
            key: key(i + 1).into(),
            ..Default::default()
        })));
    }
    if i.is_multiple_of(4) {
        ops.push(cmd(Op::Txn(TxnRequest {
            compare: vec![Compare {
                key: key(i).into(),
                target: compare::CompareTarget::Version as i32,
                result: compare::CompareResult::Greater as i32,
                target_union: Some(compare::TargetUnion::Version(0)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("txn/{i}").into(),
                    value: b"then".to_vec(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })));
    }
    if i.is_multiple_of(5) {
        ops.push(cmd(Op::LeaseGrant(LeaseGrantRequest {
            id: i as i64,
            ttl: 600,
        })));
        ops.push(cmd(put(&format!("leased/{i}"), "l".into(), i as i64)));
    }
    if i.is_multiple_of(10) {
        ops.push(cmd(Op::LeaseRevoke(LeaseRevokeRequest {
            id: i as i64 - 5,
        })));
    }
    if i.is_multiple_of(8) {
        ops.push(cmd(Op::Compact(CompactionRequest {
            revision: revision - 3,
            physical: false,
        })));
    }
    ops
}

/// Runs the workload until the file fails; returns the last batch flushed durably.
fn run(store: &Store) -> u64 {
    let mut flushed = 0;
    for i in 1..=BATCHES {
        let meta = [(APPLIED, i.to_string().into_bytes())];
        if store
            .apply(&batch(i, store.current_revision()), &meta)
            .is_err()
        {
            break;
        }
        if i.is_multiple_of(2) {
            if store.flush().is_err() {
                break;
            }
            flushed = i;
        }
    }
    flushed
}

fn applied(store: &Store) -> u64 {
    store
        .meta(APPLIED)
        .expect("read meta")
        .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
        .unwrap_or(0)
}

fn open(dir: &std::path::Path, name: &str, file: CrashFile) -> crate::Result<Arc<Store>> {
    Store::open_on(&dir.join(name), file, StoreOptions::default())
}

/// The state after each batch of a run without a crash, the fresh store at index 0; and the
/// image of a fresh store every crash run starts from, with its write and fsync counts.
fn reference(dir: &std::path::Path) -> (Vec<Seen>, Vec<u8>, u64, u64) {
    let fresh = CrashFile::new(CrashPlan::Never);
    drop(open(dir, "fresh", fresh.clone()).unwrap());
    let base = fresh.after_crash(Torn::Lost);

    let file = CrashFile::from_bytes(base.clone(), CrashPlan::Never);
    let store = open(dir, "reference", file.clone()).unwrap();
    let mut states = vec![seen(&store)];
    for i in 1..=BATCHES {
        let meta = [(APPLIED, i.to_string().into_bytes())];
        store
            .apply(&batch(i, store.current_revision()), &meta)
            .unwrap();
        states.push(seen(&store));
        if i.is_multiple_of(2) {
            store.flush().unwrap();
        }
    }
    let (writes, syncs) = (file.writes(), file.syncs());
    drop(store);
    (states, base, writes, syncs)
}

/// One crash at `plan`, reopened keeping `torn` of the unsynced writes.
fn crash_and_check(
    dir: &std::path::Path,
    base: &[u8],
    states: &[Seen],
    plan: CrashPlan,
    torn: Torn,
) -> bool {
    let file = CrashFile::from_bytes(base.to_vec(), plan);
    let name = format!("{plan:?}-{torn:?}");
    let flushed = match open(dir, &name, file.clone()) {
        Ok(store) => {
            let flushed = run(&store);
            store.stop_background();
            drop(store);
            flushed
        }
        Err(_) => 0,
    };
    let torn = match torn {
        Torn::Prefix(_) => Torn::Prefix(file.unsynced() / 2),
        other => other,
    };
    let image = file.after_crash(torn);
    let store = open(
        dir,
        &format!("{name}-after"),
        CrashFile::from_bytes(image, CrashPlan::Never),
    )
    .unwrap_or_else(|e| panic!("{plan:?} {torn:?}: the store does not open: {e}"));
    let at = applied(&store);
    assert!(
        at >= flushed,
        "{plan:?} {torn:?}: batch {flushed} was flushed, the store is back at {at}"
    );
    let want = &states[at as usize];
    assert_eq!(
        &seen(&store),
        want,
        "{plan:?} {torn:?}: state after batch {at}"
    );
    if want.compact_revision > 0 {
        assert!(
            store.wait_compacted(want.compact_revision, Duration::from_secs(30)),
            "{plan:?} {torn:?}: the compaction did not resume"
        );
        assert_eq!(
            &seen(&store),
            want,
            "{plan:?} {torn:?}: after the compaction resumed"
        );
    }
    // and it goes on: the next batch applies and flushes
    let meta = [(APPLIED, (at + 1).to_string().into_bytes())];
    store
        .apply(&batch(at + 1, store.current_revision()), &meta)
        .unwrap();
    store.flush().unwrap();
    file.crashed()
}

#[test]
fn every_crash_point_reopens_at_a_state_the_store_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let (states, base, writes, syncs) = reference(dir.path());
    assert!(syncs >= BATCHES / 2, "each flush fsyncs ({syncs} fsyncs)");
    let mut plans: Vec<CrashPlan> = (1..=syncs).map(CrashPlan::AtSync).collect();
    // every write would be thousands of reopens; a stride that is not a multiple of a
    // commit's write count still lands on every position within a commit over the run
    let stride = (writes / 300).max(1) | 1;
    plans.extend(
        (1..=writes)
            .step_by(stride as usize)
            .map(CrashPlan::AtWrite),
    );
    let mut crashed = 0;
    for plan in &plans {
        for torn in [Torn::Lost, Torn::Kept, Torn::Prefix(0)] {
            crashed += usize::from(crash_and_check(dir.path(), &base, &states, *plan, torn));
        }
    }
    // a run may write a little less than the reference (the committer's timing differs), so
    // the last points may not be reached; nearly all must be
    assert!(
        crashed * 10 >= plans.len() * 3 * 9,
        "only {crashed} of {} runs crashed",
        plans.len() * 3
    );
}
