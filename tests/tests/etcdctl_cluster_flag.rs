//! etcdctl 3.4 with `--cluster`: it lists the members, then dials each one's advertised client
//! URL, and its grpc-go sends that whole URL (`http://127.0.0.1:<port>`) as the HTTP/2
//! `:authority`. The Rust HTTP/2 stack used to reset those streams with PROTOCOL_ERROR; cairn's
//! client listeners now rewrite such requests (`server/src/authority.rs`). The same bodies run
//! against etcd, the oracle.

use cairn_tests::etcdctl::assert_success;
use cairn_tests::json::uint;
use cairn_tests::{Kind, TestServer, etcdctl, etcdctl_json, etcdctl_ok};

cairn_tests::both_kinds!(etcdctl: endpoint_status, endpoint_health, endpoint_hashkv, defrag);

/// Starts a member and checks that what `--cluster` dials is its real loopback URL.
fn start(kind: Kind) -> TestServer {
    let server = TestServer::start(kind);
    let members = etcdctl_json(&server.endpoint(), &["member", "list"]);
    let urls = &members["members"][0]["clientURLs"];
    assert_eq!(urls, &serde_json::json!([server.url()]), "{members}");
    server
}

fn endpoint_status(kind: Kind) {
    let server = start(kind);
    let ep = &server.endpoint();
    let all = etcdctl_json(ep, &["endpoint", "status", "--cluster"]);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["Endpoint"], server.url().as_str());
    let status = &all[0]["Status"];
    let member = uint(&status["header"], "member_id");
    assert_ne!(member, 0);
    assert_eq!(
        uint(status, "leader"),
        member,
        "a single member leads itself"
    );
    let direct = etcdctl_json(ep, &["endpoint", "status"]);
    assert_eq!(uint(&direct[0]["Status"]["header"], "member_id"), member);
}

fn endpoint_health(kind: Kind) {
    let server = start(kind);
    let ep = &server.endpoint();
    let url = server.url();
    let health = etcdctl_json(ep, &["endpoint", "health", "--cluster"]);
    assert_eq!(health.as_array().map(Vec::len), Some(1), "{health}");
    assert_eq!(health[0]["endpoint"], url.as_str());
    assert_eq!(health[0]["health"], true, "{health}");
    // etcdctl 3.4 prints the simple health line on stderr.
    let out = etcdctl(ep, &["endpoint", "health", "--cluster"]);
    assert_success(&out, "etcdctl endpoint health --cluster");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let healthy = format!("{url} is healthy: successfully committed proposal: took = ");
    assert!(text.starts_with(&healthy), "{text}");
}

fn endpoint_hashkv(kind: Kind) {
    let server = start(kind);
    let ep = &server.endpoint();
    let url = server.url();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        etcdctl_ok(ep, &["put", key, value]);
    }
    let direct = etcdctl_json(ep, &["endpoint", "hashkv"]);
    let hash = uint(&direct[0]["HashKV"], "hash");
    let all = etcdctl_json(ep, &["endpoint", "hashkv", "--cluster"]);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["Endpoint"], url.as_str());
    assert_eq!(uint(&all[0]["HashKV"], "hash"), hash, "{all}");
    assert_eq!(
        etcdctl_ok(ep, &["endpoint", "hashkv", "--cluster"]),
        format!("{url}, {hash}\n")
    );
}

fn defrag(kind: Kind) {
    let server = start(kind);
    assert_eq!(
        etcdctl_ok(&server.endpoint(), &["defrag", "--cluster"]),
        format!("Finished defragmenting etcd member[{}]\n", server.url())
    );
}
