//! `bench put`: one put per request, to a key from the key space (etcd `benchmark put`).

use cairn_client::Svc;
use cairn_proto::etcdserverpb::PutRequest;
use cairn_proto::etcdserverpb::kv_client::KvClient;

use super::driver::Worker;
use super::report::Summary;
use super::{Keys, Puts};

struct Put {
    kv: KvClient<Svc>,
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

pub async fn run(a: Puts, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    a.keys.validate()?;
    let value = super::value(a.val_size);
    let workers = super::kv_workers(g, &a.load, |kv| Put {
        kv,
        keys: a.keys.clone(),
        value: value.clone(),
    })
    .await?;
    Ok(super::drive_one(&a.load, "put", "put", workers, vec![]).await)
}
