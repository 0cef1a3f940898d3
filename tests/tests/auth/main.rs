//! Authentication (etcd's RBAC) at process level: every body runs against real etcd 3.4.23
//! (the oracle) and against cairn, driven by real etcdctl (`--user name:password`) and, for
//! what etcdctl cannot show (a token kept across an auth change, gRPC codes, nested txns,
//! watch responses), by tonic clients sending the `token` metadata.
//!
//! The sequences follow etcd's authentication guide (`op-guide/authentication.md`) and its
//! e2e tests (`tests/e2e/ctl_v3_auth_test.go`): each test starts its own one-member server,
//! [`enable_auth`] makes user `root` (password `root`) with role `root` and enables auth, and
//! [`add_test_user`] adds `test-user` (password `pass`) with `test-role`, readwrite on `foo`.
//!
//! # Where the oracle is not the spec
//! etcd 3.4.23 has authorization holes that later releases closed (3.4.42 and 3.5.28: commits
//! "guard unauthenticated endpoints with auth checks" and "enforce auth checks for nested txn
//! ops"): a user without the root role may compact, disarm alarms and move the leader, and
//! the ops inside a nested txn are not checked at all. Cairn must refuse them; the few
//! assertions that differ ask [`refuses_like_later_etcd`] and say what each side does.
//! `Auth/AuthStatus` does not exist in 3.4.23 (Unimplemented); cairn answers it as 3.5 does.
//!
//! Test names are `<module>::<body>::{etcd,cairn}`: `cargo test -p cairn-tests --test auth
//! -- ::etcd` runs the oracle side only.

use std::process::Output;

use cairn_tests::etcdctl::{self, assert_success};
use cairn_tests::{Background, Kind, TestServer};

/// Every body drives etcdctl, so the cairn side needs the etcd packages too.
macro_rules! auth_tests {
    ($($body:ident),* $(,)?) => { cairn_tests::both_kinds!(etcdctl: $($body),*); };
}

mod cert_cn;
mod enable;
mod kv;
mod lease;
mod maintenance;
mod roles;
mod sessions;
mod snapshot;
mod txn;
mod users;
mod watch;

/// etcdctl's last line for a request refused by the permission check.
const DENIED: &str = "Error: etcdserver: permission denied";
/// etcdctl's last line for a request without a user while auth is on.
const NO_USER: &str = "Error: etcdserver: user name is empty";
/// etcdctl's last line when `--user` names an unknown user or a wrong password.
const AUTH_FAILED: &str = "Error: etcdserver: authentication failed, invalid user ID or password";
/// etcdctl exits 2 (`ExitBadConnection`) when authenticating fails: it happens while dialing.
const EXIT_BAD_CONNECTION: i32 = 2;

/// The `--user` of [`enable_auth`]'s root.
const ROOT: &str = "root:root";
/// The `--user` of [`add_test_user`]'s ordinary user.
const TEST_USER: &str = "test-user:pass";

/// Whether `kind` closes the authorization holes etcd 3.4.23 still has (see the module
/// doc): cairn does, as etcd does from 3.4.42 and 3.5.28 on.
fn refuses_like_later_etcd(kind: Kind) -> bool {
    kind == Kind::Cairn
}

/// etcdctl against one server, as one user (`name:password`) or as nobody.
#[derive(Clone)]
struct Ctl {
    endpoint: String,
    user: Option<String>,
    /// `--cacert --cert --key` against a TLS server: the certificate whose CN acts as the
    /// user when no `--user` is given.
    tls: Vec<String>,
}

/// A failed etcdctl run.
#[derive(Debug)]
struct Failure {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Failure {
    /// The last stderr line: etcdctl's `Error: ...` after clientv3's retry warnings.
    fn last_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// stderr without clientv3's JSON log lines (`{"level":"warn",...}` for each retry).
    fn messages(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("{\"level\""))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl Ctl {
    fn anonymous(s: &TestServer) -> Ctl {
        Ctl {
            endpoint: s.endpoint(),
            user: None,
            tls: Vec::new(),
        }
    }

    /// etcdctl over TLS presenting `cert` (and trusting `ca`), as nobody but the CN.
    fn with_cert(s: &TestServer, ca: &std::path::Path, cert: &cairn_tests::pki::Pair) -> Ctl {
        let path = |p: &std::path::Path| p.display().to_string();
        Ctl {
            tls: vec![
                format!("--cacert={}", path(ca)),
                format!("--cert={}", path(&cert.cert)),
                format!("--key={}", path(&cert.key)),
            ],
            ..Ctl::anonymous(s)
        }
    }

    fn root(s: &TestServer) -> Ctl {
        Ctl::anonymous(s).with_user(ROOT)
    }

    fn test_user(s: &TestServer) -> Ctl {
        Ctl::anonymous(s).with_user(TEST_USER)
    }

    /// The same server as `user` (`name:password`).
    fn with_user(&self, user: &str) -> Ctl {
        Ctl {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    fn full_args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut all = self.tls.clone();
        all.extend(self.user.iter().map(|u| format!("--user={u}")));
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn describe(&self, args: &[&str]) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("--user={u} "))
            .unwrap_or_default();
        format!("etcdctl {user}{}", args.join(" "))
    }

    fn run(&self, args: &[&str]) -> Output {
        let all = self.full_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl::etcdctl(&self.endpoint, &all)
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let all = self.full_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl::etcdctl_stdin(&self.endpoint, &all, stdin)
    }

    /// Runs etcdctl, asserts it succeeded, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        stdout_of(&self.run(args), &self.describe(args))
    }

