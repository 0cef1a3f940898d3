//! `bench watch`: event latency. `--watchers` watchers over `--streams` watch streams watch
//! `--watched-keys` keys (watcher `i` on key `i % watched-keys`); then the putters (the
//! `--clients`, at `--rate`) write to those keys in turn. Each put carries the time it was
//! sent in its value's first 8 bytes; a watcher receiving the event records now minus that,
//! so the latency is from the put being sent to the event arriving, measured in one process
//! (etcd's `benchmark watch-latency` measures the same span).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_client::Svc;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::watch_client::WatchClient;
use cairn_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, watch_request};
use tokio::sync::{mpsc, watch};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::driver::{Plan, Series, Worker, drive};
use super::report::Summary;
use super::{Keys, Load};

#[derive(clap::Args)]
pub struct Args {
    /// The putters: --clients, --total puts (or --duration), --rate puts per second.
    #[command(flatten)]
    pub load: Load,
    /// Number of watchers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub watchers: u64,
    /// Number of distinct watched keys (--watchers must be a multiple of it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub watched_keys: u64,
    /// Watch streams the watchers are spread over (round-robin over the connections).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub key_size: u64,
    /// Value size in bytes (at least 8: the send time travels in the value).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(8..))]
    pub val_size: u64,
}

/// A putter: writes the send time into the value.
struct StampedPut {
    kv: KvClient<Svc>,
    keys: Keys,
    value: Vec<u8>,
    base: Instant,
}

impl Worker for StampedPut {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Status> {
        let mut value = self.value.clone();
        let sent = self.base.elapsed().as_nanos() as u64;
        value[..8].copy_from_slice(&sent.to_le_bytes());
        let req = PutRequest {
            key: self.keys.key(self.keys.index(n)),
            value,
            ..Default::default()
        };
        self.kv.put(req).await.map(drop)
    }
}

pub async fn run(a: Args, g: &crate::cmd::Global) -> anyhow::Result<Summary> {
    if !a.watchers.is_multiple_of(a.watched_keys) {
        anyhow::bail!(
            "--watchers {} is not a multiple of --watched-keys {}: each key needs as many watchers",
            a.watchers,
            a.watched_keys
        );
    }
    // The putters cycle through the watched keys so each gets its share of events.
    let keys = Keys {
        key_size: a.key_size,
        key_space_size: a.watched_keys,
        sequential_keys: true,
    };
    keys.validate()?;
    let base = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (created_tx, mut created_rx) = mpsc::channel(a.watchers as usize);

    let watch_conns = super::connect(g, a.load.conns, false).await?;
    let mut streams = Vec::new();
    for s in 0..a.streams {
        let mine: Vec<Vec<u8>> = (0..a.watchers)
            .filter(|w| w % a.streams == s)
            .map(|w| keys.key(w % a.watched_keys))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let client = super::conn_for(&watch_conns, s).watch();
        streams.push(tokio::spawn(watch_stream(
            client,
            mine,
            base,
            received.clone(),
            created_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(created_tx);
    // Every watcher must be in place before the first put, or its event would be missed.
    let deadline = tokio::time::Instant::now() + g.command_timeout;
    for _ in 0..a.watchers {
        match tokio::time::timeout_at(deadline, created_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(crate::cmd::online::rpc_error(e)),
            Ok(None) => anyhow::bail!("a watch stream closed before its watchers were created"),
            Err(_) => anyhow::bail!("watchers not created in time (raise --command-timeout)"),
        }
    }

    let put_conns = super::connect(g, a.load.conns, true).await?;
    let value = super::value(a.val_size);
    let putters = (0..a.load.clients)
        .map(|c| StampedPut {
            kv: super::conn_for(&put_conns, c).kv(),
            keys: keys.clone(),
            value: value.clone(),
            base,
        })
        .collect();
    let (elapsed, puts) = drive(&Plan::new(&a.load, "watch puts"), putters, 1).await;

    // Wait (up to --command-timeout) for the last events, then stop the watchers.
    let expected = puts[0].hist.count() * (a.watchers / a.watched_keys);
    let deadline = tokio::time::Instant::now() + g.command_timeout;
    while received.load(Ordering::Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    let mut events = Series::default();
    for s in streams {
        match s.await {
            Ok(Ok(series)) => events.merge(&series),
            Ok(Err(e)) => events.error(&e),
            Err(e) => anyhow::bail!("watch stream task failed: {e}"),
        }
    }
    let got = events.hist.count();
    if got < expected {
        events.errors += expected - got;
        events
            .first_error
            .get_or_insert_with(|| format!("{} events missing after the puts", expected - got));
    }
    Ok(Summary {
        workload: "watch",
        elapsed,
        series: vec![("event", events), ("put", puts[0].clone())],
        notes: vec![
            ("watchers", a.watchers.into()),
            ("watched_keys", a.watched_keys.into()),
            ("expected_events", expected.into()),
        ],
    })
}

/// One watch stream: creates a watcher per key, reports each creation, then records the
/// latency of every event until told to stop.
async fn watch_stream(
    mut client: WatchClient<Svc>,
    keys: Vec<Vec<u8>>,
    base: Instant,
    received: Arc<AtomicU64>,
    created: mpsc::Sender<Result<(), tonic::Status>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Series, tonic::Status> {
    let (tx, rx) = mpsc::channel(keys.len());
    for key in keys {
        let create = WatchCreateRequest {
            key,
            ..Default::default()
        };
        let req = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        };
        // The channel holds every request, so this never waits.
        let _ = tx.send(req).await;
    }
    let mut responses = match client.watch(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let _ = created.send(Err(e.clone())).await;
            return Err(e);
        }
    };
    let mut series = Series::default();
    loop {
        let msg = tokio::select! {
            m = responses.message() => m?,
            _ = stop.changed() => break,
        };
        let Some(resp) = msg else {
            return Err(tonic::Status::unavailable(
                "watch stream closed by the server",
            ));
        };
        if resp.created {
            let _ = created.send(Ok(())).await;
        }
        if resp.canceled {
            return Err(tonic::Status::cancelled(format!(
                "watch canceled by the server: {}",
                resp.cancel_reason
            )));
        }
        let now = base.elapsed();
        for ev in &resp.events {
            let Some(stamp) = ev.kv.as_ref().and_then(|kv| kv.value.get(..8)) else {
                continue;
            };
            let sent = u64::from_le_bytes(stamp.try_into().unwrap_or_default());
            series
                .hist
                .record(now.saturating_sub(Duration::from_nanos(sent)));
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(tx);
    Ok(series)
}
