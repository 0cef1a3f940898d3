//! The queueing primitives the Lock and Election services share (etcd's
//! `client/v3/concurrency`: sessions, `Mutex` keys, `waitDeletes`).
//!
//! etcd runs both services over an embedded client, so they speak the same protocol any
//! client could: a waiter puts `<name>/<lease hex>` (bound to its lease); the key with the
//! smallest create revision under `<name>/` holds the lock; every other waiter watches for the
//! deletion of the key created just before its own. Here the reads go through `Context::read`,
//! the writes through raft, and the waits through the store's watch hub.

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::lease_server::Lease;
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::request_op::Request as ReqOp;
use cairn_proto::etcdserverpb::response_op::Response as RespOp;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, TxnResponse,
};
use cairn_proto::mvccpb::KeyValue;
use cairn_proto::mvccpb::event::EventType;
use cairn_storage::index::prefix_end;
use cairn_storage::{Command, KeyRange, Need, Op, StoreError, WatchBatch, WatchFilters, WatcherId};
use tokio::sync::mpsc;
use tonic::{Request, Status};

use crate::context::Context;
use crate::errors::ApiError;
use crate::grpc::lease::LeaseService;

/// TTL of the lease etcd's session grants when a request names lease 0.
const SESSION_TTL: i64 = 60;

/// The lease a request's keys are bound to: its own, or (for 0) a fresh one with etcd's
/// session TTL, as `concurrency.NewSession` grants. The lease is not kept alive.
pub(crate) async fn session_lease(ctx: &Context, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let grant = LeaseGrantRequest {
        ttl: SESSION_TTL,
        id: 0,
    };
    let resp = LeaseService(ctx.clone())
        .lease_grant(Request::new(grant))
        .await;
    // the grant's own error, relayed with code Unknown like every error of these services
    Ok(resp
        .map_err(|s| Status::new(tonic::Code::Unknown, s.message()))?
        .into_inner()
        .id)
}

/// `<name>/`: the queue of waiters (or candidates).
pub(crate) fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// `<prefix><lease in hex>`, as Go's `%x` prints an int64 (a sign, not two's complement).
pub(crate) fn waiter_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// The create revision a waiter queued at: its put's revision, or its existing key's.
pub(crate) fn queued_revision(resp: &TxnResponse) -> Result<i64, Status> {
    if resp.succeeded {
        return Ok(resp.header.as_ref().map_or(0, |h| h.revision));
    }
    range_kvs(resp, 0)
        .first()
        .map(|kv| kv.create_revision)
        .ok_or_else(|| Status::from(ApiError::SessionExpired))
}

