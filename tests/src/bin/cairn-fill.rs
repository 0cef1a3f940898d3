//! Loads a data set into any etcd-API server for benchmarks: `--keys` keys of `--value-size`
//! bytes under `--prefix`, written by `--clients` concurrent clients in txns of `--batch`
//! puts. Prints the elapsed time and keys/s. Not a test; benchmarks call it.

use std::time::Instant;

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    #[arg(long, default_value_t = 16)]
    clients: u64,
    #[arg(long, default_value_t = 100)]
    batch: u64,
    #[arg(long, default_value = "bench/")]
    prefix: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let channel = cairn_tests::grpc::bench_channel(&a.endpoints).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let mut kv = KvClient::new(channel.clone()).max_decoding_message_size(64 << 20);
        let (keys, batch, size, prefix, clients) =
            (a.keys, a.batch, a.value_size, a.prefix.clone(), a.clients);
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < keys {
                let mut ops = Vec::new();
                while ops.len() < batch as usize && i < keys {
                    let value = value_for(i, size);
                    let put = PutRequest {
                        key: format!("{prefix}{i:010}").into(),
                        value,
                        ..Default::default()
                    };
                    ops.push(RequestOp {
                        request: Some(Request::RequestPut(put)),
                    });
                    i += clients;
                }
                kv.txn(TxnRequest {
                    success: ops,
                    ..Default::default()
                })
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {} keys of {} bytes in {secs:.1} s ({:.0} keys/s)",
        a.keys,
        a.value_size,
        a.keys as f64 / secs
    );
    Ok(())
}

/// Deterministic random lowercase letters: about 4.7 bits of entropy per byte, so a
/// compressor gains what it would on text-like values, not on runs of one byte.
fn value_for(i: u64, size: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}
