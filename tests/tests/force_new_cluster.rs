//! `--force-new-cluster` after a quorum is lost for good, the same body against cairn and real
//! etcd 3.4: two of three members gone, the third restarted with the flag serves its data as
//! a one-member cluster (same member ID, same revision, same HashKV), takes writes, and a
//! member added back catches up. Cairn also refuses the flag left on once members were added
//! back (etcd would remove them again).

use std::time::Duration;

use cairn_tests::{Kind, TestCluster, etcdctl_json, etcdctl_ok};

const WAIT: Duration = Duration::from_secs(30);

fn quorum_lost_for_good(kind: Kind) {
    let mut c = TestCluster::start_prepared_kind(kind, 3, &[], |_, _| {});
    let ep = c.endpoints();
    for i in 0..20 {
        etcdctl_ok(&ep, &["put", &format!("k/{i}"), &format!("v{i}")]);
    }
    etcdctl_ok(&ep, &["del", "k/0"]);
    let (hash, _) = c.wait_converged(WAIT);
    let rev = etcdctl_json(&ep, &["get", "k/1"])["header"]["revision"]
        .as_i64()
        .unwrap();
    let id = c.member_id(0);

    // two members are gone for good; the third stops
    c.members[1].kill9();
    c.members[2].kill9();
    c.members[0].stop();
    c.members[0]
        .extra_args_mut()
        .push("--force-new-cluster".into());
    c.members[0].restart();
    let ep = c.members[0].endpoint();

    let list = etcdctl_json(&ep, &["member", "list"]);
    let members = list["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{kind:?}: one member left: {list}");
    assert_eq!(members[0]["ID"].as_u64(), Some(id), "{kind:?}: its ID kept");
    let got = etcdctl_json(&ep, &["get", "k/", "--prefix"]);
    assert_eq!(got["count"].as_i64(), Some(19), "{kind:?}: {got}");
    assert_eq!(got["header"]["revision"].as_i64(), Some(rev), "{kind:?}");
    let h = etcdctl_json(&ep, &["endpoint", "hashkv", &format!("--rev={rev}")]);
    assert_eq!(
        h[0]["HashKV"]["hash"].as_u64(),
        Some(u64::from(hash)),
        "{kind:?}: the data is the member's own: {h}"
    );
    etcdctl_ok(&ep, &["put", "after", "force"]);

    // a member added back (a new one, empty) catches up
    let added = c.add_member(false);
    c.members[added].launch();
    c.members[added].wait_ready();
    c.wait_converged(WAIT);
    let got = etcdctl_json(&c.members[added].endpoint(), &["get", "after"]);
    assert_eq!(got["count"].as_i64(), Some(1), "{kind:?}: {got}");

    if kind == Kind::Cairn {
        // the flag left on after members were added back: refused, nothing changed
        c.members[0].stop();
        c.members[0].launch();
        let status = c.members[0].wait_exit(WAIT).expect("refused at start");
        assert!(!status.success());
        let log = c.members[0].log_tail(20);
        assert!(
            log.contains("--force-new-cluster was already applied")
                && log.contains("remove --force-new-cluster"),
            "{log}"
        );
        c.members[0]
            .extra_args_mut()
            .retain(|a| a != "--force-new-cluster");
        c.members[0].restart();
        c.wait_leader(WAIT);
        let list = etcdctl_json(&c.endpoints(), &["member", "list"]);
        assert_eq!(list["members"].as_array().unwrap().len(), 2, "{list}");
        c.wait_converged(WAIT);
    }
}

#[test]
fn cairn_recovers_from_a_lost_quorum_with_force_new_cluster() {
    quorum_lost_for_good(Kind::Cairn);
}

#[test]
fn etcd_recovers_from_a_lost_quorum_with_force_new_cluster() {
    if !cairn_tests::require_etcd() {
        return;
    }
    quorum_lost_for_good(Kind::Etcd);
}
