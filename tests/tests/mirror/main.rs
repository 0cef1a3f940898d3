//! `cairnutl make-mirror`: real servers on loopback, the mirror as a real process. Every test
//! ends with the destination prefix equal to the source prefix (keys, values, whether a lease
//! is attached) and `make-mirror --check` agreeing.
//!
//! - [`auth`]: auth on both sides, a read-only source user and a write-only destination user.
//! - [`basic`]: copy then stream, prefix rewrite, `--check` finding differences, the fence.
//! - [`faults`]: the mirror killed mid-stream, the source compacted while the mirror is
//!   down, the source killed and restarted, txns larger than `--max-txn-ops`.
//! - [`cluster`]: a three-member source whose leader is killed under a write load.
//! - [`leases`]: `--with-leases`, a leased key expiring.
//! - [`etcd`]: real etcd as the source and as the destination.
//! - [`under_faults`]: two three-member clusters under the robustness harness's faults.

mod auth;
mod basic;
mod cluster;
mod etcd;
mod faults;
mod leases;
mod under_faults;

use std::time::Duration;

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RequestOp, TxnRequest,
};
use cairn_tests::mirror::{check, wait_equal};
use cairn_tests::{Clients, grpc};

/// How long a mirror may take to catch up in these tests (debug builds, 2 cores).
pub const CATCH_UP: Duration = Duration::from_secs(30);
/// Fence TTL for tests: a killed mirror's claim lapses quickly.
pub const FENCE: &str = "--fence-ttl=2s";

pub fn put(endpoint: &str, key: &str, value: &str) {
    put_lease(endpoint, key, value, 0);
}

pub fn put_lease(endpoint: &str, key: &str, value: &str, lease: i64) {
    try_put_lease(endpoint, key, value, lease).expect("put");
}

/// A put that may fail (a member being killed, say).
pub fn try_put_lease(endpoint: &str, key: &str, value: &str, lease: i64) -> anyhow::Result<()> {
    let (ep, key, value) = (endpoint.to_string(), key.to_string(), value.to_string());
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        c.kv.put(PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            lease,
            ..Default::default()
        })
        .await?;
        anyhow::Ok(())
    })
}

pub fn del(endpoint: &str, key: &str) {
    try_del(endpoint, key).expect("delete");
}

/// A delete that may fail (a member being killed, say).
pub fn try_del(endpoint: &str, key: &str) -> anyhow::Result<()> {
    let (ep, key) = (endpoint.to_string(), key.to_string());
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        c.kv.delete_range(DeleteRangeRequest {
            key: key.into_bytes(),
            ..Default::default()
        })
        .await?;
        anyhow::Ok(())
    })
}

/// One txn putting every `(key, value)`; returns its revision.
pub fn txn_puts(endpoint: &str, kvs: &[(String, String)]) -> i64 {
    let ep = endpoint.to_string();
    let success: Vec<RequestOp> = kvs
        .iter()
        .map(|(k, v)| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.clone().into_bytes(),
                value: v.clone().into_bytes(),
                ..Default::default()
            })),
        })
        .collect();
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        let r =
            c.kv.txn(TxnRequest {
                success,
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::Ok(r.header.map(|h| h.revision).unwrap_or(0))
    })
    .expect("txn")
}

pub fn compact_latest(endpoint: &str) -> i64 {
    let ep = endpoint.to_string();
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        let rev =
            c.kv.range(cairn_proto::etcdserverpb::RangeRequest {
                key: b"x".to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .header
            .map(|h| h.revision)
            .unwrap_or(0);
        c.kv.compact(CompactionRequest {
            revision: rev,
            physical: true,
        })
        .await?;
        anyhow::Ok(rev)
    })
    .expect("compact")
}

pub fn grant(endpoint: &str, ttl: i64) -> i64 {
    let ep = endpoint.to_string();
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        let r = c
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await?;
        anyhow::Ok(r.into_inner().id)
    })
    .expect("lease grant")
}

/// The destination equals the source for the prefix, and `--check` says so too.
pub fn assert_mirrored(
    source: &str,
    prefix: &str,
    dest: &str,
    dest_prefix: &str,
    check_args: &[&str],
) {
    wait_equal(source, prefix, dest, dest_prefix, CATCH_UP);
    let mut args = vec!["--prefix", prefix, "--dest-prefix", dest_prefix];
    args.extend_from_slice(check_args);
    let out = check(source, dest, &args);
    assert!(
        out.status.success(),
        "--check found differences:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Events named `name` in a list of mirror events.
pub fn count(events: &[serde_json::Value], name: &str) -> usize {
    events.iter().filter(|e| e["event"] == name).count()
}

/// Waits until the destination equals the source except for one destination key.
pub fn wait_until_mirrored_except(source: &str, dest: &str, except: &str) {
    cairn_tests::wait::until(CATCH_UP, "destination to catch up", || {
        let s = cairn_tests::mirror::contents(source, "/app/", "/dst/");
        let mut d = cairn_tests::mirror::contents(dest, "/dst/", "/dst/");
        d.retain(|(k, _, _)| k != except);
        (s == d).then_some(())
    });
}
