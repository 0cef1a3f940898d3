//! `cairnutl endpoint status|health|hashkv`: per-endpoint checks, as etcdctl prints them.

use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::{HashKvRequest, RangeRequest, StatusRequest};
use clap::Subcommand;
use serde_json::json;

use crate::printer::{Format, Report, render};

#[derive(Subcommand)]
pub enum Endpoint {
    /// Status of each endpoint: ID, version, DB size, leader, raft term and index.
    Status {
        /// Use all members' client URLs (from MemberList) instead of --endpoints.
        #[arg(long)]
        cluster: bool,
    },
    /// Whether each endpoint answers a linearizable read.
    Health {
        /// Use all members' client URLs (from MemberList) instead of --endpoints.
        #[arg(long)]
        cluster: bool,
    },
    /// The HashKV of each endpoint at a revision (0 = latest).
    Hashkv {
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Use all members' client URLs (from MemberList) instead of --endpoints.
        #[arg(long)]
        cluster: bool,
    },
}

pub fn run(
    cmd: Endpoint,
    endpoints: &[String],
    timeout: Duration,
    format: Format,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let (Endpoint::Status { cluster }
        | Endpoint::Health { cluster }
        | Endpoint::Hashkv { cluster, .. }) = cmd;
        let endpoints = if cluster {
            &cluster_endpoints(endpoints, timeout).await?
        } else {
            endpoints
        };
        match cmd {
            Endpoint::Status { .. } => status(endpoints, timeout).await,
            Endpoint::Health { .. } => health(endpoints, timeout).await,
            Endpoint::Hashkv { rev, .. } => hashkv(endpoints, timeout, rev).await,
        }
    })?;
    print!("{}", render(&report, format));
    Ok(())
}

/// `--cluster`: the client URLs of every member, asked of the first endpoint that answers,
/// as etcdctl does.
async fn cluster_endpoints(endpoints: &[String], timeout: Duration) -> anyhow::Result<Vec<String>> {
    let mut last = anyhow::anyhow!("no endpoints given; pass --endpoints");
    for ep in endpoints {
        match super::member::cluster_endpoints(ep, timeout).await {
            Ok(eps) => return Ok(eps),
            Err(e) => last = e.context(format!("member list from {ep}")),
        }
    }
    Err(last)
}

async fn status(endpoints: &[String], timeout: Duration) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for ep in endpoints {
        let mut c = MaintenanceClient::new(super::connect(ep, timeout).await?);
        let s = c
            .status(StatusRequest {})
            .await
            .with_context(|| format!("status of {ep}"))?
            .into_inner();
        let h = s.header.unwrap_or_default();
        rows.push(vec![
            ep.clone(),
            format!("{:x}", h.member_id),
            s.version.clone(),
            s.db_size.to_string(),
            (s.leader == h.member_id).to_string(),
            s.is_learner.to_string(),
            s.raft_term.to_string(),
            s.raft_index.to_string(),
            s.raft_applied_index.to_string(),
            s.errors.join(", "),
        ]);
        json.push(json!({"Endpoint": ep, "Status": {
            "header": {"cluster_id": h.cluster_id, "member_id": h.member_id, "revision": h.revision, "raft_term": h.raft_term},
            "version": s.version, "dbSize": s.db_size, "leader": s.leader, "raftIndex": s.raft_index, "raftTerm": s.raft_term,
            "raftAppliedIndex": s.raft_applied_index, "dbSizeInUse": s.db_size_in_use, "isLearner": s.is_learner, "errors": s.errors,
        }}));
    }
    let columns = vec![
        "ENDPOINT",
        "ID",
        "VERSION",
        "DB SIZE",
        "IS LEADER",
        "IS LEARNER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "ERRORS",
    ];
    Ok(Report {
        columns,
        rows,
        json: json.into(),
    })
}

async fn health(endpoints: &[String], timeout: Duration) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut unhealthy = 0;
    for ep in endpoints {
        let started = Instant::now();
        let result = async {
            let mut c = KvClient::new(super::connect(ep, timeout).await?);
            c.range(RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            })
            .await?;
            anyhow::Ok(())
        }
        .await;
        let took = started.elapsed();
        let (ok, err) = match result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, format!("{e:#}")),
        };
        unhealthy += (!ok) as usize;
        rows.push(vec![
            ep.clone(),
            ok.to_string(),
            format!("{took:?}"),
            err.clone(),
        ]);
        json.push(json!({"endpoint": ep, "health": ok, "took": format!("{took:?}"), "error": err}));
    }
    if unhealthy > 0 {
        eprint!(
            "{}",
            render(
                &Report {
                    columns: vec!["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
                    rows,
                    json: json.into()
                },
                Format::Table
            )
        );
        anyhow::bail!(
            "unhealthy cluster: {unhealthy} of {} endpoints failed",
            endpoints.len()
        );
    }
    Ok(Report {
        columns: vec!["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
        rows,
        json: json.into(),
    })
}

async fn hashkv(endpoints: &[String], timeout: Duration, rev: i64) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for ep in endpoints {
        let mut c = MaintenanceClient::new(super::connect(ep, timeout).await?);
        let h = c
            .hash_kv(HashKvRequest { revision: rev })
            .await
            .with_context(|| format!("hashkv of {ep}"))?
            .into_inner();
        rows.push(vec![
            ep.clone(),
            h.hash.to_string(),
            h.compact_revision.to_string(),
            h.hash_revision.to_string(),
        ]);
        json.push(json!({"Endpoint": ep, "HashKV": {"hash": h.hash, "compact_revision": h.compact_revision, "hash_revision": h.hash_revision}}));
    }
    Ok(Report {
        columns: vec!["ENDPOINT", "HASH", "COMPACT REVISION", "HASH REVISION"],
        rows,
        json: json.into(),
    })
}
