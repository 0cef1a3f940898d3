//! `etcdctl user add | get | list | delete | passwd | grant-role | revoke-role`: outputs,
//! errors (each leaving the users as they were) and who may run them.

use cairn_tests::{Kind, TestServer};

use crate::{AUTH_FAILED, Ctl, DENIED, EXIT_BAD_CONNECTION, NO_USER, auth_server, enable_auth};

auth_tests!(
    user_commands_print_etcd_outputs,
    user_errors_leave_users_unchanged,
    users_read_only_themselves,
    only_root_manages_users_and_roles,
    password_change_takes_effect,
);

/// The user half of etcd's authentication guide, auth off.
fn user_commands_print_etcd_outputs(kind: Kind) {
    let s = TestServer::start(kind);
    let ctl = Ctl::anonymous(&s);
    assert_eq!(ctl.ok(&["user", "list"]), "");
    assert_eq!(
        ctl.ok(&["user", "add", "myusername", "--new-user-password=pw1"]),
        "User myusername created\n"
    );
    // --interactive=false reads the password from stdin (up to the first blank)
    assert_eq!(
        ctl.ok_stdin(&["user", "add", "other", "--interactive=false"], "pw2\n"),
        "User other created\n"
    );
    assert_eq!(
        ctl.ok(&["user", "add", "nopass", "--no-password"]),
        "User nopass created\n"
    );
    assert_eq!(ctl.ok(&["user", "list"]), "myusername\nnopass\nother\n");

    assert_eq!(ctl.ok(&["role", "add", "foo"]), "Role foo created\n");
    assert_eq!(ctl.ok(&["role", "add", "bar"]), "Role bar created\n");
    assert_eq!(
        ctl.ok(&["role", "grant-permission", "foo", "read", "/foo"]),
        "Role foo updated\n"
    );
    assert_eq!(
        ctl.ok(&["user", "grant-role", "myusername", "foo"]),
        "Role foo is granted to user myusername\n"
    );
    assert_eq!(
        ctl.ok(&["user", "grant-role", "myusername", "bar"]),
        "Role bar is granted to user myusername\n"
    );
    assert_eq!(
        ctl.ok(&["user", "get", "myusername"]),
        "User: myusername\nRoles: bar foo\n",
        "roles sorted"
    );
    assert_eq!(ctl.ok(&["user", "get", "other"]), "User: other\nRoles:\n");
    assert_eq!(
        ctl.ok(&["user", "get", "myusername", "--detail"]),
        "User: myusername\n\nRole bar\nKV Read:\nKV Write:\n\nRole foo\nKV Read:\n\t/foo\nKV Write:\n"
    );
    assert_eq!(
        ctl.ok(&["user", "get", "other", "--detail"]),
        "User: other\n"
    );

    assert_eq!(
        ctl.ok(&["user", "revoke-role", "myusername", "bar"]),
        "Role bar is revoked from user myusername\n"
    );
    assert_eq!(
        ctl.ok(&["user", "get", "myusername"]),
        "User: myusername\nRoles: foo\n"
    );
    assert_eq!(
        ctl.ok_stdin(
            &["user", "passwd", "myusername", "--interactive=false"],
            "pw3\n"
        ),
        "Password updated\n"
    );
    assert_eq!(ctl.ok(&["user", "delete", "other"]), "User other deleted\n");
    assert_eq!(ctl.ok(&["user", "list"]), "myusername\nnopass\n");
}

