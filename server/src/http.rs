//! Plain HTTP endpoints beside gRPC on the client port (and on --listen-metrics-urls):
//! `/health` (etcd's JSON), `/version`, and Prometheus `/metrics` in text format.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::context::Context;

pub fn router(ctx: Context) -> Router {
    let (h, m, v) = (ctx.clone(), ctx.clone(), ctx);
    Router::new()
        .route("/health", get(move || health(h.clone())))
        .route("/metrics", get(move || metrics(m.clone())))
        .route("/version", get(move || version(v.clone())))
}

/// Healthy when a linearizable read succeeds within a second and no alarm is raised.
async fn health(ctx: Context) -> impl IntoResponse {
    let read = tokio::time::timeout(Duration::from_secs(1), ctx.read(false, |s| s.alarms())).await;
    let (ok, reason) = match read {
        Ok(Ok(alarms)) if alarms.is_empty() => (true, String::new()),
        Ok(Ok(alarms)) => (false, format!("ALARM {}", alarms.len())),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, "timed out waiting for a linearizable read".into()),
    };
    let body = serde_json::json!({"health": ok.to_string(), "reason": reason}).to_string();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn version(ctx: Context) -> impl IntoResponse {
    let v = &ctx.config.etcd_version;
    let cluster = v
        .rsplit_once('.')
        .map(|(mm, _)| format!("{mm}.0"))
        .unwrap_or_else(|| v.clone());
    let body = serde_json::json!({"etcdserver": v, "etcdcluster": cluster}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// A few gauges under etcd's metric names, so dashboards built for etcd work.
async fn metrics(ctx: Context) -> impl IntoResponse {
    let store = ctx.store.clone();
    let (db_total, db_used, keys) = tokio::task::spawn_blocking(move || {
        let (t, u) = store.db_size().unwrap_or((0, 0));
        (t, u, store.key_count())
    })
    .await
    .unwrap_or((0, 0, 0));
    let raft = ctx.node.status();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: i64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        raft.leader.is_some() as i64,
    );
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader.",
        raft.is_leader as i64,
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        raft.last_index as i64,
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        raft.applied_index as i64,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        db_total,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        db_used,
    );
    gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        ctx.config.quota_backend_bytes,
    );
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        ctx.store.current_revision(),
    );
    gauge(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        ctx.store.compact_revision(),
    );
    gauge(
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        keys as i64,
    );
    gauge(
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers.",
        ctx.store.watch_hub().watcher_count() as i64,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
