//! Compaction in batches off the request path: the apply compacts the index and the rows go in
//! the background. While they go, reads, writes, HashKV and watches answer as after the
//! compaction; a snapshot or a defragment waits for the rows to be gone; a compaction cut
//! short by a close resumes at the next open; a newer compaction supersedes one under way.
//!
//! Each test applies the same commands to `a`, whose deletion is slowed down (small batches,
//! long pauses) so that it is observably under way, and to `reference`, at etcd's pace, and
//! compares everything a client can observe once both are done.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::{DeleteRangeRequest, RangeRequest};
use cairn_storage::snapshot::{SnapshotSource, verify};
use cairn_storage::{CompactionPace, Op, Store, StoreError, StoreOptions};
use common::{all, apply, assert_same, compact, put};

/// Long enough for any deletion here at the slow pace, on a loaded machine.
const DONE_WITHIN: Duration = Duration::from_secs(60);

/// A pace at which deleting the history below takes seconds: 4 rows per batch, 25 ms apart.
fn slow() -> StoreOptions {
    StoreOptions {
        compaction: CompactionPace {
            batch_limit: 4,
            sleep_interval: Duration::from_millis(25),
        },
        ..Default::default()
    }
}

fn open(dir: &Path, opts: StoreOptions) -> Arc<Store> {
    Store::open(&dir.join("kv.redb"), opts).unwrap()
}

struct Pair {
    a: Arc<Store>,
    reference: Arc<Store>,
    dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn new() -> Pair {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        Pair {
            a: open(dirs.0.path(), slow()),
            reference: open(dirs.1.path(), StoreOptions::default()),
            dirs,
        }
    }

    fn apply(&self, op: Op) {
        apply(&self.a, op.clone());
        apply(&self.reference, op);
    }

    /// 40 keys written 6 times each, 10 of them deleted; returns the revision after.
    fn history(&self) -> i64 {
        for round in 0..6 {
            for k in 0..40 {
                self.apply(put(&format!("k/{k:02}"), format!("v{round}-{k}"), 0));
            }
        }
        self.apply(Op::DeleteRange(DeleteRangeRequest {
            key: "k/00".into(),
            range_end: "k/10".into(),
            ..Default::default()
        }));
        self.a.current_revision()
    }

    /// Both stores done deleting, then equal in everything.
    fn settle_and_compare(&self) {
        for s in [&self.a, &self.reference] {
            assert!(s.wait_compacted(i64::MIN, DONE_WITHIN), "deletion finished");
        }
        assert_same(&self.a, &self.reference, &[]);
    }
}

/// The compaction's rows are still being deleted (observable from outside the store).
fn deleting(s: &Store) -> bool {
    !s.wait_compacted(i64::MIN, Duration::ZERO)
}

#[test]
fn reads_writes_and_hashes_go_on_while_the_rows_are_deleted() {
    let p = Pair::new();
    let rev = p.history();
    p.apply(compact(rev - 20));
    assert!(
        p.reference.wait_compacted(rev - 20, DONE_WITHIN),
        "the reference is done"
    );
    assert!(
        deleting(&p.a),
        "240 rows at 4 per 25 ms take more than a second"
    );

    // the compacted store, as a client sees it, while its rows are deleted
    assert_eq!(p.a.compact_revision(), rev - 20);
    assert_eq!(p.a.hash_kv(0).unwrap(), p.reference.hash_kv(0).unwrap());
    assert_eq!(
        p.a.hash_kv(rev - 10).unwrap(),
        p.reference.hash_kv(rev - 10).unwrap()
    );
    assert_eq!(all(&p.a, 0), all(&p.reference, 0));
    assert_eq!(all(&p.a, rev - 19), all(&p.reference, rev - 19));
    let old = p.a.range(&RangeRequest {
        key: b"k/20".to_vec(),
        revision: rev - 21,
        ..Default::default()
    });
    assert!(matches!(old, Err(StoreError::Compacted)), "{old:?}");
    // writes are applied between the batches
    for i in 0..20 {
        p.apply(put(&format!("during/{i}"), "x", 0));
    }
    assert!(
        deleting(&p.a),
        "the writes did not wait for the whole deletion"
    );
    assert_eq!(all(&p.a, 0), all(&p.reference, 0));
    p.settle_and_compare();
}

#[test]
fn a_compaction_cut_short_resumes_at_the_next_open() {
    let p = Pair::new();
    let rev = p.history();
    let (_, before) = p.a.db_size().unwrap();
    p.apply(compact(rev));
    let hash = p.reference.hash_kv(0).unwrap();
    // some batches, not all
    let deadline = Instant::now() + DONE_WITHIN;
    while p.a.db_size().unwrap().1 == before {
        assert!(Instant::now() < deadline, "no batch within {DONE_WITHIN:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(deleting(&p.a), "stopped halfway");
    let Pair { a, reference, dirs } = p;
    assert!(a.close().is_ok(), "the only handle");

    // reopened at the slow pace: compacted as before, the deletion under way again
    let a = open(dirs.0.path(), slow());
    assert_eq!(a.compact_revision(), rev);
    assert!(deleting(&a), "the deletion resumed");
    assert_eq!(a.hash_kv(0).unwrap(), hash);
    assert_eq!(all(&a, 0), all(&reference, 0));
    assert!(a.close().is_ok(), "the only handle");

    // and finished at etcd's
    let p = Pair {
        a: open(dirs.0.path(), StoreOptions::default()),
        reference,
        dirs,
    };
    p.settle_and_compare();
}

#[test]
fn a_newer_compaction_supersedes_one_under_way() {
    let p = Pair::new();
    let rev = p.history();
    p.apply(compact(rev - 100));
    assert!(deleting(&p.a));
    for i in 0..10 {
        p.apply(put(&format!("k/{:02}", 30 + i), "newer", 0));
    }
    p.apply(compact(rev + 5));
    assert_eq!(p.a.compact_revision(), rev + 5);
    assert_eq!(p.a.hash_kv(0).unwrap(), p.reference.hash_kv(0).unwrap());
    p.settle_and_compare();
}

#[test]
fn a_snapshot_and_a_defragment_wait_for_the_rows_to_go() {
    let p = Pair::new();
    let rev = p.history();
    p.apply(compact(rev - 30));
    assert!(deleting(&p.a));
    let file = p.dirs.0.path().join("snap.db");
    std::thread::scope(|scope| {
        let a = &p.a;
        let file = &file;
        let snapshot = scope.spawn(move || {
            let mut f = std::fs::File::create(file).unwrap();
            let source = SnapshotSource {
                cluster_id: 1,
                members: vec![],
                server_version: "test".into(),
            };
            a.write_snapshot(&source, 1, &mut f, &mut |_| {}).unwrap()
        });
        let defrag = scope.spawn(move || a.defragment().unwrap());
        let header = snapshot.join().unwrap();
        defrag.join().unwrap();
        assert_eq!(header.compact_revision, rev - 30);
        assert_eq!(header.hash, p.reference.hash_kv(0).unwrap().hash);
    });
    assert!(!deleting(&p.a), "both waited for the deletion");
    let (info, body) = verify(&file, &mut |_| {}).unwrap();
    assert_eq!(body.hash, info.header.hash);
    p.settle_and_compare();
}
