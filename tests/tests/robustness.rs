//! The robustness harness's bounded set (issue 20; `tests/src/robustness`): real clusters
//! under concurrent clients and seeded faults, every history checked for linearizability
//! with porcupine-rs, every watch stream against the history, HashKV across members. The
//! same scenarios against real etcd 3.4 check the harness itself (etcd must pass), and a
//! deliberately wrong model must fail on a real history. `tests/robustness/soak.sh` runs
//! random seeds for as long as it is given.

use cairn_tests::Kind;
use cairn_tests::robustness::faults::Faults;
use cairn_tests::robustness::model::DeletesIgnored;
use cairn_tests::robustness::{Scenario, check_with, partitions, rig, run};

fn scenario(kind: Kind, members: usize, faults: Faults, seed: u64) -> Scenario {
    Scenario {
        kind,
        members,
        faults,
        seconds: 12,
        clients: 6,
        keys: 4,
        seed,
    }
}

fn passes(s: Scenario) {
    let report = run(&s);
    assert!(report.operations > 100, "{}", report.describe(&s));
    assert!(report.violations.is_empty(), "{}", report.describe(&s));
}

#[test]
fn cairn_three_members_killed_and_paused() {
    passes(scenario(Kind::Cairn, 3, Faults::KillAndPause, 1));
}

/// Partitions need root and iptables: skipped when not root; as root (as `.ci/run` runs
/// here, and it installs iptables) a missing iptables fails in CI.
fn partitions_here() -> bool {
    if !partitions::is_root() {
        eprintln!("skipped: partitions need root (firewall rules)");
        return false;
    }
    cairn_tests::require_iptables() && partitions::available()
}

#[test]
fn cairn_three_members_partitioned_killed_and_paused() {
    if partitions_here() {
        passes(scenario(Kind::Cairn, 3, Faults::All, 5));
    }
}

#[test]
fn cairn_one_member_killed() {
    passes(scenario(Kind::Cairn, 1, Faults::Kill, 2));
}

#[test]
fn etcd_three_members_under_faults() {
    if !cairn_tests::require_etcd() {
        return;
    }
    let faults = if partitions::available() {
        Faults::All
    } else {
        Faults::KillAndPause
    };
    passes(scenario(Kind::Etcd, 3, faults, 3));
}

/// The checker proves something: a real history that deletes and then reads is not
/// linearizable under a model where deletes do nothing.
#[test]
fn a_wrong_model_fails_on_a_real_history() {
    let s = Scenario {
        seconds: 4,
        ..scenario(Kind::Cairn, 1, Faults::Kill, 4)
    };
    let report = run(&s);
    assert!(report.violations.is_empty(), "{}", report.describe(&s));
    let wrong = check_with::<DeletesIgnored>(&report.history);
    assert!(
        wrong.iter().any(|v| v.contains("not linearizable")),
        "the wrong model passed {} operations",
        report.operations
    );
}

/// The partitions are real: a leader cut off from its followers loses the cluster, which
/// elects another, and it no longer answers linearizable reads; healed, it rejoins. Run on
/// both etcd and cairn (the same body).
fn a_partitioned_leader_is_replaced(kind: Kind) {
    use cairn_proto::etcdserverpb::RangeRequest;
    use cairn_tests::grpc::{Clients, block_on};
    use std::time::Duration;

    let rig = rig::start(kind, 3, &[], true);
    let (mut c, net) = (rig.cluster, rig.net.expect("a partitionable cluster"));
    let old = c.wait_leader(Duration::from_secs(30));
    // a lease every member knows of
    let granted = {
        let ep = c.members[old].endpoint();
        block_on(async move {
            let mut cl = Clients::connect(&ep).await.expect("connect");
            cl.lease
                .lease_grant(cairn_proto::etcdserverpb::LeaseGrantRequest { ttl: 30, id: 0 })
                .await
                .expect("grant")
                .into_inner()
                .id
        })
    };
    c.wait_converged(Duration::from_secs(30));
    net.isolate(old).expect("isolate the leader");
    let others: Vec<usize> = (0..3).filter(|&m| m != old).collect();
    let new = cairn_tests::wait::until(Duration::from_secs(30), "a new leader", || {
        let s = c.members[others[0]].status(Duration::from_secs(1)).ok()?;
        let leader = s.leader;
        others.iter().find(|&&m| c.member_id(m) == leader).copied()
    });
    assert_ne!(new, old);
    let endpoint = c.members[old].endpoint();
    let read = block_on(async move {
        let mut cl = Clients::connect(&endpoint).await.expect("connect");
        let get = cl.kv.range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        tokio::time::timeout(Duration::from_secs(5), get).await
    });
    assert!(
        !matches!(read, Ok(Ok(_))),
        "the cut-off ex-leader answered a linearizable read: {read:?}"
    );
    // nor renews a lease: the new leader runs the lease clocks now, and a renewal it never
    // saw would let the lease expire before its TTL after the renewal
    let endpoint = c.members[old].endpoint();
    let renewed = block_on(async move {
        let mut cl = Clients::connect(&endpoint).await.expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(cairn_proto::etcdserverpb::LeaseKeepAliveRequest { id: granted })
            .await
            .expect("queue");
        let call = async {
            let mut s = cl
                .lease
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            tokio_stream::StreamExt::next(&mut s)
                .await
                .unwrap_or_else(|| Err(tonic::Status::unavailable("ended")))
        };
        tokio::time::timeout(Duration::from_secs(5), call).await
    });
    assert!(
        !matches!(&renewed, Ok(Ok(r)) if r.ttl > 0),
        "the cut-off ex-leader renewed a lease: {renewed:?}"
    );
    net.heal().expect("heal");
    c.wait_converged(Duration::from_secs(60));
}

#[test]
fn a_partitioned_leader_is_replaced_cairn() {
    if partitions_here() {
        a_partitioned_leader_is_replaced(Kind::Cairn);
    }
}

#[test]
fn a_partitioned_leader_is_replaced_etcd() {
    if partitions_here() && cairn_tests::require_etcd() {
        a_partitioned_leader_is_replaced(Kind::Etcd);
    }
}
