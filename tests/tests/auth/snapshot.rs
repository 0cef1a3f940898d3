//! Auth across a restart and a backup: users, roles, permissions and the enabled flag live
//! in the store, so a restarted member and a member restored from a snapshot (saved by
//! root) keep them. etcd is saved and restored with etcdctl; cairn with
//! `cairnutl snapshot save | restore`, its own backup tool (etcdctl cannot restore cairn's
//! snapshot format).

use std::path::Path;
use std::process::Command;

use cairn_tests::{Kind, TestServer, cairnutl_bin, etcdctl};

use crate::{Ctl, DENIED, NO_USER, ROOT, auth_server};

auth_tests!(
    auth_survives_a_restart,
    restored_snapshot_keeps_users_roles_and_auth
);

/// Auth still on, test-user's grants and the users and roles as [`auth_server`] left them
/// (plus `foo = bar`).
fn assert_auth_as_before(s: &TestServer) {
    let (anon, root, user) = (Ctl::anonymous(s), Ctl::root(s), Ctl::test_user(s));
    assert_eq!(anon.err(&["get", "foo"]), NO_USER, "auth is still on");
    assert_eq!(root.ok(&["user", "list"]), "root\ntest-user\n");
    assert_eq!(root.ok(&["role", "list"]), "test-role\n");
    assert_eq!(
        root.ok(&["user", "get", "test-user"]),
        "User: test-user\nRoles: test-role\n"
    );
    assert_eq!(
        root.ok(&["role", "get", "test-role"]),
        "Role test-role\nKV Read:\n\tfoo\nKV Write:\n\tfoo\n"
    );
    assert_eq!(user.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(user.err(&["put", "hoo", "x"]), DENIED);
    assert_eq!(user.ok(&["put", "foo", "after"]), "OK\n");
}

/// etcd's e2e `authTestCacheReload`: nothing changed, so the same user works after the
/// member restarts.
fn auth_survives_a_restart(kind: Kind) {
    let (mut s, _root, user) = auth_server(kind);
    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    s.stop();
    s.restart();
    assert_auth_as_before(&s);
}

fn cairnutl(args: &[&str]) -> String {
    let out = Command::new(cairnutl_bin())
        .args(args)
        .output()
        .expect("run cairnutl");
    etcdctl::assert_success(&out, &format!("cairnutl {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves a snapshot of `s` as root into `file`.
fn save(s: &TestServer, file: &Path) {
    let file = file.display().to_string();
    match s.kind() {
        Kind::Etcd => {
            let out = Ctl::root(s).ok(&["snapshot", "save", &file]);
            assert_eq!(out, format!("Snapshot saved at {file}\n"));
        }
        Kind::Cairn => {
            let endpoints = format!("--endpoints={}", s.url());
            let user = format!("--user={ROOT}");
            let out = cairnutl(&[&endpoints, &user, "snapshot", "save", &file]);
            assert!(out.contains("Snapshot saved at"), "{out}");
        }
    }
}

/// A one-member server of `kind` restored from `file` as member `restored`.
fn restore(kind: Kind, file: &Path) -> TestServer {
    let file = file.display().to_string();
    TestServer::start_prepared(kind, "restored", &[], |data_dir, peer| {
        let data_dir = data_dir.display().to_string();
        let cluster = format!("restored={peer}");
        let args = [
            "snapshot",
            "restore",
            &file,
            "--data-dir",
            &data_dir,
            "--name",
            "restored",
            "--initial-cluster",
            &cluster,
            "--initial-advertise-peer-urls",
            peer,
        ];
        match kind {
            Kind::Etcd => {
                let out = etcdctl::etcdctl("127.0.0.1:1", &args);
                etcdctl::assert_success(&out, "etcdctl snapshot restore");
            }
            Kind::Cairn => {
                cairnutl(&args);
            }
        }
    })
}

/// etcd's e2e `authTestSnapshot` and 3.5's `RecoverFromSnapshot`: a snapshot holds the auth
/// buckets, and a restore rewrites only the membership.
fn restored_snapshot_keeps_users_roles_and_auth(kind: Kind) {
    let (s, _root, user) = auth_server(kind);
    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.snap");
    save(&s, &file);
    drop(s);

    let restored = restore(kind, &file);
    assert_auth_as_before(&restored);
}
