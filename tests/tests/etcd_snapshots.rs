//! etcd's own snapshot files in cairnutl: `fixtures/etcd/` holds files a real etcd 3.4 wrote
//! (`fixtures/etcd/make.sh`: puts, deletes, a txn, leases, a compaction, auth) with what etcd
//! said about them, and each test also asks etcdctl about the same file, offline.
//!
//! - `snapshot status` prints etcdctl's numbers, field by field, for an etcdctl-saved file
//!   and for a bare `member/snap/db`.
//! - `snapshot restore` of the etcd file gives a cairn member serving the same keys (every
//!   revision field), the same HashKV at every revision the etcd had, the same leases, users,
//!   roles and permissions, and the same compaction point.
//! - Damaged files are refused with one clear error, and nothing is left behind.

use std::path::{Path, PathBuf};

use cairn_tests::etcdctl::{etcdctl, etcdctl_json, etcdctl_ok};
use cairn_tests::{Kind, TestServer, require_etcd};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/etcd")
        .join(name)
}

/// What etcd said about the fixture when it wrote it.
fn recorded() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("v3.4-small.json")).unwrap()).unwrap()
}

use cairn_tests::{cairnutl, output_text as text};

/// `etcdctl snapshot status -w json FILE` (offline; no endpoint is dialed).
fn etcdctl_status(file: &Path) -> Value {
    let out = etcdctl(
        "127.0.0.1:1",
        &["snapshot", "status", "-w", "json", &path(file)],
    );
    assert!(
        out.status.success(),
        "etcdctl snapshot status: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn status_of_etcd_files_prints_etcdctls_numbers() {
    if !require_etcd() {
        return;
    }
    for name in ["v3.4-small.db", "v3.4-small.bare.db"] {
        let file = fixture(name);
        let out = cairnutl(&["snapshot", "status", "-w", "json", &path(&file)]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
        let theirs = etcdctl_status(&file);
        for (field, value) in theirs.as_object().unwrap() {
            assert_eq!(&ours[field], value, "{name}: field {field}; ours {ours}");
        }
        assert_eq!(ours["format"], "etcd", "{ours}");
        assert_eq!(ours["compactRevision"], recorded()["compactRevision"]);
        let rec = recorded();
        assert_eq!(
            (
                &ours["authEnabled"],
                ours["users"].as_u64(),
                ours["roles"].as_u64()
            ),
            (
                &Value::Bool(true),
                rec["users"].as_array().map(|a| a.len() as u64),
                rec["roles"].as_array().map(|a| a.len() as u64)
            )
        );

        // the simple line starts with etcdctl's four fields, then the storage version
        let ours = cairnutl(&["snapshot", "status", "-w", "simple", &path(&file)]);
        let theirs = etcdctl(
            "127.0.0.1:1",
            &["snapshot", "status", "-w", "simple", &path(&file)],
        );
        let theirs = String::from_utf8_lossy(&theirs.stdout)
            .trim_end()
            .to_string();
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            format!("{theirs}, 3.4.0\n"),
            "{name}"
        );
    }
    // and what etcd printed when it saved the file
    let ours = cairnutl(&[
        "snapshot",
        "status",
        "-w",
        "json",
        &path(&fixture("v3.4-small.db")),
    ]);
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    for (field, value) in recorded()["status"].as_object().unwrap() {
        assert_eq!(&ours[field], value, "field {field}");
    }
}

#[test]
fn verify_checks_the_digest_the_database_and_every_row() {
    let file = path(&fixture("v3.4-small.db"));
    let out = cairnutl(&["snapshot", "verify", "-w", "json", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = recorded();
    let revision = rec["status"]["revision"].as_i64().unwrap();
    assert_eq!(v["format"], "etcd");
    assert_eq!(v["revision"], revision);
    assert_eq!(v["compactRevision"], rec["compactRevision"]);
    assert_eq!(
        v["hash"],
        rec["hashkv"][revision.to_string()]["hash"],
        "{v}"
    );
    assert_eq!(v["totalKey"], rec["kvs"].as_array().unwrap().len());
    assert_eq!(v["leases"], 2);

    // a bare db has no digest: etcdutl's refusal, unless told to skip it
    let bare = path(&fixture("v3.4-small.bare.db"));
    let out = cairnutl(&["snapshot", "verify", &bare]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("snapshot missing hash but --skip-hash-check=false"),
        "{}",
        text(&out)
    );
    let out = cairnutl(&["snapshot", "verify", "--skip-hash-check", &bare]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("OK"), "{}", text(&out));
}

/// `snapshot restore FILE` as member `name` of `initial_cluster`, the flags etcdctl and
/// cairnutl both take.
fn restore_args(
    file: &Path,
    name: &str,
    data_dir: &Path,
    initial_cluster: &str,
    peer: &str,
) -> Vec<String> {
    [
        "snapshot",
        "restore",
        &path(file),
        "--name",
        name,
        "--data-dir",
        &path(data_dir),
        "--initial-cluster",
        initial_cluster,
        "--initial-advertise-peer-urls",
        peer,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// [`restore_args`] for member `m` of a cluster being prepared.
fn member_restore_args(file: &Path, m: &TestServer, initial_cluster: &str) -> Vec<String> {
    restore_args(
        file,
        m.name(),
        &m.data_dir(),
        initial_cluster,
        &m.peer_url(),
    )
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A cairn member restored from `file` (`extra`: restore flags).
fn restored(file: &Path, extra: &[&str]) -> TestServer {
    TestServer::start_prepared(Kind::Cairn, "s1", &[], |data_dir, peer| {
        let args = restore_args(file, "s1", data_dir, &format!("s1={peer}"), peer);
        let out = cairnutl(&[strs(&args).as_slice(), extra].concat());
        assert!(out.status.success(), "restore failed: {}", text(&out));
    })
}

/// The fixture has auth on, restored with it: every read is root's.
fn root(s: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["--user=root:root"];
    all.extend_from_slice(args);
    etcdctl_json(&s.endpoint(), &all)
}

#[test]
fn restore_of_an_etcd_snapshot_serves_what_the_etcd_served() {
    if !require_etcd() {
        return;
    }
    let rec = recorded();
    for (name, extra) in [
        ("v3.4-small.db", &[][..]),
        ("v3.4-small.bare.db", &["--skip-hash-check"][..]),
    ] {
        let s = restored(&fixture(name), extra);
        // every key at the last revision, with every revision field, as etcd listed them
        let got = root(&s, &["get", "", "--from-key"]);
        assert_eq!(got["kvs"], rec["kvs"], "{name}");
        assert_eq!(
            got["header"]["revision"], rec["status"]["revision"],
            "{name}"
        );
        // HashKV at every revision etcd answered for, and the compaction point
        for (rev, want) in rec["hashkv"].as_object().unwrap() {
            let got = root(&s, &["endpoint", "hashkv", "--rev", rev]);
            assert_eq!(
                (
                    &got[0]["HashKV"]["hash"],
                    &got[0]["HashKV"]["compact_revision"]
                ),
                (&want["hash"], &want["compact_revision"]),
                "{name}: HashKV at {rev}"
            );
        }
        let compacted = rec["compactRevision"].as_i64().unwrap() - 1;
        let out = etcdctl(
            &s.endpoint(),
            &[
                "--user=root:root",
                "get",
                "fixture/00",
                "--rev",
                &compacted.to_string(),
            ],
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted"),
            "{name}: {}",
            text(&out)
        );
        // leases with their TTLs and keys
        for (id, want) in rec["leases"].as_object().unwrap() {
            let hex = format!("{:x}", id.parse::<i64>().unwrap());
            let got = root(&s, &["lease", "timetolive", &hex, "--keys"]);
            assert_eq!(
                got["granted-ttl"], want["grantedTTL"],
                "{name}: lease {hex}"
            );
            let mut keys: Vec<String> = got["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            keys.sort();
            assert_eq!(Value::from(keys), want["keys"], "{name}: lease {hex}");
            assert!(got["ttl"].as_i64().unwrap() > 0, "{name}: {got}");
        }
        // users, roles, the auth switch and a grant
        let ep = s.endpoint();
        let lines = |v: &Value| -> String {
            v.as_array()
                .unwrap()
                .iter()
                .map(|n| format!("{}\n", n.as_str().unwrap()))
                .collect()
        };
        assert_eq!(
            etcdctl_ok(&ep, &["--user=root:root", "user", "list"]),
            lines(&rec["users"])
        );
        // etcdctl's `auth enable` stores no root role when root was granted it first
        assert_eq!(
            etcdctl_ok(&ep, &["--user=root:root", "role", "list"]),
            lines(&rec["roles"])
        );
        assert_eq!(
            etcdctl_ok(
                &ep,
                &["--user=app:pw", "get", "fixture/01", "--print-value-only"]
            ),
            "second 1\n"
        );
        let denied = etcdctl(&ep, &["--user=app:pw", "put", "fixture/01", "x"]);
        assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
        let anonymous = etcdctl(&ep, &["get", "fixture/01"]);
        assert!(String::from_utf8_lossy(&anonymous.stderr).contains("user name is empty"));
        // and the next write continues the etcd's revisions
        let put = root(&s, &["put", "after/restore", "x"]);
        assert_eq!(
            put["header"]["revision"].as_i64(),
            rec["status"]["revision"].as_i64().map(|r| r + 1),
            "{name}"
        );
    }
}

#[test]
fn damaged_etcd_files_are_refused_and_leave_nothing_behind() {
    let good = std::fs::read(fixture("v3.4-small.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &[&str], &str)> = vec![
        ("flipped", flip(&good, 5000), &[], "expected sha256"),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            &[],
            "the database is truncated",
        ),
        // past the digest, the database itself must hold up
        (
            "meta-pages",
            zero(&good, 0, 8192),
            &["--skip-hash-check"],
            "bad magic",
        ),
        (
            "root-page",
            zero(&good, root_page(&good), 4096),
            &["--skip-hash-check"],
            "",
        ),
        (
            "half-db",
            good[..8192 * 3].to_vec(),
            &["--skip-hash-check"],
            "",
        ),
    ];
    for (name, bytes, extra, wanted) in cases {
        let file = dir.path().join(format!("{name}.db"));
        std::fs::write(&file, bytes).unwrap();
        let target = dir.path().join(format!("{name}.restored"));
        let mut args = vec![
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = cairnutl(&args);
        let said = text(&out);
        assert!(
            !out.status.success(),
            "{name}: restored a damaged file: {said}"
        );
        assert!(said.contains(wanted), "{name}: {said}");
        assert!(!said.contains("panicked"), "{name}: {said}");
        assert_eq!(
            said.trim_end().lines().count(),
            1,
            "{name}: one line: {said}"
        );
        assert!(!target.exists(), "{name}: left {target:?} behind");
        let verify = cairnutl(
            &[
                &["snapshot", "verify"][..],
                extra,
                &[file.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(
            !verify.status.success(),
            "{name}: verify passed a damaged file"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Where the root bucket's page starts (meta page 0: the root page id at byte 32).
fn root_page(db: &[u8]) -> usize {
    let id = u64::from_le_bytes(db[32..40].try_into().unwrap()) as usize;
    let page_size = u32::from_le_bytes(db[24..28].try_into().unwrap()) as usize;
    id * page_size
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0xff;
    b
}

fn zero(bytes: &[u8], from: usize, len: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[from..from + len].fill(0);
    b
}

/// Fills a cairn with a history etcd's tools must carry: puts, overwrites, deletes, a txn, a
/// lease with keys, a compaction. Returns the revision the store is at.
fn fill_with_history(ep: &str) -> i64 {
    for i in 0..30 {
        etcdctl_ok(ep, &["put", &format!("h/{i:02}"), &format!("v{i}")]);
    }
    for i in 0..10 {
        etcdctl_ok(ep, &["put", &format!("h/{i:02}"), &format!("again {i}")]);
    }
    etcdctl_ok(ep, &["del", "h/2", "--prefix"]);
    let lease = etcdctl_json(ep, &["lease", "grant", "100000"]);
    let id = format!("{:x}", lease["ID"].as_i64().unwrap());
    etcdctl_ok(ep, &["put", "--lease", &id, "leased/a", "1"]);
    let at = etcdctl_json(ep, &["put", "h/00", "before the compaction"])["header"]["revision"]
        .as_i64()
        .unwrap();
    etcdctl_ok(ep, &["compaction", &at.to_string()]);
    etcdctl_ok(ep, &["put", "big", &"x".repeat(20_000)]);
    etcdctl_json(ep, &["put", "h/last", "done"])["header"]["revision"]
        .as_i64()
        .unwrap()
}

/// A fresh server of `kind` filled by [`fill_with_history`], saved by etcdctl into `file`
/// (etcd's format from either kind); returns the last revision and the HashKV there.
fn saved_with_history(kind: Kind, file: &Path) -> (i64, u64) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let last = fill_with_history(&ep);
    let hash = etcdctl_json(&ep, &["endpoint", "hashkv", "--rev", &last.to_string()])[0]["HashKV"]
        ["hash"]
        .as_u64()
        .unwrap();
    let out = etcdctl(&ep, &["snapshot", "save", &path(file)]);
    assert!(
        out.status.success(),
        "etcdctl snapshot save: {}",
        text(&out)
    );
    (last, hash)
}

/// Every key with its revision fields, and HashKV at every revision above the compaction.
fn contents(ep: &str, from: i64, to: i64) -> (Value, Vec<Value>) {
    let kvs = etcdctl_json(ep, &["get", "", "--from-key"])["kvs"].clone();
    let hashes = (from..=to)
        .map(|r| {
            let h =
                &etcdctl_json(ep, &["endpoint", "hashkv", "--rev", &r.to_string()])[0]["HashKV"];
            serde_json::json!({"hash": h["hash"], "compact_revision": h["compact_revision"]})
        })
        .collect();
    (kvs, hashes)
}

/// A real etcd 3.4 started from `etcdctl snapshot restore FILE`.
fn etcd_restored_from(file: &Path) -> TestServer {
    TestServer::start_prepared(Kind::Etcd, "s1", &[], |data_dir, peer| {
        let args = restore_args(file, "s1", data_dir, &format!("s1={peer}"), peer);
        let out = etcdctl("127.0.0.1:1", &strs(&args));
        assert!(
            out.status.success(),
            "etcdctl snapshot restore: {}",
            text(&out)
        );
    })
}

/// The way back: `etcdctl snapshot save` against cairn gets etcd's format, which etcdctl
/// reads and restores, and a real etcd serves from it the same keys and HashKV; `cairnutl
/// snapshot convert --to etcd` makes the same kind of file from a Cairn snapshot.
#[test]
fn etcds_tools_read_and_restore_what_cairn_serves() {
    if !require_etcd() {
        return;
    }
    let cairn = TestServer::start(Kind::Cairn);
    let ep = cairn.endpoint();
    let last = fill_with_history(&ep);
    let compacted = etcdctl_json(&ep, &["endpoint", "hashkv", "--rev", &last.to_string()])[0]
        ["HashKV"]["compact_revision"]
        .as_i64()
        .unwrap();
    let want = contents(&ep, compacted + 1, last);
    let dir = tempfile::tempdir().unwrap();

    // etcdctl snapshot save against cairn: etcd's file, etcdctl's checks pass
    let saved = dir.path().join("from-cairn.db");
    let out = etcdctl(&ep, &["snapshot", "save", &path(&saved)]);
    assert!(
        out.status.success(),
        "etcdctl snapshot save: {}",
        text(&out)
    );
    let status = etcdctl_status(&saved);
    assert_eq!(status["revision"], last, "{status}");
    // and cairnutl reads it as etcd's
    let ours = cairnutl(&["snapshot", "status", "-w", "json", &path(&saved)]);
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    assert_eq!(
        (&ours["format"], &ours["hash"]),
        (&Value::from("etcd"), &status["hash"])
    );

    // a Cairn snapshot converted offline gives the same data
    let cairn_file = dir.path().join("cairn.snap");
    let out = cairnutl(&["--endpoints", &ep, "snapshot", "save", &path(&cairn_file)]);
    assert!(out.status.success(), "{}", text(&out));
    let converted = dir.path().join("converted.db");
    let out = cairnutl(&[
        "snapshot",
        "convert",
        "--to",
        "etcd",
        &path(&cairn_file),
        &path(&converted),
    ]);
    assert!(out.status.success(), "convert: {}", text(&out));
    assert_eq!(etcdctl_status(&converted)["revision"], last);

    for file in [&saved, &converted] {
        let etcd = etcd_restored_from(file);
        let got = contents(&etcd.endpoint(), compacted + 1, last);
        assert_eq!(got.0, want.0, "{file:?}: the keys");
        assert_eq!(got.1, want.1, "{file:?}: HashKV at every revision");
        let lease = etcdctl_json(&etcd.endpoint(), &["get", "leased/a"]);
        assert_ne!(lease["kvs"][0]["lease"], Value::Null, "{lease}");
    }
}

/// `convert --to cairn` of etcd's own file: a Cairn snapshot that verifies and restores to
/// the same keys and HashKV.
#[test]
fn an_etcd_file_converts_to_a_cairn_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("from-etcd.snap");
    let out = cairnutl(&[
        "snapshot",
        "convert",
        "--to",
        "cairn",
        &path(&fixture("v3.4-small.db")),
        &path(&out_file),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v = cairnutl(&["snapshot", "verify", "-w", "json", &path(&out_file)]);
    assert!(v.status.success(), "{}", text(&v));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let rec = recorded();
    let revision = rec["status"]["revision"].as_i64().unwrap();
    assert_eq!(v["format"], "cairn");
    assert_eq!(v["revision"], revision);
    assert_eq!(v["hash"], rec["hashkv"][revision.to_string()]["hash"]);
    assert_eq!(v["compactRevision"], rec["compactRevision"]);
    // converting again is refused with a clear word, and a failed convert leaves nothing
    let again = cairnutl(&[
        "snapshot",
        "convert",
        "--to",
        "cairn",
        &path(&out_file),
        &path(&dir.path().join("x")),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already a Cairn snapshot"),
        "{}",
        text(&again)
    );
    assert!(!dir.path().join("x").exists() && !dir.path().join("x.part").exists());
}

/// The migration of a whole cluster: an etcd's snapshot, saved by etcdctl from a real etcd,
/// restored into the three members of a new cairn cluster, which agree with the etcd's HashKV
/// and take writes through raft.
#[test]
fn an_etcd_snapshot_restored_into_three_cairn_members_forms_a_cluster() {
    if !require_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let (last, want) = saved_with_history(Kind::Etcd, &file);

    let mut cluster = cairn_tests::TestCluster::start_prepared(3, &[], |m, initial_cluster| {
        let args = member_restore_args(&file, m, initial_cluster);
        let out = cairnutl(&strs(&args));
        assert!(out.status.success(), "restore {}: {}", m.name(), text(&out));
    });
    let (hash, revision) = cluster.wait_converged(std::time::Duration::from_secs(30));
    assert_eq!((hash as u64, revision), (want, last));
    let put = etcdctl_json(
        &cluster.members[2].endpoint(),
        &["put", "after", "migration"],
    );
    assert_eq!(put["header"]["revision"], last + 1);
    cluster.wait_converged(std::time::Duration::from_secs(30));
}

/// The way back for a whole cluster: a snapshot `etcdctl snapshot save` took from cairn,
/// restored with `etcdctl snapshot restore` into the three members of a real etcd cluster,
/// which agree with cairn's HashKV and take writes.
#[test]
fn a_snapshot_cairn_served_restores_into_three_etcd_members() {
    if !require_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-cairn.db");
    let (last, want) = saved_with_history(Kind::Cairn, &file);

    let mut cluster =
        cairn_tests::TestCluster::start_prepared_kind(Kind::Etcd, 3, &[], |m, initial_cluster| {
            let args = member_restore_args(&file, m, initial_cluster);
            let out = etcdctl("127.0.0.1:1", &strs(&args));
            assert!(
                out.status.success(),
                "etcdctl restore {}: {}",
                m.name(),
                text(&out)
            );
        });
    // etcd 3.4's HashKV has no hash_revision, so the revision is checked by the next write
    let (hash, _) = cluster.wait_converged(std::time::Duration::from_secs(30));
    assert_eq!(hash as u64, want);
    let put = etcdctl_json(
        &cluster.members[1].endpoint(),
        &["put", "after", "going back"],
    );
    assert_eq!(put["header"]["revision"], last + 1);
}

/// `--bump-revision N --mark-compacted` on an etcd file, as on Cairn's: the next write lands
/// above the bump and everything up to it counts as compacted.
#[test]
fn bump_revision_applies_to_etcd_files() {
    if !require_etcd() {
        return;
    }
    let rec = recorded();
    let revision = rec["status"]["revision"].as_i64().unwrap();
    let s = restored(
        &fixture("v3.4-small.db"),
        &["--bump-revision", "1000", "--mark-compacted"],
    );
    let put = root(&s, &["put", "after/bump", "x"]);
    assert_eq!(put["header"]["revision"], revision + 1001);
    let hash = root(&s, &["endpoint", "hashkv"]);
    assert_eq!(
        hash[0]["HashKV"]["compact_revision"],
        revision + 1000,
        "{hash}"
    );
    // the keys are all still there at the new revision
    let got = root(&s, &["get", "", "--from-key", "--keys-only"]);
    assert_eq!(
        got["count"].as_u64(),
        rec["kvs"].as_array().map(|a| a.len() as u64 + 1)
    );
}
