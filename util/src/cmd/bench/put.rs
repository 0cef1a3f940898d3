//! `bench put`: one put per request, to a key from the key space (etcd `benchmark put`).

use cairn_proto::etcdserverpb::PutRequest;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use super::driver::{Plan, Worker, drive};
use super::report::Summary;
use super::{Keys, Load};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub keys: Keys,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
}

struct Put {
    kv: KvClient<Channel>,
    keys: Keys,
    value: Vec<u8>,
}

impl Worker for Put {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let req = PutRequest {
            key: self.keys.key(self.keys.index(n)),
            value: self.value.clone(),
            ..Default::default()
        };
        self.kv.put(req).await.map(drop)
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    a.keys.validate()?;
    let channels = super::connect(g, a.load.conns, true).await?;
    let value = super::value(a.val_size);
    let workers = (0..a.load.clients)
        .map(|c| Put {
            kv: KvClient::new(super::channel_for(&channels, c)),
            keys: a.keys.clone(),
            value: value.clone(),
        })
        .collect();
    let (elapsed, series) = drive(&Plan::new(&a.load, "put"), workers, 1).await;
    Ok(Summary {
        workload: "put",
        elapsed,
        series: vec![("put", series[0].clone())],
        notes: vec![],
    })
}
