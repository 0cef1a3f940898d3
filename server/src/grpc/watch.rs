//! The Watch service: one task per client stream reads requests; one task per watcher
//! forwards the hub's batches (adding prev_kv, splitting fragments, progress notifications).
//! Both write to the stream's bounded response channel, so a slow client slows only itself.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use cairn_proto::etcdserverpb::watch_create_request::FilterType;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::watch_server::Watch;
use cairn_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use cairn_proto::mvccpb::Event;
use cairn_proto::mvccpb::event::EventType;
use cairn_storage::{KeyRange, WatchBatch, WatchFilters, WatcherId};
use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::context::Context;

pub struct WatchService(pub Context);

type Out = mpsc::Sender<Result<WatchResponse, Status>>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(128);
        tokio::spawn(run_stream(self.0.clone(), req.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Active {
    hub_id: WatcherId,
    task: JoinHandle<()>,
}

/// Serves one client stream until the client goes away or the server shuts down.
async fn run_stream(ctx: Context, mut input: Streaming<WatchRequest>, tx: Out) {
    let mut watchers: HashMap<i64, Active> = HashMap::new();
    let mut next_id: i64 = 0;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let req = tokio::select! {
            m = input.next() => match m {
                Some(Ok(r)) => r,
                _ => break,
            },
            _ = shutdown.wait_for(|s| *s) => break,
            _ = tx.closed() => break,
        };
        let sent = match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                create(&ctx, c, &tx, &mut watchers, &mut next_id).await
            }
            Some(RequestUnion::CancelRequest(c)) => {
                let known = match watchers.remove(&c.watch_id) {
                    Some(a) => {
                        ctx.store.watch_hub().cancel(a.hub_id);
                        a.task.abort();
                        true
                    }
                    None => false,
                };
                let resp = WatchResponse {
                    header: ctx.header(ctx.store.current_revision()),
                    watch_id: c.watch_id,
                    canceled: known,
                    ..Default::default()
                };
                tx.send(Ok(resp)).await.is_ok()
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let resp = WatchResponse {
                    header: ctx.header(ctx.store.current_revision()),
                    watch_id: -1,
                    ..Default::default()
                };
                tx.send(Ok(resp)).await.is_ok()
            }
            None => true,
        };
        if !sent {
            break;
        }
    }
    for (_, a) in watchers {
        ctx.store.watch_hub().cancel(a.hub_id);
        a.task.abort();
    }
}

async fn create(
    ctx: &Context,
    c: WatchCreateRequest,
    tx: &Out,
    watchers: &mut HashMap<i64, Active>,
    next_id: &mut i64,
) -> bool {
    let current = ctx.store.current_revision();
    let refuse = |id: i64, reason: &str| WatchResponse {
        header: ctx.header(current),
        watch_id: id,
        created: true,
        canceled: true,
        cancel_reason: reason.to_string(),
        ..Default::default()
    };
    let range = KeyRange::new(c.key.clone(), c.range_end.clone());
    if !range.is_single() && range.end != [0] && range.key >= range.end {
        return tx
            .send(Ok(refuse(-1, "mvcc: watcher range is empty")))
            .await
            .is_ok();
    }
    let id = if c.watch_id != 0 {
        if watchers.contains_key(&c.watch_id) {
            return tx
                .send(Ok(refuse(
                    c.watch_id,
                    "mvcc: duplicate watch ID provided on the WatchStream",
                )))
                .await
                .is_ok();
        }
        c.watch_id
    } else {
        while watchers.contains_key(next_id) {
            *next_id += 1;
        }
        let id = *next_id;
        *next_id += 1;
        id
    };
    let filters = WatchFilters {
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
    };
    let (hub_id, rx) = ctx
        .store
        .watch_hub()
        .watch(range, c.start_revision, filters);
    let created = WatchResponse {
        header: ctx.header(current),
        watch_id: id,
        created: true,
        ..Default::default()
    };
    if tx.send(Ok(created)).await.is_err() {
        ctx.store.watch_hub().cancel(hub_id);
        return false;
    }
    let task = tokio::spawn(forward(ctx.clone(), id, hub_id, c, rx, tx.clone()));
    watchers.insert(id, Active { hub_id, task });
    true
}

