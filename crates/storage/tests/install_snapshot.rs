//! Installing a leader's snapshot into a live follower store: data, leases, alarms, meta and
//! watchers afterwards, after a reopen, and refusal of bad files with the store untouched.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::*;
use cairn_proto::mvccpb::Event;
use cairn_storage::snapshot::{SnapshotError, SnapshotSource, installing_path};
use cairn_storage::{Command, KeyRange, Op, Store, StoreOptions, WatchBatch, WatchFilters};
use common::{all, apply, assert_same, compact, put};
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

const APPLIED: &str = "raft_applied";
const MEMBERSHIP: &str = "raft_membership";

/// The leader: history, range deletes, a txn, leases (one revoked with its keys), a
/// compaction, and raft meta written with the last batch. (Alarms refuse later writes, so
/// they have their own test.)
fn leader(dir: &Path) -> Arc<Store> {
    let s = Store::open(&dir.join("a.redb"), StoreOptions::default()).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 42, ttl: 300 }));
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 43, ttl: 60 }));
    for i in 0..60 {
        let lease = [(5, 42), (7, 43)]
            .iter()
            .find(|(m, _)| i % m == 0)
            .map_or(0, |(_, id)| *id);
        apply(&s, put(&format!("key/{:03}", i % 15), "v".repeat(i), lease));
    }
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "key/010".into(),
            range_end: "key/012".into(),
            ..Default::default()
        }),
    );
    let txn = TxnRequest {
        compare: vec![Compare {
            key: "key/001".into(),
            result: CompareResult::Greater as i32,
            target: CompareTarget::Version as i32,
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: "key/txn".into(),
                    value: "t".into(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: "key/002".into(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    apply(&s, Op::Txn(txn));
    apply(&s, compact(30));
    for i in 0..10 {
        apply(&s, put(&format!("late/{i}"), "x", 0));
    }
    apply(&s, Op::LeaseRevoke(LeaseRevokeRequest { id: 43 }));
    let meta = [
        (APPLIED, b"{\"term\":3,\"index\":120}".to_vec()),
        (MEMBERSHIP, b"{\"voters\":[1,2,3]}".to_vec()),
    ];
    s.apply(&[Some(Command::from(put("key/last", "z", 42)))], &meta)
        .unwrap();
    s
}

/// A follower with different, older data: `revisions` puts, its own lease and raft meta.
fn follower(dir: &Path, revisions: usize) -> Arc<Store> {
    let s = Store::open(&dir.join("kv.redb"), StoreOptions::default()).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 99, ttl: 30 }));
    for i in 0..revisions {
        apply(&s, put(&format!("old/{}", i % 4), "o", 99));
    }
    s.apply(&[], &[(APPLIED, b"follower".to_vec())]).unwrap();
    s
}

/// Writes the leader's snapshot with its raft meta; returns the file and the meta pairs.
fn snapshot(a: &Store, file: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = std::fs::File::create(file).unwrap();
    let source = SnapshotSource {
        cluster_id: 7,
        members: vec![],
        server_version: "3.5.0 (cairn test)".into(),
    };
    let (header, meta) = a
        .write_snapshot_with_meta(&source, 3, &mut out, &mut |_| {}, &[APPLIED, MEMBERSHIP])
        .unwrap();
    assert_eq!(header.revision, a.current_revision());
    vec![
        (APPLIED, meta[0].clone().unwrap()),
        (MEMBERSHIP, meta[1].clone().unwrap()),
    ]
}

/// Batches until one reaches `revision` (or a compaction cancel), with a deadline.
fn batches_until(rx: &mut Receiver<WatchBatch>, revision: i64) -> Vec<WatchBatch> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(b) => {
                let done = b.revision >= revision || b.compact_revision != 0;
                out.push(b);
                if done {
                    return out;
                }
            }
            Err(TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "no batch at {revision}: {out:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryRecvError::Disconnected) => return out,
        }
    }
}

fn events(batches: Vec<WatchBatch>) -> Vec<Event> {
    batches.into_iter().flat_map(|b| b.events).collect()
}

fn watch_all(s: &Store, start: i64) -> Receiver<WatchBatch> {
    s.watch_hub()
        .watch(KeyRange::all(), start, WatchFilters::default())
        .1
}

