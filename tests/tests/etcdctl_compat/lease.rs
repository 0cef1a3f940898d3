//! `etcdctl lease grant | keep-alive --once | timetolive --keys | list | revoke`.

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_tests::json::{header_revision, int, kvs};
use cairn_tests::{Kind, TestServer, base64, etcdctl_err, etcdctl_json, etcdctl_ok, wait};

use crate::revision;

compat_tests!(lease_lifecycle, lease_expiry_deletes_keys);

/// Parses `lease <hex> granted with TTL(<ttl>s)`.
fn granted_id(stdout: &str, ttl: u32) -> i64 {
    let hex = stdout
        .strip_prefix("lease ")
        .and_then(|s| s.strip_suffix(&format!(" granted with TTL({ttl}s)\n")))
        .unwrap_or_else(|| panic!("unexpected lease grant output: {stdout:?}"));
    i64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("lease ID {hex:?}: {e}"))
}

fn lease_lifecycle(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let id = granted_id(&etcdctl_ok(ep, &["lease", "grant", "100"]), 100);
    // etcdctl prints lease IDs as %016x (member IDs as plain %x).
    let hex = format!("{id:016x}");
    let other = etcdctl_json(ep, &["lease", "grant", "60"]);
    assert_eq!(int(&other, "TTL"), 60);
    assert_eq!(int(&other, "revision"), 1, "granting a lease writes no key");
    let other_id = int(&other, "ID");
    assert!(other_id > 0 && other_id != id);

    assert_eq!(etcdctl_ok(ep, &["put", "k1", "v", "--lease", &hex]), "OK\n"); // 2
    assert_eq!(etcdctl_ok(ep, &["put", "k2", "v", "--lease", &hex]), "OK\n"); // 3
    assert_eq!(kvs(&etcdctl_json(ep, &["get", "k1"]))[0].lease, id);

    let ttl = etcdctl_json(ep, &["lease", "timetolive", &hex, "--keys"]);
    assert_eq!(int(&ttl, "id"), id);
    assert_eq!(int(&ttl, "granted-ttl"), 100);
    let remaining = int(&ttl, "ttl");
    assert!((1..=100).contains(&remaining), "remaining TTL {remaining}");
    let keys: BTreeSet<String> = ttl["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| base64::decode_str(k.as_str().expect("key string")))
        .collect();
    assert_eq!(keys, BTreeSet::from(["k1".to_string(), "k2".to_string()]));
    let simple = etcdctl_ok(ep, &["lease", "timetolive", &hex]);
    assert!(
        simple.starts_with(&format!("lease {hex} granted with TTL(100s), remaining(")),
        "{simple}"
    );

    assert_eq!(
        etcdctl_ok(ep, &["lease", "keep-alive", "--once", &hex]),
        format!("lease {hex} keepalived with TTL(100)\n")
    );
    let kept = etcdctl_json(ep, &["lease", "keep-alive", "--once", &hex]);
    assert_eq!((int(&kept, "ID"), int(&kept, "TTL")), (id, 100));

    let list = etcdctl_json(ep, &["lease", "list"]);
    let ids: BTreeSet<i64> = list["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| int(l, "id"))
        .collect();
    assert_eq!(ids, BTreeSet::from([id, other_id]));
    let simple = etcdctl_ok(ep, &["lease", "list"]);
    let mut lines: Vec<&str> = simple.lines().collect();
    assert_eq!(lines.remove(0), "found 2 leases");
    lines.sort_unstable();
    let mut expected = [hex.clone(), format!("{other_id:016x}")];
    expected.sort_unstable();
    assert_eq!(lines, expected);

    // Revoking deletes both attached keys in one revision.
    assert_eq!(
        etcdctl_ok(ep, &["lease", "revoke", &hex]),
        format!("lease {hex} revoked\n")
    );
    let after = etcdctl_json(ep, &["get", "k", "--prefix"]);
    assert!(kvs(&after).is_empty());
    assert_eq!(header_revision(&after), 4);
    let gone = etcdctl_json(ep, &["lease", "timetolive", &hex]);
    assert_eq!(int(&gone, "ttl"), -1);
    let err = etcdctl_err(ep, &["lease", "revoke", &hex]);
    assert!(
        err.contains("etcdserver: requested lease not found"),
        "{err}"
    );

    let revoked = etcdctl_json(ep, &["lease", "revoke", &format!("{other_id:016x}")]);
    assert_eq!(
        header_revision(&revoked),
        4,
        "revoking a lease without keys writes nothing"
    );
    let leases = etcdctl_json(ep, &["lease", "list"]);
    assert_eq!(
        leases["leases"].as_array().map_or(0, Vec::len),
        0,
        "{leases}"
    );
    assert_eq!(etcdctl_ok(ep, &["lease", "list"]), "found 0 leases\n");
}

fn lease_expiry_deletes_keys(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let grant = etcdctl_json(ep, &["lease", "grant", "2"]);
    let hex = format!("{:x}", int(&grant, "ID"));
    assert_eq!(
        etcdctl_ok(ep, &["put", "eph", "v", "--lease", &hex]),
        "OK\n"
    ); // 2
    assert_eq!(etcdctl_ok(ep, &["put", "keep", "v"]), "OK\n"); // 3

    wait::until(Duration::from_secs(15), "the 2 s lease to expire", || {
        kvs(&etcdctl_json(ep, &["get", "eph"]))
            .is_empty()
            .then_some(())
    });
    assert_eq!(revision(ep), 4, "expiry deletes the key in one revision");
    assert_eq!(kvs(&etcdctl_json(ep, &["get", "keep"])).len(), 1);
    let ttl = etcdctl_json(ep, &["lease", "timetolive", &hex]);
    assert_eq!(int(&ttl, "ttl"), -1);
}
