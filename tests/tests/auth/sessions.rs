//! Tokens over gRPC: what `Auth/Authenticate` answers, and a client that authenticated
//! before an auth change: its next request meets the change. With etcd's simple tokens a
//! revoked permission or role is refused at once (permission denied) while deleting the
//! user or changing its password drops its tokens (invalid auth token); a JWT names the
//! auth revision it was minted at and is refused after any change (revision of auth store
//! is old). etcdctl authenticates anew for each command, so it only ever sees the change.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_tests::grpc::{block_on, with_token};
use cairn_tests::{Clients, Kind, TestServer};

use crate::{
    AUTH_FAILED, Ctl, DENIED, EXIT_BAD_CONNECTION, add_test_user, assert_status, auth_server,
    auth_server_with, enable_auth,
};

auth_tests!(
    authenticate_answers,
    revoked_permission_refuses_the_next_request,
    revoked_role_refuses_the_next_request,
    deleted_user_is_refused,
    changed_password_drops_tokens,
    unknown_and_dropped_tokens_are_refused,
    old_jwt_is_refused_after_an_auth_change,
    jwt_expires_after_its_ttl,
);

const INVALID_TOKEN: &str = "etcdserver: invalid auth token";

/// A client that authenticated once and keeps sending that token.
struct Session {
    endpoint: String,
    token: String,
}

impl Session {
    fn open(s: &TestServer, name: &str, password: &str) -> Session {
        let endpoint = s.endpoint();
        let token = authenticate(s, name, password).expect("authenticate");
        Session { endpoint, token }
    }

    fn put(&self, key: &str, value: &str) -> Result<i64, tonic::Status> {
        let (ep, token) = (self.endpoint.clone(), self.token.clone());
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        block_on(async move {
            let mut c = Clients::connect(&ep).await.unwrap();
            let r = c.kv.put(with_token(req, &token)).await?.into_inner();
            Ok(r.header.expect("a header").revision)
        })
    }

    /// The values under `key`.
    fn get(&self, key: &str) -> Result<Vec<String>, tonic::Status> {
        let (ep, token) = (self.endpoint.clone(), self.token.clone());
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        block_on(async move {
            let mut c = Clients::connect(&ep).await.unwrap();
            let r = c.kv.range(with_token(req, &token)).await?.into_inner();
            Ok(r.kvs
                .into_iter()
                .map(|kv| String::from_utf8(kv.value).unwrap())
                .collect())
        })
    }
}

fn authenticate(s: &TestServer, name: &str, password: &str) -> Result<String, tonic::Status> {
    let (ep, name, password) = (s.endpoint(), name.to_string(), password.to_string());
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        c.authenticate(&name, &password).await
    })
}

fn assert_denied<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    assert_status(
        r,
        tonic::Code::PermissionDenied,
        "etcdserver: permission denied",
    );
}

fn assert_invalid_token<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    assert_status(r, tonic::Code::Unauthenticated, INVALID_TOKEN);
}

/// Authenticate's refusals and its simple token, `<16 letters>.<raft index>`.
fn authenticate_answers(kind: Kind) {
    let s = TestServer::start(kind);
    assert_status(
        authenticate(&s, "root", "root"),
        tonic::Code::FailedPrecondition,
        "etcdserver: authentication is not enabled",
    );
    let root = enable_auth(&s);
    add_test_user(&root);
    root.ok(&["user", "add", "nopass", "--no-password"]);

    let token = authenticate(&s, "test-user", "pass").unwrap();
    let (prefix, index) = token.split_once('.').unwrap_or_else(|| panic!("{token}"));
    assert!(
        prefix.len() == 16 && prefix.bytes().all(|b| b.is_ascii_alphabetic()),
        "{token}"
    );
    assert!(index.parse::<u64>().unwrap() > 0, "{token}");
    let other = authenticate(&s, "test-user", "pass").unwrap();
    assert_ne!(token, other, "each Authenticate mints a new token");

    const FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
    for (name, password) in [
        ("test-user", "bad"),
        ("nobody", "x"),
        ("", ""),
        ("root", ""),
    ] {
        assert_status(
            authenticate(&s, name, password),
            tonic::Code::InvalidArgument,
            FAILED,
        );
    }
    // a no-password user: etcd answers with its auth store's error, not a gRPC one
    assert_status(
        authenticate(&s, "nopass", "x"),
        tonic::Code::Unknown,
        "auth: authentication failed, password was given for no password user",
    );
}

