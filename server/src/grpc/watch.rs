//! The Watch service: each client stream's response body reads its requests and forwards the
//! hub's batches for all of its watchers (adding prev_kv, splitting fragments, progress
//! notifications), as etcd's watch stream does with its send loop. The watchers share one hub
//! channel, so an apply wakes one task per stream, not one per watcher, and that task is the
//! one that writes the responses to the connection (no hand-off through a response channel).
//! The body is polled only as fast as the client reads, so a slow client slows only itself;
//! when the hub channel fills up its watchers fall back to replay from the store.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::etcdserverpb::watch_create_request::FilterType;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::watch_server::Watch;
use cairn_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use cairn_proto::mvccpb::Event;
use cairn_proto::mvccpb::event::EventType;
use cairn_storage::{
    AuthError, KeyRange, Need, Store, StoreError, WatchBatch, WatchFilters, WatcherId,
};
use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::context::Context;
use crate::errors::ApiError;

pub struct WatchService(pub Context);

/// Responses ready to go to the client, in order.
type Out = VecDeque<WatchResponse>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// Capacity of one stream's hub channel, in batches (one per watcher per apply): etcd's
/// `chanBufLen`, also per stream. It bounds what a stalled client holds in memory as a
/// watcher's own channel did; past it the stream's watchers catch up by replay instead.
const STREAM_BATCHES: usize = 128;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        // as etcd: the stream's credentials decide each watch created on it; a bad token
        // does not end the stream, its watches are refused
        let (ctx, token) = match self.0.acting_for(&req) {
            Ok(ctx) => (ctx, Ok(())),
            Err(ApiError::Store(StoreError::Auth(a))) => (self.0.clone(), Err(a)),
            Err(_) => (self.0.clone(), Err(AuthError::InvalidAuthToken)),
        };
        Ok(Response::new(Box::pin(responses(
            ctx,
            token,
            req.into_inner(),
        ))))
    }
}

/// One watcher of a stream, by its hub id.
struct Active {
    /// The id the client knows it by.
    id: i64,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// Something was sent since the last progress tick.
    sent_since_tick: bool,
}

/// The watchers of one client stream; dropping them (the client went away, the server shut
/// down) cancels them in the hub.
struct Watchers {
    store: Arc<Store>,
    by_hub: HashMap<WatcherId, Active>,
    /// Client id -> hub id.
    ids: HashMap<i64, WatcherId>,
    next_id: i64,
    /// The hub channel all of them send to.
    batches: mpsc::Sender<WatchBatch>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for hub_id in self.by_hub.keys() {
            self.store.watch_hub().cancel(*hub_id);
        }
    }
}

/// What a stream's task does next.
enum Next {
    Request(WatchRequest),
    Batch(WatchBatch),
    Tick,
    /// A requested progress notification waits for the stream's watchers to catch up.
    RetryProgress,
    /// The client closed its side of the stream (it still reads).
    InputClosed,
    /// The client went away, or the server is shutting down.
    Done,
}

/// One client stream's state between responses.
struct Session {
    ctx: Context,
    /// The stream's token resolved (a bad one refuses every watch created on it).
    token: Result<(), AuthError>,
    input: Streaming<WatchRequest>,
    /// The client sends no more requests.
    input_closed: bool,
    watchers: Watchers,
    batches: mpsc::Receiver<WatchBatch>,
    ticker: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
    out: Out,
    /// A progress notification was asked for while a watcher was still catching up: it goes
    /// out once all are synced (as etcd's deferred progress).
    progress_due: bool,
    done: bool,
}

/// How often a deferred progress notification is tried again on a quiet stream.
const PROGRESS_RETRY: Duration = Duration::from_millis(20);

/// Serves one client stream until the client goes away or the server shuts down: the
/// responses, produced as the connection asks for them.
fn responses(
    ctx: Context,
    token: Result<(), AuthError>,
    input: Streaming<WatchRequest>,
) -> impl Stream<Item = Result<WatchResponse, Status>> + Send {
    let (batches, batches_rx) = mpsc::channel(STREAM_BATCHES);
    let interval = ctx.config.progress_notify_interval;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + interval,
        interval.max(Duration::from_millis(10)),
    );
    // the stream's one progress clock, as etcd's; a tick missed while busy is not made up
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let session = Session {
        watchers: Watchers {
            store: ctx.store.clone(),
            by_hub: HashMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            batches,
        },
        shutdown: ctx.shutdown.clone(),
        ctx,
        token,
        input,
        input_closed: false,
        batches: batches_rx,
        ticker,
        out: VecDeque::new(),
        progress_due: false,
        done: false,
    };
    futures::stream::unfold(session, |mut s| async move {
        loop {
            if let Some(resp) = s.out.pop_front() {
                return Some((Ok(resp), s));
            }
            if s.done {
                return None;
            }
            s.step().await;
        }
    })
}

