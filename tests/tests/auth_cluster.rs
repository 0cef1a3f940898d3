//! Auth across a three-member cairn cluster: a simple token minted by one member works on
//! every member (the Authenticate is replicated), and a permission revoked through one member
//! is enforced by all of them at once.

use std::time::Duration;

use cairn_proto::etcdserverpb::{AuthenticateRequest, PutRequest, RangeRequest};
use cairn_tests::grpc::{Clients, block_on};
use cairn_tests::{TestCluster, etcdctl_ok, require_etcd, wait};

const CONVERGE: Duration = Duration::from_secs(60);

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("token", token.parse().expect("ascii token"));
    r
}

/// A put through `endpoint` with `token`: Ok, or the status message.
fn put(endpoint: &str, token: &str, key: &str) -> Result<(), String> {
    let (endpoint, token, key) = (endpoint.to_string(), token.to_string(), key.to_string());
    block_on(async move {
        let mut c = Clients::connect(&endpoint)
            .await
            .map_err(|e| e.to_string())?;
        c.kv.put(with_token(
            PutRequest {
                key: key.into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    })
}

#[test]
fn tokens_work_on_every_member_and_revocations_apply_everywhere() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let all = c.endpoints();
    for cmd in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "app:apppw"],
        &["role", "add", "writer"],
        &[
            "role",
            "grant-permission",
            "writer",
            "readwrite",
            "/app/",
            "--prefix",
        ],
        &["user", "grant-role", "app", "writer"],
        &["auth", "enable"],
    ] {
        etcdctl_ok(&all, cmd);
    }
    let eps: Vec<String> = (0..3).map(|i| c.members[i].endpoint()).collect();
    let first = eps[0].clone();
    let token = block_on(async move {
        let mut cl = Clients::connect(&first).await.expect("connect");
        cl.auth
            .authenticate(AuthenticateRequest {
                name: "app".into(),
                password: "apppw".into(),
            })
            .await
            .expect("authenticate")
            .into_inner()
            .token
    });
    // minted by member 0, accepted by all three (the Authenticate is applied on each)
    for (i, ep) in eps.iter().enumerate() {
        wait::until(CONVERGE, "the token to reach every member", || {
            put(ep, &token, &format!("/app/{i}")).ok()
        });
    }
    assert_eq!(
        put(&eps[1], &token, "/other").unwrap_err(),
        "etcdserver: permission denied"
    );

    // revoked through member 2: every member refuses the old token's next write
    etcdctl_ok(
        &all,
        &[
            "--user",
            "root:rootpw",
            "role",
            "revoke-permission",
            "writer",
            "/app/",
            "--prefix",
        ],
    );
    for ep in &eps {
        let e = wait::until(CONVERGE, "the revocation to reach every member", || {
            put(ep, &token, "/app/late").err()
        });
        assert!(
            e == "etcdserver: revision of auth store is old"
                || e == "etcdserver: permission denied",
            "{ep}: {e}"
        );
    }
    // a fresh token for the same user: still denied, now for the missing permission
    let out =
        cairn_tests::etcdctl::etcdctl(&eps[2], &["--user", "app:apppw", "put", "/app/x", "1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("etcdserver: permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // reads through any member follow the same rules
    let last = eps[2].clone();
    let denied = block_on(async move {
        let mut cl = Clients::connect(&last).await.expect("connect");
        cl.kv
            .range(RangeRequest {
                key: b"/app/0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .message()
            .to_string()
    });
    assert_eq!(denied, "etcdserver: user name is empty");
    // HashKV is for root: with auth off again, every member holds the same data
    etcdctl_ok(&all, &["--user", "root:rootpw", "auth", "disable"]);
    c.wait_converged(CONVERGE);
}

fn cairnutl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(cairn_tests::cairnutl_bin())
        .env_remove("ETCDCTL_ENDPOINTS")
        .stdin(std::process::Stdio::null())
        .args(args)
        .output()
        .expect("run cairnutl")
}

fn cairnutl_ok(args: &[&str]) -> String {
    let out = cairnutl(args);
    assert!(
        out.status.success(),
        "cairnutl {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The nightly backup as a non-anonymous cron job (`snapshot save --user`), and the way back
/// in when the root password is lost: every member stopped, `cairnutl auth disable
/// --data-dir` on each, all started again: they agree (same auth revision, same data) and
/// serve without credentials until root gets a new password and auth is enabled again.
#[test]
fn lost_root_password_is_recovered_offline_on_every_member() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let all = c.endpoints();
    for cmd in [
        &["user", "add", "root:forgotten"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
        &["--user", "root:forgotten", "put", "/kept", "v"],
    ] {
        etcdctl_ok(&all, cmd);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nightly.snap").display().to_string();
    let first = c.members[0].endpoint();
    let refused = cairnutl(&["--endpoints", &first, "snapshot", "save", &file]);
    assert!(!refused.status.success(), "an anonymous snapshot save ran");
    let saved = cairnutl_ok(&[
        "--endpoints",
        &first,
        "--user",
        "root:forgotten",
        "snapshot",
        "save",
        &file,
    ]);
    assert!(saved.contains(&file), "{saved}");
    let verified: serde_json::Value =
        serde_json::from_str(&cairnutl_ok(&["-w", "json", "snapshot", "verify", &file])).unwrap();
    assert_eq!(
        (
            &verified["authEnabled"],
            &verified["users"],
            &verified["roles"]
        ),
        // role root is implicit in etcd (granted, never stored), so no role row
        (
            &serde_json::json!(true),
            &serde_json::json!(1),
            &serde_json::json!(0)
        ),
        "{verified}"
    );

    for m in &mut c.members {
        m.stop();
    }
    let mut revisions = Vec::new();
    for m in &c.members {
        let data_dir = m.data_dir().display().to_string();
        let out = cairnutl_ok(&["auth", "disable", "--data-dir", &data_dir]);
        assert!(out.starts_with("Authentication Disabled in "), "{out}");
        revisions.push(out.trim_end().rsplit(' ').next().unwrap().to_string());
        let again = cairnutl_ok(&["auth", "disable", "--data-dir", &data_dir]);
        assert!(
            again.starts_with("Authentication was already disabled"),
            "{again}"
        );
    }
    assert!(
        revisions.iter().all(|r| *r == revisions[0]),
        "{revisions:?}"
    );

    std::thread::scope(|s| {
        for m in &mut c.members {
            s.spawn(move || m.restart());
        }
    });
    c.wait_leader(CONVERGE);
    let eps: Vec<String> = (0..3).map(|i| c.members[i].endpoint()).collect();
    for ep in &eps {
        let status = wait::until(CONVERGE, "auth status without credentials", || {
            let out = cairnutl(&["--endpoints", ep, "auth", "status"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
        assert!(
            status.starts_with("Authentication Status: false\n"),
            "{ep}: {status}"
        );
        assert_eq!(
            etcdctl_ok(ep, &["get", "/kept", "--print-value-only"]),
            "v\n"
        );
    }
    // every member holds the same data (HashKV, which auth would reserve for root)
    c.wait_converged(CONVERGE);
    // the operator's next steps: a new root password, auth on again
    let passwd = ["user", "passwd", "root", "--interactive=false"];
    let out = cairn_tests::etcdctl::etcdctl_stdin(&all, &passwd, "newroot\n");
    cairn_tests::etcdctl::assert_success(&out, "user passwd root");
    etcdctl_ok(&all, &["auth", "enable"]);
    let got = etcdctl_ok(
        &all,
        &[
            "--user",
            "root:newroot",
            "get",
            "/kept",
            "--print-value-only",
        ],
    );
    assert_eq!(got, "v\n");
}
