//! etcd's corruption check between members: a member whose data silently differs is refused
//! at start (`--experimental-initial-corrupt-check`) and found by the leader's periodic check
//! (`--experimental-corrupt-check-time`), which raises a CORRUPT alarm that stops writes.

use std::time::Duration;

use cairn_proto::etcdserverpb::PutRequest;
use cairn_storage::{Command, Op, Store, StoreOptions};
use cairn_tests::{TestCluster, etcdctl_err, etcdctl_ok, require_etcd, wait};

/// Generous: these waits end as soon as the state is there; the bound only matters on failure.
const CONVERGE: Duration = Duration::from_secs(60);

/// Writes a key straight into a stopped member's store, bypassing raft: its data now
/// differs from the other members' at every later revision.
fn corrupt(data_dir: &std::path::Path) {
    let store = Store::open(&data_dir.join("member/kv.redb"), StoreOptions::default()).unwrap();
    let put = Command::from(Op::Put(PutRequest {
        key: b"rogue".to_vec(),
        value: b"bit flip".to_vec(),
        ..Default::default()
    }));
    store.apply(&[Some(put)], &[]).unwrap();
    store.flush().unwrap();
}

#[test]
fn a_member_with_different_data_is_refused_at_start_and_alarmed_while_running() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &["--experimental-corrupt-check-time", "1s"]);
    let leader = c.wait_leader(CONVERGE);
    let victim = (leader + 1) % 3;
    let victim_id = c.member_id(victim);
    let others = [leader, (leader + 2) % 3]
        .map(|i| c.members[i].endpoint())
        .join(",");
    for i in 0..10 {
        etcdctl_ok(&others, &["put", &format!("k{i}"), "v"]);
    }
    c.wait_converged(CONVERGE);

    c.members[victim].stop();
    corrupt(&c.members[victim].data_dir());
    // the others move on, so they can hash the victim's revision
    for i in 10..15 {
        etcdctl_ok(&others, &["put", &format!("k{i}"), "v"]);
    }

    c.members[victim]
        .extra_args_mut()
        .push("--experimental-initial-corrupt-check".into());
    c.members[victim].launch();
    let status = c.members[victim]
        .wait_exit(CONVERGE)
        .expect("the initial check refuses to serve");
    assert!(!status.success());
    let tail = c.members[victim].log_tail(5);
    assert!(
        tail.contains("found data inconsistency with peers"),
        "{tail}"
    );

    c.members[victim].extra_args_mut().pop();
    c.members[victim].launch();
    c.members[victim].wait_ready();
    let want = format!("memberID:{victim_id} alarm:CORRUPT");
    wait::until(CONVERGE, "the leader to raise a CORRUPT alarm", || {
        etcdctl_ok(&others, &["alarm", "list"])
            .contains(&want)
            .then_some(())
    });
    let err = etcdctl_err(&others, &["put", "k", "v"]);
    assert!(err.contains("etcdserver: corrupt cluster"), "{err}");
    // reads are still served, so the data can be inspected and backed up
    assert_eq!(
        etcdctl_ok(&others, &["get", "k0", "--print-value-only"]).trim(),
        "v"
    );
}
