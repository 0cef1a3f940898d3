//! `cairnutl hashkv --data-dir DIR [--rev N]`: the HashKV of a stopped member's data dir,
//! etcdutl 3.6's command; equal to `endpoint hashkv` of the running member at that revision.

use std::path::PathBuf;

use serde_json::json;

use crate::printer::{Report, render};

#[derive(clap::Args)]
pub struct Args {
    /// The data dir of a stopped member.
    #[arg(long, env = "ETCD_DATA_DIR")]
    data_dir: PathBuf,
    /// Revision to hash up to (0 = latest).
    #[arg(long, default_value_t = 0)]
    rev: i64,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    let store = cairn_storage::offline::open_store(&a.data_dir)?;
    let h = store.hash_kv(a.rev).map_err(|e| {
        anyhow::anyhow!(
            "hashkv of {} at revision {}: {e}",
            a.data_dir.display(),
            a.rev
        )
    })?;
    let report = Report {
        columns: vec!["HASH", "HASH REVISION", "COMPACT REVISION"],
        rows: vec![vec![
            h.hash.to_string(),
            h.hash_revision.to_string(),
            h.compact_revision.to_string(),
        ]],
        json: json!({
            "hash": h.hash,
            "compact_revision": h.compact_revision,
            "hash_revision": h.hash_revision,
        }),
    };
    print!("{}", render(&report, g.format));
    Ok(())
}
