//! The full copy: every key of the prefix at one source revision R, page by page, into
//! fenced destination txns (several in flight), then the prune (destination keys the source
//! lacks at R are deleted), then the checkpoint that hands over to the watch from R+1.
//!
//! Progress is checkpointed as "every source key below K is copied", so a restart continues
//! the copy where it stopped as long as R is not compacted at the source; otherwise the
//! engine starts a new copy at the current revision (with the prune).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::RangeRequest;
use cairn_proto::etcdserverpb::response_op::Response;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::batch::Op;
use crate::checkpoint::SyncState;
use crate::client::Client;
use crate::destination::{commit, commit_txn};
use crate::engine::Ctx;
use crate::error::{Error, Side};
use crate::fence::Fence;
use crate::pager::Pager;
use crate::progress::{Event, Phase};

/// Where a full copy starts.
pub struct Plan {
    /// 0: read the current source revision and start a new copy there.
    pub revision: i64,
    pub copied_below: Option<Vec<u8>>,
    pub copy_done: bool,
    pub prune: bool,
    pub reason: String,
}

/// Runs a full copy to the end; returns the revision the watch continues after.
pub async fn full_sync(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    plan: Plan,
) -> Result<i64, Error> {
    ctx.stats.set_phase(Phase::Syncing);
    let started = Instant::now();
    let (start, end) = ctx.cfg.keys.source_range();
    let rev = if plan.revision == 0 {
        let r = src
            .range(RangeRequest {
                key: start.clone(),
                range_end: end.clone(),
                count_only: true,
                ..Default::default()
            })
            .await?;
        let rev = r.header.map(|h| h.revision).unwrap_or(0);
        save_checkpoint(ctx, dst, fence, rev, Some(copy_state(false, plan.prune))).await?;
        rev
    } else {
        plan.revision
    };
    ctx.stats.saw_source(rev);
    (ctx.report)(Event::SyncStarted {
        revision: rev,
        reason: plan.reason,
    });
    let mut keys = 0;
    if !plan.copy_done {
        let from = plan.copied_below.unwrap_or(start);
        keys = copy(ctx, src, dst, fence, rev, from, end, plan.prune).await?;
        save_checkpoint(ctx, dst, fence, rev, Some(copy_state(true, plan.prune))).await?;
    }
    ctx.stats.set_phase(Phase::Pruning);
    let (pruned, kept_extra) = prune(ctx, src, dst, fence, rev, plan.prune).await?;
    // The sync is over: the watch continues after `rev`.
    save_checkpoint(ctx, dst, fence, rev, None).await?;
    ctx.stats.mirrored(rev);
    ctx.progress_made();
    (ctx.report)(Event::SyncDone {
        revision: rev,
        keys,
        pruned,
        kept_extra,
        seconds: started.elapsed().as_secs_f64(),
    });
    if kept_extra > 0 {
        (ctx.report)(Event::Warning {
            message: format!(
                "{kept_extra} destination keys under the prefix are not at the source and were kept (first copy without --prune); `make-mirror --check` lists them"
            ),
        });
    }
    Ok(rev)
}

/// The full copy's state without a watermark: about to start, or done (`copy_done`).
fn copy_state(copy_done: bool, prune: bool) -> SyncState {
    SyncState {
        copied_below: None,
        copy_done,
        prune,
    }
}

/// Commits the checkpoint at `rev`, with `sync` as the full copy's state, in a txn of its own.
async fn save_checkpoint(
    ctx: &Ctx,
    dst: &Client,
    fence: &Fence,
    rev: i64,
    sync: Option<SyncState>,
) -> Result<(), Error> {
    let checkpoint = ctx.checkpoint(rev, sync, None);
    commit(
        dst,
        fence,
        Vec::new(),
        Some((&ctx.checkpoint_key, &checkpoint)),
    )
    .await?;
    Ok(())
}

