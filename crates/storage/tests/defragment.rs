//! Defragment while the store serves: the file shrinks and nothing else changes; writes applied
//! during it are all there afterwards with their revisions; readers never fail; a compaction
//! during the copy restarts it; a stop or failure at any stage leaves the old database in use
//! and no `.defrag` file.
//!
//! Each test applies the same commands to two stores, `a` (defragmented) and `reference`
//! (never defragmented), and compares everything a client can observe.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::*;
use cairn_storage::defrag::{SMALL_TAIL, defrag_path};
use cairn_storage::{Command, DefragStage, KeyRange, Op, Store, StoreOptions, WatchFilters};
use common::{assert_same, compact, put};

const APPLIED: &str = "raft_applied";

/// The store under test and a reference that gets the same commands.
struct Pair {
    a: Arc<Store>,
    reference: Arc<Store>,
    applied: AtomicI64,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn new() -> Pair {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        Pair {
            a: Store::open(&da.path().join("kv.redb"), StoreOptions::default()).unwrap(),
            reference: Store::open(&db.path().join("kv.redb"), StoreOptions::default()).unwrap(),
            applied: AtomicI64::new(0),
            _dirs: (da, db),
        }
    }

    /// Applies `op` to both stores (with a raft applied index in `meta`, as consensus does)
    /// and checks they answer alike. Callers apply from one thread at a time.
    fn apply(&self, op: Op) {
        let n = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        let meta = [(APPLIED, n.to_be_bytes().to_vec())];
        let cmd = [Some(Command::from(op))];
        let got = self.a.apply(&cmd, &meta).unwrap();
        let want = self.reference.apply(&cmd, &meta).unwrap();
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }

    fn path(&self) -> &Path {
        self.a.path()
    }
}

/// History with garbage: overwrites of 2 KiB values, leases (one revoked with its keys),
/// range deletes, txns, then a compaction that keeps the last few revisions.
fn churn(p: &Pair, puts: usize) {
    for id in [1, 2, 3] {
        p.apply(Op::LeaseGrant(LeaseGrantRequest { id, ttl: 100 * id }));
    }
    for i in 0..puts {
        let lease = [0, 1, 2, 3][i % 4];
        p.apply(put(
            &format!("key/{:02}", i % 50),
            vec![i as u8; 2048],
            lease,
        ));
        if i % 97 == 0 {
            p.apply(Op::DeleteRange(DeleteRangeRequest {
                key: format!("key/{:02}", i % 50).into(),
                range_end: format!("key/{:02}", i % 50 + 5).into(),
                ..Default::default()
            }));
        }
        if i % 101 == 0 {
            p.apply(txn(&format!("key/{:02}", (i + 1) % 50)));
        }
        if i == puts / 2 {
            p.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 3 }));
        }
    }
    p.apply(compact(p.a.current_revision() - 10));
    for i in 0..5 {
        p.apply(put(&format!("late/{i}"), b"x", 1));
    }
}

fn txn(key: &str) -> Op {
    Op::Txn(TxnRequest {
        compare: vec![Compare {
            key: key.into(),
            result: CompareResult::Greater as i32,
            target: CompareTarget::Version as i32,
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: "txn/hit".into(),
                value: key.into(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: "txn/miss".into(),
                value: key.into(),
                ..Default::default()
            })),
        }],
    })
}

/// Every event a watcher from `start` gets up to the store's current revision (with a deadline).
fn watch_events(s: &Store, start: i64) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let (_, mut rx) = s
        .watch_hub()
        .watch(KeyRange::all(), start, WatchFilters::default());
    let (current, deadline) = (
        s.current_revision(),
        Instant::now() + Duration::from_secs(20),
    );
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(batch) => {
                assert_eq!(
                    batch.compact_revision, 0,
                    "watch from {start} was compacted"
                );
                for e in batch.events {
                    let kv = e.kv.unwrap();
                    out.push((kv.mod_revision, kv.key, kv.value));
                }
                if batch.revision >= current {
                    return out;
                }
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "watch from {start} stalled");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Only the store's file is in its directory.
fn assert_no_leftover(p: &Pair) {
    assert!(!defrag_path(p.path()).exists(), "a .defrag file was left");
    let names: Vec<_> = std::fs::read_dir(p.path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["kv.redb"]);
}

