//! The Cluster service: membership as raft records it, changes run on the leader (forwarded
//! from any member) with etcd's checks and errors.

use cairn_consensus::MemberInfo;
use cairn_proto::etcdserverpb::cluster_server::Cluster;
use cairn_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;

pub struct ClusterService(pub Context);

/// etcd's `Member` message for a member raft knows.
pub fn member(m: MemberInfo) -> Member {
    Member {
        id: m.id,
        name: m.member.name,
        peer_ur_ls: m.member.peer_urls,
        client_ur_ls: m.member.client_urls,
        is_learner: m.is_learner,
    }
}

fn members(all: Vec<MemberInfo>) -> Vec<Member> {
    all.into_iter().map(member).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.0.acting_for(&req)?.check_admin()?;
        let r = req.into_inner();
        let (added, all) = self
            .0
            .node
            .add_member(r.peer_ur_ls, r.is_learner)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(member = %format!("{:x}", added.id), learner = added.is_learner, "added member");
        Ok(Response::new(MemberAddResponse {
            header: self.0.header(self.0.store.current_revision()),
            member: Some(member(added)),
            members: members(all),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.0.acting_for(&req)?.check_admin()?;
        let id = req.into_inner().id;
        let all = self
            .0
            .node
            .remove_member(id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(member = %format!("{id:x}"), "removed member");
        Ok(Response::new(MemberRemoveResponse {
            header: self.0.header(self.0.store.current_revision()),
            members: members(all),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.0.acting_for(&req)?.check_admin()?;
        let r = req.into_inner();
        let all = self
            .0
            .node
            .update_member(r.id, r.peer_ur_ls)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.0.header(self.0.store.current_revision()),
            members: members(all),
        }))
    }

    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            // etcd's MemberList header carries no revision
            header: self.0.header(0),
            members: members(self.0.node.members()),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.0.acting_for(&req)?.check_admin()?;
        let id = req.into_inner().id;
        let all = self
            .0
            .node
            .promote_member(id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(member = %format!("{id:x}"), "promoted learner");
        Ok(Response::new(MemberPromoteResponse {
            header: self.0.header(self.0.store.current_revision()),
            members: members(all),
        }))
    }
}
