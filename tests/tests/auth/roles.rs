//! `etcdctl role add | get | list | delete | grant-permission | revoke-permission`: outputs
//! (role get's permission listing), errors, who may read a role, and the root role.

use cairn_tests::base64;
use cairn_tests::{Kind, TestServer};

use crate::{Ctl, DENIED, auth_server};

auth_tests!(
    role_commands_print_etcd_outputs,
    role_errors_leave_roles_unchanged,
    deleting_a_role_revokes_it_from_users,
    users_read_only_their_roles,
    root_role_needs_no_role_record,
);

/// `role get -w json`'s permissions: (type, key, range end), type 0 READ, 1 WRITE,
/// 2 READWRITE (Go's JSON omits zero values).
fn perms(ctl: &Ctl, role: &str) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let out = ctl.ok(&["-w", "json", "role", "get", role]);
    let json = cairn_tests::etcdctl::parse_json(&out, "role get -w json");
    let bytes =
        |p: &serde_json::Value, f: &str| p[f].as_str().map(base64::decode).unwrap_or_default();
    json["perm"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["permType"].as_i64().unwrap_or(0),
                        bytes(p, "key"),
                        bytes(p, "range_end"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The role half of etcd's authentication guide, auth off: every grant form, the listing
/// sorted by key (READ and READWRITE under KV Read, WRITE and READWRITE under KV Write), a
/// second grant of the same key and range replacing the type, and every revoke form.
fn role_commands_print_etcd_outputs(kind: Kind) {
    let s = TestServer::start(kind);
    let ctl = Ctl::anonymous(&s);
    assert_eq!(ctl.ok(&["role", "list"]), "");
    assert_eq!(
        ctl.ok(&["role", "add", "myrolename"]),
        "Role myrolename created\n"
    );
    let grants: &[&[&str]] = &[
        &["read", "/foo"],
        &["--prefix=true", "read", "/foo/"],
        &["write", "/foo/bar"],
        &["readwrite", "key1", "key5"],
        &["--prefix=true", "readwrite", "/pub/"],
        &["--from-key", "read", "z"],
    ];
    for g in grants {
        let mut args = vec!["role", "grant-permission", "myrolename"];
        args.extend_from_slice(g);
        assert_eq!(ctl.ok(&args), "Role myrolename updated\n", "{g:?}");
    }
    assert_eq!(
        ctl.ok(&["role", "get", "myrolename"]),
        "Role myrolename\n\
         KV Read:\n\
         \t/foo\n\
         \t[/foo/, /foo0) (prefix /foo/)\n\
         \t[/pub/, /pub0) (prefix /pub/)\n\
         \t[key1, key5)\n\
         \t[z, <open ended>\n\
         KV Write:\n\
         \t/foo/bar\n\
         \t[/pub/, /pub0) (prefix /pub/)\n\
         \t[key1, key5)\n"
    );
    let b = |s: &str| s.as_bytes().to_vec();
    assert_eq!(
        perms(&ctl, "myrolename"),
        vec![
            (0, b("/foo"), b("")),
            (0, b("/foo/"), b("/foo0")),
            (1, b("/foo/bar"), b("")),
            (2, b("/pub/"), b("/pub0")),
            (2, b("key1"), b("key5")),
            (0, b("z"), vec![0]),
        ]
    );

    // the same key and range again: the type is replaced, no second entry
    assert_eq!(
        ctl.ok(&[
            "role",
            "grant-permission",
            "myrolename",
            "readwrite",
            "/foo"
        ]),
        "Role myrolename updated\n"
    );
    assert_eq!(perms(&ctl, "myrolename")[0], (2, b("/foo"), b("")));
    assert_eq!(perms(&ctl, "myrolename").len(), 6);

    let revokes: &[(&[&str], &str)] = &[
        (
            &["/foo/bar"],
            "Permission of key /foo/bar is revoked from role myrolename\n",
        ),
        (
            &["key1", "key5"],
            "Permission of range [key1, key5) is revoked from role myrolename\n",
        ),
        (
            &["--prefix", "/pub/"],
            "Permission of range [/pub/, /pub0) is revoked from role myrolename\n",
        ),
        (
            &["z", "--from-key"],
            "Permission of range [z, <open ended> is revoked from role myrolename\n",
        ),
    ];
    for (r, want) in revokes {
        let mut args = vec!["role", "revoke-permission", "myrolename"];
        args.extend_from_slice(r);
        assert_eq!(ctl.ok(&args), *want, "{r:?}");
    }
    assert_eq!(
        ctl.ok(&["role", "get", "myrolename"]),
        "Role myrolename\nKV Read:\n\t/foo\n\t[/foo/, /foo0) (prefix /foo/)\nKV Write:\n\t/foo\n"
    );

    assert_eq!(ctl.ok(&["role", "add", "other"]), "Role other created\n");
    assert_eq!(ctl.ok(&["role", "list"]), "myrolename\nother\n");
    assert_eq!(
        ctl.ok(&["role", "delete", "myrolename"]),
        "Role myrolename deleted\n"
    );
    assert_eq!(ctl.ok(&["role", "list"]), "other\n");
}

/// Every refused role command names the problem and leaves the role as it was.
fn role_errors_leave_roles_unchanged(kind: Kind) {
    let s = TestServer::start(kind);
    let ctl = Ctl::anonymous(&s);
    assert_eq!(ctl.ok(&["role", "add", "r"]), "Role r created\n");
    assert_eq!(
        ctl.ok(&["role", "grant-permission", "r", "read", "k"]),
        "Role r updated\n"
    );

    const NOT_FOUND: &str = "Error: etcdserver: role name not found";
    const NOT_GRANTED: &str = "Error: etcdserver: permission is not granted to the role";
    let refusals: &[(&[&str], &str)] = &[
        (
            &["role", "add", ""],
            "Error: etcdserver: role name is empty",
        ),
        (
            &["role", "add", "r"],
            "Error: etcdserver: role name already exists",
        ),
        (&["role", "get", "nope"], NOT_FOUND),
        (&["role", "delete", "nope"], NOT_FOUND),
        (
            &["role", "grant-permission", "nope", "read", "k"],
            NOT_FOUND,
        ),
        (&["role", "revoke-permission", "nope", "k"], NOT_FOUND),
        (&["role", "revoke-permission", "r", "other"], NOT_GRANTED),
        // a revoke names the key and the range end exactly as granted
        (&["role", "revoke-permission", "r", "k", "l"], NOT_GRANTED),
        (
            &["role", "revoke-permission", "r", "k", "--prefix"],
            NOT_GRANTED,
        ),
    ];
    for (args, want) in refusals {
        assert_eq!(ctl.err(args), *want, "etcdctl {args:?}");
    }
    // etcdctl itself refuses an unknown permission type (ExitBadArgs)
    let f = ctl.fail(&["role", "grant-permission", "r", "bogus", "k"]);
    assert_eq!(
        (f.code, f.last_line()),
        (128, "Error: invalid permission type: bogus")
    );

    assert_eq!(
        ctl.ok(&["role", "get", "r"]),
        "Role r\nKV Read:\n\tk\nKV Write:\n"
    );
    assert_eq!(ctl.ok(&["role", "list"]), "r\n");
}

/// etcd's e2e `authTestRevokeWithDelete`.
fn deleting_a_role_revokes_it_from_users(kind: Kind) {
    let (_s, root, _user) = auth_server(kind);
    assert_eq!(
        root.ok(&["role", "add", "test-role2"]),
        "Role test-role2 created\n"
    );
    assert_eq!(
        root.ok(&["user", "grant-role", "test-user", "test-role2"]),
        "Role test-role2 is granted to user test-user\n"
    );
    assert_eq!(
        root.ok(&["user", "get", "test-user"]),
        "User: test-user\nRoles: test-role test-role2\n"
    );
    assert_eq!(
        root.ok(&["role", "delete", "test-role2"]),
        "Role test-role2 deleted\n"
    );
    assert_eq!(
        root.ok(&["user", "get", "test-user"]),
        "User: test-user\nRoles: test-role\n"
    );
    assert_eq!(root.ok(&["role", "list"]), "test-role\n");
}

/// etcd's e2e `authTestRoleGet` and `authTestRoleList`: an ordinary user may get the roles
/// it has, not others, and may not list roles.
fn users_read_only_their_roles(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    let expected = "Role test-role\nKV Read:\n\tfoo\nKV Write:\n\tfoo\n";
    assert_eq!(root.ok(&["role", "get", "test-role"]), expected);
    assert_eq!(user.ok(&["role", "get", "test-role"]), expected);
    assert_eq!(user.err(&["role", "get", "root"]), DENIED);
    assert_eq!(root.ok(&["role", "add", "other"]), "Role other created\n");
    assert_eq!(user.err(&["role", "get", "other"]), DENIED);
    assert_eq!(root.ok(&["role", "list"]), "other\ntest-role\n");
    assert_eq!(user.err(&["role", "list"]), DENIED);
}

/// Granting `root` needs no role of that name: etcd keeps "root" in the user's roles only,
/// so role list stays empty, role get root fails, and so does `user get root --detail`
/// after printing the user. A real role root can still be added.
fn root_role_needs_no_role_record(kind: Kind) {
    let s = TestServer::start(kind);
    let anon = Ctl::anonymous(&s);
    anon.ok(&["user", "add", "root", "--new-user-password=root"]);
    assert_eq!(
        anon.ok(&["user", "grant-role", "root", "root"]),
        "Role root is granted to user root\n"
    );
    assert_eq!(anon.ok(&["role", "list"]), "");
    assert_eq!(
        anon.err(&["role", "get", "root"]),
        "Error: etcdserver: role name not found"
    );
    assert_eq!(anon.ok(&["auth", "enable"]), "Authentication Enabled\n");

    let root = Ctl::root(&s);
    assert_eq!(root.ok(&["role", "list"]), "");
    assert_eq!(
        root.ok(&["user", "get", "root"]),
        "User: root\nRoles: root\n"
    );
    let f = root.fail(&["user", "get", "root", "--detail"]);
    assert_eq!(
        (f.code, f.stdout.as_str(), f.last_line()),
        (
            1,
            "User: root\n\n",
            "Error: etcdserver: role name not found"
        )
    );
    assert_eq!(root.ok(&["role", "add", "root"]), "Role root created\n");
    assert_eq!(root.ok(&["role", "list"]), "root\n");
    assert_eq!(
        root.ok(&["user", "get", "root", "--detail"]),
        "User: root\n\nRole root\nKV Read:\nKV Write:\n"
    );
}
