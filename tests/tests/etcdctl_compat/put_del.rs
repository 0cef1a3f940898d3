//! `etcdctl put` and `etcdctl del` with their flags.

use cairn_tests::json::{Kv, header_revision, int, kv_list, kvs};
use cairn_tests::{Kind, TestServer, etcdctl_err, etcdctl_json, etcdctl_ok};

use crate::{put_all, revision};

compat_tests!(
    put_prev_kv,
    put_ignore_value_and_lease,
    put_errors,
    del_flags
);

fn put_prev_kv(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("a", "1")]); // revision 2
    assert_eq!(
        etcdctl_ok(ep, &["put", "a", "2", "--prev-kv"]),
        "OK\na\n1\n"
    ); // 3

    let put = etcdctl_json(ep, &["put", "a", "3", "--prev-kv"]); // 4
    assert_eq!(header_revision(&put), 4);
    assert_eq!(Kv::from_json(&put["prev_kv"]), Kv::new("a", "2", 2, 3, 2));

    let fresh = etcdctl_json(ep, &["put", "new", "x", "--prev-kv"]); // 5
    assert_eq!(header_revision(&fresh), 5);
    assert!(
        fresh.get("prev_kv").is_none(),
        "a new key has no prev_kv: {fresh}"
    );
    assert_eq!(etcdctl_ok(ep, &["put", "new2", "x", "--prev-kv"]), "OK\n");
}

fn put_ignore_value_and_lease(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let lease = lease_id(ep, 300);
    let hex = format!("{lease:x}");

    assert_eq!(etcdctl_ok(ep, &["put", "k", "v1", "--lease", &hex]), "OK\n"); // 2
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k"])),
        vec![Kv::new("k", "v1", 2, 2, 1).with_lease(lease)]
    );

    // --ignore-value keeps the value; without --ignore-lease the lease is replaced by none.
    assert_eq!(etcdctl_ok(ep, &["put", "k", "--ignore-value"]), "OK\n"); // 3
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k"])),
        vec![Kv::new("k", "v1", 2, 3, 2)]
    );

    assert_eq!(etcdctl_ok(ep, &["put", "k", "v2", "--lease", &hex]), "OK\n"); // 4
    // --ignore-lease keeps the lease and takes the new value.
    let put = etcdctl_json(ep, &["put", "k", "v3", "--ignore-lease", "--prev-kv"]); // 5
    assert_eq!(
        Kv::from_json(&put["prev_kv"]),
        Kv::new("k", "v2", 2, 4, 3).with_lease(lease)
    );
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k"])),
        vec![Kv::new("k", "v3", 2, 5, 4).with_lease(lease)]
    );

    let ttl = etcdctl_json(ep, &["lease", "timetolive", &hex, "--keys"]);
    assert_eq!(ttl["keys"], serde_json::json!(["aw=="]));
    assert_eq!(revision(ep), 5);
}

fn put_errors(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("k", "v")]); // 2

    let err = etcdctl_err(ep, &["put", "missing", "--ignore-value"]);
    assert!(err.contains("etcdserver: key not found"), "{err}");
    let err = etcdctl_err(ep, &["put", "missing", "v", "--ignore-lease"]);
    assert!(err.contains("etcdserver: key not found"), "{err}");
    let err = etcdctl_err(ep, &["put", "k", "v", "--lease", "1234abcd"]);
    assert!(
        err.contains("etcdserver: requested lease not found"),
        "{err}"
    );
    let err = etcdctl_err(ep, &["put", "", "v"]);
    assert!(err.contains("etcdserver: key is not provided"), "{err}");

    assert_eq!(revision(ep), 2, "failed puts do not bump the revision");
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k"])),
        vec![Kv::new("k", "v", 2, 2, 1)]
    );
}

fn del_flags(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(
        ep,
        &[("a1", "x1"), ("a2", "x2"), ("a3", "x3"), ("b1", "y1")],
    ); // 2..=5

    assert_eq!(etcdctl_ok(ep, &["del", "a1"]), "1\n"); // 6
    assert_eq!(etcdctl_ok(ep, &["del", "nothere"]), "0\n");
    assert_eq!(
        revision(ep),
        6,
        "a delete that removes nothing does not bump the revision"
    );

    let del = etcdctl_json(ep, &["del", "a", "--prefix", "--prev-kv"]); // 7
    assert_eq!(header_revision(&del), 7);
    assert_eq!(int(&del, "deleted"), 2);
    assert_eq!(
        kv_list(&del, "prev_kvs"),
        vec![Kv::new("a2", "x2", 3, 3, 1), Kv::new("a3", "x3", 4, 4, 1)]
    );
    assert_eq!(
        etcdctl_ok(ep, &["del", "a", "--prefix", "--prev-kv"]),
        "0\n"
    );

    put_all(ep, &[("a9", "z")]); // 8
    assert_eq!(
        etcdctl_ok(ep, &["del", "a", "--from-key", "--prev-kv"]),
        "2\na9\nz\nb1\ny1\n"
    ); // 9
    assert!(kvs(&etcdctl_json(ep, &["get", "", "--from-key"])).is_empty());

    put_all(ep, &[("r1", "1"), ("r2", "2"), ("r3", "3")]); // 10..=12
    let ranged = etcdctl_json(ep, &["del", "r1", "r3"]); // 13
    assert_eq!(int(&ranged, "deleted"), 2);
    assert_eq!(header_revision(&ranged), 13);
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "r", "--prefix"])),
        vec![Kv::new("r3", "3", 12, 12, 1)]
    );
}

/// Grants a lease with `ttl` seconds and returns its ID.
pub fn lease_id(endpoint: &str, ttl: u32) -> i64 {
    let grant = etcdctl_json(endpoint, &["lease", "grant", &ttl.to_string()]);
    let id = int(&grant, "ID");
    assert!(id > 0, "lease grant returned no ID: {grant}");
    assert_eq!(int(&grant, "TTL"), i64::from(ttl));
    id
}
