//! Three-member cairn clusters as real processes on loopback, driven with real etcdctl and
//! gRPC: bootstrap with etcd's IDs, client semantics on every member, leader failure under
//! load, learner catch-up from a streamed snapshot, promote, remove, update, move-leader,
//! no-leader errors, and a full restart.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::etcdserverpb::{MoveLeaderRequest, PutRequest, RangeRequest};
use cairn_tests::etcd_ids::{self, DEFAULT_TOKEN};
use cairn_tests::grpc::{Clients, block_on};
use cairn_tests::{
    Background, TestCluster, etcdctl_err, etcdctl_json, etcdctl_ok, require_etcd, wait,
};

/// Generous: these waits end as soon as the state is there; the bound only matters on failure.
const CONVERGE: Duration = Duration::from_secs(60);

fn put(endpoint: &str, key: &str, value: &str) -> Result<(), tonic::Status> {
    let endpoint = endpoint.to_string();
    let (key, value) = (key.to_string(), value.to_string());
    block_on(async move {
        let mut c = Clients::connect(&endpoint)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        c.kv.put(PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            ..Default::default()
        })
        .await
        .map(|_| ())
    })
}

/// Keys under `prefix` on `endpoint`, read locally (serializable) or through the leader.
fn keys(endpoint: &str, prefix: &str, serializable: bool) -> Result<Vec<String>, tonic::Status> {
    let endpoint = endpoint.to_string();
    let prefix = prefix.to_string();
    block_on(async move {
        let mut c = Clients::connect(&endpoint)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut end = prefix.clone().into_bytes();
        *end.last_mut().unwrap() += 1;
        let r =
            c.kv.range(RangeRequest {
                key: prefix.into_bytes(),
                range_end: end,
                keys_only: true,
                serializable,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.kvs
            .into_iter()
            .map(|kv| String::from_utf8(kv.key).unwrap())
            .collect())
    })
}

fn followers(c: &TestCluster, leader: usize) -> Vec<usize> {
    (0..c.members.len()).filter(|&i| i != leader).collect()
}

#[test]
fn members_get_etcd_ids_and_serve_clients_on_every_member() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let ids: Vec<u64> = c
        .members
        .iter()
        .map(|m| etcd_ids::member_id(&[m.peer_url().as_str()], DEFAULT_TOKEN))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(c.member_id(i), *id, "member {i} has etcd's member ID");
    }
    let all = c.endpoints();
    // every member publishes its name and client URLs (etcd's MemberList)
    let want: BTreeSet<(String, String, String)> = c
        .members
        .iter()
        .map(|m| (m.name().to_string(), m.peer_url(), m.url()))
        .collect();
    wait::until(CONVERGE, "member list with names and client URLs", || {
        let list = etcdctl_json(&all, &["member", "list"]);
        assert_eq!(
            list["header"]["cluster_id"].as_u64(),
            Some(etcd_ids::cluster_id(&ids)),
            "etcd's cluster ID"
        );
        let got: BTreeSet<(String, String, String)> = list["members"]
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_string(),
                    m["peerURLs"][0].as_str().unwrap_or("").to_string(),
                    m["clientURLs"][0].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        (got == want).then_some(())
    });

    let leader = c.wait_leader(CONVERGE);
    let f = followers(&c, leader);
    let (f0, f1) = (c.members[f[0]].endpoint(), c.members[f[1]].endpoint());
    // real etcdctl finds every member from one endpoint (--cluster dials the client URLs)
    let statuses = etcdctl_json(&f0, &["endpoint", "status", "--cluster"]);
    let statuses = statuses.as_array().expect("one status per member");
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    let leader_id = c.member_id(leader);
    for st in statuses {
        assert_eq!(st["Status"]["leader"].as_u64(), Some(leader_id), "{st}");
    }
    // a write on a follower is forwarded; a linearizable read on the other sees it at once
    etcdctl_ok(&f0, &["put", "fwd", "v1"]);
    assert_eq!(
        etcdctl_ok(&f1, &["get", "fwd", "--print-value-only"]).trim(),
        "v1"
    );
    // a watch on a follower replays and then streams writes made through the leader
    let leader_ep = c.members[leader].endpoint();
    etcdctl_ok(&leader_ep, &["put", "w", "x"]);
    let mut watch = Background::etcdctl(&f1, &["watch", "w", "--rev", "1"]);
    assert_eq!(watch.wait_lines(3, CONVERGE)[..3], ["PUT", "w", "x"]);
    etcdctl_ok(&leader_ep, &["put", "w", "y"]);
    assert_eq!(watch.wait_lines(6, CONVERGE)[3..6], ["PUT", "w", "y"]);
    watch.kill();
    // leases: grant on one follower, keep alive and inspect on the other
    let grant = etcdctl_ok(&f0, &["lease", "grant", "60"]);
    let lease = grant
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    etcdctl_ok(&f0, &["put", "leased", "v", "--lease", &lease]);
    let kept = etcdctl_ok(&f1, &["lease", "keep-alive", "--once", &lease]);
    assert!(kept.contains("keepalived with TTL(60)"), "{kept}");
    let ttl = etcdctl_ok(&f1, &["lease", "timetolive", &lease, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    c.wait_converged(CONVERGE);
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let leader = c.wait_leader(CONVERGE);
    let targets: Vec<String> = followers(&c, leader)
        .into_iter()
        .map(|i| c.members[i].endpoint())
        .collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{i:06}");
                // errors while the leader is gone are expected; only acks count
                if put(&targets[(i % 2) as usize], &key, "v").is_ok() {
                    acked.lock().unwrap().push(key);
                }
                i += 1;
            }
        })
    };
    let acked_now = || acked.lock().unwrap().len();
    wait::until(CONVERGE, "100 writes before the kill", || {
        (acked_now() >= 100).then_some(())
    });
    c.members[leader].kill9();
    let new_leader = c.wait_leader(Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    let before = acked_now();
    wait::until(CONVERGE, "writes to resume under the new leader", || {
        (acked_now() >= before + 100).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    c.members[leader].restart();
    c.wait_converged(CONVERGE);
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    for m in &c.members {
        let have: BTreeSet<String> = keys(&m.endpoint(), "load/", true)
            .expect("read")
            .into_iter()
            .collect();
        let lost: Vec<_> = acked.difference(&have).collect();
        assert!(
            lost.is_empty(),
            "{} lost acknowledged writes {lost:?}",
            m.name()
        );
    }
}

#[test]
fn a_learner_catches_up_from_a_snapshot_and_is_promoted() {
    if !require_etcd() {
        return;
    }
    // raft snapshots every 50 entries, 10 entries kept behind: a new member cannot be fed
    // from the log and gets a streamed copy of the leader's store
    let mut c = TestCluster::start(
        3,
        &[
            "--snapshot-count",
            "50",
            "--experimental-snapshot-catchup-entries",
            "10",
        ],
    );
    let leader = c.members[c.wait_leader(CONVERGE)].endpoint();
    for i in 0..200 {
        put(&leader, &format!("k/{i:03}"), &"x".repeat(100)).expect("put");
    }
    let all = c.endpoints();
    let d = c.add_member(true);
    let list = etcdctl_json(&all, &["member", "list"]);
    let added = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["peerURLs"][0] == c.members[d].peer_url().as_str())
        .expect("the new member is listed")
        .clone();
    assert_eq!(added["isLearner"], true);
    assert!(
        added.get("name").is_none_or(|n| n == ""),
        "not started: no name yet: {added}"
    );
    let id = format!("{:x}", added["ID"].as_u64().unwrap());
    let err = etcdctl_err(&all, &["member", "promote", &id]);
    assert!(
        err.contains("can only promote a learner member which is in sync with leader"),
        "{err}"
    );

    c.members[d].launch();
    c.members[d].wait_ready();
    c.wait_converged(CONVERGE);
    let log = std::fs::read_to_string(c.members[d].log_path()).unwrap();
    assert!(
        log.contains("installed the leader's snapshot"),
        "caught up from a snapshot"
    );
    assert_eq!(
        keys(&c.members[d].endpoint(), "k/", true).unwrap().len(),
        200
    );

    let out = etcdctl_ok(&all, &["member", "promote", &id]);
    assert!(out.contains(&format!("Member {id:>16} promoted")), "{out}");
    let status = cairn_tests::grpc::status_blocking(&c.members[d].endpoint(), CONVERGE).unwrap();
    assert!(!status.is_learner);
    put(&c.members[d].endpoint(), "after", "promote").expect("writes through the new voter");
    c.wait_converged(CONVERGE);
}

#[test]
fn a_removed_member_stops_and_its_data_dir_is_refused() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let leader = c.wait_leader(CONVERGE);
    let victim = followers(&c, leader)[0];
    let id = format!("{:x}", c.member_id(victim));
    let others: String = followers(&c, victim)
        .into_iter()
        .map(|i| c.members[i].endpoint())
        .collect::<Vec<_>>()
        .join(",");
    let err = etcdctl_err(&others, &["member", "remove", "1234"]);
    assert!(err.contains("etcdserver: member not found"), "{err}");
    let out = etcdctl_ok(&others, &["member", "remove", &id]);
    assert!(out.contains(&format!("Member {id:>16} removed")), "{out}");

    let status = c.members[victim]
        .wait_exit(Duration::from_secs(30))
        .expect("the removed member exits");
    assert!(!status.success());
    assert!(
        c.members[victim]
            .log_tail(5)
            .contains("permanently removed from the cluster")
    );
    c.members[victim].launch();
    let status = c.members[victim]
        .wait_exit(Duration::from_secs(30))
        .expect("a removed member's data dir is refused");
    assert!(!status.success());
    assert!(
        c.members[victim]
            .log_tail(3)
            .contains("cannot be used again")
    );

    etcdctl_ok(&others, &["put", "still", "serving"]);
    let list = etcdctl_json(&others, &["member", "list"]);
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
}