/// Reopens the store under test (as after a restart) and compares again.
fn reopen(p: &mut Pair) {
    let path = p.path().to_path_buf();
    let (weak, a) = (
        Arc::downgrade(&p.a),
        std::mem::replace(&mut p.a, p.reference.clone()),
    );
    drop(a);
    // the watch sync thread holds the store briefly while replaying; wait for it to let go
    let deadline = Instant::now() + Duration::from_secs(10);
    while weak.strong_count() > 0 {
        assert!(Instant::now() < deadline, "the store was not released");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.a = Store::open(&path, StoreOptions::default()).unwrap();
    assert_same(&p.a, &p.reference, &[APPLIED]);
}

#[test]
fn defragment_shrinks_the_file_and_changes_nothing_else() {
    let mut p = Pair::new();
    churn(&p, 3_000);
    p.apply(Op::Alarm(AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: 7,
        alarm: AlarmType::Nospace as i32,
    }));
    p.a.flush().unwrap();
    let before = file_size(p.path());
    let (_, in_use_before) = p.a.db_size().unwrap();

    let summary = p.a.defragment().unwrap();
    assert_eq!(summary.revision, p.reference.current_revision());
    assert_eq!((summary.tail_rows, summary.attempts), (0, 1));
    let after = file_size(p.path());
    assert!(
        after * 2 < before,
        "defragment shrank {before} bytes only to {after} (in use {in_use_before})"
    );
    assert_same(&p.a, &p.reference, &[APPLIED]);
    assert_no_leftover(&p);

    // NOSPACE still refuses puts; deletes and disarming work on the new file
    let refused =
        p.a.apply(&[Some(Command::from(put("k", b"v", 0)))], &[])
            .unwrap();
    assert!(refused[0].is_err());
    p.reference
        .apply(&[Some(Command::from(put("k", b"v", 0)))], &[])
        .unwrap();
    p.apply(Op::Alarm(AlarmRequest {
        action: AlarmAction::Deactivate as i32,
        member_id: 7,
        alarm: AlarmType::Nospace as i32,
    }));
    p.apply(put("after/defrag", b"v", 2));
    assert_same(&p.a, &p.reference, &[APPLIED]);
    reopen(&mut p);
}

#[test]
fn writes_during_the_copy_are_copied_under_the_lock() {
    let mut p = Pair::new();
    churn(&p, 500);
    let mut stages = Vec::new();
    let summary =
        p.a.defragment_with(&mut |stage| {
            if stages.is_empty() {
                // after the copy, before the tail: every kind of change, fewer than SMALL_TAIL
                p.apply(Op::LeaseGrant(LeaseGrantRequest { id: 9, ttl: 60 }));
                for i in 0..40 {
                    p.apply(put(
                        &format!("during/{i}"),
                        b"d",
                        if i % 2 == 0 { 9 } else { 0 },
                    ));
                }
                p.apply(Op::DeleteRange(DeleteRangeRequest {
                    key: "key/".into(),
                    range_end: "key/10".into(),
                    ..Default::default()
                }));
                p.apply(txn("during/3"));
                p.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 2 }));
                p.apply(Op::Alarm(AlarmRequest {
                    action: AlarmAction::Activate as i32,
                    member_id: 3,
                    alarm: AlarmType::Nospace as i32,
                }));
            }
            stages.push(stage);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(
        matches!(stages[0], DefragStage::Copied { .. }),
        "{stages:?}"
    );
    let DefragStage::Swapping {
        revision,
        tail_rows,
    } = stages[1]
    else {
        panic!("no catch-up round for a short tail: {stages:?}");
    };
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert_eq!(revision, p.reference.current_revision());
    assert!(tail_rows >= 40, "the tail held {tail_rows} rows");
    assert_eq!(summary.tail_rows, tail_rows);
    assert_same(&p.a, &p.reference, &[APPLIED]);
    // history replayed to a new watcher comes from the new file, tail included
    let oldest = p.reference.compact_revision() + 1;
    let events = watch_events(&p.a, oldest);
    assert!(events.iter().any(|(_, k, _)| k.as_slice() == b"during/39"));
    assert_eq!(events, watch_events(&p.reference, oldest));
    assert_no_leftover(&p);
    reopen(&mut p);
}

