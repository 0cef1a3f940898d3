//! `etcdctl member list` and the etcd-derived member and cluster IDs.

use cairn_tests::etcd_ids::{self, DEFAULT_TOKEN};
use cairn_tests::json::uint;
use cairn_tests::{Kind, TestServer, etcdctl_json, etcdctl_ok};

compat_tests!(member_list);

fn member_list(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let (peer, client) = (server.peer_url(), server.url());
    let member_id = etcd_ids::member_id(&[&peer], DEFAULT_TOKEN);
    let cluster_id = etcd_ids::cluster_id(&[member_id]);

    let list = etcdctl_json(ep, &["member", "list"]);
    assert_eq!(uint(&list["header"], "member_id"), member_id);
    assert_eq!(uint(&list["header"], "cluster_id"), cluster_id);
    let members = list["members"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(uint(m, "ID"), member_id);
    assert_eq!(m["name"], "s1");
    assert_eq!(m["peerURLs"], serde_json::json!([peer]));
    assert_eq!(m["clientURLs"], serde_json::json!([client]));
    assert!(m.get("isLearner").is_none(), "not a learner: {m}");

    assert_eq!(
        etcdctl_ok(ep, &["member", "list"]),
        format!("{member_id:x}, started, s1, {peer}, {client}, false\n")
    );
    // Every response carries the same IDs.
    let put = etcdctl_json(ep, &["put", "k", "v"]);
    assert_eq!(uint(&put["header"], "cluster_id"), cluster_id);
    assert_eq!(uint(&put["header"], "member_id"), member_id);
}