/// Every refused user command names the problem and changes nothing: afterwards alice
/// still has her one role and her first password.
fn user_errors_leave_users_unchanged(kind: Kind) {
    let s = TestServer::start(kind);
    let ctl = Ctl::anonymous(&s);
    assert_eq!(
        ctl.ok(&["user", "add", "alice", "--new-user-password=a"]),
        "User alice created\n"
    );
    assert_eq!(ctl.ok(&["role", "add", "r1"]), "Role r1 created\n");
    ctl.ok(&["role", "grant-permission", "r1", "readwrite", "foo"]);
    ctl.ok(&["user", "grant-role", "alice", "r1"]);

    const NOT_FOUND: &str = "Error: etcdserver: user name not found";
    let refusals: &[(&[&str], &str)] = &[
        (
            &["user", "add", "", "--new-user-password=x"],
            "Error: etcdserver: user name is empty",
        ),
        (
            &["user", "add", "alice", "--new-user-password=b"],
            "Error: etcdserver: user name already exists",
        ),
        (&["user", "get", "nobody"], NOT_FOUND),
        (&["user", "delete", "nobody"], NOT_FOUND),
        (&["user", "grant-role", "nobody", "r1"], NOT_FOUND),
        (&["user", "revoke-role", "nobody", "r1"], NOT_FOUND),
        (
            &["user", "grant-role", "alice", "nope"],
            "Error: etcdserver: role name not found",
        ),
        (
            &["user", "revoke-role", "alice", "nope"],
            "Error: etcdserver: role is not granted to the user",
        ),
    ];
    for (args, want) in refusals {
        assert_eq!(ctl.err(args), *want, "etcdctl {args:?}");
    }
    let f = ctl.fail_stdin(&["user", "passwd", "nobody", "--interactive=false"], "x\n");
    assert_eq!((f.code, f.last_line()), (1, NOT_FOUND));
    // granting a role twice is no error and no second copy
    assert_eq!(
        ctl.ok(&["user", "grant-role", "alice", "r1"]),
        "Role r1 is granted to user alice\n"
    );
    assert_eq!(ctl.ok(&["user", "list"]), "alice\n");
    assert_eq!(
        ctl.ok(&["user", "get", "alice"]),
        "User: alice\nRoles: r1\n"
    );

    enable_auth(&s);
    assert_eq!(ctl.with_user("alice:a").ok(&["put", "foo", "v"]), "OK\n");
    let f = ctl.with_user("alice:b").fail(&["get", "foo"]);
    assert_eq!((f.code, f.last_line()), (EXIT_BAD_CONNECTION, AUTH_FAILED));
}

/// etcd's e2e `authTestUserGet`: an ordinary user may get itself (with its roles' details),
/// not other users, and may not list users.
fn users_read_only_themselves(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    let expected = "User: test-user\nRoles: test-role\n";
    assert_eq!(root.ok(&["user", "get", "test-user"]), expected);
    assert_eq!(user.ok(&["user", "get", "test-user"]), expected);
    assert_eq!(
        user.ok(&["user", "get", "test-user", "--detail"]),
        "User: test-user\n\nRole test-role\nKV Read:\n\tfoo\nKV Write:\n\tfoo\n"
    );
    assert_eq!(user.err(&["user", "get", "root"]), DENIED);
    assert_eq!(user.err(&["user", "list"]), DENIED);
    assert_eq!(root.ok(&["user", "list"]), "root\ntest-user\n");
}

/// Every user, role and auth change needs the root role: an ordinary user is refused
/// (permission denied), a request without a user too (user name is empty); nothing changes.
fn only_root_manages_users_and_roles(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    let anon = Ctl::anonymous(&s);
    let changes: &[&[&str]] = &[
        &["user", "add", "x", "--new-user-password=y"],
        &["user", "delete", "root"],
        &["user", "grant-role", "test-user", "root"],
        &["user", "revoke-role", "test-user", "test-role"],
        &["role", "add", "r"],
        &["role", "delete", "test-role"],
        &["role", "grant-permission", "test-role", "readwrite", "hoo"],
        &["role", "revoke-permission", "test-role", "foo"],
        &["role", "list"],
        &["auth", "disable"],
    ];
    for args in changes {
        assert_eq!(user.err(args), DENIED, "etcdctl --user test-user {args:?}");
        assert_eq!(anon.err(args), NO_USER, "etcdctl {args:?}");
    }
    let f = user.fail_stdin(
        &["user", "passwd", "test-user", "--interactive=false"],
        "new\n",
    );
    assert_eq!(
        (f.code, f.last_line()),
        (1, DENIED),
        "not even its own password"
    );

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
    assert_eq!(user.err(&["put", "hoo", "x"]), DENIED);
    assert_eq!(
        user.ok(&["put", "foo", "x"]),
        "OK\n",
        "the old password still works"
    );
}

fn password_change_takes_effect(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    assert_eq!(
        root.ok_stdin(
            &["user", "passwd", "test-user", "--interactive=false"],
            "newpass\n"
        ),
        "Password updated\n"
    );
    let f = user.fail(&["get", "foo"]);
    assert_eq!((f.code, f.last_line()), (EXIT_BAD_CONNECTION, AUTH_FAILED));
    assert_eq!(
        user.with_user("test-user:newpass").ok(&["put", "foo", "v"]),
        "OK\n"
    );
    assert_eq!(
        root.ok(&["user", "get", "test-user"]),
        "User: test-user\nRoles: test-role\n"
    );
}