/// The KVs of the `i`th response of a txn, when it is a range.
pub(crate) fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(RespOp::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// etcd's `waitDeletes`: until no key under `pfx` has a create revision up to `max_rev`,
/// wait for the deletion of the newest such key.
pub(crate) async fn wait_deletes(ctx: &Context, pfx: &[u8], max_rev: i64) -> Result<(), Status> {
    loop {
        let mut req = prefix_range(pfx);
        req.sort_target = SortTarget::Create as i32;
        req.sort_order = SortOrder::Descend as i32;
        req.limit = 1;
        req.max_create_revision = max_rev;
        let resp = range(ctx, req).await?;
        let Some(last) = resp.kvs.into_iter().next() else {
            return Ok(());
        };
        let from = resp.header.map_or(0, |h| h.revision);
        let mut w = HubWatch::open(ctx, KeyRange::new(last.key, Vec::new()), from);
        while !w.next().await?.events.iter().any(is_delete) {}
    }
}

/// A watcher on the store's hub, cancelled when dropped.
pub(crate) struct HubWatch {
    ctx: Context,
    id: WatcherId,
    rx: mpsc::Receiver<WatchBatch>,
}

impl HubWatch {
    /// Watches `range` from revision `from` on (0 = from the next revision).
    pub(crate) fn open(ctx: &Context, range: KeyRange, from: i64) -> Self {
        let (id, rx) = ctx
            .store
            .watch_hub()
            .watch(range, from, WatchFilters::default());
        HubWatch {
            ctx: ctx.clone(),
            id,
            rx,
        }
    }

    /// The next batch of events; an error when the watch is compacted away, lost, or the
    /// server is shutting down.
    pub(crate) async fn next(&mut self) -> Result<WatchBatch, Status> {
        let mut shutdown = self.ctx.shutdown.clone();
        let batch = tokio::select! {
            b = self.rx.recv() => b,
            _ = shutdown.wait_for(|s| *s) => {
                return Err(relayed(ApiError::Stopped("shutting down".into())));
            }
        };
        match batch {
            None => Err(Status::from(ApiError::LostWatcher)),
            Some(b) if b.compact_revision != 0 => Err(relayed(StoreError::Compacted.into())),
            Some(b) => Ok(b),
        }
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        self.ctx.store.watch_hub().cancel(self.id);
    }
}

/// A write to propose if the request is dropped before `disarm`: etcd's cleanup of a
/// waiter's key when its client cancels.
pub(crate) struct Cleanup {
    ctx: Context,
    op: Option<Op>,
}

impl Cleanup {
    pub(crate) fn new(ctx: &Context, op: Op) -> Self {
        Cleanup {
            ctx: ctx.clone(),
            op: Some(op),
        }
    }

    pub(crate) fn disarm(mut self) {
        self.op = None;
    }

    /// Proposes the cleanup now and waits for it; its failure is the caller's lesser problem.
    pub(crate) async fn run(mut self) {
        if let Some(op) = self.op.take()
            && let Err(e) = self.ctx.write(Command::new(op, self.ctx.who.clone())).await
        {
            tracing::warn!(error = %e, "lock/election cleanup failed");
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (Some(op), Ok(rt)) = (self.op.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let ctx = self.ctx.clone();
        rt.spawn(async move {
            if let Err(e) = ctx.write(Command::new(op, ctx.who.clone())).await {
                tracing::warn!(error = %e, "lock/election cleanup after cancel failed");
            }
        });
    }
}

/// A linearizable range with the header filled.
pub(crate) async fn range(ctx: &Context, req: RangeRequest) -> Result<RangeResponse, Status> {
    // etcd's lock and election services read through a client with the caller's token
    ctx.check(&req.key, &req.range_end, Need::Read)
        .map_err(relayed)?;
    let mut resp = ctx
        .read(false, move |s| s.range(&req))
        .await
        .map_err(relayed)?;
    ctx.fill(&mut resp.header);
    Ok(resp)
}

/// etcd's `WithFirstCreate`: the key under `pfx` with the smallest create revision.
pub(crate) fn first_created(pfx: &[u8]) -> RangeRequest {
    let mut req = prefix_range(pfx);
    req.sort_target = SortTarget::Create as i32;
    req.sort_order = SortOrder::Ascend as i32;
    req.limit = 1;
    req
}

fn prefix_range(pfx: &[u8]) -> RangeRequest {
    RangeRequest {
        key: pfx.to_vec(),
        range_end: prefix_end(pfx),
        ..Default::default()
    }
}

pub(crate) fn is_delete(e: &cairn_proto::mvccpb::Event) -> bool {
    e.r#type == EventType::Delete as i32
}

/// `create_revision(key) == rev`.
pub(crate) fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        range_end: Vec::new(),
    }
}

pub(crate) fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    op(ReqOp::RequestPut(PutRequest {
        key: key.to_vec(),
        value,
        lease,
        ..Default::default()
    }))
}

pub(crate) fn get_op(key: &[u8]) -> RequestOp {
    op(ReqOp::RequestRange(key_range(key)))
}

pub(crate) fn delete_op(key: &[u8]) -> RequestOp {
    op(ReqOp::RequestDeleteRange(delete_req(key.to_vec())))
}

pub(crate) fn op(request: ReqOp) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

pub(crate) fn key_range(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn delete_req(key: Vec<u8>) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key,
        ..Default::default()
    }
}

/// Any error as these services send it (code Unknown; see `ApiError::Relayed`).
pub(crate) fn relayed(e: ApiError) -> Status {
    ApiError::Relayed(Box::new(e)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_etcd() {
        assert_eq!(waiter_key(b"l/", 0x694d), b"l/694d");
        assert_eq!(waiter_key(b"l/", -1), b"l/-1");
    }
}
