//! A three-member cairn cluster with peer TLS and client TLS (client certificates required
//! on both): the leader killed with SIGKILL under writes loses nothing acknowledged; a
//! learner added with an https:// peer URL catches up from a snapshot streamed over peer
//! TLS; a member whose peer certificate comes from another CA cannot join.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};
use cairn_tests::grpc::{Clients, block_on};
use cairn_tests::pki::{Pki, ServerTls};
use cairn_tests::{TestCluster, require_etcd, wait};

const CONVERGE: Duration = Duration::from_secs(60);

fn put(endpoint: &str, tls: &ServerTls, key: &str) -> anyhow::Result<()> {
    let (endpoint, key, tls) = (endpoint.to_string(), key.to_string(), tls.clone());
    block_on(async move {
        let mut c = Clients::connect_tls(&endpoint, Some(&tls)).await?;
        c.kv.put(PutRequest {
            key: key.into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await?;
        Ok(())
    })
}

fn keys(endpoint: &str, tls: &ServerTls, prefix: &str) -> BTreeSet<String> {
    let (endpoint, prefix, tls) = (endpoint.to_string(), prefix.to_string(), tls.clone());
    block_on(async move {
        let mut c = Clients::connect_tls(&endpoint, Some(&tls)).await?;
        let mut end = prefix.clone().into_bytes();
        *end.last_mut().expect("prefix") += 1;
        let r =
            c.kv.range(RangeRequest {
                key: prefix.into_bytes(),
                range_end: end,
                keys_only: true,
                serializable: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::Ok(
            r.kvs
                .into_iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect(),
        )
    })
    .expect("read keys over TLS")
}

#[test]
fn tls_cluster_survives_a_leader_kill_and_refuses_a_foreign_peer() {
    if !require_etcd() {
        return;
    }
    let mut pki = Pki::new("cluster-ca");
    let tls = pki.server_tls(true);
    // raft snapshots every 50 entries, 10 kept behind: a new member gets a streamed copy
    let mut c = TestCluster::start_tls(
        3,
        &[
            "--snapshot-count",
            "50",
            "--experimental-snapshot-catchup-entries",
            "10",
        ],
        &tls,
    );
    for m in &c.members {
        assert!(m.peer_url().starts_with("https://"), "{}", m.peer_url());
    }
    let leader = c.wait_leader(CONVERGE);
    let targets: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| c.members[i].endpoint())
        .collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, tls) = (acked.clone(), stop.clone(), tls.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{i:06}");
                // failures while the leader is gone are expected; only acknowledged writes count
                if put(&targets[(i % 2) as usize], &tls, &key).is_ok() {
                    acked.lock().expect("acked").push(key);
                }
                i += 1;
            }
        })
    };
    let acked_now = || acked.lock().expect("acked").len();
    wait::until(CONVERGE, "50 writes before the kill", || {
        (acked_now() >= 50).then_some(())
    });
    c.members[leader].kill9();
    let new_leader = c.wait_leader(Duration::from_secs(20));
    assert_ne!(new_leader, leader);
    let before = acked_now();
    wait::until(CONVERGE, "writes to resume under the new leader", || {
        (acked_now() >= before + 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    c.members[leader].restart();
    c.wait_converged(CONVERGE);
    let acked: BTreeSet<String> = acked.lock().expect("acked").iter().cloned().collect();
    for m in &c.members {
        let have = keys(&m.endpoint(), &tls, "load/");
        let lost: Vec<_> = acked.difference(&have).collect();
        assert!(
            lost.is_empty(),
            "{} lost acknowledged writes {lost:?}",
            m.name()
        );
    }

    // a learner added with an https:// peer URL catches up over peer TLS from a snapshot
    let good = c.add_member(true);
    c.members[good].launch();
    c.members[good].wait_ready();
    c.wait_converged(CONVERGE);
    let log = std::fs::read_to_string(c.members[good].log_path()).expect("learner log");
    assert!(
        log.contains("installed the leader's snapshot"),
        "caught up from a snapshot"
    );
    // the learner holds what the voters hold: every acknowledged write, and any write applied
    // whose answer the leader kill lost
    let learner = keys(&c.members[good].endpoint(), &tls, "load/");
    assert!(
        acked.is_subset(&learner),
        "the learner lacks acknowledged writes"
    );
    assert_eq!(learner, keys(&c.members[0].endpoint(), &tls, "load/"));

    // a member (a voter: etcd allows one learner at a time) added with https:// peer URLs,
    // but whose certificates another CA signed; four of five voters still make a quorum
    let i = c.add_member(false);
    let mut foreign = Pki::new("foreign-ca");
    c.members[i].set_tls(foreign.server_tls(true));
    c.members[i].launch();
    let status = c.members[i]
        .wait_exit(Duration::from_secs(40))
        .expect("a member with a foreign peer CA must give up joining");
    assert!(!status.success());
    let log = c.members[i].log_tail(20);
    assert!(log.contains("no member of the cluster answered"), "{log}");
    wait::until(
        Duration::from_secs(10),
        "a member to log the refused peer",
        || {
            c.members[..4]
                .iter()
                .any(|m| {
                    let log = m.log_tail(400);
                    log.contains("rejected connection") && log.contains("listener=\"peer\"")
                })
                .then_some(())
        },
    );
}