/// Moves one watcher's batches from the hub to the client stream.
async fn forward(
    ctx: Context,
    id: i64,
    hub_id: WatcherId,
    c: WatchCreateRequest,
    mut rx: mpsc::Receiver<WatchBatch>,
    tx: Out,
) {
    let interval = ctx.config.progress_notify_interval;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + interval,
        interval.max(Duration::from_millis(10)),
    );
    let mut sent_since_tick = false;
    loop {
        let batch = tokio::select! {
            b = rx.recv() => match b {
                Some(b) => b,
                None => return,
            },
            _ = ticker.tick(), if c.progress_notify => {
                if !sent_since_tick && ctx.store.watch_hub().is_synced(hub_id) {
                    let resp = WatchResponse { header: ctx.header(ctx.store.current_revision()), watch_id: id, ..Default::default() };
                    if tx.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
                sent_since_tick = false;
                continue;
            }
        };
        if batch.compact_revision != 0 {
            let resp = WatchResponse {
                header: ctx.header(batch.revision),
                watch_id: id,
                canceled: true,
                compact_revision: batch.compact_revision,
                ..Default::default()
            };
            let _ = tx.send(Ok(resp)).await;
            return;
        }
        let mut events = batch.events;
        if c.prev_kv {
            events = with_prev_kvs(&ctx, events).await;
        }
        let resp = WatchResponse {
            header: ctx.header(batch.revision),
            watch_id: id,
            events,
            ..Default::default()
        };
        let parts = if c.fragment {
            // etcd splits at the gRPC message limit: --max-request-bytes plus the overhead
            fragments(
                resp,
                ctx.config.max_request_bytes + super::GRPC_OVERHEAD_BYTES,
            )
        } else {
            vec![resp]
        };
        for p in parts {
            if tx.send(Ok(p)).await.is_err() {
                return;
            }
        }
        sent_since_tick = true;
    }
}

/// Adds each event's previous version (etcd reads it at mod_revision - 1; a create has none).
async fn with_prev_kvs(ctx: &Context, events: Vec<Event>) -> Vec<Event> {
    let store = ctx.store.clone();
    let fallback = events.clone();
    tokio::task::spawn_blocking(move || {
        events
            .into_iter()
            .map(|mut e| {
                if let Some(kv) = &e.kv {
                    let create = e.r#type == EventType::Put as i32 && kv.version == 1;
                    if !create {
                        e.prev_kv = store.get_at(&kv.key, kv.mod_revision - 1);
                    }
                }
                e
            })
            .collect()
    })
    .await
    .unwrap_or(fallback)
}

/// Splits a response whose size passes `limit` into several; all but the last say `fragment`.
fn fragments(resp: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() <= limit || resp.events.len() <= 1 {
        return vec![resp];
    }
    let base = WatchResponse {
        events: Vec::new(),
        ..resp.clone()
    };
    let mut parts: Vec<WatchResponse> = Vec::new();
    let mut cur = base.clone();
    for e in resp.events {
        if !cur.events.is_empty() && cur.encoded_len() + e.encoded_len() + 8 > limit {
            parts.push(std::mem::replace(&mut cur, base.clone()));
        }
        cur.events.push(e);
    }
    parts.push(cur);
    let n = parts.len();
    for p in &mut parts[..n - 1] {
        p.fragment = true;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::mvccpb::KeyValue;

    #[test]
    fn fragments_split_and_mark() {
        let ev = |i: u8| Event {
            kv: Some(KeyValue {
                key: vec![i],
                value: vec![0; 100],
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = WatchResponse {
            watch_id: 3,
            events: (0..10).map(ev).collect(),
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 350);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.encoded_len() <= 350));
        assert!(
            parts[..parts.len() - 1].iter().all(|p| p.fragment) && !parts.last().unwrap().fragment
        );
        let back: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(back, resp.events);
        assert_eq!(fragments(resp.clone(), 1 << 20), vec![resp]);
    }
}
