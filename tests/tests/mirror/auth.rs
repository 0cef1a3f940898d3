//! make-mirror between clusters with auth on, with the narrowest users that can do it: at the
//! source a user that may only read the prefix, at the destination one that may only write it
//! (and owns the mirrors' `__cairn_mirror__/` namespace). The prune then cannot list the
//! destination's keys and deletes the gaps between the source's keys instead. Run between two
//! etcd 3.4 servers and between two cairn servers.

use std::time::Duration;

use cairn_tests::TestServer;
use cairn_tests::etcdctl::{etcdctl, etcdctl_ok};
use cairn_tests::mirror::Mirror;
use cairn_tests::{Kind, wait};

use crate::{CATCH_UP, FENCE};

cairn_tests::both_kinds!(etcdctl: mirrors_with_a_reader_at_the_source_and_a_writer_at_the_destination);

const ROOT: &str = "--user=root:root";

/// Turns auth on at `endpoint` (user root, password root) and adds `user` (password `pw`)
/// with one role granting each `(permission, prefix)`.
fn enable_with_user(endpoint: &str, user: &str, grants: &[(&str, &str)]) {
    let ctl = |args: &[&str]| etcdctl_ok(endpoint, args);
    ctl(&["user", "add", "root:root"]);
    ctl(&["user", "grant-role", "root", "root"]);
    let role = format!("{user}-role");
    ctl(&["role", "add", &role]);
    for (perm, prefix) in grants {
        ctl(&["role", "grant-permission", &role, perm, prefix, "--prefix"]);
    }
    ctl(&["user", "add", &format!("{user}:pw")]);
    ctl(&["user", "grant-role", user, &role]);
    assert_eq!(ctl(&["auth", "enable"]), "Authentication Enabled\n");
}

fn root(endpoint: &str, args: &[&str]) -> String {
    let mut all = vec![ROOT];
    all.extend_from_slice(args);
    etcdctl_ok(endpoint, &all)
}

/// `get --prefix` as root: keys and values, one per line.
fn listing(endpoint: &str, prefix: &str) -> String {
    root(endpoint, &["get", "--prefix", prefix])
}

fn wait_equal(s: &str, d: &str, prefix: &str) {
    wait::until(CATCH_UP, "destination /p/ equal to the source's", || {
        (listing(s, prefix) == listing(d, prefix)).then_some(())
    });
}

fn mirrors_with_a_reader_at_the_source_and_a_writer_at_the_destination(kind: Kind) {
    let src = TestServer::start(kind);
    let dst = TestServer::start(kind);
    let (s, d) = (src.endpoint(), dst.endpoint());
    enable_with_user(&s, "reader", &[("read", "/p/")]);
    enable_with_user(
        &d,
        "writer",
        &[("write", "/p/"), ("readwrite", "__cairn_mirror__/")],
    );
    // the users are as narrow as they claim
    let denied = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        denied(etcdctl(&s, &["--user=reader:pw", "put", "/p/x", "1"]))
            .contains("permission denied")
    );
    assert!(
        denied(etcdctl(&d, &["--user=writer:pw", "get", "/p/x"])).contains("permission denied")
    );

    for i in 0..40 {
        root(&s, &["put", &format!("/p/k{i:02}"), &format!("v{i}")]);
    }
    root(&s, &["put", "/q/secret", "not mirrored"]);
    // what the destination holds before: two keys the source lacks, one it has
    root(&d, &["put", "/p/a-stale", "x"]);
    root(&d, &["put", "/p/k07.stale", "x"]);
    root(&d, &["put", "/p/k03", "old"]);

    let args = [
        "--prefix",
        "/p/",
        "--user",
        "reader:pw",
        "--dest-user",
        "writer:pw",
        "--prune",
        FENCE,
        "--max-txn-ops",
        "16",
    ];
    let mut m = Mirror::start(&s, &d, &args);
    let done = m.wait_event("sync_done", CATCH_UP);
    assert_eq!(
        (done["keys"].as_u64(), done["pruned"].as_u64()),
        (Some(40), Some(2)),
        "{done}"
    );
    m.wait_event("watching", CATCH_UP);
    wait_equal(&s, &d, "/p/");

    root(&s, &["put", "/p/streamed", "after the copy"]);
    root(&s, &["del", "/p/k01"]);
    root(&s, &["put", "/p/k05", "changed"]);
    wait_equal(&s, &d, "/p/");
    assert_eq!(listing(&d, "/q/"), "", "only the prefix is mirrored");
    assert_eq!(m.stop().code(), Some(0));

    // without the mirrors' namespace the destination user cannot claim the prefix: one error
    // saying what the user needs, a non-zero exit, nothing written
    root(
        &d,
        &[
            "role",
            "revoke-permission",
            "writer-role",
            "__cairn_mirror__/",
            "--prefix",
        ],
    );
    root(&s, &["put", "/p/not-copied", "x"]);
    let mut refused = Mirror::start(&s, &d, &args);
    let (status, stderr) = refused.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("permission denied")
            && stderr.contains(
                "WRITE on the destination prefix and READWRITE on the prefix __cairn_mirror__/"
            ),
        "{stderr}"
    );
    assert_eq!(root(&d, &["get", "/p/not-copied"]), "");
}
