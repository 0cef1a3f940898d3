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
