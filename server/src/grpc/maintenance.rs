//! The Maintenance service: Status, Alarm, Hash, HashKV, Defragment, MoveLeader, and Snapshot
//! (streamed by `snapshot.rs`). Downgrade is refused with a clear message.

use std::pin::Pin;

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::maintenance_server::Maintenance;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use cairn_storage::Op;
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;

pub struct MaintenanceService(pub Context);

/// How long MoveLeader may take (the old leader's lease must run out first).
const MOVE_LEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// etcd prints alarms in Status.errors as `memberID:<id> alarm:<TYPE> `.
fn alarm_text(member_id: u64, alarm: i32) -> String {
    let name = AlarmType::try_from(alarm)
        .map(|a| a.as_str_name())
        .unwrap_or("UNKNOWN");
    format!("memberID:{member_id} alarm:{name} ")
}

/// The root check of Snapshot, Defragment, Hash and HashKV with etcd 3.4's errors: its
/// Maintenance service returns the auth store's error unconverted (code Unknown,
/// `auth: permission denied`), and etcdctl users see that text. The calls etcd 3.4 left
/// unchecked (MoveLeader, alarm changes) answer as later etcd does, with the gRPC error.
fn admin_as_etcd_3_4<T>(ctx: &Context, req: &Request<T>) -> Result<(), ApiError> {
    let store_error = |e: ApiError| match e {
        ApiError::Store(cairn_storage::StoreError::Auth(a)) => ApiError::AuthStore(a),
        e => e,
    };
    ctx.acting_for(req)
        .map_err(store_error)?
        .check_admin()
        .map_err(store_error)
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let ctx = self.0.acting_for(&req)?;
        let r = req.into_inner();
        if r.action == AlarmAction::Get as i32 {
            let alarms = self.0.read(false, |s| s.alarms()).await?;
            let alarms = alarms
                .into_iter()
                .filter(|a| r.alarm == 0 || a.alarm == r.alarm)
                .collect();
            // etcd's alarm answers carry no header
            return Ok(Response::new(AlarmResponse {
                header: None,
                alarms,
            }));
        }
        // activate and deactivate are for root: checked when applied
        let resp: AlarmResponse = ctx.propose(Op::Alarm(r)).await?;
        Ok(Response::new(AlarmResponse {
            header: None,
            ..resp
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let ctx = &self.0;
        let raft = ctx.node.status();
        let store = ctx.store.clone();
        let (db_size, in_use, alarms) = tokio::task::spawn_blocking(move || {
            let (total, used) = store.db_size()?;
            Ok::<_, cairn_storage::StoreError>((total, used, store.alarms().unwrap_or_default()))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(ApiError::from)?;
        Ok(Response::new(StatusResponse {
            header: ctx.header(ctx.store.current_revision()),
            version: ctx.config.etcd_version.clone(),
            db_size,
            leader: raft.leader.unwrap_or(0),
            raft_index: raft.last_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: alarms
                .iter()
                .map(|a| alarm_text(a.member_id, a.alarm))
                .collect(),
            db_size_in_use: in_use,
            is_learner: raft.is_learner,
            storage_version: String::new(),
            db_size_quota: ctx.config.quota_backend_bytes,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        admin_as_etcd_3_4(&self.0, &req)?;
        let store = self.0.store.clone();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || store.defragment())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ApiError::from)?;
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "defragmented backend"
        );
        // etcd's DefragmentResponse carries no header
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        admin_as_etcd_3_4(&self.0, &req)?;
        let hash = self.0.read(true, |s| s.hash_all()).await?;
        Ok(Response::new(HashResponse {
            header: self.0.header(self.0.store.current_revision()),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        admin_as_etcd_3_4(&self.0, &req)?;
        let rev = req.into_inner().revision;
        let h = self.0.read(true, move |s| s.hash_kv(rev)).await?;
        Ok(Response::new(HashKvResponse {
            header: self.0.header(self.0.store.current_revision()),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        admin_as_etcd_3_4(&self.0, &req)?;
        let format = super::snapshot::Format::asked(req.metadata());
        Ok(Response::new(super::snapshot::stream(&self.0, format)))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.0.acting_for(&req)?.check_admin()?;
        let target = req.into_inner().target_id;
        self.0
            .node
            .move_leader(target, MOVE_LEADER_TIMEOUT)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(target = %format!("{target:x}"), "moved leadership");
        // etcd's MoveLeaderResponse carries no header
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        _req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(ApiError::Unsupported("downgrade is not supported").into())
    }
}
