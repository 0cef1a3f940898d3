//! One file per gRPC service; `routes` puts them on one router with etcd's size limits.

pub mod auth;
pub mod cluster;
mod concurrency;
pub mod election;
pub mod kv;
pub mod lease;
pub(crate) mod limits;
pub mod lock;
pub mod maintenance;
mod snapshot;
pub mod watch;

use cairn_proto::etcdserverpb::auth_server::AuthServer;
use cairn_proto::etcdserverpb::cluster_server::ClusterServer;
use cairn_proto::etcdserverpb::kv_server::KvServer;
use cairn_proto::etcdserverpb::lease_server::LeaseServer;
use cairn_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use cairn_proto::etcdserverpb::watch_server::WatchServer;
use cairn_proto::v3electionpb::election_server::ElectionServer;
use cairn_proto::v3lockpb::lock_server::LockServer;
use tonic::service::Routes;

use crate::context::Context;

/// etcd accepts gRPC messages up to --max-request-bytes plus this much framing.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The gRPC services as one axum router, with etcd's status for oversized messages.
pub fn router(ctx: &Context) -> axum::Router {
    routes(ctx)
        .into_axum_router()
        .layer(axum::middleware::map_response(limits::etcd_size_error))
}

fn routes(ctx: &Context) -> Routes {
    let limit = ctx.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    Routes::new(KvServer::new(kv::KvService(ctx.clone())).max_decoding_message_size(limit))
        .add_service(
            WatchServer::new(watch::WatchService(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            AuthServer::new(auth::AuthService(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            LockServer::new(lock::LockService(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServer::new(election::ElectionService(ctx.clone()))
                .max_decoding_message_size(limit),
        )
}
