//! Leader-only background work: revoking expired leases and auto-compaction.

use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest};
use cairn_storage::{Op, StoreError};

use crate::config::AutoCompaction;
use crate::context::Context;
use crate::errors::ApiError;

/// Revokes leases whose TTL ran out, while this member leads; a new leader first restarts
/// every lease clock so no lease expires early because leadership moved.
pub async fn expire_leases(ctx: Context) {
    let mut was_leader = false;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let leader = ctx.node.status().is_leader;
        if leader && !was_leader {
            ctx.store.promote_leases(ctx.node.lease_grace());
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        for id in ctx.store.expired_leases() {
            match ctx
                .write(Op::LeaseRevoke(LeaseRevokeRequest { id }).into())
                .await
            {
                Ok(_) | Err(ApiError::Store(StoreError::LeaseNotFound)) => {
                    tracing::debug!(lease = id, "lease expired")
                }
                Err(e) => tracing::warn!(lease = id, error = %e, "could not revoke expired lease"),
            }
        }
    }
}

/// etcd's auto-compaction: `periodic` keeps the given window of history (checked every
/// tenth of it, at most hourly), `revision` keeps the last N revisions (checked every 5 min).
pub async fn auto_compact(ctx: Context, mode: AutoCompaction) {
    let check_every = match mode {
        AutoCompaction::Off => return,
        AutoCompaction::Periodic(window) => {
            (window / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
        }
        AutoCompaction::Revision(_) => Duration::from_secs(300),
    };
    // revisions seen at each check, to find the one that is `window` old
    let mut seen: Vec<(Instant, i64)> = Vec::new();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(check_every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = Instant::now();
        let current = ctx.store.current_revision();
        seen.push((now, current));
        let target = match mode {
            AutoCompaction::Periodic(window) => {
                let old: Vec<_> = seen
                    .iter()
                    .filter(|(t, _)| now.duration_since(*t) >= window)
                    .copied()
                    .collect();
                seen.retain(|(t, _)| {
                    now.duration_since(*t) < window || old.last().is_some_and(|(lt, _)| lt == t)
                });
                old.last().map(|(_, r)| *r)
            }
            AutoCompaction::Revision(keep) => Some(current - keep),
            AutoCompaction::Off => None,
        };
        let Some(rev) = target else { continue };
        if !ctx.node.status().is_leader || rev <= ctx.store.compact_revision() {
            continue;
        }
        match ctx
            .write(
                Op::Compact(CompactionRequest {
                    revision: rev,
                    physical: false,
                })
                .into(),
            )
            .await
        {
            Ok(_) => tracing::info!(revision = rev, "auto-compacted"),
            Err(ApiError::Store(StoreError::Compacted)) => {}
            Err(e) => tracing::warn!(revision = rev, error = %e, "auto-compaction failed"),
        }
    }
}
