//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use cairn_proto::etcdserverpb::kv_server::Kv;
use cairn_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use cairn_storage::{CommandResponse, Op, txn};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;

pub struct KvService(pub Context);

fn unexpected(r: CommandResponse) -> Status {
    Status::internal(format!("cairn: unexpected apply result {r:?}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = req.into_inner();
        txn::check_range(&r).map_err(ApiError::from)?;
        let serializable = r.serializable;
        let mut resp = self.0.read(serializable, move |s| s.range(&r)).await?;
        self.0.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = req.into_inner();
        txn::check_put(&r).map_err(ApiError::from)?;
        match self.0.write(Op::Put(r).into()).await? {
            CommandResponse::Put(mut p) => {
                self.0.fill(&mut p.header);
                Ok(Response::new(p))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        txn::check_delete(&r).map_err(ApiError::from)?;
        match self.0.write(Op::DeleteRange(r).into()).await? {
            CommandResponse::DeleteRange(mut d) => {
                self.0.fill(&mut d.header);
                Ok(Response::new(d))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = req.into_inner();
        txn::check_txn(&r, self.0.config.max_txn_ops).map_err(ApiError::from)?;
        match self.0.write(Op::Txn(r).into()).await? {
            // sub-responses keep revision-only headers, as in etcd; the outer one is filled
            CommandResponse::Txn(mut t) => {
                self.0.fill(&mut t.header);
                Ok(Response::new(t))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        match self.0.write(Op::Compact(req.into_inner()).into()).await? {
            CommandResponse::Compact(mut c) => {
                self.0.fill(&mut c.header);
                Ok(Response::new(c))
            }
            other => Err(unexpected(other)),
        }
    }
}