#[test]
fn learner_limits_urls_and_member_update() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(1, &[]);
    let ep = c.endpoints();
    let taken = c.members[0].peer_url();
    let err = etcdctl_err(
        &ep,
        &["member", "add", "x", &format!("--peer-urls={taken}")],
    );
    assert!(
        err.contains("etcdserver: Peer URLs already exists"),
        "{err}"
    );
    let l = c.add_member(true);
    let err = etcdctl_err(
        &ep,
        &[
            "member",
            "add",
            "y",
            "--peer-urls=http://127.0.0.1:9",
            "--learner",
        ],
    );
    assert!(
        err.contains("etcdserver: too many learner members in cluster"),
        "{err}"
    );
    let url = c.members[l].peer_url();
    let id = c.member_id_listed(&url);
    let moved = "http://127.0.0.1:19";
    let out = etcdctl_ok(
        &ep,
        &["member", "update", &id, &format!("--peer-urls={moved}")],
    );
    assert!(out.contains("updated"), "{out}");
    let list = etcdctl_json(&ep, &["member", "list"]);
    assert!(
        list["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["peerURLs"][0] == moved)
    );
    let err = etcdctl_err(
        &ep,
        &["member", "promote", &format!("{:x}", c.member_id(0))],
    );
    assert!(
        err.contains("etcdserver: can only promote a learner member"),
        "{err}"
    );
    etcdctl_ok(&ep, &["member", "remove", &id]);
}

