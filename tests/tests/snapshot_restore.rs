//! Backup and restore end to end: a snapshot taken from a live cairn over
//! `Maintenance.Snapshot`, read by `cairnutl snapshot status|verify`, restored with
//! `cairnutl snapshot restore` into a new member that a real `cairn` then serves.
//!
//! - The restored member serves the same keys, history, HashKV and leases, under the new name
//!   and the member/cluster IDs etcd would derive from the restore flags.
//! - `--bump-revision --mark-compacted`: a watch from before the restore is cancelled as
//!   compacted, and the next write lands above the bump.
//! - Every refused restore exits non-zero with etcdutl's message and leaves neither the target
//!   nor a temporary directory behind.

use std::path::{Path, PathBuf};

use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, HashKvRequest, LeaseGrantRequest,
    LeaseTimeToLiveRequest, MemberListRequest, PutRequest, RangeRequest, RangeResponse,
    SnapshotRequest, WatchCreateRequest, WatchRequest,
};
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer, etcd_ids};
use tokio_stream::StreamExt;

const TOKEN: &str = "restored-token";
const BUMP: i64 = 1_000_000_000;

use cairn_tests::{cairnutl, output_text as text};

fn full_range(revision: i64) -> RangeRequest {
    RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision,
        ..Default::default()
    }
}

/// What the source served at the snapshot's revision, to compare the restored member with.
struct Source {
    revision: i64,
    compact_revision: i64,
    hash: u32,
    all: RangeResponse,
    /// A revision between the compaction and the snapshot, and everything at it.
    old_revision: i64,
    old: RangeResponse,
    lease: i64,
    lease_keys: Vec<Vec<u8>>,
}

