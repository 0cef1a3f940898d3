//! The Lease service. Grant and revoke go through raft; keep-alive and time-to-live are
//! answered by the leader from its lessor (forwarded from followers), as in etcd.

use std::pin::Pin;

use cairn_proto::etcdserverpb::lease_server::Lease;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use cairn_storage::{Need, Op};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::context::Context;
use crate::errors::ApiError;
use crate::quota;

pub struct LeaseService(pub Context);

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

impl LeaseService {
    /// A fresh positive lease ID not in use (etcd draws it before proposing).
    fn new_id(&self) -> i64 {
        loop {
            let id = (rand::random::<u64>() >> 1) as i64;
            if id != 0 && !self.0.store.lease_exists(id) {
                return id;
            }
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let mut r = req.into_inner();
        self.0.check_quota(quota::LEASE_OVERHEAD).await?;
        if r.id == 0 {
            r.id = self.new_id();
        }
        Ok(Response::new(ctx.propose(Op::LeaseGrant(r)).await?))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        // WRITE on every attached key: checked when applied
        let ctx = self.0.acting_for(&req)?;
        Ok(Response::new(
            ctx.propose(Op::LeaseRevoke(req.into_inner())).await?,
        ))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let ctx = self.0.clone();
        let mut shutdown = ctx.shutdown.clone();
        let input = req.into_inner().take_until(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
        let out = input.then(move |r| {
            let ctx = ctx.clone();
            async move {
                let r = r?;
                // renewed on the leader, which alone runs the lease clocks (forwarded there)
                let ttl = ctx
                    .node
                    .lease_keep_alive(r.id)
                    .await
                    .map_err(ApiError::from)?;
                Ok(LeaseKeepAliveResponse {
                    header: ctx.header(ctx.store.current_revision()),
                    id: r.id,
                    ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        // etcd's checkLeaseTimeToLive: root, or READ on every key attached
        if ctx.check_admin().is_err()
            && let Some(lease) = self.0.store.lease(r.id)
        {
            for key in &lease.keys {
                ctx.check(key, &[], Need::Read)?;
            }
        }
        let (ttl, granted_ttl, keys) = self
            .0
            .node
            .lease_time_to_live(r.id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.0.header(self.0.store.current_revision()),
            id: r.id,
            ttl,
            granted_ttl,
            keys: if r.keys { keys } else { Vec::new() },
        }))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .0
            .store
            .lease_ids()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.0.header(self.0.store.current_revision()),
            leases,
        }))
    }
}
