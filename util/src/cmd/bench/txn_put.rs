//! `bench txn-put`: one txn of --txn-ops puts per request (etcd `benchmark txn-put`). A txn's
//! keys are consecutive in the key space, so they never repeat within one txn (etcd refuses
//! duplicate keys in a txn); `--sequential-keys --txn-ops 100 --total N/100` writes every key
//! of an N-key space once.

use cairn_client::Svc;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};

use super::driver::Worker;
use super::report::Summary;
use super::{Keys, Puts};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub puts: Puts,
    /// Puts per txn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub txn_ops: u64,
}

struct TxnPut {
    kv: KvClient<Svc>,
    keys: Keys,
    ops: u64,
    value: Vec<u8>,
}

impl Worker for TxnPut {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        // Request n starts at key index(n * ops): with --sequential-keys the txns tile the key
        // space (a fill), otherwise the start is random.
        let first = self.keys.index(n * self.ops);
        let success = (0..self.ops)
            .map(|j| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: self.keys.key((first + j) % self.keys.key_space_size),
                    value: self.value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        let req = TxnRequest {
            success,
            ..Default::default()
        };
        self.kv.txn(req).await.map(drop)
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    let p = &a.puts;
    p.keys.validate()?;
    if a.txn_ops > p.keys.key_space_size {
        anyhow::bail!(
            "--txn-ops {} needs at least as many keys (--key-space-size {})",
            a.txn_ops,
            p.keys.key_space_size
        );
    }
    let value = super::value(p.val_size);
    let workers = super::kv_workers(g, &p.load, |kv| TxnPut {
        kv,
        keys: p.keys.clone(),
        ops: a.txn_ops,
        value: value.clone(),
    })
    .await?;
    let notes = vec![("txn_ops", a.txn_ops.into())];
    Ok(super::drive_one(&p.load, "txn-put", "txn", workers, notes).await)
}
