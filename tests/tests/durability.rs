//! Crash and shutdown behaviour of cairn's data dir (cairn only: etcd is not under test).
//!
//! - Every put the server acknowledged survives `kill -9` mid-stream and a restart on the same
//!   data dir, with the revision it was acknowledged at.
//! - SIGTERM shuts the server down cleanly (exit 0) within a deadline, keeping its data.
//!
//! `CAIRN_DURABILITY_KIND=etcd` runs the kill -9 test against real etcd, to check the test.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};
use cairn_tests::{Clients, Kind, TestServer};
use tokio::sync::watch;
use tokio::task::JoinSet;

const WRITERS: usize = 4;
/// Acknowledged puts to wait for (in total, per round) before pulling the plug.
const ACKS_BEFORE_KILL: usize = 200;
const ROUNDS: usize = 2;
const DEADLINE: Duration = Duration::from_secs(60);

/// One acknowledged put: key, value and the revision in the response header.
#[derive(Clone, Debug)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
}

fn key(round: usize, writer: usize, i: usize) -> String {
    format!("r{round}/w{writer}/{i:06}")
}

fn value(round: usize, writer: usize, i: usize) -> String {
    format!("{round}-{writer}-{i}")
}

/// Writes `key(round, writer, 0..)` one at a time until the server stops answering.
async fn writer(
    mut clients: Clients,
    round: usize,
    id: usize,
    acked: watch::Sender<usize>,
) -> Vec<Ack> {
    let mut acks = Vec::new();
    for i in 0.. {
        let (key, value) = (key(round, id, i), value(round, id, i));
        let put = PutRequest {
            key: key.clone().into(),
            value: value.clone().into(),
            ..Default::default()
        };
        match clients.kv.put(put).await {
            Ok(resp) => {
                let revision = resp
                    .into_inner()
                    .header
                    .expect("put response header")
                    .revision;
                acks.push(Ack {
                    key,
                    value,
                    revision,
                });
                acked.send_modify(|n| *n += 1);
            }
            Err(_) => break, // the server is gone; this put may or may not have landed
        }
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_kill9() {
    let kind = match std::env::var("CAIRN_DURABILITY_KIND").as_deref() {
        Ok("etcd") if cairn_tests::require_etcd() => Kind::Etcd,
        Ok("etcd") => return,
        _ => Kind::Cairn,
    };
    let mut server = TestServer::start(kind);
    let mut all_acks: Vec<Ack> = Vec::new();
    for round in 0..ROUNDS {
        let clients = Clients::connect(&server.endpoint()).await.expect("connect");
        let (tx, mut rx) = watch::channel(0usize);
        let mut writers = JoinSet::new();
        for id in 0..WRITERS {
            writers.spawn(writer(clients.clone(), round, id, tx.clone()));
        }
        tokio::time::timeout(DEADLINE, rx.wait_for(|n| *n >= ACKS_BEFORE_KILL))
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: {ACKS_BEFORE_KILL} puts not acknowledged in {DEADLINE:?}")
            })
            .expect("writers alive");

        server.kill9(); // while the writers still have puts in flight
        let round_acks: Vec<Vec<Ack>> = tokio::time::timeout(DEADLINE, writers.join_all())
            .await
            .expect("writers stop once the server is gone");
        for acks in &round_acks {
            let revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
            assert!(
                revisions.windows(2).all(|w| w[0] < w[1]),
                "a writer's revisions must increase: {revisions:?}"
            );
        }
        all_acks.extend(round_acks.into_iter().flatten());

        server.restart();
        verify(&server, &all_acks, round).await;
    }
}

/// Every acknowledged put is present with its value at its acknowledged revision; puts that
/// were in flight at the crash either landed whole or not at all.
async fn verify(server: &TestServer, acks: &[Ack], round: usize) {
    let mut clients = Clients::connect(&server.endpoint())
        .await
        .expect("connect after restart");
    let all = RangeRequest {
        key: b"r".to_vec(),
        range_end: b"s".to_vec(),
        ..Default::default()
    };
    let resp = clients
        .kv
        .range(all)
        .await
        .expect("range after restart")
        .into_inner();
    let current = resp.header.expect("header").revision;
    let stored: BTreeMap<String, (String, i64)> = resp
        .kvs
        .into_iter()
        .map(|kv| {
            let key = String::from_utf8(kv.key).expect("UTF-8 key");
            (
                key,
                (
                    String::from_utf8(kv.value).expect("UTF-8 value"),
                    kv.mod_revision,
                ),
            )
        })
        .collect();

    let mut revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        acks.len(),
        "each acknowledged put has its own revision"
    );
    let max_acked = revisions.last().copied().unwrap_or(0);
    assert!(
        current >= max_acked,
        "round {round}: revision {current} went back below acknowledged {max_acked}"
    );

    eprintln!(
        "round {round}: {} puts acknowledged, {} stored, revision {current}",
        acks.len(),
        stored.len()
    );
    for ack in acks {
        match stored.get(&ack.key) {
            Some((value, rev)) => {
                assert_eq!(
                    value, &ack.value,
                    "round {round}: {} has the wrong value",
                    ack.key
                );
                assert_eq!(
                    *rev, ack.revision,
                    "round {round}: {} mod_revision",
                    ack.key
                );
            }
            None => panic!(
                "round {round}: acknowledged put {} (revision {}) lost after kill -9; {} of {} keys present",
                ack.key,
                ack.revision,
                stored.len(),
                acks.len()
            ),
        }
    }
    for (key, (stored_value, rev)) in &stored {
        assert_eq!(
            stored_value,
            &expected_value(key),
            "put {key} landed with a torn value"
        );
        assert!(
            *rev <= current,
            "{key} at {rev} is above the current revision {current}"
        );
    }
}

/// The value the writers put under `key` (`r<round>/w<writer>/<i>`).
fn expected_value(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    let number = |part: &str, tag: &str| -> usize {
        part.strip_prefix(tag)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected key {key}"))
    };
    match parts[..] {
        [r, w, i] => value(number(r, "r"), number(w, "w"), number(i, "")),
        _ => panic!("unexpected key {key}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_keeps_data() {
    let mut server = TestServer::start(Kind::Cairn);
    let mut clients = Clients::connect(&server.endpoint()).await.expect("connect");
    for i in 0..5 {
        let put = PutRequest {
            key: format!("k{i}").into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        clients.kv.put(put).await.expect("put");
    }
    // Revisions 2..=6; compacting at 4 must also survive the restart.
    clients
        .kv
        .compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .expect("compact");
    drop(clients);

    let status = server.stop(); // SIGTERM, bounded by TestServer's stop deadline
    assert!(
        status.success(),
        "cairn must exit 0 on SIGTERM, got {status}"
    );

    server.restart();
    let mut clients = Clients::connect(&server.endpoint())
        .await
        .expect("connect after restart");
    let all = RangeRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        ..Default::default()
    };
    let resp = clients.kv.range(all).await.expect("range").into_inner();
    assert_eq!(resp.header.expect("header").revision, 6);
    assert_eq!(resp.count, 5);
    let old = RangeRequest {
        key: b"k0".to_vec(),
        revision: 3,
        ..Default::default()
    };
    let err = clients
        .kv
        .range(old)
        .await
        .expect_err("revision 3 was compacted");
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let put = PutRequest {
        key: b"k9".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let rev = clients
        .kv
        .put(put)
        .await
        .expect("put after restart")
        .into_inner()
        .header
        .expect("header")
        .revision;
    assert_eq!(rev, 7, "the revision continues where it stopped");
}
