//! Backward compatibility: a data dir written by an earlier release (a committed fixture,
//! `fixtures/datadir/make.sh`) opens with this release's `cairn` and serves what it held —
//! every key with its revisions, version and lease, the revision bounds, HashKV, the lease
//! with its keys, users and roles with auth still on — and takes new writes after it.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::etcdctl::{etcdctl_err, etcdctl_json, etcdctl_ok};
use cairn_tests::{Kind, TestServer};
use serde_json::Value;

/// The fixtures, by the release that wrote them (`git describe` of its commit).
const RELEASES: &[&str] = &["ed54e96"];

fn fixture(label: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/datadir/{label}.{ext}"))
}

fn unpack(label: &str, data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(data_dir)
        .arg("-xzf")
        .arg(fixture(label, "tar.gz"))
        .status()
        .expect("run tar");
    assert!(status.success(), "unpacking the {label} fixture failed");
}

/// The root user's flags (the fixture has auth on).
fn root(args: &[&str]) -> Vec<String> {
    let mut all = vec!["--user".to_string(), "root:root".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    all
}

fn json(ep: &str, args: &[&str]) -> Value {
    let all = root(args);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    etcdctl_json(ep, &all)
}

fn ok(ep: &str, args: &[&str]) -> String {
    let all = root(args);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    etcdctl_ok(ep, &all)
}

/// The fields of a KeyValue that must survive (etcdctl's JSON: base64 keys and values).
fn kv_facts(kv: &Value) -> (String, String, i64, i64, i64, i64) {
    (
        kv["key"].as_str().unwrap().to_string(),
        kv["value"].as_str().unwrap_or_default().to_string(),
        kv["create_revision"].as_i64().unwrap(),
        kv["mod_revision"].as_i64().unwrap(),
        kv["version"].as_i64().unwrap(),
        kv["lease"].as_i64().unwrap_or(0),
    )
}

fn kvs(get: &Value) -> Vec<(String, String, i64, i64, i64, i64)> {
    get["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(kv_facts)
        .collect()
}

#[test]
fn a_data_dir_of_an_earlier_release_opens_and_serves_what_it_held() {
    for label in RELEASES {
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(label, "json")).unwrap())
                .unwrap();
        let mut server =
            TestServer::start_prepared(Kind::Cairn, "fixture", &[], |dir, _| unpack(label, dir));
        let ep = server.endpoint();

        let got = json(&ep, &["get", "", "--prefix"]);
        assert_eq!(kvs(&got), kvs(&want["get"]), "{label}: the keys");
        let revision = want["status"]["header"]["revision"].as_i64().unwrap();
        assert_eq!(
            got["header"]["revision"].as_i64(),
            Some(revision),
            "{label}"
        );

        let hash = json(&ep, &["endpoint", "hashkv"]);
        assert_eq!(
            hash[0]["HashKV"]["hash"], want["hashkv"]["hash"],
            "{label}: HashKV"
        );
        assert_eq!(
            hash[0]["HashKV"]["compact_revision"], want["hashkv"]["compact_revision"],
            "{label}: compact revision"
        );
        // below the compaction is gone, above it is served
        let compacted = want["hashkv"]["compact_revision"].as_i64().unwrap();
        let below = format!("--rev={}", compacted - 1);
        let err = etcdctl_err(&ep, &["--user", "root:root", "get", "fixture/00", &below]);
        assert!(err.contains("compacted"), "{label}: {err}");
        ok(&ep, &["get", "fixture/00", &format!("--rev={compacted}")]);

        let lease = &want["lease"];
        let id = format!("{:x}", lease["id"].as_i64().unwrap());
        let ttl = json(&ep, &["lease", "timetolive", &id, "--keys"]);
        assert_eq!(
            ttl["granted-ttl"], lease["granted-ttl"],
            "{label}: lease TTL"
        );
        assert_eq!(ttl["keys"], lease["keys"], "{label}: the lease's keys");

        let users: Vec<String> = ok(&ep, &["user", "list"])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(Value::from(users), want["users"], "{label}: users");
        // auth is still on: no credentials, no reads; alice reads what her role grants
        let err = etcdctl_err(&ep, &["get", "fixture/01"]);
        assert!(err.contains("user name is empty"), "{label}: {err}");
        etcdctl_ok(&ep, &["--user", "alice:pw", "get", "fixture/01"]);
        let err = etcdctl_err(&ep, &["--user", "alice:pw", "get", "txn/a"]);
        assert!(err.contains("permission denied"), "{label}: {err}");

        // and it goes on from there
        ok(&ep, &["put", "after/upgrade", "yes"]);
        let after = json(&ep, &["get", "after/upgrade"]);
        assert_eq!(after["header"]["revision"].as_i64(), Some(revision + 1));
        server.stop();
    }
}
