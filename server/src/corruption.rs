//! etcd's corruption check: members compare HashKV at a common revision.
//!
//! - At start (`--experimental-initial-corrupt-check`): this member hashes its data at its
//!   current revision and asks every peer for its hash at that revision; a peer with the same
//!   compact revision and a different hash means this member's data differs, and it refuses
//!   to start (etcd: "found data inconsistency with peers").
//! - Periodically (`--experimental-corrupt-check-time`), on the leader: every member's hash at
//!   the leader's revision; members whose hash differs from the majority get a CORRUPT alarm
//!   (through raft, so every member applies it). While it is raised, writes fail with
//!   `etcdserver: corrupt cluster`; reads are still served so operators can inspect the data
//!   and take snapshots.
//!
//! Peers are asked over the peer transport (as etcd asks `/members/hashkv` on peer URLs), so
//! the peer TLS settings apply. A peer that is behind (future revision), compacted past the
//! revision, or unreachable is skipped for that round.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::{AlarmRequest, AlarmResponse, AlarmType};
use cairn_storage::{KvHash, Op};

use crate::context::Context;

const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// This member's hash at `rev`, computed off the async threads.
async fn local_hash(ctx: &Context, rev: i64) -> anyhow::Result<KvHash> {
    let store = ctx.store.clone();
    Ok(tokio::task::spawn_blocking(move || store.hash_kv(rev)).await??)
}

/// Every other member's HashKV at `rev`: member ID -> (hash, compact revision), for the
/// members that answered.
async fn peer_hashes(ctx: &Context, rev: i64) -> BTreeMap<u64, (u32, i64)> {
    let mut out = BTreeMap::new();
    for m in ctx.node.members() {
        if m.id == ctx.node.member_id {
            continue;
        }
        match ctx.node.peer_hash_kv(&m, rev, PEER_TIMEOUT).await {
            Ok(h) => {
                out.insert(m.id, h);
            }
            Err(e) => tracing::debug!(peer = %format!("{:x}", m.id), error = %e, revision = rev,
                "no hash from peer this round"),
        }
    }
    out
}

/// The start-up check; an error means this member must not serve.
pub async fn initial_check(ctx: &Context) -> anyhow::Result<()> {
    let rev = ctx.store.current_revision();
    let mine = local_hash(ctx, rev).await?;
    let peers = peer_hashes(ctx, rev).await;
    let mismatched: Vec<String> = peers
        .iter()
        .filter(|(_, (hash, compact))| *compact == mine.compact_revision && *hash != mine.hash)
        .map(|(id, (hash, _))| format!("{id:x} (hash {hash})"))
        .collect();
    if !mismatched.is_empty() {
        anyhow::bail!(
            "{:x} found data inconsistency with peers: at revision {rev} this member's hash is {} \
             but {} differ; restore this member from a snapshot or replace it",
            ctx.node.member_id,
            mine.hash,
            mismatched.join(", ")
        );
    }
    tracing::info!(
        revision = rev,
        hash = mine.hash,
        peers = peers.len(),
        "initial corruption check passed"
    );
    Ok(())
}

/// The leader's periodic check, until shutdown.
pub async fn periodic(ctx: Context, every: Duration) {
    let mut stop = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !ctx.node.status().is_leader {
            continue;
        }
        if let Err(e) = check_once(&ctx).await {
            tracing::warn!(error = %e, "corruption check failed");
        }
    }
}

async fn check_once(ctx: &Context) -> anyhow::Result<()> {
    let rev = ctx.store.current_revision();
    let mine = local_hash(ctx, rev).await?;
    let mut hashes = peer_hashes(ctx, rev).await;
    hashes.retain(|_, (_, compact)| *compact == mine.compact_revision);
    hashes.insert(ctx.node.member_id, (mine.hash, mine.compact_revision));
    for id in corrupt_members(&hashes, ctx.node.member_id) {
        let already = ctx
            .store
            .alarms()
            .unwrap_or_default()
            .iter()
            .any(|a| a.member_id == id && a.alarm == AlarmType::Corrupt as i32);
        if already {
            continue;
        }
        tracing::error!(member = %format!("{id:x}"), revision = rev, "member's data differs from the cluster's; raising CORRUPT alarm");
        ctx.propose::<AlarmResponse>(Op::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: id,
            alarm: AlarmType::Corrupt as i32,
        }))
        .await?;
    }
    Ok(())
}

/// Members whose hash differs from the majority's; without a majority, those that differ
/// from the leader (etcd's rule).
fn corrupt_members(hashes: &BTreeMap<u64, (u32, i64)>, leader: u64) -> Vec<u64> {
    let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
    for (hash, _) in hashes.values() {
        *votes.entry(*hash).or_default() += 1;
    }
    let majority = votes
        .iter()
        .find(|(_, n)| **n * 2 > hashes.len())
        .map(|(h, _)| *h);
    let good = majority.or_else(|| hashes.get(&leader).map(|(h, _)| *h));
    hashes
        .iter()
        .filter(|(_, (h, _))| Some(*h) != good)
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minority_is_corrupt_and_without_a_majority_the_leader_decides() {
        let h = |v: &[(u64, u32)]| v.iter().map(|(id, h)| (*id, (*h, 0))).collect();
        assert_eq!(corrupt_members(&h(&[(1, 7), (2, 7), (3, 9)]), 1), vec![3]);
        assert_eq!(corrupt_members(&h(&[(1, 9), (2, 7), (3, 7)]), 1), vec![1]);
        assert_eq!(corrupt_members(&h(&[(1, 7), (2, 9)]), 1), vec![2]);
        assert!(corrupt_members(&h(&[(1, 7), (2, 7), (3, 7)]), 1).is_empty());
    }
}