/// One destination txn of the copy, done: its sequence number and the source key below
/// which everything is copied once it and every earlier txn are done.
struct Done {
    seq: u64,
    below: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
async fn copy(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    rev: i64,
    from: Vec<u8>,
    end: Vec<u8>,
    prune: bool,
) -> Result<u64, Error> {
    // Pages are read ahead by a task while the txns of earlier pages are in flight.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let mut pager = Pager::new(src.clone(), from, end, rev, false);
    let reader = tokio::spawn(async move {
        loop {
            let page = pager.next_page().await;
            let stop = !matches!(page, Ok(Some(_)));
            if tx.send(page).await.is_err() || stop {
                return;
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    let per_txn = ctx.cfg.data_ops_per_txn();
    let max_bytes = ctx.cfg.max_txn_bytes;
    let parallel = ctx.cfg.sync_parallelism.max(1);
    let mut inflight = FuturesUnordered::new();
    let mut seq = 0u64;
    // Finished txns not yet contiguous with the watermark, by sequence number.
    let mut finished: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut next_expected = 0u64;
    let mut watermark: Option<Vec<u8>> = None;
    let mut checkpointed: Option<Vec<u8>> = None;
    let mut last_report = Instant::now();
    let mut copied = 0u64;
    // Destination ops with the source key each came from.
    let mut pending: VecDeque<(Op, Vec<u8>)> = VecDeque::new();
    let mut pending_bytes = 0usize;
    let mut done_reading = false;
    loop {
        let full = pending.len() >= per_txn || pending_bytes >= max_bytes;
        let can_send = !pending.is_empty() && (full || done_reading);
        if inflight.len() >= parallel || (!can_send && done_reading && !inflight.is_empty()) {
            let d: Done = inflight.next().await.expect("non-empty")?;
            finished.insert(d.seq, d.below);
            while let Some(below) = finished.remove(&next_expected) {
                watermark = Some(below);
                next_expected += 1;
            }
            ctx.progress_made();
            continue;
        }
        if can_send {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            let mut below = Vec::new();
            while let Some((op, _)) = pending.front() {
                let b = op.bytes();
                if !chunk.is_empty() && (chunk.len() >= per_txn || bytes + b > max_bytes) {
                    break;
                }
                let (op, source_key) = pending.pop_front().expect("front exists");
                bytes += b;
                below = source_key;
                chunk.push(op);
            }
            below.push(0);
            pending_bytes -= bytes;
            copied += chunk.len() as u64;
            // Carry the watermark now and then; a stale one only means more to redo.
            let ckpt = match &watermark {
                Some(w) if checkpointed.as_ref() != Some(w) && seq.is_multiple_of(16) => {
                    checkpointed = Some(w.clone());
                    let state = SyncState {
                        copied_below: Some(hex::encode(w)),
                        copy_done: false,
                        prune,
                    };
                    Some(ctx.checkpoint(rev, Some(state), None))
                }
                _ => None,
            };
            let (dst, fence, key, s) =
                (dst.clone(), fence.clone(), ctx.checkpoint_key.clone(), seq);
            inflight.push(async move {
                commit(
                    &dst,
                    &fence,
                    chunk,
                    ckpt.as_ref().map(|c| (key.as_slice(), c)),
                )
                .await?;
                Ok::<_, Error>(Done { seq: s, below })
            });
            seq += 1;
            ctx.stats.txns_total.fetch_add(1, Relaxed);
            ctx.stats.keys_copied_total.store(copied, Relaxed);
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                (ctx.report)(Event::SyncProgress {
                    revision: rev,
                    keys: copied,
                });
            }
            continue;
        }
        if done_reading {
            break;
        }
        match rx.recv().await.transpose()?.flatten() {
            Some(kvs) => {
                for kv in kvs {
                    let Some(key) = ctx.cfg.keys.to_dest(&kv.key) else {
                        continue;
                    };
                    let lease = ctx.dest_lease(src, dst, kv.lease).await?;
                    let op = Op::Put {
                        key,
                        value: kv.value,
                        lease,
                    };
                    pending_bytes += op.bytes();
                    pending.push_back((op, kv.key));
                }
            }
            None => done_reading = true,
        }
    }
    ctx.stats.keys_copied_total.store(copied, Relaxed);
    Ok(copied)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Deletes (when `prune`) or counts the destination keys under the prefix that the source
/// lacks at `rev`. Returns (deleted, kept).
///
/// A destination user that may write the prefix but not read it (all etcd's make-mirror
/// needs) cannot list the destination's keys: then the prune deletes blindly instead, and
/// the keys a first copy keeps cannot be counted.
async fn prune(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    rev: i64,
    prune: bool,
) -> Result<(u64, u64), Error> {
    match merge_prune(ctx, src, dst, fence, rev, prune).await {
        Err(e) if e.is_permission_denied(Side::Destination) => {
            if !prune {
                (ctx.report)(Event::Warning {
                    message: "destination keys under the prefix that the source lacks were not counted: the destination user may not read the prefix".into(),
                });
                return Ok((0, 0));
            }
            let deleted = blind_prune(ctx, src, dst, fence, rev).await?;
            ctx.stats.keys_pruned_total.fetch_add(deleted, Relaxed);
            Ok((deleted, 0))
        }
        r => r,
    }
}

/// Deletes every destination range between the source's keys at `rev` (mapped to the
/// destination), the mirrors' reserved namespace excepted: the same result as
/// [`merge_prune`] without reading the destination, at the cost of one delete operation per
/// source key (most delete nothing, which neither etcd nor cairn counts as a revision).
async fn blind_prune(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    rev: i64,
) -> Result<u64, Error> {
    let keys = &ctx.cfg.keys;
    let (s_start, s_end) = keys.source_range();
    let (d_start, d_end) = keys.dest_range();
    let mut source = Pager::new(src.clone(), s_start, s_end, rev, true);
    let mut gap_from = d_start;
    let mut ops: Vec<Op> = Vec::new();
    let mut deleted = 0u64;
    let mut done = false;
    while !done {
        let gap_to = match source.next().await? {
            Some(kv) => match keys.to_dest(&kv.key) {
                Some(k) => k,
                None => continue,
            },
            None => {
                done = true;
                d_end.clone()
            }
        };
        for (key, end) in crate::keys::outside_reserved(&gap_from, &gap_to) {
            ops.push(Op::DeleteRange { key, end });
        }
        gap_from = gap_to;
        gap_from.push(0);
        if ops.len() >= ctx.cfg.data_ops_per_txn() || (done && !ops.is_empty()) {
            let r = commit_txn(dst, fence, std::mem::take(&mut ops), None).await?;
            deleted += r
                .responses
                .iter()
                .map(|op| match &op.response {
                    Some(Response::ResponseDeleteRange(d)) => d.deleted.max(0) as u64,
                    _ => 0,
                })
                .sum::<u64>();
        }
    }
    Ok(deleted)
}

/// Merges the source keys at `rev` with the destination's keys under the prefix; deletes
/// (when `prune`) or counts the destination keys the source lacks. Returns (deleted, kept).
async fn merge_prune(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    rev: i64,
    prune: bool,
) -> Result<(u64, u64), Error> {
    let keys = &ctx.cfg.keys;
    let (s_start, s_end) = keys.source_range();
    let (d_start, d_end) = keys.dest_range();
    let mut source = Pager::new(src.clone(), s_start, s_end, rev, true);
    let mut dest = Pager::new(dst.clone(), d_start, d_end, 0, true);
    let mut next_source: Option<Vec<u8>> = None;
    let mut source_done = false;
    let mut deletes: Vec<Op> = Vec::new();
    let (mut deleted, mut kept) = (0u64, 0u64);
    while let Some(kv) = dest.next().await? {
        if crate::keys::is_reserved(&kv.key) {
            continue;
        }
        // Advance the source to the first mapped key >= this destination key.
        while !source_done && next_source.as_ref().is_none_or(|s| *s < kv.key) {
            match source.next().await? {
                Some(s) => next_source = keys.to_dest(&s.key),
                None => {
                    source_done = true;
                    next_source = None;
                }
            }
        }
        if next_source.as_ref() == Some(&kv.key) {
            continue;
        }
        if !prune {
            kept += 1;
            continue;
        }
        deletes.push(Op::Delete { key: kv.key });
        if deletes.len() >= ctx.cfg.data_ops_per_txn() {
            deleted += deletes.len() as u64;
            commit(dst, fence, std::mem::take(&mut deletes), None).await?;
        }
    }
    if !deletes.is_empty() {
        deleted += deletes.len() as u64;
        commit(dst, fence, deletes, None).await?;
    }
    ctx.stats.keys_pruned_total.fetch_add(deleted, Relaxed);
    Ok((deleted, kept))
}
