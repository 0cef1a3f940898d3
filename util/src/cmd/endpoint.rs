//! `cairnutl endpoint status|health|hashkv`: per-endpoint checks, as etcdctl prints them.

use std::time::Instant;

use anyhow::Context;
use cairn_client::Dialer;
use cairn_proto::etcdserverpb::{HashKvRequest, RangeRequest, StatusRequest};
use clap::Subcommand;
use serde_json::json;

use super::online::{cluster_dialer, rpc_error};
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

pub fn run(cmd: Endpoint, g: &super::Global) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let (Endpoint::Status { cluster }
        | Endpoint::Health { cluster }
        | Endpoint::Hashkv { cluster, .. }) = cmd;
        let dialer = if cluster {
            &cluster_dialer(g).await?
        } else {
            g.dialer()?
        };
        match cmd {
            Endpoint::Status { .. } => status(dialer).await,
            Endpoint::Health { .. } => health(dialer).await,
            Endpoint::Hashkv { rev, .. } => hashkv(dialer, rev).await,
        }
    })?;
    print!("{}", render(&report, g.format));
    Ok(())
}

async fn status(dialer: &Dialer) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for ep in dialer.endpoints() {
        let s = dialer
            .connect(ep)
            .await?
            .maintenance()
            .status(StatusRequest {})
            .await
            .map_err(rpc_error)
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

async fn health(dialer: &Dialer) -> anyhow::Result<Report> {
    let endpoints = dialer.endpoints();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut unhealthy = 0;
    for ep in endpoints {
        let started = Instant::now();
        let result = async {
            let c = dialer.connect(ep).await?;
            c.kv()
                .range(RangeRequest {
                    key: b"health".to_vec(),
                    ..Default::default()
                })
                .await
                .map_err(rpc_error)?;
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

async fn hashkv(dialer: &Dialer, rev: i64) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for ep in dialer.endpoints() {
        let h = dialer
            .connect(ep)
            .await?
            .maintenance()
            .hash_kv(HashKvRequest { revision: rev })
            .await
            .map_err(rpc_error)
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
