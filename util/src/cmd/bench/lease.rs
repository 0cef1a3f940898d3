//! `bench lease-keepalive`: each client grants one lease, opens one keep-alive stream (as a
//! real client does) and sends one keep-alive per request, waiting for its answer. etcd's
//! `benchmark lease-keepalive` opens a new stream per request (`KeepAliveOnce`); the steady
//! stream is what a busy cluster sees from its clients.

use cairn_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;
use tonic::Streaming;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::Load;
use super::driver::{Plan, Worker, drive};
use super::report::Summary;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub load: Load,
    /// TTL of each client's lease, in seconds.
    #[arg(long, default_value_t = 100)]
    pub ttl: i64,
}

struct KeepAlive {
    id: i64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl Worker for KeepAlive {
    async fn call(&mut self, _n: u64) -> Result<(), tonic::Status> {
        let req = LeaseKeepAliveRequest { id: self.id };
        if self.requests.send(req).await.is_err() {
            return Err(tonic::Status::unavailable("keep-alive stream closed"));
        }
        match self.responses.message().await? {
            Some(r) if r.ttl > 0 => Ok(()),
            Some(_) => Err(tonic::Status::not_found("lease expired or revoked")),
            None => Err(tonic::Status::unavailable(
                "keep-alive stream closed by the server",
            )),
        }
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    let conns = super::connect(g, a.load.conns, false).await?;
    let mut workers = Vec::new();
    for c in 0..a.load.clients {
        let mut lease = super::conn_for(&conns, c).lease();
        let grant = LeaseGrantRequest { ttl: a.ttl, id: 0 };
        let id = tokio::time::timeout(g.command_timeout, lease.lease_grant(grant))
            .await
            .map_err(|_| anyhow::anyhow!("lease grant timed out (raise --command-timeout)"))?
            .map_err(crate::cmd::online::rpc_error)?
            .into_inner()
            .id;
        // A Go server sends the stream's headers with its first answer, and tonic returns the
        // stream only once it has headers: so the first keep-alive (untimed) goes in first.
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.send(LeaseKeepAliveRequest { id }).await;
        let responses = tokio::time::timeout(
            g.command_timeout,
            lease.lease_keep_alive(ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("keep-alive stream not opened in time"))?
        .map_err(crate::cmd::online::rpc_error)?
        .into_inner();
        let mut worker = KeepAlive {
            id,
            requests: tx,
            responses,
        };
        if worker
            .responses
            .message()
            .await
            .map_err(crate::cmd::online::rpc_error)?
            .is_none()
        {
            anyhow::bail!("keep-alive stream closed by the server");
        }
        workers.push(worker);
    }
    let (elapsed, series) = drive(&Plan::new(&a.load, "lease-keepalive"), workers, 1).await;
    Ok(Summary {
        workload: "lease-keepalive",
        elapsed,
        series: vec![("keepalive", series[0].clone())],
        notes: vec![],
    })
}
