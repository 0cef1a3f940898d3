//! Old snapshot files keep working: every `fixtures/snapshots/*.snap` is read with the
//! library (`read_header`, `verify`) and with `cairnutl snapshot status|verify|restore`, and
//! compared with the values recorded beside it in `<name>.json` when it was written. A format
//! change that would silently break existing backups fails here.
//!
//! The fixtures are written once per format version by the ignored test below and committed:
//! `cargo test -p cairn-util --test snapshot_fixtures -- --ignored generate`
//! (it refuses to overwrite a file; `CAIRN_REGENERATE_FIXTURES=1` forces it, which is only
//! right while the format version is still unreleased).

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use cairn_proto::etcdserverpb::*;
use cairn_storage::snapshot::{SnapshotMember, SnapshotSource, read_header, verify};
use cairn_storage::{Command, Op, Store, StoreOptions};
use serde_json::{Value, json};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/snapshots")
}

fn cairnutl(args: &[&str]) -> (bool, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_cairnutl"))
        .args(args)
        .output()
        .expect("run cairnutl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn all_keys(s: &Store) -> Vec<Value> {
    let r = s
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    r.kvs
        .iter()
        .map(|kv| {
            json!({
                "key": String::from_utf8_lossy(&kv.key),
                "value": String::from_utf8_lossy(&kv.value),
                "createRevision": kv.create_revision,
                "modRevision": kv.mod_revision,
                "version": kv.version,
                "lease": kv.lease,
            })
        })
        .collect()
}

#[test]
fn every_fixture_still_reads_verifies_and_restores() {
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/snapshots exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    snaps.sort();
    assert!(
        !snaps.is_empty(),
        "no fixtures in {}",
        fixtures_dir().display()
    );
    for snap in snaps {
        let name = snap.display().to_string();
        let expected: Value = serde_json::from_slice(
            &std::fs::read(snap.with_extension("json"))
                .unwrap_or_else(|e| panic!("{name} has no expectations file beside it: {e}")),
        )
        .unwrap();

        // the library
        let info = read_header(&snap).unwrap_or_else(|e| panic!("{e}"));
        let h = &info.header;
        assert_eq!(h.format_version as u64, expected["formatVersion"], "{name}");
        assert_eq!(h.compact_revision, expected["compactRevision"], "{name}");
        assert_eq!(h.cluster_id, expected["clusterId"], "{name}");
        let (_, summary) = verify(&snap, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.records, expected["records"], "{name}");
        assert_eq!(summary.kv_rows, expected["kvRows"], "{name}");
        assert_eq!(summary.leases, expected["leases"], "{name}");
        assert_eq!(summary.hash, expected["status"]["hash"], "{name}");

        // the tool: status prints exactly what was recorded, verify and restore succeed
        let (ok, out, err) = cairnutl(&["snapshot", "status", "-w", "json", &name]);
        assert!(ok, "{name}: status failed: {err}");
        let status: Value = serde_json::from_str(&out).unwrap();
        // every field recorded with the fixture still prints the same; fields added to
        // `status` since (the auth summary) are checked on their own, the file is never
        // rewritten
        let recorded = expected["status"].as_object().unwrap();
        for (field, value) in recorded {
            assert_eq!(&status[field], value, "{name}: status field {field}");
        }
        assert_eq!(status["authEnabled"], false, "{name}: {status}");
        assert_eq!(status["users"], 0, "{name}: {status}");
        assert_eq!(status["roles"], 0, "{name}: {status}");
        let (ok, out, err) = cairnutl(&["snapshot", "verify", &name]);
        assert!(ok && out.contains("OK"), "{name}: verify: {out}{err}");

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("restored");
        let data_arg = data.display().to_string();
        let (ok, out, err) = cairnutl(&["snapshot", "restore", &name, "--data-dir", &data_arg]);
        assert!(ok, "{name}: restore failed: {out}{err}");
        let s = Store::open(&data.join("member/kv.redb"), StoreOptions::default()).unwrap();
        assert_eq!(
            s.current_revision(),
            expected["status"]["revision"],
            "{name}"
        );
        assert_eq!(s.compact_revision(), expected["compactRevision"], "{name}");
        assert_eq!(
            s.hash_kv(0).unwrap().hash,
            expected["status"]["hash"],
            "{name}"
        );
        assert_eq!(Value::from(all_keys(&s)), expected["keys"], "{name}");
        for lease in expected["leaseKeys"].as_object().unwrap() {
            let id: i64 = lease.0.parse().unwrap();
            let keys: Vec<String> = s
                .lease(id)
                .unwrap_or_else(|| panic!("{name}: lease {id} missing after restore"))
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            assert_eq!(Value::from(keys), *lease.1, "{name}: keys of lease {id}");
        }
    }
}

fn apply(s: &Store, op: Op) {
    s.apply(&[Some(Command::from(op))], &[])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
}

/// Deterministic content: history, overwrites, a range delete, a compaction, a lease with keys.
fn fill_small(s: &Store) {
    apply(
        s,
        Op::LeaseGrant(LeaseGrantRequest {
            id: 0x1234,
            ttl: 600,
        }),
    );
    for i in 0..48 {
        apply(
            s,
            Op::Put(PutRequest {
                key: format!("fixture/{:02}", i % 30).into(),
                value: format!("value {i}").into(),
                lease: if i % 5 == 0 { 0x1234 } else { 0 },
                ..Default::default()
            }),
        );
    }
    apply(
        s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "fixture/10".into(),
            range_end: "fixture/14".into(),
            ..Default::default()
        }),
    );
    apply(
        s,
        Op::Compact(CompactionRequest {
            revision: 25,
            physical: true,
        }),
    );
    for i in 0..8 {
        apply(
            s,
            Op::Put(PutRequest {
                key: format!("late/{i}").into(),
                value: vec![b'x'; i * 10],
                ..Default::default()
            }),
        );
    }
    apply(
        s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "late/3".into(),
            ..Default::default()
        }),
    );
}