fn revoked_permission_refuses_the_next_request(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    let session = Session::open(&s, "test-user", "pass");
    session.put("foo", "bar").unwrap();
    assert_eq!(session.get("foo").unwrap(), ["bar"]);

    assert_eq!(
        root.ok(&["role", "revoke-permission", "test-role", "foo"]),
        "Permission of key foo is revoked from role test-role\n"
    );
    assert_denied(session.put("foo", "baz"));
    assert_denied(session.get("foo"));

    root.ok(&["role", "grant-permission", "test-role", "read", "foo"]);
    assert_eq!(
        session.get("foo").unwrap(),
        ["bar"],
        "the same token, the new grant"
    );
    assert_denied(session.put("foo", "baz"));
    assert_eq!(root.ok(&["get", "foo"]), "foo\nbar\n");
}

/// etcd's e2e `authRoleRevokeDuringOpsTest`, plus a session kept across the revoke.
fn revoked_role_refuses_the_next_request(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(
        root.ok(&["role", "add", "test-role2"]),
        "Role test-role2 created\n"
    );
    root.ok(&["role", "grant-permission", "test-role2", "readwrite", "hoo"]);
    assert_eq!(
        root.ok(&["user", "grant-role", "test-user", "test-role2"]),
        "Role test-role2 is granted to user test-user\n"
    );
    assert_eq!(user.ok(&["put", "hoo", "bar"]), "OK\n");
    let session = Session::open(&s, "test-user", "pass");

    assert_eq!(
        root.ok(&["user", "revoke-role", "test-user", "test-role"]),
        "Role test-role is revoked from user test-user\n"
    );
    assert_eq!(user.err(&["put", "foo", "baz"]), DENIED);
    assert_denied(session.put("foo", "baz"));
    assert_eq!(user.ok(&["put", "hoo", "bar2"]), "OK\n");
    assert_eq!(user.ok(&["get", "hoo"]), "hoo\nbar2\n");
    assert_eq!(session.get("hoo").unwrap(), ["bar2"]);
}

/// etcd's e2e `authUserDeleteDuringOpsTest`: etcdctl can no longer authenticate, and a
/// token the user had is dropped with it.
fn deleted_user_is_refused(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    assert_eq!(user.ok(&["put", "foo", "bar"]), "OK\n");
    let session = Session::open(&s, "test-user", "pass");
    assert_eq!(
        root.ok(&["user", "delete", "test-user"]),
        "User test-user deleted\n"
    );

    let f = user.fail(&["put", "foo", "baz"]);
    assert_eq!((f.code, f.last_line()), (EXIT_BAD_CONNECTION, AUTH_FAILED));
    assert_invalid_token(session.put("foo", "baz"));
    assert_invalid_token(session.get("foo"));
    assert_eq!(root.ok(&["get", "foo"]), "foo\nbar\n");
}

fn changed_password_drops_tokens(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    let session = Session::open(&s, "test-user", "pass");
    session.put("foo", "bar").unwrap();
    assert_eq!(
        root.ok_stdin(
            &["user", "passwd", "test-user", "--interactive=false"],
            "new\n"
        ),
        "Password updated\n"
    );
    assert_invalid_token(session.get("foo"));
    assert_status(
        authenticate(&s, "test-user", "pass"),
        tonic::Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );
    let again = Session::open(&s, "test-user", "new");
    assert_eq!(again.get("foo").unwrap(), ["bar"]);
    // root's own token survives a change to another user
    let root_session = Session::open(&s, "root", "root");
    root.ok_stdin(
        &["user", "passwd", "test-user", "--interactive=false"],
        "newer\n",
    );
    assert_eq!(root_session.get("foo").unwrap(), ["bar"]);
}

/// A token the server never minted is refused; so is every token after auth was disabled
/// and enabled again (disable drops them all).
fn unknown_and_dropped_tokens_are_refused(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    for token in ["garbage", "abcdefghijklmnop.1"] {
        let forged = Session {
            endpoint: s.endpoint(),
            token: token.to_string(),
        };
        assert_invalid_token(forged.get("foo"));
    }
    let session = Session::open(&s, "test-user", "pass");
    session.put("foo", "bar").unwrap();
    assert_eq!(root.ok(&["auth", "disable"]), "Authentication Disabled\n");
    assert_eq!(
        Ctl::anonymous(&s).ok(&["auth", "enable"]),
        "Authentication Enabled\n"
    );
    assert_invalid_token(session.get("foo"));
    assert_eq!(
        Session::open(&s, "test-user", "pass").get("foo").unwrap(),
        ["bar"]
    );
}

