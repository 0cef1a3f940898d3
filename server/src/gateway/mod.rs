//! etcd's JSON gateway on the client URLs: every route etcd 3.4/3.5 serves under `/v3/` (and
//! `/v3beta/`, the same routes), with grpc-gateway's JSON mapping (`cairn_proto`'s serde, made
//! by pbjson), its error bodies and HTTP statuses and its CORS headers. Each route calls the
//! gRPC service's own method (`crate::grpc`): the gateway translates, it implements no RPC.
//! `--enable-grpc-gateway=false` leaves it out.
//!
//! # Layout
//! - [`unary`]: one request message in, one answer out.
//! - [`streams`]: watch, keep-alive, snapshot and observe as a chunk per message.
//! - [`status`]: gRPC statuses as HTTP statuses and etcd's error bodies.

mod status;
mod streams;
mod unary;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use cairn_proto::etcdserverpb::auth_server::Auth;
use cairn_proto::etcdserverpb::cluster_server::Cluster;
use cairn_proto::etcdserverpb::kv_server::Kv;
use cairn_proto::etcdserverpb::lease_server::Lease;
use cairn_proto::etcdserverpb::maintenance_server::Maintenance;
use cairn_proto::etcdserverpb::watch_server::Watch;
use cairn_proto::v3electionpb::election_server::Election;
use cairn_proto::v3lockpb::lock_server::Lock;

use crate::context::Context;
use crate::grpc::{self, GRPC_OVERHEAD_BYTES};

/// `POST` of a route to a service method: `call!(kind, service, method)` with `kind` one of
/// `unary`, `server_stream`, `bidi` (the functions of `unary` and `streams`).
macro_rules! call {
    ($kind:ident, $svc:expr, $limit:expr, $method:ident) => {{
        let svc = $svc.clone();
        let limit = $limit;
        post(move |req: Request| {
            let svc = svc.clone();
            async move { $kind(req, limit, |r| async move { svc.$method(r).await }).await }
        })
    }};
}

use streams::{bidi, server_stream};
use unary::unary;

/// The gateway's routes, under `/v3` and `/v3beta`.
pub fn router(ctx: &Context) -> Router {
    let v3 = routes(ctx);
    Router::new()
        .nest("/v3", v3.clone())
        .nest("/v3beta", v3)
        .layer(axum::middleware::from_fn(cors))
}