    /// [`Ctl::ok`] with `stdin` (a `txn` script, a password).
    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        stdout_of(&self.run_stdin(args, stdin), &self.describe(args))
    }

    /// Runs etcdctl, asserts it failed.
    fn fail(&self, args: &[&str]) -> Failure {
        failure_of(self.run(args), &self.describe(args))
    }

    /// [`Ctl::fail`] with `stdin`.
    fn fail_stdin(&self, args: &[&str], stdin: &str) -> Failure {
        failure_of(self.run_stdin(args, stdin), &self.describe(args))
    }

    /// Runs etcdctl, asserts it exited 1 (a refused request), returns the `Error:` line.
    fn err(&self, args: &[&str]) -> String {
        let f = self.fail(args);
        assert_eq!(f.code, 1, "{}: {f:?}", self.describe(args));
        f.last_line().to_string()
    }

    /// A long-running command (`watch`) in the background.
    fn background(&self, args: &[&str]) -> Background {
        let all = self.full_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Background::etcdctl(&self.endpoint, &all)
    }
}

fn stdout_of(out: &Output, what: &str) -> String {
    assert_success(out, what);
    String::from_utf8(out.stdout.clone()).expect("etcdctl stdout is UTF-8")
}

fn failure_of(out: Output, what: &str) -> Failure {
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Failure {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// etcd's e2e `authEnable`: user `root` (password `root`) granted role `root`, then
/// `auth enable`. Returns etcdctl as root.
fn enable_auth(s: &TestServer) -> Ctl {
    enable_auth_through(Ctl::anonymous(s))
}

/// [`enable_auth`] through `anon` (etcdctl with its TLS flags, say); returns it as root.
fn enable_auth_through(anon: Ctl) -> Ctl {
    assert_eq!(
        anon.ok(&["user", "add", "root", "--new-user-password=root"]),
        "User root created\n"
    );
    assert_eq!(
        anon.ok(&["user", "grant-role", "root", "root"]),
        "Role root is granted to user root\n"
    );
    assert_eq!(anon.ok(&["auth", "enable"]), "Authentication Enabled\n");
    anon.with_user(ROOT)
}

/// etcd's e2e `authSetupTestUser`: `test-user` (password `pass`) with `test-role`, readwrite
/// on the key `foo`. Returns etcdctl as test-user.
fn add_test_user(root: &Ctl) -> Ctl {
    assert_eq!(
        root.ok(&["user", "add", "test-user", "--new-user-password=pass"]),
        "User test-user created\n"
    );
    assert_eq!(
        root.ok(&["role", "add", "test-role"]),
        "Role test-role created\n"
    );
    assert_eq!(
        root.ok(&["user", "grant-role", "test-user", "test-role"]),
        "Role test-role is granted to user test-user\n"
    );
    assert_eq!(
        root.ok(&["role", "grant-permission", "test-role", "readwrite", "foo"]),
        "Role test-role updated\n"
    );
    root.with_user(TEST_USER)
}

/// A fresh server with auth on, root and test-user: (server, root, test-user).
fn auth_server(kind: Kind) -> (TestServer, Ctl, Ctl) {
    auth_server_with(kind, &[])
}

/// [`auth_server`] with extra server flags.
fn auth_server_with(kind: Kind, extra: &[&str]) -> (TestServer, Ctl, Ctl) {
    let s = TestServer::start_with(kind, extra);
    let root = enable_auth(&s);
    let user = add_test_user(&root);
    (s, root, user)
}

/// Asserts a gRPC call failed with `code` and exactly `message`.
fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    message: &str,
) {
    match result {
        Ok(v) => panic!("expected {code:?} {message:?}, got an answer: {v:?}"),
        Err(s) => assert_eq!(
            (s.code(), s.message()),
            (code, message),
            "the status: {s:?}"
        ),
    }
}

/// The member ID as etcdctl prints it (hex), from `member list`.
fn member_id_hex(ctl: &Ctl) -> String {
    let list = ctl.ok(&["member", "list"]);
    list.split(", ").next().expect("a member line").to_string()
}
