//! A leader killed and restarted before anyone else campaigns: raft (openraft) brings it back
//! as the leader of its old term. Found by the robustness soak (seed 12351660835689651296): two
//! linearizable gets answered by such a member returned revision 3309 after a put at 3313 had
//! been acknowledged.

use std::time::Duration;

use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_tests::grpc::{Clients, block_on};
use cairn_tests::{TestCluster, require_etcd};

const CONVERGE: Duration = Duration::from_secs(60);

/// Puts `n` keys on `endpoint`; returns the revision of the last.
fn puts(endpoint: &str, n: usize) -> i64 {
    let endpoint = endpoint.to_string();
    block_on(async move {
        let mut c = Clients::connect(&endpoint).await.expect("connect");
        let mut rev = 0;
        for i in 0..n {
            let r =
                c.kv.put(PutRequest {
                    key: format!("k/{i:05}").into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })
                .await
                .expect("put")
                .into_inner();
            rev = r.header.expect("header").revision;
        }
        rev
    })
}

/// A linearizable get of one key on `endpoint`: the revision its header carries.
fn linearizable_revision(endpoint: &str) -> i64 {
    let endpoint = endpoint.to_string();
    block_on(async move {
        let mut c = Clients::connect(&endpoint).await.expect("connect");
        let r =
            c.kv.range(RangeRequest {
                key: b"k/00000".to_vec(),
                ..Default::default()
            })
            .await
            .expect("linearizable get")
            .into_inner();
        r.header.expect("header").revision
    })
}

/// The restarted leader's state machine is back at its last durable commit (up to a second
/// behind), and so is what raft knows to be committed until its followers answer again. Its
/// read index must still cover every write acknowledged before the kill.
#[test]
fn a_leader_restarted_in_its_own_term_serves_no_stale_linearizable_read() {
    if !require_etcd() {
        return;
    }
    // heartbeats slow enough that the read's leadership check outlives the pause below,
    // elections slow enough that the paused followers do not campaign when they resume
    let mut c = TestCluster::start(
        3,
        &["--heartbeat-interval", "1000", "--election-timeout", "5000"],
    );
    let leader = c.wait_leader(CONVERGE);
    let acked = puts(&c.members[leader].endpoint(), 300);

    // the followers freeze, so nobody campaigns and the leader comes back as the leader
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.members[f].pause();
    }
    c.members[leader].restart();
    let endpoint = c.members[leader].endpoint();
    let read = std::thread::spawn(move || linearizable_revision(&endpoint));
    // the read is taken (its read index fixed) while the followers are frozen, and answered
    // once they confirm the leadership again
    std::thread::sleep(Duration::from_millis(300));
    for &f in &followers {
        c.members[f].resume();
    }
    let seen = read.join().expect("read thread");
    assert!(
        seen >= acked,
        "the restarted leader answered a linearizable get at revision {seen}, \
         below the acknowledged put at {acked}"
    );
    c.wait_converged(CONVERGE);
}
