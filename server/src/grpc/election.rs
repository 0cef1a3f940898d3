//! The Election service (etcd's `v3election` over `concurrency.Election`): candidates queue
//! like lock waiters (see `lock.rs`) with their proposal as the value; the oldest key under
//! `<name>/` is the leader, and its value is the election's current proclamation.

use std::pin::Pin;

use cairn_proto::etcdserverpb::{ResponseHeader, TxnRequest, TxnResponse};
use cairn_proto::mvccpb::KeyValue;
use cairn_proto::mvccpb::event::EventType;
use cairn_proto::v3electionpb::election_server::Election;
use cairn_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use cairn_storage::{KeyRange, Op};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::concurrency::{
    Cleanup, HubWatch, created_at, delete_op, first_created, get_op, is_delete, prefix, put_op,
    queued_revision, range, range_kvs, relayed, session_lease, wait_deletes, waiter_key,
};
use crate::context::Context;
use crate::errors::ApiError;

pub struct ElectionService(pub Context);

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    /// Queues the candidate (or updates its proposal when it already is one) and waits until
    /// every older candidate is gone. A client that goes away while waiting resigns.
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let ctx = &self.0.acting_for(&req).map_err(relayed)?;
        let r = req.into_inner();
        let lease = session_lease(ctx, r.lease).await?;
        let pfx = prefix(&r.name);
        let key = waiter_key(&pfx, lease);
        let enter = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put_op(&key, r.value.clone(), lease)],
            failure: vec![get_op(&key)],
        };
        let resp: TxnResponse = ctx.propose(Op::Txn(enter)).await.map_err(relayed)?;
        let leader = LeaderKey {
            name: r.name,
            key,
            rev: queued_revision(&resp)?,
            lease,
        };
        let stale = range_kvs(&resp, 0).first().map(|kv| &kv.value);
        if !resp.succeeded
            && stale != Some(&r.value)
            && let Err(e) = proclaim(ctx, &leader, r.value).await
        {
            let _ = resign(ctx, &leader).await;
            return Err(e);
        }
        // etcd resigns only when the wait ends because the client went away
        let guard = Cleanup::new(ctx, Op::Txn(resign_txn(&leader)));
        let waited = wait_deletes(ctx, &pfx, leader.rev - 1).await;
        guard.disarm();
        waited?;
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let ctx = &self.0.acting_for(&req).map_err(relayed)?;
        let r = req.into_inner();
        let mut leader = r.leader.ok_or_else(missing_leader)?;
        // as in etcd, the new value is bound to the session's lease (a fresh one for 0)
        leader.lease = session_lease(ctx, leader.lease).await?;
        let header = proclaim(ctx, &leader, r.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let ctx = &self.0.acting_for(&req).map_err(relayed)?;
        let resp = range(ctx, first_created(&prefix(&req.into_inner().name))).await?;
        let kv = resp.kvs.into_iter().next().ok_or_else(no_leader)?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    /// Streams the current leader, then each new value it proclaims, then the next leader.
    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let ctx = self.0.acting_for(&req).map_err(relayed)?;
        let pfx = prefix(&req.into_inner().name);
        tokio::spawn(async move {
            tokio::select! {
                r = observe(&ctx, &pfx, &tx) => if let Err(e) = r {
                    // etcd ends the stream without an error when its observer stops
                    tracing::debug!(error = %e, "election observe ended");
                },
                _ = tx.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let ctx = &self.0.acting_for(&req).map_err(relayed)?;
        let leader = req.into_inner().leader.ok_or_else(missing_leader)?;
        // etcd opens a session here too, granting a lease for 0 that nothing uses
        session_lease(ctx, leader.lease).await?;
        let header = resign(ctx, &leader).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}

/// Replaces the leader's value, if `leader` still holds its key from the same campaign.
async fn proclaim(
    ctx: &Context,
    leader: &LeaderKey,
    value: Vec<u8>,
) -> Result<Option<ResponseHeader>, Status> {
    let txn = TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![put_op(&leader.key, value, leader.lease)],
        failure: Vec::new(),
    };
    let resp: TxnResponse = ctx.propose(Op::Txn(txn)).await.map_err(relayed)?;
    if !resp.succeeded {
        return Err(Status::from(ApiError::ElectionNotLeader));
    }
    Ok(resp.header)
}

/// Deletes the candidate's key if it is still the one from that campaign; no error otherwise.
async fn resign(ctx: &Context, leader: &LeaderKey) -> Result<Option<ResponseHeader>, Status> {
    let resp: TxnResponse = ctx
        .propose(Op::Txn(resign_txn(leader)))
        .await
        .map_err(relayed)?;
    Ok(resp.header)
}

fn resign_txn(leader: &LeaderKey) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![delete_op(&leader.key)],
        failure: Vec::new(),
    }
}

/// etcd's `Election.observe`: send the leader (waiting for the first candidate if there is
/// none), then every put on its key until it is deleted; repeat.
async fn observe(
    ctx: &Context,
    pfx: &[u8],
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), Status> {
    loop {
        let resp = range(ctx, first_created(pfx)).await?;
        let (revision, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header.map_or(0, |h| h.revision), kv),
            None => {
                let from = resp.header.map_or(0, |h| h.revision);
                let kv = first_put(ctx, pfx, from).await?;
                (kv.mod_revision, kv)
            }
        };
        send(ctx, tx, revision, kv.clone()).await?;
        let mut w = HubWatch::open(ctx, KeyRange::new(kv.key, Vec::new()), revision + 1);
        'leader: loop {
            let batch = w.next().await?;
            for ev in batch.events {
                if is_delete(&ev) {
                    break 'leader;
                }
                if let Some(kv) = ev.kv {
                    send(ctx, tx, batch.revision, kv).await?;
                }
            }
        }
    }
}

/// The first key put under `pfx` from revision `from` on.
async fn first_put(ctx: &Context, pfx: &[u8], from: i64) -> Result<KeyValue, Status> {
    let mut w = HubWatch::open(ctx, KeyRange::prefix(pfx), from);
    loop {
        let batch = w.next().await?;
        let put = batch
            .events
            .into_iter()
            .find(|e| e.r#type == EventType::Put as i32);
        if let Some(kv) = put.and_then(|e| e.kv) {
            return Ok(kv);
        }
    }
}

async fn send(
    ctx: &Context,
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
    revision: i64,
    kv: KeyValue,
) -> Result<(), Status> {
    let resp = LeaderResponse {
        header: ctx.header(revision),
        kv: Some(kv),
    };
    tx.send(Ok(resp))
        .await
        .map_err(|_| Status::cancelled("observer went away"))
}

fn missing_leader() -> Status {
    ApiError::MissingLeaderKey.into()
}

fn no_leader() -> Status {
    ApiError::ElectionNoLeader.into()
}
