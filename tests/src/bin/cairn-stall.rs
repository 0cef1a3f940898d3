//! Measures how a compaction stalls any etcd-API server: `--putters` clients put and
//! `--readers` clients range (serializable) in closed loops, each request timed; after a
//! baseline of `--baseline-ms`, one `Compact(--revision, physical)` is sent and timed; the
//! load goes on `--baseline-ms` after it. Prints one JSON object: the compaction's seconds,
//! and for puts and reads the requests, the p99 and the worst latency (ms) while it ran, and
//! the p99 and the worst before it. Not a test; tests/bench/compaction_stall.sh calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};
use clap::Parser;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// The compaction point.
    #[arg(long)]
    revision: i64,
    #[arg(long, default_value_t = 2)]
    putters: usize,
    #[arg(long, default_value_t = 2)]
    readers: usize,
    #[arg(long, default_value_t = 1000)]
    baseline_ms: u64,
    /// Keys the readers pick from (as cairn-fill names them).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[arg(long, default_value = "bench/")]
    prefix: String,
}

/// One timed request: when it started, relative to the run's start, and how long it took.
type Sample = (Duration, Duration);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let channel = cairn_tests::grpc::bench_channel(&a.endpoints).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut puts = Vec::new();
    let mut reads = Vec::new();
    for c in 0..a.putters {
        let (kv, stop) = (client(&channel), stop.clone());
        puts.push(tokio::spawn(async move {
            timed_loop(t0, &stop, |n| {
                let req = PutRequest {
                    key: format!("stall/{c}/{}", n % 1000).into(),
                    value: vec![b'x'; 1024],
                    ..Default::default()
                };
                let mut kv = kv.clone();
                async move { kv.put(req).await.map(drop) }
            })
            .await
        }));
    }
    for c in 0..a.readers {
        let (kv, stop, prefix, keys) = (client(&channel), stop.clone(), a.prefix.clone(), a.keys);
        reads.push(tokio::spawn(async move {
            timed_loop(t0, &stop, |n| {
                let i = (n * 7919 + c as u64 * 104_729) % keys.max(1);
                let req = RangeRequest {
                    key: format!("{prefix}{i:010}").into(),
                    serializable: true,
                    ..Default::default()
                };
                let mut kv = kv.clone();
                async move { kv.range(req).await.map(drop) }
            })
            .await
        }));
    }
    let baseline = Duration::from_millis(a.baseline_ms);
    tokio::time::sleep(baseline).await;
    let start = t0.elapsed();
    client(&channel)
        .compact(CompactionRequest {
            revision: a.revision,
            physical: true,
        })
        .await?;
    let end = t0.elapsed();
    tokio::time::sleep(baseline).await;
    stop.store(true, Ordering::Relaxed);
    let mut all_puts = Vec::new();
    for p in puts {
        all_puts.extend(p.await??);
    }
    let mut all_reads = Vec::new();
    for r in reads {
        all_reads.extend(r.await??);
    }
    let report = serde_json::json!({
        "compaction_s": (end - start).as_secs_f64(),
        "put": summary(&all_puts, start, end),
        "read": summary(&all_reads, start, end),
    });
    println!("{report}");
    Ok(())
}

fn client(channel: &Channel) -> KvClient<Channel> {
    KvClient::new(channel.clone()).max_decoding_message_size(64 << 20)
}

/// Runs `request(n)` for n = 0, 1, ... until `stop`, timing each.
async fn timed_loop<F, Fut>(
    t0: Instant,
    stop: &AtomicBool,
    mut request: F,
) -> anyhow::Result<Vec<Sample>>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut samples = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let at = t0.elapsed();
        request(n).await?;
        samples.push((at, t0.elapsed() - at));
        n += 1;
    }
    Ok(samples)
}

/// Requests that overlapped `start..end` (the compaction), their p99 and worst latency, and
/// the p99 and worst of those that ended before it.
fn summary(samples: &[Sample], start: Duration, end: Duration) -> serde_json::Value {
    let overlapping = || {
        samples
            .iter()
            .filter(|(at, took)| *at < end && *at + *took > start)
    };
    let during: Vec<Duration> = overlapping().map(|(_, took)| *took).collect();
    // when the worst one began, from the compaction's start (to line up with the server's log)
    let worst_at = overlapping()
        .max_by_key(|(_, took)| *took)
        .map_or(0.0, |(at, _)| at.as_secs_f64() - start.as_secs_f64());
    let before: Vec<Duration> = samples
        .iter()
        .filter(|(at, took)| *at + *took <= start)
        .map(|(_, took)| *took)
        .collect();
    serde_json::json!({
        "requests": during.len(),
        "p99_ms": ms(percentile(&during, 0.99)),
        "worst_ms": ms(during.iter().max().copied().unwrap_or_default()),
        "worst_at_s": (worst_at * 1000.0).round() / 1000.0,
        "p99_before_ms": ms(percentile(&before, 0.99)),
        "worst_before_ms": ms(before.iter().max().copied().unwrap_or_default()),
    })
}

fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