/// A JWT's `exp` claim (Unix seconds).
fn jwt_exp(token: &str) -> u64 {
    let json = jwt_payload(token);
    json["exp"].as_u64().unwrap_or_else(|| panic!("{json}"))
}

/// A JWT's decoded payload (its claims).
fn jwt_payload(token: &str) -> serde_json::Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_flag(dir: &tempfile::TempDir, ttl: &str) -> String {
    let key = dir.path().join("jwt.key");
    std::fs::write(&key, "a shared secret for HS256 signatures").unwrap();
    format!("jwt,priv-key={},sign-method=HS256,ttl={ttl}", key.display())
}

/// etcd's e2e `JWTExpire`: a JWT minted with `ttl=1s` works, then, once its `exp` has
/// passed, is refused as an invalid token (a JWT has no sliding TTL: using it does not
/// extend it); etcdctl, authenticating anew, goes on working. An unparsable JWT and one
/// signed with another key are invalid tokens too.
fn jwt_expires_after_its_ttl(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let flag = jwt_flag(&dir, "1s");
    let (s, _root, user) = auth_server_with(kind, &["--auth-token", &flag]);
    let session = Session::open(&s, "test-user", "pass");
    let exp = jwt_exp(&session.token);
    let now = unix_now();
    assert!(
        exp <= now + 2,
        "exp {exp} is about a second from now ({now})"
    );
    session.put("foo", "bar").unwrap();

    let refused = cairn_tests::wait::until(
        std::time::Duration::from_secs(15),
        "the JWT to be refused after its exp",
        || session.get("foo").err(),
    );
    assert!(
        unix_now() >= exp,
        "refused before its exp {exp}: {refused:?}"
    );
    assert_invalid_token(Err::<(), _>(refused));
    assert_eq!(user.ok(&["get", "foo"]), "foo\nbar\n");

    let mut forged: Vec<String> = vec!["a.b.c".into(), "not-a-jwt".into()];
    let mut parts: Vec<&str> = session.token.split('.').collect();
    parts[2] = "c2lnbmVkIHdpdGggYW5vdGhlciBrZXk";
    forged.push(parts.join("."));
    for token in forged {
        let bad = Session {
            endpoint: s.endpoint(),
            token,
        };
        assert_invalid_token(bad.get("foo"));
    }
}

/// A JWT's claims: (username, auth revision it was minted at).
fn jwt_claims(token: &str) -> (String, u64) {
    let json = jwt_payload(token);
    let name = json["username"]
        .as_str()
        .unwrap_or_else(|| panic!("{json}"))
        .to_string();
    (
        name,
        json["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("{json}")),
    )
}

/// With `--auth-token jwt` (HS256 here), a token carries the auth revision it was minted at,
/// which also shows how the revision counts: from 1, +1 for each user or role change, not
/// for enable, refused changes or a role granted again, +1 for disable.
fn old_jwt_is_refused_after_an_auth_change(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let flag = jwt_flag(&dir, "5m");
    // user add root, grant-role (3); enable (3); user add, role add, grant-role, grant-permission (7)
    let (s, root, user) = auth_server_with(kind, &["--auth-token", &flag]);

    let session = Session::open(&s, "test-user", "pass");
    assert_eq!(jwt_claims(&session.token), ("test-user".to_string(), 7));
    session.put("foo", "bar").unwrap();

    assert_eq!(root.ok(&["role", "add", "other"]), "Role other created\n"); // 8
    const OLD: &str = "etcdserver: revision of auth store is old";
    assert_status(session.put("foo", "baz"), tonic::Code::InvalidArgument, OLD);
    assert_status(session.get("foo"), tonic::Code::InvalidArgument, OLD);
    assert_eq!(
        user.ok(&["get", "foo"]),
        "foo\nbar\n",
        "etcdctl authenticates anew"
    );

    root.err(&["role", "add", "other"]);
    root.ok(&["user", "grant-role", "test-user", "test-role"]);
    let fresh = Session::open(&s, "test-user", "pass");
    assert_eq!(jwt_claims(&fresh.token).1, 8);
    assert_eq!(fresh.get("foo").unwrap(), ["bar"]);

    assert_eq!(root.ok(&["auth", "disable"]), "Authentication Disabled\n"); // 9
    assert_eq!(
        Ctl::anonymous(&s).ok(&["auth", "enable"]),
        "Authentication Enabled\n"
    );
    assert_eq!(
        jwt_claims(&Session::open(&s, "root", "root").token),
        ("root".to_string(), 9)
    );
}