fn routes(ctx: &Context) -> Router {
    let limit = ctx.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = Arc::new(grpc::kv::KvService(ctx.clone()));
    let watch = Arc::new(grpc::watch::WatchService(ctx.clone()));
    let lease = Arc::new(grpc::lease::LeaseService(ctx.clone()));
    let cluster = Arc::new(grpc::cluster::ClusterService(ctx.clone()));
    let mt = Arc::new(grpc::maintenance::MaintenanceService(ctx.clone()));
    let auth = Arc::new(grpc::auth::AuthService(ctx.clone()));
    let lock = Arc::new(grpc::lock::LockService(ctx.clone()));
    let election = Arc::new(grpc::election::ElectionService(ctx.clone()));
    let revoke: MethodRouter = call!(unary, lease, limit, lease_revoke);
    let ttl: MethodRouter = call!(unary, lease, limit, lease_time_to_live);
    let leases: MethodRouter = call!(unary, lease, limit, lease_leases);
    Router::new()
        .route("/kv/range", call!(unary, kv, limit, range))
        .route("/kv/put", call!(unary, kv, limit, put))
        .route("/kv/deleterange", call!(unary, kv, limit, delete_range))
        .route("/kv/txn", call!(unary, kv, limit, txn))
        .route("/kv/compaction", call!(unary, kv, limit, compact))
        .route("/watch", call!(bidi, watch, limit, watch))
        .route("/lease/grant", call!(unary, lease, limit, lease_grant))
        .route("/lease/revoke", revoke.clone())
        .route("/kv/lease/revoke", revoke)
        .route(
            "/lease/keepalive",
            call!(bidi, lease, limit, lease_keep_alive),
        )
        .route("/lease/timetolive", ttl.clone())
        .route("/kv/lease/timetolive", ttl)
        .route("/lease/leases", leases.clone())
        .route("/kv/lease/leases", leases)
        .route(
            "/cluster/member/add",
            call!(unary, cluster, limit, member_add),
        )
        .route(
            "/cluster/member/remove",
            call!(unary, cluster, limit, member_remove),
        )
        .route(
            "/cluster/member/update",
            call!(unary, cluster, limit, member_update),
        )
        .route(
            "/cluster/member/list",
            call!(unary, cluster, limit, member_list),
        )
        .route(
            "/cluster/member/promote",
            call!(unary, cluster, limit, member_promote),
        )
        .route("/maintenance/alarm", call!(unary, mt, limit, alarm))
        .route("/maintenance/status", call!(unary, mt, limit, status))
        .route(
            "/maintenance/defragment",
            call!(unary, mt, limit, defragment),
        )
        .route("/maintenance/hash", call!(unary, mt, limit, hash))
        .route("/maintenance/hashkv", call!(unary, mt, limit, hash_kv))
        .route(
            "/maintenance/snapshot",
            call!(server_stream, mt, limit, snapshot),
        )
        .route(
            "/maintenance/transfer-leadership",
            call!(unary, mt, limit, move_leader),
        )
        .route("/maintenance/downgrade", call!(unary, mt, limit, downgrade))
        .route("/auth/enable", call!(unary, auth, limit, auth_enable))
        .route("/auth/disable", call!(unary, auth, limit, auth_disable))
        .route("/auth/status", call!(unary, auth, limit, auth_status))
        .route(
            "/auth/authenticate",
            call!(unary, auth, limit, authenticate),
        )
        .route("/auth/user/add", call!(unary, auth, limit, user_add))
        .route("/auth/user/get", call!(unary, auth, limit, user_get))
        .route("/auth/user/list", call!(unary, auth, limit, user_list))
        .route("/auth/user/delete", call!(unary, auth, limit, user_delete))
        .route(
            "/auth/user/changepw",
            call!(unary, auth, limit, user_change_password),
        )
        .route(
            "/auth/user/grant",
            call!(unary, auth, limit, user_grant_role),
        )
        .route(
            "/auth/user/revoke",
            call!(unary, auth, limit, user_revoke_role),
        )
        .route("/auth/role/add", call!(unary, auth, limit, role_add))
        .route("/auth/role/get", call!(unary, auth, limit, role_get))
        .route("/auth/role/list", call!(unary, auth, limit, role_list))
        .route("/auth/role/delete", call!(unary, auth, limit, role_delete))
        .route(
            "/auth/role/grant",
            call!(unary, auth, limit, role_grant_permission),
        )
        .route(
            "/auth/role/revoke",
            call!(unary, auth, limit, role_revoke_permission),
        )
        .route("/lock/lock", call!(unary, lock, limit, lock))
        .route("/lock/unlock", call!(unary, lock, limit, unlock))
        .route(
            "/election/campaign",
            call!(unary, election, limit, campaign),
        )
        .route(
            "/election/proclaim",
            call!(unary, election, limit, proclaim),
        )
        .route("/election/leader", call!(unary, election, limit, leader))
        .route(
            "/election/observe",
            call!(server_stream, election, limit, observe),
        )
        .route("/election/resign", call!(unary, election, limit, resign))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Go's `http.NotFound`, as etcd answers a path it has no route for.
async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Not Found\n")
}

async fn method_not_allowed() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
}

fn plain(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// etcd's gateway lets browsers call it from any origin: its CORS headers on every answer,
/// and a preflight (`OPTIONS`, on any path) answered at once.
async fn cors(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    resp
}