#[test]
fn a_long_tail_is_caught_up_before_the_lock() {
    let mut p = Pair::new();
    churn(&p, 200);
    let mut stages = Vec::new();
    p.a.defragment_with(&mut |stage| {
        if stages.is_empty() {
            for i in 0..SMALL_TAIL + 200 {
                p.apply(put(&format!("during/{}", i % 300), b"d", 0));
            }
        }
        stages.push(stage);
        ControlFlow::Continue(())
    })
    .unwrap();
    let [
        DefragStage::Copied {
            revision: first, ..
        },
        DefragStage::Copied {
            revision: second, ..
        },
        DefragStage::Swapping { tail_rows, .. },
    ] = stages[..]
    else {
        panic!("expected copy, catch-up, swap: {stages:?}");
    };
    assert_eq!(second - first, SMALL_TAIL + 200);
    assert_eq!(tail_rows, 0);
    assert_same(&p.a, &p.reference, &[APPLIED]);
    reopen(&mut p);
}

#[test]
fn concurrent_writers_and_readers_see_every_write_and_no_error() {
    let mut p = Pair::new();
    churn(&p, 2_000);
    let done = AtomicBool::new(false);
    let written = AtomicI64::new(0);
    let mut first_copy = 0;
    let summary = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut i = 0;
            // keeps writing until the defragment is over, then a little more on the new file
            let mut after = 0;
            while after < 50 {
                p.apply(put(&format!("w/{}", i % 100), [b'w'; 100], [0, 1][i % 2]));
                if i % 250 == 0 {
                    p.apply(txn(&format!("w/{}", i % 7)));
                }
                if i % 400 == 399 {
                    p.apply(Op::DeleteRange(DeleteRangeRequest {
                        key: "w/1".into(),
                        range_end: "w/2".into(),
                        ..Default::default()
                    }));
                }
                i += 1;
                written.store(i as i64, Ordering::SeqCst);
                if done.load(Ordering::SeqCst) {
                    after += 1;
                }
            }
        });
        let reader = scope.spawn(|| {
            let (mut reads, mut last) = (0, 0);
            while !done.load(Ordering::SeqCst) || reads == 0 {
                let r = p.a.range(&RangeRequest {
                    key: b"w/".to_vec(),
                    range_end: b"w0".to_vec(),
                    ..Default::default()
                });
                let revision = r
                    .expect("a read failed during the defragment")
                    .header
                    .unwrap()
                    .revision;
                assert!(
                    revision >= last,
                    "revision went back from {last} to {revision}"
                );
                last = revision;
                p.a.hash_kv(0).expect("a hash failed during the defragment");
                reads += 1;
            }
            reads
        });
        let summary = p.a.defragment_with(&mut |stage| {
            if let DefragStage::Copied { revision, .. } = stage
                && first_copy == 0
            {
                first_copy = revision;
                // let the writer get ahead of the copy, so there is a tail to catch up
                let (from, deadline) = (
                    written.load(Ordering::SeqCst),
                    Instant::now() + Duration::from_secs(30),
                );
                while written.load(Ordering::SeqCst) < from + 20 {
                    assert!(Instant::now() < deadline, "the writer stopped");
                    std::thread::yield_now();
                }
            }
            ControlFlow::Continue(())
        });
        done.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(reader.join().unwrap() > 0);
        summary.unwrap()
    });
    assert!(
        summary.revision > first_copy,
        "writes went on during the defragment ({first_copy} → {})",
        summary.revision
    );
    assert!(
        p.a.current_revision() > summary.revision,
        "writes after it too"
    );
    assert_same(&p.a, &p.reference, &[APPLIED]);
    assert_no_leftover(&p);
    reopen(&mut p);
}