#[test]
fn install_replaces_everything_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &file);
    assert_eq!(meta[0].1, a.meta(APPLIED).unwrap().unwrap());

    let bdir = tempfile::tempdir().unwrap();
    let b = follower(bdir.path(), 40);
    let before = b.current_revision();
    // an install that crashed earlier left its file behind
    std::fs::write(installing_path(b.path()), b"half an install").unwrap();

    let summary = b.install_snapshot(&file, &meta).unwrap();
    assert_eq!(summary.header.revision, a.current_revision());
    assert_eq!(summary.previous_revision, before);
    assert!(!b.lease_exists(99), "the follower's own lease is gone");
    assert_same(&b, &a, &[APPLIED, MEMBERSHIP]);
    assert!(!installing_path(b.path()).exists());

    // the store keeps working: the same commands give the same results on both
    for op in [
        put("key/new", "n", 42),
        Op::LeaseRevoke(LeaseRevokeRequest { id: 42 }),
        compact(a.current_revision()),
        put("after", "compaction", 0),
    ] {
        let cmd = [Some(Command::from(op))];
        let ok = |s: &Store| s.apply(&cmd, &[]).unwrap().pop().unwrap().unwrap();
        assert_eq!(ok(&b), ok(&a));
    }
    assert_same(&b, &a, &[APPLIED, MEMBERSHIP]);
    b.flush().unwrap();
    b.defragment().unwrap();
    assert_same(&b, &a, &[APPLIED, MEMBERSHIP]);

    let path = b.path().to_path_buf();
    drop(b);
    let b = Store::open(&path, StoreOptions::default()).unwrap();
    assert_same(&b, &a, &[APPLIED, MEMBERSHIP]);
    let names: Vec<_> = std::fs::read_dir(bdir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["kv.redb"], "nothing else beside the store");
}

#[test]
fn watchers_resume_from_the_installed_data() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &file);
    let b = follower(dir.path(), 40);
    let mut live = watch_all(&b, 0);
    let position = b.current_revision() + 1;
    assert!(position > a.compact_revision() && position <= a.current_revision());

    b.install_snapshot(&file, &meta).unwrap();
    // exactly what a watcher on the leader from the same position sees
    let mut reference = watch_all(&a, position);
    let expected = events(batches_until(&mut reference, a.current_revision()));
    assert!(!expected.is_empty());
    let got = events(batches_until(&mut live, a.current_revision()));
    assert_eq!(got, expected);

    // then live events from applies on the new data
    apply(&b, put("key/after", "1", 0));
    let next = events(batches_until(&mut live, b.current_revision()));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].kv.as_ref().unwrap().key, b"key/after");
}

#[test]
fn a_watcher_behind_the_compaction_is_cancelled_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &file);
    let b = follower(dir.path(), 10);
    let mut live = watch_all(&b, 0);
    assert!(b.current_revision() + 1 < a.compact_revision());

    b.install_snapshot(&file, &meta).unwrap();
    let got = batches_until(&mut live, i64::MAX);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].compact_revision, a.compact_revision());
    assert!(got[0].events.is_empty());
    assert!(live.blocking_recv().is_none(), "the watcher is cancelled");
}

#[test]
fn a_watcher_ahead_of_the_snapshot_waits_for_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &file);
    let b = follower(dir.path(), 90);
    let position = b.current_revision() + 1;
    let mut live = watch_all(&b, 0);
    assert!(position > a.current_revision() + 1);

    b.install_snapshot(&file, &meta).unwrap();
    while b.current_revision() < position + 2 {
        apply(&b, put("key/again", "x", 0));
    }
    let got = events(batches_until(&mut live, position + 2));
    let revs: Vec<i64> = got
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, vec![position, position + 1, position + 2]);
}

#[test]
fn reads_during_an_install_see_old_or_new_data_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &file);
    let b = follower(dir.path(), 40);
    let (old, new) = (all(&b, 0), all(&a, 0));
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let r = all(&b, 0);
                assert!(r == old || r == new, "a read mixed old and new data");
                reads += 1;
            }
        });
        b.install_snapshot(&file, &meta).unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
    });
    assert_eq!(all(&b, 0), new);
}

