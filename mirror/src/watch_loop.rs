//! The steady state: a watch on the source prefix from the checkpoint's revision + 1, with
//! require-leader and progress notifications. Each source revision becomes one destination
//! txn that also moves the checkpoint to it (a revision with more operations than a txn may
//! hold is split, and the checkpoint records how much of it is applied). Silence is not
//! trusted: after `watch_idle` without a response the mirror asks for progress, and a stream
//! that does not answer within another `watch_idle` is reopened.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use cairn_proto::mvccpb::Event as WatchEvent;
use cairn_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::batch::{self, Op, Revision};
use crate::checkpoint::Partial;
use crate::client::Client;
use crate::engine::Ctx;
use crate::error::Error;
use crate::fence::Fence;
use crate::pipeline::{self, Pipeline};
use crate::progress::{Event, Phase};

/// Most operations read from the source ahead of the destination.
const MAX_BACKLOG_OPS: usize = 50_000;

/// Watches and applies until an error (the engine decides: retry, re-sync or stop).
pub async fn run(
    ctx: &Ctx,
    src: &Client,
    dst: &Client,
    fence: &Fence,
    from: i64,
    skip: usize,
) -> Result<(), Error> {
    ctx.stats.set_phase(Phase::Watching);
    ctx.stats.mirrored(from);
    let (start, end) = ctx.cfg.keys.source_range();
    let (req_tx, req_rx) = mpsc::channel(4);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: start,
            range_end: end,
            start_revision: from + 1,
            progress_notify: true,
            ..Default::default()
        })),
    };
    let _ = req_tx.send(create).await;
    let mut stream = src
        .watch_client()
        .watch(src.request(ReceiverStream::new(req_rx), false))
        .await
        .map_err(|s| src.err(s))?
        .into_inner();
    let current = pipeline::current_value(dst, &ctx.checkpoint_key).await?;
    let mut pipe = Pipeline::new(
        dst.clone(),
        fence.clone(),
        ctx.checkpoint_key.clone(),
        ctx.cfg.txn_pipeline,
        current,
        ctx.stats.clone(),
    );
    let mut inbox = Inbox {
        backlog: Vec::new(),
        ops: 0,
        queued: from,
        skip,
        watch_id: None,
    };
    let mut mirrored = from;
    let idle = ctx.cfg.watch_idle;
    let mut asked: Option<Instant> = None;
    loop {
        if let Some(l) = &ctx.leases
            && l.take_lost()
        {
            return Err(Error::NeedResync(
                "a destination lease expired while its source lease lives: copying the prefix again"
                    .into(),
            ));
        }
        // Whatever arrived while the window was full goes out now, merged.
        if pipe.has_room() && !inbox.backlog.is_empty() {
            let cfg = &ctx.cfg;
            let revisions = std::mem::take(&mut inbox.backlog);
            inbox.ops = 0;
            let per_txn = cfg.data_ops_per_txn();
            for t in batch::plan(revisions, per_txn, cfg.max_txn_bytes, cfg.merge_revisions) {
                let partial = t
                    .partial
                    .map(|(revision, applied)| Partial { revision, applied });
                pipe.send(t.ops, &ctx.checkpoint(t.revision, None, partial), t.events);
            }
        }
        // Read the source ahead of the destination, up to a bound.
        let answer = if inbox.ops >= MAX_BACKLOG_OPS {
            Some(pipe.answer().await)
        } else {
            let wait = asked.map_or(idle, |t| idle.saturating_sub(t.elapsed()));
            tokio::select! {
                biased;
                a = pipe.answer(), if !pipe.is_empty() => Some(a),
                m = tokio::time::timeout(wait, stream.next()) => {
                    match m {
                        Err(_) => {
                            probe_silence(&req_tx, &mut asked, idle).await?;
                        }
                        Ok(None) => {
                            return Err(Error::WatchBroken("the source closed the stream".into()));
                        }
                        Ok(Some(Err(s))) => return Err(src.err(s)),
                        Ok(Some(Ok(resp))) => {
                            asked = None;
                            inbox.take(ctx, src, dst, resp, from).await?;
                        }
                    }
                    None
                }
            }
        };
        if let Some(a) = answer
            && let Some(acked) = pipe.settle(a).await?
        {
            mirrored = mirrored.max(acked.revision);
            ctx.stats.mirrored(mirrored);
            ctx.stats.events_total.fetch_add(acked.events, Relaxed);
            ctx.stats.txns_total.fetch_add(1, Relaxed);
            ctx.progress_made();
        }
    }
}