#[test]
fn a_compaction_during_the_copy_starts_it_over() {
    let mut p = Pair::new();
    churn(&p, 300);
    let mut stages = Vec::new();
    let summary =
        p.a.defragment_with(&mut |stage| {
            if stages.is_empty() {
                p.apply(put("during", b"1", 0));
                p.apply(compact(p.reference.current_revision() - 2));
                p.apply(put("during", b"2", 0));
            }
            stages.push(stage);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        stages[1],
        DefragStage::Restarted { attempt: 2 },
        "{stages:?}"
    );
    assert_eq!(summary.attempts, 2);
    assert_same(&p.a, &p.reference, &[APPLIED]);
    assert_no_leftover(&p);
    reopen(&mut p);
}

#[test]
fn a_compaction_during_every_copy_gives_up_cleanly() {
    let p = Pair::new();
    churn(&p, 300);
    let err =
        p.a.defragment_with(&mut |stage| {
            if let DefragStage::Copied { .. } = stage {
                p.apply(put("during", b"x", 0));
                p.apply(compact(p.reference.current_revision()));
            }
            ControlFlow::Continue(())
        })
        .expect_err("gives up");
    assert!(err.to_string().contains("run defragment again"), "{err}");
    assert_same(&p.a, &p.reference, &[APPLIED]);
    assert_no_leftover(&p);
}

#[test]
fn a_stop_at_any_stage_leaves_the_old_database_in_use() {
    for stop_at in ["copied", "restarted", "swapping"] {
        let mut p = Pair::new();
        churn(&p, 300);
        p.a.flush().unwrap();
        let size = file_size(p.path());
        let mut watcher =
            p.a.watch_hub()
                .watch(
                    KeyRange::new(b"during".to_vec(), vec![]),
                    0,
                    WatchFilters::default(),
                )
                .1;
        let mut copies = 0;
        let err =
            p.a.defragment_with(&mut |stage| {
                let name = match stage {
                    DefragStage::Copied { .. } => "copied",
                    DefragStage::Restarted { .. } => "restarted",
                    DefragStage::Swapping { .. } => "swapping",
                };
                if let DefragStage::Copied { .. } = stage {
                    copies += 1;
                    p.apply(put("during", b"x", 1));
                    if stop_at == "restarted" && copies == 1 {
                        p.apply(compact(p.reference.current_revision()));
                    }
                }
                if name == stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect_err(stop_at);
        assert!(err.to_string().contains("the store is unchanged"), "{err}");
        assert_eq!(file_size(p.path()), size, "{stop_at}: the same file");
        assert_no_leftover(&p);
        assert_same(&p.a, &p.reference, &[APPLIED]);
        // the old database takes writes and serves watchers as before
        p.apply(put("during", b"after", 0));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while seen.last().map(|v: &Vec<u8>| v.as_slice()) != Some(b"after".as_slice()) {
            assert!(Instant::now() < deadline, "{stop_at}: watch saw {seen:?}");
            match watcher.try_recv() {
                Ok(batch) => seen.extend(
                    batch
                        .events
                        .into_iter()
                        .filter_map(|e| e.kv)
                        .map(|kv| kv.value),
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_same(&p.a, &p.reference, &[APPLIED]);
        // and a later defragment succeeds
        p.a.defragment().unwrap();
        assert_same(&p.a, &p.reference, &[APPLIED]);
        reopen(&mut p);
    }
}

#[test]
fn a_copy_left_by_a_crash_is_removed() {
    let mut p = Pair::new();
    churn(&p, 100);
    let stale = defrag_path(p.path());
    std::fs::write(&stale, b"left by a crash during a defragment").unwrap();
    reopen(&mut p);
    assert_no_leftover(&p);
    std::fs::write(&stale, b"left by a crash during a defragment").unwrap();
    p.a.defragment().unwrap();
    assert_same(&p.a, &p.reference, &[APPLIED]);
    assert_no_leftover(&p);
}

#[test]
fn an_empty_store_defragments() {
    let mut p = Pair::new();
    let summary = p.a.defragment().unwrap();
    assert_eq!((summary.revision, summary.rows), (1, 0));
    assert_same(&p.a, &p.reference, &[APPLIED]);
    p.apply(put("first", b"1", 0));
    assert_eq!(p.a.current_revision(), 2);
    reopen(&mut p);
}
