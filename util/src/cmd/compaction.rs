//! `cairnutl compaction REV [--physical]`: discard the history before REV, as etcdctl does.
//!
//! Simple output is etcdctl's `compacted revision N` (etcdctl prints it whatever `-w` says);
//! `-w json` is ours: the response header plus `compacted_revision`.

use cairn_proto::etcdserverpb::CompactionRequest;
use serde_json::Value;

use super::online::{block_on, header_obj, print_out, rpc_error};
use crate::printer::Format;

#[derive(clap::Args)]
pub struct Args {
    /// The revision to compact up to.
    rev: i64,
    /// Wait until the compaction is physically applied to the backend.
    #[arg(long)]
    physical: bool,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    let req = CompactionRequest {
        revision: a.rev,
        physical: a.physical,
    };
    let r = block_on(async {
        let c = g.connect_any().await?;
        c.kv().compact(req).await.map_err(rpc_error)
    })?
    .into_inner();
    match g.format {
        Format::Json => {
            let mut o = header_obj(r.header.as_ref());
            o.insert("compacted_revision".into(), a.rev.into());
            print_out(&format!("{}\n", Value::Object(o)))
        }
        _ => print_out(&format!("compacted revision {}\n", a.rev)),
    }
}