#[test]
#[ignore = "writes fixtures/snapshots/v1-small.*; run once per format version"]
fn generate_v1_small() {
    let snap = fixtures_dir().join("v1-small.snap");
    if snap.exists() && std::env::var_os("CAIRN_REGENERATE_FIXTURES").is_none() {
        panic!(
            "{} exists; fixtures are written once and kept",
            snap.display()
        );
    }
    std::fs::create_dir_all(fixtures_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap();
    fill_small(&s);
    let member = 0x8e9e05c52164694d;
    let source = SnapshotSource {
        cluster_id: 0xcdf818194e3a8c32,
        members: vec![SnapshotMember {
            id: member,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            is_learner: false,
        }],
        server_version: "3.5.0 (cairn 0.1.0)".into(),
    };
    let mut f = std::fs::File::create(&snap).unwrap();
    s.write_snapshot(&source, 3, &mut f, &mut |_| {}).unwrap();
    f.sync_all().unwrap();

    let (info, summary) = verify(&snap, &mut |_| {}).unwrap();
    let h = &info.header;
    let lease_keys: Vec<String> = s
        .lease(0x1234)
        .unwrap()
        .keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let expected = json!({
        "comment": "written once by util/tests/snapshot_fixtures.rs (generate_v1_small); never regenerated",
        "formatVersion": h.format_version,
        "status": {
            "hash": h.hash,
            "revision": h.revision,
            "totalKey": h.key_count,
            "totalSize": info.file_size,
            "version": h.server_version,
        },
        "compactRevision": h.compact_revision,
        "clusterId": h.cluster_id,
        "records": summary.records,
        "kvRows": summary.kv_rows,
        "leases": summary.leases,
        "keys": all_keys(&s),
        "leaseKeys": { "4660": lease_keys },
    });
    std::fs::write(
        snap.with_extension("json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}