/// The stream was silent for `idle`: ask for progress, or give up if that was asked already.
async fn probe_silence(
    req_tx: &mpsc::Sender<WatchRequest>,
    asked: &mut Option<Instant>,
    idle: std::time::Duration,
) -> Result<(), Error> {
    if asked.is_some() {
        return Err(Error::WatchBroken(format!(
            "no answer to a progress request within {}s (network failure or a stalled member); reopening",
            idle.as_secs_f64()
        )));
    }
    let req = WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    };
    if req_tx.send(req).await.is_err() {
        return Err(Error::WatchBroken("request stream closed".into()));
    }
    *asked = Some(Instant::now());
    Ok(())
}

/// What the watch delivered and the pipeline has not taken yet.
struct Inbox {
    backlog: Vec<Revision>,
    /// Operations in `backlog`.
    ops: usize,
    /// The last revision received.
    queued: i64,
    /// Operations of revision `queued + 1` applied before a restart (a split revision).
    skip: usize,
    watch_id: Option<i64>,
}

impl Inbox {
    /// Takes one watch response: its events become revisions in the backlog.
    async fn take(
        &mut self,
        ctx: &Ctx,
        src: &Client,
        dst: &Client,
        resp: WatchResponse,
        from: i64,
    ) -> Result<(), Error> {
        let header_rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        ctx.stats.saw_source(header_rev);
        if resp.compact_revision > 0 {
            return Err(Error::Compacted {
                wanted: self.queued + 1,
                compacted: resp.compact_revision,
            });
        }
        if resp.canceled {
            return Err(Error::WatchBroken(if resp.cancel_reason.is_empty() {
                "canceled by the source".to_string()
            } else {
                format!("canceled by the source: {}", resp.cancel_reason)
            }));
        }
        if resp.created {
            self.watch_id = Some(resp.watch_id);
            (ctx.report)(Event::Watching { revision: from + 1 });
            return Ok(());
        }
        if resp.events.is_empty() {
            // A progress notification for our watcher: every revision up to the header's is
            // delivered. Moving the checkpoint keeps an idle prefix from needing a full copy
            // after the source compacts. (Answers to progress requests, watch ID -1, only
            // prove the stream is alive: etcd 3.4 sends them ahead of pending events.)
            if self.watch_id == Some(resp.watch_id) && header_rev > self.queued && self.skip == 0 {
                self.backlog.push(Revision {
                    revision: header_rev,
                    ops: Vec::new(),
                    events: 0,
                    already: 0,
                });
                self.queued = header_rev;
            }
            return Ok(());
        }
        for (rev, events) in by_revision(resp.events) {
            if rev <= self.queued {
                continue; // never apply a revision twice
            }
            let n = events.len() as u64;
            let mut ops = Vec::with_capacity(events.len());
            for e in events {
                if let Some(op) = to_op(ctx, src, dst, e).await? {
                    ops.push(op);
                }
            }
            let already = if self.skip > 0 && rev == self.queued + 1 {
                std::mem::take(&mut self.skip).min(ops.len())
            } else {
                0
            };
            let ops = ops.split_off(already);
            self.ops += ops.len() + 1;
            self.backlog.push(Revision {
                revision: rev,
                ops,
                events: n,
                already,
            });
            self.queued = rev;
        }
        Ok(())
    }
}

async fn to_op(ctx: &Ctx, src: &Client, dst: &Client, e: WatchEvent) -> Result<Option<Op>, Error> {
    let Some(kv) = e.kv else { return Ok(None) };
    let Some(key) = ctx.cfg.keys.to_dest(&kv.key) else {
        return Ok(None);
    };
    Ok(Some(if e.r#type == EventType::Delete as i32 {
        Op::Delete { key }
    } else {
        let lease = ctx.dest_lease(src, dst, kv.lease).await?;
        Op::Put {
            key,
            value: kv.value,
            lease,
        }
    }))
}

/// Events grouped by the revision that made them, in order.
fn by_revision(events: Vec<WatchEvent>) -> Vec<(i64, Vec<WatchEvent>)> {
    let mut out: Vec<(i64, Vec<WatchEvent>)> = Vec::new();
    for e in events {
        let rev = e.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0);
        match out.last_mut() {
            Some((r, v)) if *r == rev => v.push(e),
            _ => out.push((rev, vec![e])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::mvccpb::KeyValue;

    fn ev(rev: i64, key: &str) -> WatchEvent {
        WatchEvent {
            kv: Some(KeyValue {
                key: key.into(),
                mod_revision: rev,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_revision_in_order() {
        let g = by_revision(vec![ev(5, "a"), ev(5, "b"), ev(6, "a"), ev(8, "c")]);
        let shape: Vec<(i64, usize)> = g.iter().map(|(r, v)| (*r, v.len())).collect();
        assert_eq!(shape, vec![(5, 2), (6, 1), (8, 1)]);
    }
}
