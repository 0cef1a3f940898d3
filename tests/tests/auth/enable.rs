//! `auth enable | disable`: the root user and role enable needs, what disable gives back,
//! the management refused while auth is on, and `Auth/AuthStatus`.

use cairn_proto::etcdserverpb::{AuthEnableRequest, AuthStatusRequest};
use cairn_tests::grpc::{block_on, with_token};
use cairn_tests::{Clients, Kind, TestServer};

use crate::{Ctl, DENIED, NO_USER, add_test_user, assert_status, enable_auth};

auth_tests!(
    enable_needs_root_user_with_root_role,
    enable_adds_a_missing_root_role,
    disable_serves_requests_without_a_user_again,
    root_keeps_root_while_auth_is_on,
    auth_status_reports_enabled_and_revision,
);

/// `AuthEnable` straight over gRPC (etcdctl mends a missing root role by itself).
fn grpc_auth_enable(s: &TestServer) -> Result<(), tonic::Status> {
    let ep = s.endpoint();
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        c.auth.auth_enable(AuthEnableRequest {}).await.map(|_| ())
    })
}

fn enable_needs_root_user_with_root_role(kind: Kind) {
    let s = TestServer::start(kind);
    let anon = Ctl::anonymous(&s);
    assert_eq!(anon.ok(&["put", "foo", "a"]), "OK\n");

    assert_eq!(
        anon.err(&["auth", "enable"]),
        "Error: etcdserver: root user does not exist"
    );
    assert_eq!(anon.ok(&["get", "foo"]), "foo\na\n", "auth stays off");

    assert_eq!(
        anon.ok(&["user", "add", "root", "--new-user-password=root"]),
        "User root created\n"
    );
    assert_status(
        grpc_auth_enable(&s),
        tonic::Code::FailedPrecondition,
        "etcdserver: root user does not have root role",
    );
    assert_eq!(anon.ok(&["get", "foo"]), "foo\na\n", "auth stays off");

    assert_eq!(
        anon.ok(&["user", "grant-role", "root", "root"]),
        "Role root is granted to user root\n"
    );
    assert_eq!(anon.ok(&["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(anon.err(&["get", "foo"]), NO_USER);
    let root = Ctl::root(&s);
    assert_eq!(root.ok(&["get", "foo"]), "foo\na\n");

    // enabling again is no error
    assert_eq!(root.ok(&["auth", "enable"]), "Authentication Enabled\n");
    assert_status(
        grpc_auth_enable(&s),
        tonic::Code::InvalidArgument,
        "etcdserver: user name is empty",
    );
    assert_eq!(anon.err(&["auth", "enable"]), NO_USER);
}

/// etcdctl answers "root user does not have root role" by adding role root, granting it to
/// root and enabling again; so after a bare `user add root`, `auth enable` just works.
fn enable_adds_a_missing_root_role(kind: Kind) {
    let s = TestServer::start(kind);
    let anon = Ctl::anonymous(&s);
    assert_eq!(
        anon.ok(&["user", "add", "root", "--new-user-password=root"]),
        "User root created\n"
    );
    assert_eq!(anon.ok(&["auth", "enable"]), "Authentication Enabled\n");
    let root = Ctl::root(&s);
    assert_eq!(root.ok(&["role", "list"]), "root\n");
    assert_eq!(
        root.ok(&["role", "get", "root"]),
        "Role root\nKV Read:\nKV Write:\n"
    );
    assert_eq!(
        root.ok(&["user", "get", "root"]),
        "User: root\nRoles: root\n"
    );
    assert_eq!(anon.err(&["get", "foo"]), NO_USER);
}

/// etcd's e2e `authDisableTest`.
fn disable_serves_requests_without_a_user_again(kind: Kind) {
    let s = TestServer::start(kind);
    let anon = Ctl::anonymous(&s);
    assert_eq!(anon.ok(&["put", "hoo", "a"]), "OK\n");
    let root = enable_auth(&s);
    let user = add_test_user(&root);

    assert_eq!(user.err(&["put", "hoo", "bar"]), DENIED);
    assert_eq!(user.err(&["auth", "disable"]), DENIED);
    assert_eq!(anon.err(&["auth", "disable"]), NO_USER);
    assert_eq!(anon.err(&["get", "hoo"]), NO_USER);

    assert_eq!(root.ok(&["auth", "disable"]), "Authentication Disabled\n");
    // etcdctl ignores Authenticate's "authentication is not enabled" and sends no token
    assert_eq!(user.ok(&["put", "hoo", "bar"]), "OK\n");
    assert_eq!(anon.ok(&["put", "hoo", "baz"]), "OK\n");
    assert_eq!(anon.ok(&["get", "hoo"]), "hoo\nbaz\n");
    // users and roles stay, and anyone may manage them now
    assert_eq!(anon.ok(&["user", "list"]), "root\ntest-user\n");
    assert_eq!(anon.ok(&["role", "list"]), "test-role\n");
    assert_eq!(
        anon.ok(&["auth", "disable"]),
        "Authentication Disabled\n",
        "a no-op"
    );

    // enabling again needs no user (auth is off) and brings the checks back
    assert_eq!(anon.ok(&["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(anon.err(&["get", "hoo"]), NO_USER);
    assert_eq!(user.err(&["get", "hoo"]), DENIED);
    assert_eq!(user.ok(&["get", "foo"]), "");
}

/// etcd's e2e `authTestInvalidMgmt`: root can neither be deleted nor lose role root while
/// auth is on; each refusal leaves root as it was. With auth off both are allowed.
fn root_keeps_root_while_auth_is_on(kind: Kind) {
    let s = TestServer::start(kind);
    let root = enable_auth(&s);
    const INVALID: &str = "Error: etcdserver: invalid auth management";
    assert_eq!(root.err(&["role", "delete", "root"]), INVALID);
    assert_eq!(root.err(&["user", "revoke-role", "root", "root"]), INVALID);
    assert_eq!(root.err(&["user", "delete", "root"]), INVALID);
    assert_eq!(
        root.ok(&["user", "get", "root"]),
        "User: root\nRoles: root\n"
    );
    assert_eq!(root.ok(&["user", "list"]), "root\n");

    assert_eq!(root.ok(&["auth", "disable"]), "Authentication Disabled\n");
    let anon = Ctl::anonymous(&s);
    assert_eq!(
        anon.ok(&["user", "revoke-role", "root", "root"]),
        "Role root is revoked from user root\n"
    );
    assert_eq!(anon.ok(&["user", "delete", "root"]), "User root deleted\n");
    assert_eq!(
        anon.err(&["auth", "enable"]),
        "Error: etcdserver: root user does not exist"
    );
}

/// `Auth/AuthStatus` as `user` (`None`: without a token): (enabled, auth revision).
fn auth_status(s: &TestServer, user: Option<(&str, &str)>) -> Result<(bool, u64), tonic::Status> {
    let ep = s.endpoint();
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let req = match user {
            Some((name, password)) => {
                let token = c.authenticate(name, password).await?;
                with_token(AuthStatusRequest {}, &token)
            }
            None => tonic::Request::new(AuthStatusRequest {}),
        };
        let r = c.auth.auth_status(req).await?.into_inner();
        Ok((r.enabled, r.auth_revision))
    })
}

/// The auth revision starts at 1 and counts every user or role change; enable does not
/// count, disable does; refused or no-op changes do not (etcd's `commitRevision`, checked
/// against etcd through its JWT claims in `sessions::old_jwt_is_refused_after_an_auth_change`).
/// etcd 3.4.23 has no AuthStatus (3.5 added it); cairn answers it as 3.5 does, root only.
fn auth_status_reports_enabled_and_revision(kind: Kind) {
    let s = TestServer::start(kind);
    let first = auth_status(&s, None);
    if kind == Kind::Etcd {
        let err = first.expect_err("etcd 3.4.23 has no Auth/AuthStatus");
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        return;
    }
    assert_eq!(first.unwrap(), (false, 1));
    let root = enable_auth(&s); // user add, grant-role: 3
    assert_eq!(auth_status(&s, Some(("root", "root"))).unwrap(), (true, 3));
    add_test_user(&root); // user add, role add, grant-role, grant-permission: 7
    assert_eq!(
        root.err(&["user", "add", "test-user", "--new-user-password=x"]),
        "Error: etcdserver: user name already exists"
    );
    assert_eq!(
        root.ok(&["user", "grant-role", "test-user", "test-role"]),
        "Role test-role is granted to user test-user\n",
        "granted already: no change"
    );
    assert_eq!(auth_status(&s, Some(("root", "root"))).unwrap(), (true, 7));
    assert_status(
        auth_status(&s, Some(("test-user", "pass"))),
        tonic::Code::PermissionDenied,
        "etcdserver: permission denied",
    );
    assert_status(
        auth_status(&s, None),
        tonic::Code::InvalidArgument,
        "etcdserver: user name is empty",
    );
    assert_eq!(root.ok(&["auth", "disable"]), "Authentication Disabled\n");
    assert_eq!(auth_status(&s, None).unwrap(), (false, 8));
}
