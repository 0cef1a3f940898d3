//! `bench range`: one single-key read per request from the key space (etcd `benchmark range`
//! with a key), linearizable (`--consistency l`, the default) or serializable (`s`).

use cairn_proto::etcdserverpb::RangeRequest;
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
    /// Linearizable (l) or serializable (s) reads.
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    pub consistency: String,
}

impl Args {
    pub fn serializable(&self) -> bool {
        self.consistency == "s"
    }
}

struct Range {
    kv: KvClient<Channel>,
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
    let channels = super::connect(g, a.load.conns, true).await?;
    let workers = (0..a.load.clients)
        .map(|c| Range {
            kv: KvClient::new(super::channel_for(&channels, c)),
            keys: a.keys.clone(),
            serializable: a.serializable(),
        })
        .collect();
    let (elapsed, series) = drive(&Plan::new(&a.load, "range"), workers, 1).await;
    let consistency = if a.serializable() {
        "serializable"
    } else {
        "linearizable"
    };
    Ok(Summary {
        workload: "range",
        elapsed,
        series: vec![("range", series[0].clone())],
        notes: vec![("consistency", consistency.into())],
    })
}
