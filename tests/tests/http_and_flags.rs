//! The server configured only through `ETCD_*` environment variables, its HTTP endpoints
//! (`/health`, `/metrics`, `/version` on the client port and on --listen-metrics-urls), and a
//! bad flag refused with a clear message and etcd's exit code.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_proto::etcdserverpb::MemberListRequest;
use cairn_tests::grpc::{block_on, status_blocking};
use cairn_tests::http::get;
use cairn_tests::ports::free_port;
use cairn_tests::wait::until;
use cairn_tests::{Clients, cairn_bin};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn environment_variables_and_http_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let ep = format!("127.0.0.1:{client}");
    let metrics_ep = format!("127.0.0.1:{metrics}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(cairn_bin())
        .env("ETCD_NAME", "from-env")
        .env("ETCD_DATA_DIR", dir.path().join("data"))
        .env("ETCD_LISTEN_CLIENT_URLS", format!("http://{ep}"))
        .env("ETCD_ADVERTISE_CLIENT_URLS", format!("http://{ep}"))
        .env("ETCD_LISTEN_PEER_URLS", &peer_url)
        .env("ETCD_INITIAL_ADVERTISE_PEER_URLS", &peer_url)
        .env("ETCD_LISTEN_METRICS_URLS", format!("http://{metrics_ep}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    until(
        Duration::from_secs(20),
        "the server to have a leader",
        || {
            status_blocking(&ep, Duration::from_secs(1))
                .ok()
                .filter(|s| s.leader != 0)
        },
    );

    let members = block_on(async {
        let mut c = Clients::connect(&ep).await.unwrap();
        c.cluster
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner()
            .members
    });
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "from-env");
    assert_eq!(members[0].peer_ur_ls, vec![peer_url.clone()]);
    assert_eq!(members[0].client_ur_ls, vec![format!("http://{ep}")]);
    assert!(
        dir.path().join("data/member/kv.redb").exists(),
        "ETCD_DATA_DIR was used"
    );

    for addr in [&ep, &metrics_ep] {
        let (code, body) = get(addr, "/health").unwrap();
        assert_eq!(code, 200, "{addr}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["health"], "true");
        let (code, body) = get(addr, "/metrics").unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("etcd_server_has_leader 1"), "{body}");
        assert!(
            body.contains("etcd_debugging_mvcc_current_revision 1"),
            "{body}"
        );
        let (_, body) = get(addr, "/version").unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["etcdserver"], "3.5.0");
    }
    // gRPC is not served on the metrics port, only HTTP
    assert!(get(&metrics_ep, "/etcdserverpb.KV/Range").map(|(c, _)| c) != Some(200));
}

#[test]
fn bad_flag_values_are_refused_clearly() {
    let out = Command::new(cairn_bin())
        .args(["--initial-cluster-state", "sideways"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--initial-cluster-state \"sideways\" must be 'new' or 'existing'"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let out = Command::new(cairn_bin())
        .args(["--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
