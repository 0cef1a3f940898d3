//! Leases under auth: an ordinary user grants, attaches, keeps alive, inspects and revokes
//! leases on keys it may write; revoking (or attaching more keys to) a lease that carries a
//! key the user cannot write is refused.

use cairn_tests::Kind;

use crate::{Ctl, DENIED, auth_server};

auth_tests!(
    user_leases_on_granted_keys,
    lease_revoke_needs_write_on_every_attached_key
);

/// `lease grant <ttl>` as `ctl`; returns the lease ID as etcdctl prints it (hex).
fn grant(ctl: &Ctl, ttl: u32) -> String {
    let out = ctl.ok(&["lease", "grant", &ttl.to_string()]);
    let id = out
        .strip_prefix("lease ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("lease grant printed {out:?}"))
        .to_string();
    assert_eq!(out, format!("lease {id} granted with TTL({ttl}s)\n"));
    id
}

/// etcd's e2e `authLeaseTestKeepAlive`, `authLeaseTestLeaseGrantLeases` and
/// `authLeaseTestLeaseRevoke`, as test-user on its own key.
fn user_leases_on_granted_keys(kind: Kind) {
    let (_s, _root, user) = auth_server(kind);
    let id = grant(&user, 100);
    let lease = format!("--lease={id}");
    assert_eq!(user.ok(&["put", "foo", "val", &lease]), "OK\n");
    assert_eq!(
        user.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(100)\n")
    );
    let ttl = user.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining("))
            && ttl.ends_with("s), attached keys([foo])\n"),
        "{ttl}"
    );
    assert_eq!(
        user.ok(&["lease", "list"]),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(user.ok(&["get", "foo"]), "foo\nval\n");
    assert_eq!(
        user.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(user.ok(&["get", "foo"]), "", "the revoke deleted the key");
}

/// Revoking deletes every attached key, so it needs WRITE on each; a put attaching the
/// lease is refused too once the lease carries a key the user cannot write (else the
/// user could never revoke it). Root can revoke it.
fn lease_revoke_needs_write_on_every_attached_key(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    let id = grant(&user, 100);
    let lease = format!("--lease={id}");
    assert_eq!(user.ok(&["put", "foo", "v", &lease]), "OK\n");
    assert_eq!(root.ok(&["put", "hoo", "v", &lease]), "OK\n");

    assert_eq!(
        user.err(&["lease", "revoke", &id]),
        "Error: failed to revoke lease (etcdserver: permission denied)"
    );
    assert_eq!(user.err(&["put", "foo", "w", &lease]), DENIED);
    let ttl = root.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.ends_with("attached keys([foo hoo])\n") || ttl.ends_with("attached keys([hoo foo])\n"),
        "the lease lives on with both keys: {ttl}"
    );
    assert_eq!(root.ok(&["get", "foo"]), "foo\nv\n");

    assert_eq!(
        root.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(root.ok(&["get", "foo"]), "");
    assert_eq!(root.ok(&["get", "hoo"]), "");
}