impl Session {
    /// Waits for the next request, batch or tick and queues what it answers.
    async fn step(&mut self) {
        let next = tokio::select! {
            m = self.input.next(), if !self.input_closed => match m {
                Some(Ok(req)) => Next::Request(req),
                // as etcd: a client that closed its side still gets its watches' events
                // (the gateway's `curl -d` does); the stream ends when it goes away
                None => Next::InputClosed,
                Some(Err(_)) => Next::Done,
            },
            Some(b) = self.batches.recv() => Next::Batch(b),
            _ = self.ticker.tick() => Next::Tick,
            _ = tokio::time::sleep(PROGRESS_RETRY), if self.progress_due => Next::RetryProgress,
            _ = self.shutdown.wait_for(|s| *s) => Next::Done,
        };
        let (ctx, out, watchers) = (&self.ctx, &mut self.out, &mut self.watchers);
        match next {
            Next::Request(WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(_)),
            }) => {
                self.progress_due = true;
                self.requested_progress().await;
            }
            Next::Request(req) => handle(ctx, self.token, req, out, watchers),
            Next::Batch(b) => {
                forward(ctx, b, out, watchers).await;
                if self.progress_due {
                    self.requested_progress().await;
                }
            }
            Next::Tick => self.notify_progress().await,
            Next::RetryProgress => self.requested_progress().await,
            Next::InputClosed => self.input_closed = true,
            Next::Done => self.done = true,
        }
    }

    /// Where the stream's watchers stand: the batches already queued for them are forwarded
    /// first, so a notification queued after is never ahead of the events.
    async fn progress(&mut self) -> cairn_storage::Progress {
        let hub = self.ctx.store.watch_hub();
        let mut p = hub.progress(
            self.watchers.by_hub.keys().copied().collect::<Vec<_>>(),
            &mut self.batches,
        );
        for b in std::mem::take(&mut p.queued) {
            forward(&self.ctx, b, &mut self.out, &mut self.watchers).await;
        }
        p
    }

    /// etcd's answer to a progress request: once every watcher of the stream is synced, one
    /// response (watch id -1) at the current revision; until then it stays due.
    async fn requested_progress(&mut self) {
        let p = self.progress().await;
        let all = self.watchers.by_hub.keys().all(|id| p.synced.contains(id));
        if all {
            self.progress_due = false;
            self.out.push_back(WatchResponse {
                header: self.ctx.header(p.revision),
                watch_id: -1,
                ..Default::default()
            });
        }
    }

    /// etcd's progress notification: each synced watcher that asked for them and was sent
    /// nothing since the last tick gets an empty response at the current revision.
    async fn notify_progress(&mut self) {
        let p = self.progress().await;
        let mut due = Vec::new();
        for (hub_id, w) in &mut self.watchers.by_hub {
            if w.progress_notify && !w.sent_since_tick && p.synced.contains(hub_id) {
                due.push(w.id);
            }
            w.sent_since_tick = false;
        }
        for id in due {
            self.out.push_back(WatchResponse {
                header: self.ctx.header(p.revision),
                watch_id: id,
                ..Default::default()
            });
        }
    }
}

