//! `cairnutl move-leader TARGET_ID`: transfer leadership, as etcdctl does.
//!
//! Like etcdctl, it asks each endpoint for its status, sends the request to the one that is
//! the leader, and prints `Leadership transferred from <leader> to <target>` (hex IDs).

use cairn_proto::etcdserverpb::{MoveLeaderRequest, StatusRequest};
use serde_json::Value;

use super::online::{block_on, header_obj, print_out, rpc_error};
use crate::printer::Format;

/// etcd's `ExitBadArgs`, which etcdctl uses when no given endpoint is the leader.
const EXIT_BAD_ARGS: i32 = 128;

#[derive(clap::Args)]
pub struct Args {
    /// The member ID (hexadecimal) to hand leadership to.
    target: String,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    let target = u64::from_str_radix(&a.target, 16)
        .map_err(|e| anyhow::anyhow!("bad member ID arg ({e}), expecting ID in Hex"))?;
    let found = block_on(async {
        let dialer = g.dialer()?;
        for ep in dialer.endpoints() {
            let mut c = dialer.connect(ep).await?.maintenance();
            let s = c
                .status(StatusRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            let me = s.header.as_ref().map_or(0, |h| h.member_id);
            if s.leader != 0 && s.leader == me {
                let r = c
                    .move_leader(MoveLeaderRequest { target_id: target })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                return anyhow::Ok(Some((s.leader, r)));
            }
        }
        Ok(None)
    })?;
    let Some((leader, r)) = found else {
        eprintln!(
            "Error: no leader endpoint given at {:?}; include the leader's endpoint in --endpoints",
            g.endpoints
        );
        std::process::exit(EXIT_BAD_ARGS);
    };
    match g.format {
        Format::Json => print_out(&format!(
            "{}\n",
            Value::Object(header_obj(r.header.as_ref()))
        )),
        _ => print_out(&format!(
            "Leadership transferred from {leader:x} to {target:x}\n"
        )),
    }
}
