//! Range, Put and DeleteRange under auth: key, prefix, range and from-key grants, READ vs
//! WRITE vs READWRITE, the union of a user's grants, prev_kv needing READ, requests without
//! a user or with bad credentials, and the root role.

use cairn_tests::{Kind, TestServer};

use crate::{
    AUTH_FAILED, Ctl, DENIED, EXIT_BAD_CONNECTION, NO_USER, add_test_user, auth_server, enable_auth,
};

auth_tests!(
    key_grants_read_write_and_readwrite,
    prefix_grants,
    range_grants_and_their_union,
    from_key_grants,
    prev_kv_needs_read_permission,
    missing_or_wrong_credentials_are_refused,
    root_role_allows_everything,
);

/// etcd's e2e `authCredWriteKeyTest` and `authRoleUpdateTest`, plus read-only and
/// write-only keys.
fn key_grants_read_write_and_readwrite(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    root.ok(&["put", "r", "rv"]);
    root.ok(&["put", "w", "wv"]);
    root.ok(&["role", "grant-permission", "test-role", "read", "r"]);
    root.ok(&["role", "grant-permission", "test-role", "write", "w"]);

    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(user.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(user.ok(&["get", "r"]), "r\nrv\n");
    assert_eq!(user.err(&["put", "r", "x"]), DENIED);
    assert_eq!(user.err(&["del", "r"]), DENIED);
    assert_eq!(user.ok(&["put", "w", "x"]), "OK\n");
    assert_eq!(user.err(&["get", "w"]), DENIED);
    assert_eq!(user.ok(&["del", "w"]), "1\n");
    assert_eq!(user.err(&["put", "hoo", "x"]), DENIED);
    assert_eq!(user.err(&["get", "hoo"]), DENIED);
    // a grant on the key foo does not cover the range [foo, fop)
    assert_eq!(user.err(&["get", "foo", "--prefix"]), DENIED);
    assert_eq!(
        root.ok(&["get", "r"]),
        "r\nrv\n",
        "the refused writes changed nothing"
    );
    assert_eq!(root.ok(&["get", "w"]), "");

    // granted while the user works, then revoked again
    assert_eq!(
        root.ok(&["role", "grant-permission", "test-role", "readwrite", "hoo"]),
        "Role test-role updated\n"
    );
    assert_eq!(user.ok(&["put", "hoo", "bar"]), "OK\n");
    assert_eq!(user.ok(&["get", "hoo"]), "hoo\nbar\n");
    assert_eq!(
        root.ok(&["role", "revoke-permission", "test-role", "hoo"]),
        "Permission of key hoo is revoked from role test-role\n"
    );
    assert_eq!(user.err(&["put", "hoo", "bar"]), DENIED);
    assert_eq!(user.ok(&["get", "foo"]), "foo\nbar\n", "other grants stay");
}

/// etcd's e2e `authTestPrefixPerm`, and the empty prefix: the whole key space.
fn prefix_grants(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    assert_eq!(
        root.ok(&[
            "role",
            "grant-permission",
            "test-role",
            "--prefix",
            "readwrite",
            "/prefix/"
        ]),
        "Role test-role updated\n"
    );
    for i in 0..10 {
        assert_eq!(user.ok(&["put", &format!("/prefix/{i}"), "val"]), "OK\n");
    }
    assert_eq!(
        user.err(&["put", "/prefix0", "baz"]),
        DENIED,
        "the prefix's range end"
    );
    assert_eq!(user.ok(&["get", "/prefix/3"]), "/prefix/3\nval\n");
    assert_eq!(
        user.ok(&["get", "/prefix/", "--prefix", "--limit", "1"]),
        "/prefix/0\nval\n"
    );
    assert_eq!(user.err(&["get", "/prefix", "--prefix"]), DENIED);

    assert_eq!(
        root.ok(&[
            "role",
            "grant-permission",
            "test-role",
            "--prefix",
            "readwrite",
            ""
        ]),
        "Role test-role updated\n"
    );
    for i in 0..3 {
        assert_eq!(user.ok(&["put", &format!("/prefix2/{i}"), "val"]), "OK\n");
    }
    assert_eq!(user.ok(&["put", "/prefix0", "baz"]), "OK\n");
    assert_eq!(
        user.ok(&["get", "", "--prefix", "--limit", "1"]),
        "/prefix/0\nval\n"
    );
    // etcdctl sends the empty prefix as ["\0", "\0"): from the smallest key, open ended
    assert!(
        root.ok(&["role", "get", "test-role"])
            .contains("\t[\0, <open ended>\n"),
        "{:?}",
        root.ok(&["role", "get", "test-role"])
    );
}

/// The etcd guide's `readwrite key1 key5`; grants add up: [a, c) and [c, e) cover [a, e).
fn range_grants_and_their_union(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    root.ok(&[
        "role",
        "grant-permission",
        "test-role",
        "readwrite",
        "key1",
        "key5",
    ]);
    for k in ["key1", "key2", "key4"] {
        assert_eq!(user.ok(&["put", k, "v"]), "OK\n");
    }
    assert_eq!(user.err(&["put", "key5", "v"]), DENIED);
    assert_eq!(user.err(&["put", "key0", "v"]), DENIED);
    assert_eq!(
        user.ok(&["get", "key1", "key5", "--keys-only"]),
        "key1\n\nkey2\n\nkey4\n\n"
    );
    assert_eq!(user.err(&["get", "key1", "key6"]), DENIED);
    assert_eq!(user.err(&["get", "key0", "key3"]), DENIED);
    assert_eq!(user.ok(&["del", "key2", "key5"]), "2\n");

    root.ok(&["put", "b", "1"]);
    root.ok(&["put", "d", "2"]);
    root.ok(&["role", "grant-permission", "test-role", "read", "a", "c"]);
    root.ok(&["role", "grant-permission", "test-role", "read", "c", "e"]);
    assert_eq!(user.ok(&["get", "a", "e"]), "b\n1\nd\n2\n");
    assert_eq!(user.ok(&["get", "b", "d"]), "b\n1\n");
    assert_eq!(user.err(&["get", "a", "f"]), DENIED);
    assert_eq!(user.err(&["del", "a", "e"]), DENIED, "read only");
}

/// etcd's e2e `authTestFromKeyPerm` (with `~`, above `z`, for its `\xff` keys).
fn from_key_grants(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    assert_eq!(
        root.ok(&[
            "role",
            "grant-permission",
            "test-role",
            "--from-key",
            "readwrite",
            "z"
        ]),
        "Role test-role updated\n"
    );
    for i in 0..10 {
        assert_eq!(user.ok(&["put", &format!("z{i}"), "val"]), "OK\n");
    }
    for k in ["z", "~", "~~~~~~~~~~"] {
        assert_eq!(user.ok(&["put", k, "val"]), "OK\n", "{k}");
    }
    assert_eq!(user.err(&["put", "x", "baz"]), DENIED);
    assert_eq!(
        user.ok(&["get", "z", "--from-key", "--limit", "1"]),
        "z\nval\n"
    );
    assert_eq!(user.err(&["get", "y", "--from-key"]), DENIED);

    assert_eq!(
        root.ok(&["role", "revoke-permission", "test-role", "z", "--from-key"]),
        "Permission of range [z, <open ended> is revoked from role test-role\n"
    );
    for i in 0..3 {
        assert_eq!(user.err(&["put", &format!("z{i}"), "val"]), DENIED);
    }

    // the empty key with --from-key: the whole key space
    assert_eq!(
        root.ok(&[
            "role",
            "grant-permission",
            "test-role",
            "--from-key",
            "readwrite",
            ""
        ]),
        "Role test-role updated\n"
    );
    assert_eq!(user.ok(&["put", "z0", "val"]), "OK\n");
    assert_eq!(user.ok(&["put", "x", "val"]), "OK\n");
    assert_eq!(
        user.ok(&["get", "", "--from-key", "--limit", "1"]),
        "x\nval\n"
    );
    assert_eq!(
        root.ok(&["role", "revoke-permission", "test-role", "", "--from-key"]),
        "Permission of range [, <open ended> is revoked from role test-role\n"
    );
    assert_eq!(user.err(&["put", "z0", "val"]), DENIED);
    assert_eq!(user.ok(&["put", "foo", "still"]), "OK\n");
}

/// Put and delete with `--prev-kv` return the old value, so they need READ besides WRITE.
fn prev_kv_needs_read_permission(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    root.ok(&[
        "role",
        "grant-permission",
        "test-role",
        "--prefix",
        "write",
        "/w/",
    ]);
    assert_eq!(user.ok(&["put", "/w/1", "x"]), "OK\n");
    assert_eq!(user.err(&["put", "/w/1", "y", "--prev-kv"]), DENIED);
    assert_eq!(user.err(&["del", "/w/1", "--prev-kv"]), DENIED);
    assert_eq!(user.err(&["del", "/w/", "--prefix", "--prev-kv"]), DENIED);
    assert_eq!(root.ok(&["get", "/w/1"]), "/w/1\nx\n", "nothing changed");

    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(
        user.ok(&["put", "foo", "baz", "--prev-kv"]),
        "OK\nfoo\nbar\n"
    );
    assert_eq!(user.ok(&["del", "foo", "--prev-kv"]), "1\nfoo\nbaz\n");
}

/// etcd's e2e `authCredWriteKeyTest`: no user, an unknown user, a wrong password, a
/// no-password user, an empty password (etcdctl then does not authenticate at all); the
/// key keeps its value.
fn missing_or_wrong_credentials_are_refused(kind: Kind) {
    let s = TestServer::start(kind);
    let anon = Ctl::anonymous(&s);
    assert_eq!(anon.ok(&["put", "foo", "a"]), "OK\n");
    let root = enable_auth(&s);
    let user = add_test_user(&root);
    root.ok(&["user", "add", "nopass", "--no-password"]);
    root.ok(&["user", "grant-role", "nopass", "test-role"]);

    assert_eq!(anon.err(&["put", "foo", "x"]), NO_USER);
    assert_eq!(anon.err(&["get", "foo"]), NO_USER);
    assert_eq!(anon.err(&["del", "foo"]), NO_USER);
    for bad in ["a:b", "test-user:badpass", "root:pass"] {
        let f = anon.with_user(bad).fail(&["put", "foo", "x"]);
        assert_eq!(
            (f.code, f.last_line()),
            (EXIT_BAD_CONNECTION, AUTH_FAILED),
            "{bad}"
        );
    }
    // a no-password user cannot authenticate; etcd answers with the raw auth error
    let f = anon.with_user("nopass:any").fail(&["put", "foo", "x"]);
    assert_eq!(
        (f.code, f.last_line()),
        (
            EXIT_BAD_CONNECTION,
            "Error: rpc error: code = Unknown desc = auth: authentication failed, password was given for no password user"
        )
    );
    assert_eq!(
        user.with_user("test-user:").err(&["put", "foo", "x"]),
        NO_USER
    );
    assert_eq!(user.ok(&["get", "foo"]), "foo\na\n");
}

/// A user holding the role root is as powerful as root itself.
fn root_role_allows_everything(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    root.ok(&["user", "add", "admin", "--new-user-password=adm"]);
    assert_eq!(
        root.ok(&["user", "grant-role", "admin", "root"]),
        "Role root is granted to user admin\n"
    );
    let admin = Ctl::anonymous(&s).with_user("admin:adm");
    assert_eq!(admin.ok(&["put", "anything", "v"]), "OK\n");
    assert_eq!(
        admin.ok(&["get", "", "--from-key", "--keys-only"]),
        "anything\n\n"
    );
    assert_eq!(admin.ok(&["user", "list"]), "admin\nroot\ntest-user\n");
    assert_eq!(admin.ok(&["role", "add", "r"]), "Role r created\n");
    assert_eq!(
        admin.ok(&["defrag"]),
        format!("Finished defragmenting etcd member[{}]\n", s.endpoint())
    );
}
