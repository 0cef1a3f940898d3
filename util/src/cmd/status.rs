//! `cairnutl status --data-dir DIR`: what a stopped member's data dir holds — revisions, keys,
//! sizes, its member and cluster IDs and the membership it last applied.

use std::path::PathBuf;

use serde_json::json;

use crate::printer::{Format, Report, render};

#[derive(clap::Args)]
pub struct Args {
    /// The data dir of a stopped member.
    #[arg(long, env = "ETCD_DATA_DIR")]
    data_dir: PathBuf,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    let store = cairn_storage::offline::open_store(&a.data_dir)?;
    let info = cairn_consensus::offline::read_member_info(&a.data_dir, &store)?;
    let (db_size, in_use) = store.db_size()?;
    let (revision, compact, keys) = (
        store.current_revision(),
        store.compact_revision(),
        store.key_count(),
    );
    let members: Vec<serde_json::Value> = info
        .members
        .iter()
        .map(|(id, m)| {
            json!({"ID": id, "name": m.name, "peerURLs": m.peer_urls, "clientURLs": m.client_urls})
        })
        .collect();
    let status = Report {
        columns: vec![
            "MEMBER ID",
            "CLUSTER ID",
            "REVISION",
            "COMPACT REVISION",
            "TOTAL KEYS",
            "DB SIZE",
            "DB SIZE IN USE",
        ],
        rows: vec![vec![
            format!("{:x}", info.member_id),
            format!("{:x}", info.cluster_id),
            revision.to_string(),
            compact.to_string(),
            keys.to_string(),
            db_size.to_string(),
            in_use.to_string(),
        ]],
        json: json!({
            "member_id": info.member_id,
            "cluster_id": info.cluster_id,
            "revision": revision,
            "compact_revision": compact,
            "total_keys": keys,
            "db_size": db_size,
            "db_size_in_use": in_use,
            "members": members,
        }),
    };
    print!("{}", render(&status, g.format));
    if g.format == Format::Json {
        return Ok(());
    }
    let members = Report {
        columns: vec!["ID", "NAME", "PEER ADDRS", "CLIENT ADDRS"],
        rows: info
            .members
            .iter()
            .map(|(id, m)| {
                vec![
                    format!("{id:x}"),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    m.client_urls.join(","),
                ]
            })
            .collect(),
        json: serde_json::Value::Null,
    };
    if g.format != Format::Simple {
        println!();
    }
    print!("{}", render(&members, g.format));
    Ok(())
}