#[test]
fn move_leader_moves_it_and_refuses_bad_targets() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let leader = c.wait_leader(CONVERGE);
    let target = followers(&c, leader)[0];
    let target_id = format!("{:x}", c.member_id(target));
    let all = c.endpoints();
    let out = etcdctl_ok(&all, &["move-leader", &target_id]);
    assert!(out.contains(&format!("to {target_id}")), "{out}");
    assert_eq!(c.wait_leader(CONVERGE), target);
    let err = etcdctl_err(&all, &["move-leader", "1234"]);
    assert!(err.contains("etcdserver: bad leader transferee"), "{err}");
    // MoveLeader must be sent to the leader
    let follower = c.members[leader].endpoint();
    let err = block_on(async move {
        let mut cl = Clients::connect(&follower).await.unwrap();
        cl.maintenance
            .move_leader(MoveLeaderRequest { target_id: 1 })
            .await
            .unwrap_err()
    });
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::FailedPrecondition, "etcdserver: not leader")
    );
    etcdctl_ok(&all, &["put", "after", "move"]);
    c.wait_converged(CONVERGE);
}

#[test]
fn without_a_quorum_requests_fail_with_no_leader() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let leader = c.wait_leader(CONVERGE);
    let f = followers(&c, leader);
    put(&c.members[leader].endpoint(), "k", "v").unwrap();
    c.wait_converged(CONVERGE);
    c.members[leader].kill9();
    c.members[f[0]].kill9();
    let survivor = c.members[f[1]].endpoint();
    let err = put(&survivor, "k", "v2").unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
    let err = keys(&survivor, "k", false).unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
    // a serializable read is still served from the local copy
    assert_eq!(keys(&survivor, "k", true).unwrap(), ["k"]);
}

#[test]
fn every_member_restarted_finds_its_data() {
    if !require_etcd() {
        return;
    }
    let mut c = TestCluster::start(3, &[]);
    let ep = c.members[0].endpoint();
    for i in 0..50 {
        put(&ep, &format!("r/{i:02}"), "v").unwrap();
    }
    let (hash, rev) = c.wait_converged(CONVERGE);
    // one clean stop, two crashes
    c.members[0].stop();
    c.members[1].kill9();
    c.members[2].kill9();
    // a member with a data dir keeps its identity and membership whatever the flags say
    c.members[2].set_initial_cluster("m3=http://127.0.0.1:9,elsewhere=http://127.0.0.1:10");
    for m in &mut c.members {
        m.launch();
    }
    for m in &mut c.members {
        m.wait_ready();
    }
    c.wait_leader(CONVERGE);
    assert_eq!(c.wait_converged(CONVERGE), (hash, rev));
    for m in &c.members {
        assert_eq!(keys(&m.endpoint(), "r/", false).unwrap().len(), 50);
    }
}

/// Regression (found by the `--force-new-cluster` test): `member add` of a voter to a
/// one-member cluster waited for the joint configuration to be applied, which cannot commit
/// before the new member starts, and timed out; etcd answers at once, and the new member
/// then joins.
#[test]
fn adding_a_voter_to_a_one_member_cluster_answers_before_it_starts() {
    let mut c = TestCluster::start(1, &[]);
    etcdctl_ok(&c.endpoints(), &["put", "k", "v"]);
    let added = c.add_member(false);
    c.members[added].launch();
    c.members[added].wait_ready();
    c.wait_converged(CONVERGE);
    let list = etcdctl_json(&c.endpoints(), &["member", "list"]);
    let voters = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["isLearner"].as_bool() != Some(true))
        .count();
    assert_eq!(voters, 2, "{list}");
}
