//! The Lock service (etcd's `v3lock`): a `Mutex` per request on the primitives in
//! `concurrency`.

use cairn_proto::etcdserverpb::request_op::Request as ReqOp;
use cairn_proto::etcdserverpb::{DeleteRangeResponse, TxnRequest, TxnResponse};
use cairn_proto::v3lockpb::lock_server::Lock;
use cairn_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use cairn_storage::{Op, txn};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;
use crate::grpc::concurrency::{
    Cleanup, created_at, delete_req, first_created, get_op, key_range, op, prefix, put_op,
    queued_revision, range, range_kvs, relayed, session_lease, wait_deletes, waiter_key,
};

pub struct LockService(pub Context);

#[tonic::async_trait]
impl Lock for LockService {
    /// etcd's `Mutex.Lock`: queue, wait for every earlier waiter to go, confirm we are still
    /// queued. If the client goes away while waiting, our key is deleted.
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let ctx = &self.0.acting_for(&req).map_err(relayed)?;
        let r = req.into_inner();
        let lease = session_lease(ctx, r.lease).await?;
        let pfx = prefix(&r.name);
        let key = waiter_key(&pfx, lease);
        let acquire = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                put_op(&key, Vec::new(), lease),
                op(ReqOp::RequestRange(first_created(&pfx))),
            ],
            failure: vec![get_op(&key), op(ReqOp::RequestRange(first_created(&pfx)))],
        };
        let resp: TxnResponse = ctx.propose(Op::Txn(acquire)).await.map_err(relayed)?;
        let my_rev = queued_revision(&resp)?;
        let owner = range_kvs(&resp, 1).first().map(|kv| kv.create_revision);
        if owner.is_none_or(|rev| rev == my_rev) {
            return Ok(Response::new(LockResponse {
                header: resp.header,
                key,
            }));
        }
        let guard = Cleanup::new(ctx, Op::DeleteRange(delete_req(key.clone())));
        let waited = async {
            wait_deletes(ctx, &pfx, my_rev - 1).await?;
            range(ctx, key_range(&key)).await
        };
        let got = match waited.await {
            Ok(got) => got,
            Err(e) => {
                guard.run().await;
                return Err(e);
            }
        };
        guard.disarm();
        if got.kvs.is_empty() {
            // our lease expired (or someone deleted our key) while we waited
            return Err(Status::from(ApiError::SessionExpired));
        }
        Ok(Response::new(LockResponse {
            header: got.header,
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let ctx = self.0.acting_for(&req).map_err(relayed)?;
        let del = delete_req(req.into_inner().key);
        txn::check_delete(&del).map_err(|e| relayed(e.into()))?;
        let resp: DeleteRangeResponse = ctx.propose(Op::DeleteRange(del)).await.map_err(relayed)?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
