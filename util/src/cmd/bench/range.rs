//! `bench range`: one single-key read per request from the key space (etcd `benchmark range`
//! with a key), linearizable (`--consistency l`, the default) or serializable (`s`).

use cairn_client::Svc;
use cairn_proto::etcdserverpb::RangeRequest;
use cairn_proto::etcdserverpb::kv_client::KvClient;

use super::driver::Worker;
use super::report::Summary;
use super::{Keys, Load, Reads};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub keys: Keys,
    #[command(flatten)]
    pub reads: Reads,
}

struct Range {
    kv: KvClient<Svc>,
    keys: Keys,
    serializable: bool,
}

impl Worker for Range {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let req = RangeRequest {
            key: self.keys.key(self.keys.index(n)),
            serializable: self.serializable,
            ..Default::default()
        };
        self.kv.range(req).await.map(drop)
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    a.keys.validate()?;
    let serializable = a.reads.serializable();
    let workers = super::kv_workers(g, &a.load, |kv| Range {
        kv,
        keys: a.keys.clone(),
        serializable,
    })
    .await?;
    let consistency = if serializable {
        "serializable"
    } else {
        "linearizable"
    };
    let notes = vec![("consistency", consistency.into())];
    Ok(super::drive_one(&a.load, "range", "range", workers, notes).await)
}