/// A put; returns its revision.
async fn put(c: &mut Clients, key: String, value: String, lease: i64) -> i64 {
    c.kv.put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// History, a range delete, a compaction, more writes, a lease with keys.
async fn fill(c: &mut Clients) -> (i64, i64) {
    let lease = c
        .lease
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    for i in 0..60 {
        let lease = if i % 7 == 0 { lease } else { 0 };
        put(c, format!("k/{:02}", i % 25), format!("v{i}"), lease).await;
    }
    let compact_at = put(c, "marker".into(), "m".into(), 0).await;
    c.kv.delete_range(DeleteRangeRequest {
        key: "k/05".into(),
        range_end: "k/09".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.kv.compact(CompactionRequest {
        revision: compact_at,
        physical: true,
    })
    .await
    .unwrap();
    for i in 0..15 {
        put(c, format!("late/{i:02}"), format!("l{i}"), 0).await;
    }
    c.kv.delete_range(DeleteRangeRequest {
        key: "late/03".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    (lease, compact_at)
}

/// Fills the server, takes a snapshot over gRPC into `file`, records what it served.
async fn snapshot_of_filled(endpoint: &str, file: &Path) -> Source {
    let mut c = Clients::connect(endpoint).await.unwrap();
    let (lease, compact_revision) = fill(&mut c).await;
    // Cairn's own format, asked for as cairnutl asks (without it etcd's is sent)
    let mut req = tonic::Request::new(SnapshotRequest {});
    req.metadata_mut().insert(
        cairn_proto::SNAPSHOT_FORMAT_METADATA,
        tonic::metadata::MetadataValue::from_static(cairn_proto::SNAPSHOT_FORMAT_CAIRN),
    );
    let mut stream = c.maintenance.snapshot(req).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap().blob);
    }
    std::fs::write(file, &bytes).unwrap();

    let all = c.kv.range(full_range(0)).await.unwrap().into_inner();
    let revision = all.header.as_ref().unwrap().revision;
    let hash = c
        .maintenance
        .hash_kv(HashKvRequest { revision })
        .await
        .unwrap()
        .into_inner()
        .hash;
    let old_revision = compact_revision + 3;
    let old =
        c.kv.range(full_range(old_revision))
            .await
            .unwrap()
            .into_inner();
    let lease_keys = c
        .lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    Source {
        revision,
        compact_revision,
        hash,
        all,
        old_revision,
        old,
        lease,
        lease_keys,
    }
}

/// A cairn serving `file` restored as member `name` (with `extra` restore flags).
fn restored(file: &Path, name: &str, extra: &[&str]) -> TestServer {
    let file = file.display().to_string();
    TestServer::start_prepared(Kind::Cairn, name, &[], |data_dir, peer| {
        let data_dir = data_dir.display().to_string();
        let cluster = format!("{name}={peer}");
        let mut args = vec![
            "snapshot",
            "restore",
            &file,
            "--data-dir",
            &data_dir,
            "--name",
            name,
            "--initial-cluster",
            &cluster,
            "--initial-cluster-token",
            TOKEN,
            "--initial-advertise-peer-urls",
            peer,
        ];
        args.extend_from_slice(extra);
        let out = cairnutl(&args);
        assert!(out.status.success(), "restore failed: {}", text(&out));
        assert!(
            text(&out).contains("restored snapshot"),
            "restore says what it did: {}",
            text(&out)
        );
    })
}

#[test]
fn snapshot_status_verify_and_restore_into_a_new_member() {
    let source_server = TestServer::start(Kind::Cairn);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    let src = block_on(snapshot_of_filled(&source_server.endpoint(), &file));
    let file_arg = file.display().to_string();

    // status: header only, etcdutl's json fields
    let out = cairnutl(&["snapshot", "status", "-w", "json", &file_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["revision"], src.revision, "{status}");
    assert_eq!(status["hash"], src.hash, "{status}");
    assert_eq!(status["totalKey"], src.all.kvs.len(), "{status}");
    assert_eq!(
        status["totalSize"],
        std::fs::metadata(&file).unwrap().len(),
        "{status}"
    );
    let out = cairnutl(&["snapshot", "verify", &file_arg]);
    assert!(
        out.status.success() && text(&out).contains("OK"),
        "{}",
        text(&out)
    );

    // a plain restore serves the same data under the new identity
    let server = restored(&file, "restored", &[]);
    let peer = server.peer_url();
    block_on(async {
        let mut c = Clients::connect(&server.endpoint()).await.unwrap();
        let all = c.kv.range(full_range(0)).await.unwrap().into_inner();
        assert_eq!(all.kvs, src.all.kvs, "keys, values, versions, revisions");
        assert_eq!(all.header.as_ref().unwrap().revision, src.revision);
        let old =
            c.kv.range(full_range(src.old_revision))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(old.kvs, src.old.kvs, "history since the compaction is kept");
        let hash = c
            .maintenance
            .hash_kv(HashKvRequest {
                revision: src.revision,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (hash.hash, hash.compact_revision),
            (src.hash, src.compact_revision)
        );
        let ttl = c
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: src.lease,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(ttl.ttl > 0, "the lease survives: {ttl:?}");
        let (mut got, mut want) = (ttl.keys, src.lease_keys.clone());
        got.sort();
        want.sort();
        assert_eq!(got, want, "the lease keeps its keys");

        let members = c
            .cluster
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner();
        let id = etcd_ids::member_id(&[&peer], TOKEN);
        assert_eq!(members.members.len(), 1, "{members:?}");
        let m = &members.members[0];
        assert_eq!((m.id, m.name.as_str()), (id, "restored"));
        assert_eq!(m.peer_ur_ls, vec![peer.clone()]);
        assert_eq!(
            members.header.unwrap().cluster_id,
            etcd_ids::cluster_id(&[id])
        );
    });
    drop(server);

    // --bump-revision: old watchers are told to relist, new writes land above the bump
    let bumped = restored(
        &file,
        "bumped",
        &["--bump-revision", &BUMP.to_string(), "--mark-compacted"],
    );
    block_on(async {
        let mut c = Clients::connect(&bumped.endpoint()).await.unwrap();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "k/".into(),
                range_end: "k0".into(),
                start_revision: src.revision - 5,
                ..Default::default()
            })),
        };
        let mut stream = c
            .watch
            .watch(tokio_stream::iter(vec![create]).chain(tokio_stream::pending()))
            .await
            .unwrap()
            .into_inner();
        let mut cancelled = None;
        while let Some(resp) = stream.next().await {
            let resp = resp.unwrap();
            assert!(
                resp.events.is_empty(),
                "no events from before the bump: {resp:?}"
            );
            if resp.canceled {
                cancelled = Some(resp);
                break;
            }
        }
        let cancelled = cancelled.expect("the watch is cancelled");
        assert_eq!(cancelled.compact_revision, src.revision + BUMP);
        let put =
            c.kv.put(PutRequest {
                key: "after".into(),
                value: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(put.header.unwrap().revision, src.revision + BUMP + 1);
        let all = c.kv.range(full_range(0)).await.unwrap().into_inner();
        assert_eq!(all.kvs.len(), src.all.kvs.len() + 1);
    });
}

/// The committed v1 fixture: a valid snapshot, so these cases need no server.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/snapshots/v1-small.snap")
}

/// Runs a restore into `parent/target` that must fail with `message`, and checks that
/// nothing new is left in `parent` (no target, no `.target.restore-*`).
fn refused(parent: &Path, file: &Path, extra: &[&str], message: &str) {
    let before: Vec<_> = entries(parent);
    let target = parent.join("target");
    let (file, target_arg) = (file.display().to_string(), target.display().to_string());
    let mut args = vec!["snapshot", "restore", &file, "--data-dir", &target_arg];
    args.extend_from_slice(extra);
    let out = cairnutl(&args);
    let said = text(&out);
    assert!(!out.status.success(), "{args:?} must fail: {said}");
    assert!(
        said.contains(message),
        "{args:?}: {said:?} should say {message:?}"
    );
    assert_eq!(said.trim().lines().count(), 1, "one clear line: {said}");
    assert_eq!(entries(parent), before, "{args:?} left something behind");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn refused_restores_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture()).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    // a non-empty target: refused, its content untouched
    let target = work.join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"precious").unwrap();
    let out = cairnutl(&[
        "snapshot",
        "restore",
        &fixture().display().to_string(),
        "--data-dir",
        &target.display().to_string(),
    ]);
    assert!(!out.status.success());
    let want = format!(
        "data-dir {:?} not empty or could not be read",
        target.display().to_string()
    );
    assert!(text(&out).contains(&want), "{}", text(&out));
    assert_eq!(entries(&target), vec!["keep.txt"]);
    assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"precious");
    assert_eq!(entries(&work), vec!["target"]);
    std::fs::remove_dir_all(&target).unwrap();

    refused(
        &work,
        &fixture(),
        &["--name", "nobody"],
        "couldn't find local name \"nobody\" in the initial cluster configuration",
    );
    refused(
        &work,
        &fixture(),
        &["--bump-revision", "1000"],
        "--mark-compacted required if --revision-bump > 0",
    );
    refused(
        &work,
        &fixture(),
        &["--mark-compacted"],
        "--mark-compacted required if --revision-bump > 0",
    );
    // a bit flipped in the body: found half-way through, after the temp dir exists
    let header_len = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    let body = 16 + header_len + 20;
    let mut flipped = good.clone();
    flipped[body] ^= 0x10;
    let bad = write("flipped.snap", &flipped);
    refused(&work, &bad, &[], "flipped.snap");
    refused(&work, &bad, &["--skip-hash-check"], "flipped.snap");
    let cut = write("truncated.snap", &good[..good.len() - 100]);
    refused(&work, &cut, &[], "truncated");
    let not_a_file = dir.path().join("a-directory");
    std::fs::create_dir(&not_a_file).unwrap();
    refused(
        &work,
        &not_a_file,
        &[],
        "is a directory, not a snapshot file",
    );
    refused(&work, &dir.path().join("missing.snap"), &[], "missing.snap");
    // and the same file, intact, restores
    let target_arg = work.join("target").display().to_string();
    let out = cairnutl(&[
        "snapshot",
        "restore",
        &fixture().display().to_string(),
        "--data-dir",
        &target_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(entries(&work), vec!["target"]);
    assert_eq!(
        entries(&work.join("target/member")),
        vec!["kv.redb", "raft.redb"]
    );
}

/// One snapshot restored into three data dirs with the same `--initial-cluster` forms a
/// three-member cluster serving the snapshot's data (etcd's disaster-recovery procedure).
#[test]
fn a_snapshot_restored_into_three_members_forms_a_cluster() {
    let file = fixture();
    let mut cluster = cairn_tests::TestCluster::start_prepared(3, &[], |m, initial_cluster| {
        let (file, dir, peer) = (
            file.display().to_string(),
            m.data_dir().display().to_string(),
            m.peer_url(),
        );
        let out = cairnutl(&[
            "snapshot",
            "restore",
            &file,
            "--name",
            m.name(),
            "--data-dir",
            &dir,
            "--initial-cluster",
            initial_cluster,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster-token",
            TOKEN,
        ]);
        assert!(out.status.success(), "restore {}: {}", m.name(), text(&out));
    });
    // the fixture's HashKV at its revision (fixtures/snapshots/v1-small.json) on every member
    let (hash, revision) = cluster.wait_converged(std::time::Duration::from_secs(30));
    assert_eq!((hash, revision), (2136318666, 59));
    let ids: Vec<u64> = cluster
        .members
        .iter()
        .map(|m| etcd_ids::member_id(&[m.peer_url().as_str()], TOKEN))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            cluster.member_id(i),
            *id,
            "etcd's ID from the restore flags"
        );
    }
    // and it takes writes through raft like any cluster
    let ep = cluster.members[1].endpoint();
    let r = block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        c.kv.put(PutRequest {
            key: b"after-restore".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
    });
    assert_eq!(r.header.unwrap().revision, revision + 1);
    cluster.wait_converged(std::time::Duration::from_secs(30));
}
