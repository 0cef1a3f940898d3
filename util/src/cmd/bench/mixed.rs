//! `bench mixed`: reads and writes over one key space, a fixed share of reads (--read-ratio);
//! whether request `n` reads is a hash of `n`, so two runs send the same sequence.

use cairn_client::Svc;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};

use super::driver::{Plan, Worker, drive};
use super::report::Summary;
use super::{Keys, Puts, Reads};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub puts: Puts,
    /// Share of requests that are reads, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.5)]
    pub read_ratio: f64,
    #[command(flatten)]
    pub reads: Reads,
}

const READ: usize = 0;
const WRITE: usize = 1;

struct Mixed {
    kv: KvClient<Svc>,
    keys: Keys,
    value: Vec<u8>,
    /// Reads when the request's hash modulo 10,000 is below this.
    reads_per_10k: u64,
    serializable: bool,
}

impl Worker for Mixed {
    fn series(&self, n: u64) -> usize {
        // A second hash, independent of the key choice.
        if super::mix(n ^ 0x5EED) % 10_000 < self.reads_per_10k {
            READ
        } else {
            WRITE
        }
    }

    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let key = self.keys.key(self.keys.index(n));
        if self.series(n) == READ {
            let req = RangeRequest {
                key,
                serializable: self.serializable,
                ..Default::default()
            };
            self.kv.range(req).await.map(drop)
        } else {
            let req = PutRequest {
                key,
                value: self.value.clone(),
                ..Default::default()
            };
            self.kv.put(req).await.map(drop)
        }
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    let p = &a.puts;
    p.keys.validate()?;
    if !(0.0..=1.0).contains(&a.read_ratio) {
        anyhow::bail!("--read-ratio {} is not between 0.0 and 1.0", a.read_ratio);
    }
    let value = super::value(p.val_size);
    let workers = super::kv_workers(g, &p.load, |kv| Mixed {
        kv,
        keys: p.keys.clone(),
        value: value.clone(),
        reads_per_10k: (a.read_ratio * 10_000.0).round() as u64,
        serializable: a.reads.serializable(),
    })
    .await?;
    let (elapsed, mut series) = drive(&Plan::new(&p.load, "mixed"), workers, 2).await;
    // The headline is every request together; then reads and writes apart.
    let mut all = series[READ].clone();
    all.merge(&series[WRITE]);
    let write = series.pop().unwrap_or_default();
    let read = series.pop().unwrap_or_default();
    Ok(Summary {
        workload: "mixed",
        elapsed,
        series: vec![("all", all), ("range", read), ("put", write)],
        notes: vec![("read_ratio", a.read_ratio.into())],
    })
}
