//! The KV service: Range, Put, DeleteRange, Txn, Compact. Range is checked against the
//! caller's permissions here; writes carry the caller and are checked when applied.

use cairn_proto::etcdserverpb::kv_server::Kv;
use cairn_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use cairn_proto::stages::{self, Stage};
use cairn_storage::{Need, Op, txn};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;
use crate::quota;

pub struct KvService(pub Context);

/// How long a physical compaction's reply waits for this member to delete its rows.
const PHYSICAL_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        txn::check_range(&r).map_err(ApiError::from)?;
        ctx.check(&r.key, &r.range_end, Need::Read)?;
        let serializable = r.serializable;
        let mut resp = self.0.read(serializable, move |s| s.range(&r)).await?;
        self.0.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        stages::mark(Stage::Handler);
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        self.0.check_quota(quota::cost_put(&r)).await?;
        txn::check_put(&r).map_err(ApiError::from)?;
        let resp = ctx.propose(Op::Put(r)).await?;
        stages::mark(Stage::Replied);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        txn::check_delete(&r).map_err(ApiError::from)?;
        Ok(Response::new(ctx.propose(Op::DeleteRange(r)).await?))
    }

    /// Sub-responses keep revision-only headers, as in etcd; only the outer one is filled.
    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        self.0.check_quota(quota::cost_txn(&r)).await?;
        txn::check_txn(&r, self.0.config.max_txn_ops).map_err(ApiError::from)?;
        Ok(Response::new(ctx.propose(Op::Txn(r)).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let req = req.into_inner();
        let (rev, physical) = (req.revision, req.physical);
        let reply: CompactionResponse = ctx.propose(Op::Compact(req)).await?;
        if physical {
            // etcd answers a physical compaction once this member has deleted its rows
            let store = self.0.store.clone();
            let deleted =
                tokio::task::spawn_blocking(move || store.wait_compacted(rev, PHYSICAL_WAIT))
                    .await
                    .unwrap_or(false);
            if !deleted {
                return Err(ApiError::Timeout.into());
            }
        }
        Ok(Response::new(reply))
    }
}