/// Answers one client request.
fn handle(
    ctx: &Context,
    token: Result<(), AuthError>,
    req: WatchRequest,
    out: &mut Out,
    watchers: &mut Watchers,
) {
    match req.request_union {
        Some(RequestUnion::CreateRequest(c)) => create(ctx, token, c, out, watchers),
        Some(RequestUnion::CancelRequest(c)) => {
            let known = match watchers.ids.remove(&c.watch_id) {
                Some(hub_id) => {
                    ctx.store.watch_hub().cancel(hub_id);
                    // batches already queued for it are dropped on arrival
                    watchers.by_hub.remove(&hub_id);
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
            out.push_back(resp);
        }
        // answered by the session, which knows where its watchers stand
        Some(RequestUnion::ProgressRequest(_)) | None => {}
    }
}

/// The cancel reason of a watch the auth check refused: as etcd, the text of the gRPC error
/// (`rpc error: code = ... desc = ...`) for a bad token, an old auth revision or no user,
/// and of "permission denied" for every other refusal.
fn refusal_reason(a: AuthError) -> String {
    let shown = match a {
        AuthError::InvalidAuthToken | AuthError::AuthOldRevision | AuthError::UserEmpty => a,
        _ => AuthError::PermissionDenied,
    };
    let status = Status::from(ApiError::from(shown));
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

fn create(
    ctx: &Context,
    token: Result<(), AuthError>,
    c: WatchCreateRequest,
    out: &mut Out,
    watchers: &mut Watchers,
) {
    let current = ctx.store.current_revision();
    let refuse = |id: i64, reason: &str| WatchResponse {
        header: ctx.header(current),
        watch_id: id,
        created: true,
        canceled: true,
        cancel_reason: reason.to_string(),
        ..Default::default()
    };
    // etcd's isWatchPermitted: READ on the watched range, or the watch is created canceled
    let permitted = token.and_then(|()| match ctx.check(&c.key, &c.range_end, Need::Read) {
        Err(ApiError::Store(StoreError::Auth(a))) => Err(a),
        _ => Ok(()),
    });
    if let Err(a) = permitted {
        out.push_back(refuse(-1, &refusal_reason(a)));
        return;
    }
    let range = KeyRange::new(c.key.clone(), c.range_end.clone());
    if !range.is_single() && range.end != [0] && range.key >= range.end {
        out.push_back(refuse(-1, "mvcc: watcher range is empty"));
        return;
    }
    let id = if c.watch_id != 0 {
        if watchers.ids.contains_key(&c.watch_id) {
            out.push_back(refuse(
                c.watch_id,
                "mvcc: duplicate watch ID provided on the WatchStream",
            ));
            return;
        }
        c.watch_id
    } else {
        while watchers.ids.contains_key(&watchers.next_id) {
            watchers.next_id += 1;
        }
        let id = watchers.next_id;
        watchers.next_id += 1;
        id
    };
    let filters = WatchFilters {
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
    };
    // its batches wait in the channel until `created` is queued
    let hub_id = ctx.store.watch_hub().watch_into(
        range,
        c.start_revision,
        filters,
        watchers.batches.clone(),
    );
    watchers.ids.insert(id, hub_id);
    watchers.by_hub.insert(
        hub_id,
        Active {
            id,
            prev_kv: c.prev_kv,
            fragment: c.fragment,
            progress_notify: c.progress_notify,
            // as etcd: due at the stream's next tick
            sent_since_tick: false,
        },
    );
    let created = WatchResponse {
        header: ctx.header(current),
        watch_id: id,
        created: true,
        ..Default::default()
    };
    out.push_back(created);
}

/// Queues one hub batch as its watcher's response(s).
async fn forward(ctx: &Context, batch: WatchBatch, out: &mut Out, watchers: &mut Watchers) {
    let Some(w) = watchers.by_hub.get_mut(&batch.watcher) else {
        return; // cancelled meanwhile
    };
    w.sent_since_tick = true;
    let (id, prev_kv, fragment) = (w.id, w.prev_kv, w.fragment);
    if batch.compact_revision != 0 {
        // the hub has dropped the watcher
        watchers.by_hub.remove(&batch.watcher);
        watchers.ids.remove(&id);
        let resp = WatchResponse {
            // etcd's compaction cancel carries no revision in its header
            header: ctx.header(0),
            watch_id: id,
            canceled: true,
            compact_revision: batch.compact_revision,
            ..Default::default()
        };
        out.push_back(resp);
        return;
    }
    let mut events = batch.events;
    if prev_kv {
        events = with_prev_kvs(ctx, events).await;
    }
    let resp = WatchResponse {
        header: ctx.header(batch.revision),
        watch_id: id,
        events,
        ..Default::default()
    };
    if fragment {
        // etcd splits at the gRPC message limit: --max-request-bytes plus the overhead
        out.extend(fragments(
            resp,
            ctx.config.max_request_bytes + super::GRPC_OVERHEAD_BYTES,
        ));
    } else {
        out.push_back(resp);
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
