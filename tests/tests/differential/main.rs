//! Differential test: a seeded random sequence of KV operations is applied over gRPC to a
//! fresh real etcd (the oracle) and a fresh cairn; every response must be identical (ignoring
//! header cluster_id, member_id and raft_term), and so must HashKV along the way and at the end.
//!
//! - `CAIRN_DIFF_SEED=<n>` replays one seed (decimal or 0x-hex); failures print the seed.
//! - `CAIRN_DIFF_OTHER=etcd` compares etcd with a second etcd: a check of the test itself.
//! - `CAIRN_DIFF_OPS=<n>` changes the number of operations per seed (default 400).

mod generator;
mod ops;

use cairn_proto::etcdserverpb::{HashKvRequest, RangeRequest};
use cairn_tests::{Clients, Kind, TestServer, require_etcd};

use crate::generator::{Gen, State};
use crate::ops::{Op, Outcome, apply};

const DEFAULT_SEEDS: [u64; 2] = [0x5eed_0001, 0x5eed_0002];
const DEFAULT_OPS: usize = 400;
/// Compare HashKV every this many operations, to localize a divergence.
const HASH_EVERY: usize = 50;

#[tokio::test(flavor = "current_thread")]
async fn kv_operations_match_etcd() {
    if !require_etcd() {
        return;
    }
    let other = match std::env::var("CAIRN_DIFF_OTHER").as_deref() {
        Ok("etcd") => Kind::Etcd,
        Ok("cairn") | Err(_) => Kind::Cairn,
        Ok(other) => panic!("CAIRN_DIFF_OTHER must be etcd or cairn, not {other:?}"),
    };
    let seeds = match std::env::var("CAIRN_DIFF_SEED") {
        Ok(s) => vec![parse_seed(&s)],
        Err(_) => DEFAULT_SEEDS.to_vec(),
    };
    let ops = std::env::var("CAIRN_DIFF_OPS")
        .map(|n| n.parse().expect("CAIRN_DIFF_OPS is a number"))
        .unwrap_or(DEFAULT_OPS);
    for seed in seeds {
        run(seed, ops, other).await;
    }
}

fn parse_seed(s: &str) -> u64 {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("CAIRN_DIFF_SEED={s:?}: {e}"))
}

async fn run(seed: u64, ops: usize, other: Kind) {
    eprintln!("differential: seed={seed:#x} ops={ops} etcd vs {other:?}");
    let oracle_server = TestServer::start(Kind::Etcd);
    let other_server = TestServer::start(other);
    let mut oracle = Clients::connect(&oracle_server.endpoint())
        .await
        .expect("connect to etcd");
    let mut tested = Clients::connect(&other_server.endpoint())
        .await
        .expect("connect");
    let fail = |i: usize, what: &str| -> String {
        format!("seed={seed:#x} (CAIRN_DIFF_SEED={seed:#x}) op #{i}: {what}")
    };

    let mut generator = Gen::new(seed);
    let mut state = State {
        revision: 1,
        ..Default::default()
    };
    let mut errors = 0;
    for i in 0..ops {
        let op = generator.op(&state);
        let expected = apply(&mut oracle, &op).await;
        let actual = apply(&mut tested, &op).await;
        assert_eq!(
            actual,
            expected,
            "{}",
            fail(
                i,
                &format!("responses differ (left: {other:?}, right: etcd)\nrequest: {op:#?}")
            )
        );
        if matches!(expected, Outcome::Error { .. }) {
            errors += 1;
        }
        if let (Op::Compact(c), Outcome::Compact(_)) = (&op, &expected) {
            state.compacted = c.revision;
        }
        if let Some(rev) = expected.revision() {
            state.revision = rev;
        }
        state.live = live_keys(&mut oracle).await;
        if (i + 1) % HASH_EVERY == 0 {
            assert_eq!(
                hash_kv(&mut tested).await,
                hash_kv(&mut oracle).await,
                "{}",
                fail(i, "HashKV differs")
            );
        }
    }
    assert_eq!(
        hash_kv(&mut tested).await,
        hash_kv(&mut oracle).await,
        "{}",
        fail(ops, "final HashKV differs")
    );
    // Guard against a generator that degenerated into errors or no-ops.
    assert!(
        errors < ops / 2,
        "seed={seed:#x}: {errors} of {ops} operations failed"
    );
    assert!(
        state.revision > (ops / 4) as i64,
        "seed={seed:#x}: only reached revision {}",
        state.revision
    );
    eprintln!(
        "differential: seed={seed:#x} ok: revision {} compacted {} errors {errors}",
        state.revision, state.compacted
    );
}

/// All live key-values on the oracle, which the generator uses for realistic comparands.
async fn live_keys(clients: &mut Clients) -> Vec<cairn_proto::mvccpb::KeyValue> {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    clients
        .kv
        .range(all)
        .await
        .expect("range over all keys")
        .into_inner()
        .kvs
}

/// (hash, compact_revision, header revision) of HashKV at the current revision.
async fn hash_kv(clients: &mut Clients) -> (u32, i64, i64) {
    let resp = clients
        .maintenance
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .expect("HashKV")
        .into_inner();
    (
        resp.hash,
        resp.compact_revision,
        resp.header.map_or(0, |h| h.revision),
    )
}