#[test]
fn a_bad_file_is_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    let good_file = dir.path().join("leader.snap");
    let meta = snapshot(&a, &good_file);
    let good = std::fs::read(&good_file).unwrap();
    let b = follower(dir.path(), 20);
    let (range, hash, applied) = (all(&b, 0), b.hash_kv(0).unwrap(), b.meta(APPLIED).unwrap());

    let header_len = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    let flip = |at: usize| {
        let mut v = good.clone();
        v[at] ^= 0x40;
        v
    };
    let mut body_resealed = flip(16 + header_len + 40);
    let end = body_resealed.len() - 32;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&body_resealed[..end]);
    body_resealed[end..].copy_from_slice(&digest);
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("empty", Some(vec![])),
        ("not a snapshot", Some(vec![b'x'; 544])),
        ("truncated", Some(good[..good.len() - 512].to_vec())),
        ("header byte", Some(flip(14))),
        ("body byte", Some(flip(16 + header_len + 40))),
        ("body byte, digest resealed", Some(body_resealed)),
        ("digest byte", Some(flip(good.len() - 1))),
    ];
    let file = dir.path().join("bad.snap");
    for (what, bytes) in cases {
        let _ = std::fs::remove_file(&file);
        if let Some(bytes) = bytes {
            std::fs::write(&file, bytes).unwrap();
        }
        let err = b.install_snapshot(&file, &meta).expect_err(what);
        let text = err.to_string();
        assert!(text.contains("bad.snap"), "{what}: {text}");
        if what == "header byte" {
            assert!(
                matches!(err, SnapshotError::HeaderChecksum(_)),
                "{what}: {err}"
            );
        }
        if what == "digest byte" {
            assert!(
                matches!(err, SnapshotError::DigestMismatch { .. }),
                "{what}: {err}"
            );
        }
        assert!(!installing_path(b.path()).exists(), "{what}: leftover");
        assert_eq!(all(&b, 0), range, "{what}");
        assert_eq!(b.hash_kv(0).unwrap(), hash, "{what}");
        assert_eq!(b.meta(APPLIED).unwrap(), applied, "{what}");
        assert!(b.lease_exists(99), "{what}");
    }
    apply(&b, put("still", "works", 0));
    assert_eq!(b.current_revision(), range.header.unwrap().revision + 1);
}

#[test]
fn an_empty_snapshot_empties_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&dir.path().join("fresh.redb"), StoreOptions::default()).unwrap();
    let file = dir.path().join("fresh.snap");
    let mut out = std::fs::File::create(&file).unwrap();
    let (_, meta) = fresh
        .write_snapshot_with_meta(
            &SnapshotSource::default(),
            3,
            &mut out,
            &mut |_| {},
            &[APPLIED],
        )
        .unwrap();
    assert_eq!(meta, vec![None], "an absent meta entry is None");
    let b = follower(dir.path(), 5);
    let mut live = watch_all(&b, 0);

    b.install_snapshot(&file, &[(APPLIED, b"x".to_vec())])
        .unwrap();
    assert_eq!((b.current_revision(), b.compact_revision()), (1, -1));
    assert_eq!(all(&b, 0).kvs, vec![]);
    assert!(b.lease_ids().is_empty());
    assert_eq!(b.hash_kv(0).unwrap(), fresh.hash_kv(0).unwrap());
    assert_eq!(b.meta(APPLIED).unwrap(), Some(b"x".to_vec()));
    // the watcher waits for revision 7 of the new history
    for _ in 0..6 {
        apply(&b, put("n", "1", 0));
    }
    let got = events(batches_until(&mut live, 7));
    let revs: Vec<i64> = got
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, vec![7]);
}

#[test]
fn alarms_are_installed_with_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let a = leader(dir.path());
    for (member_id, alarm) in [(9, AlarmType::Nospace), (7, AlarmType::Corrupt)] {
        apply(
            &a,
            Op::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id,
                alarm: alarm as i32,
            }),
        );
    }
    let file = dir.path().join("a.snap");
    let meta = snapshot(&a, &file);
    let b = follower(dir.path(), 3);
    let meta: Vec<(&str, Vec<u8>)> = meta.iter().map(|(k, v)| (*k, v.clone())).collect();
    b.install_snapshot(&file, &meta).unwrap();
    assert_eq!(b.alarms().unwrap().len(), 2);
    assert_eq!(b.alarms().unwrap(), a.alarms().unwrap());
    // and they act on the follower: CORRUPT refuses writes
    let refused = b
        .apply(&[Some(Command::from(put("k", "v", 0)))], &[])
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        matches!(refused, Err(cairn_storage::StoreError::ClusterCorrupt)),
        "{refused:?}"
    );
}
