//! `cairnutl bench put|range|txn-put|watch|lease-keepalive|mixed`: load generators speaking
//! the etcd v3 API to any endpoint (Cairn or etcd), modelled on etcd's `benchmark` tool: same
//! flag names and defaults, a text summary or `-w json`, a progress bar on a terminal.
//!
//! # Layout
//! - `mod.rs`: the flags every workload shares, key naming, connecting, dispatch;
//! - `driver.rs`: the client loop (total or duration, optional rate) that times each request;
//! - `histogram.rs`: the latency histogram (`hdrhistogram`); `report.rs`: the summary and its formats;
//! - one file per workload.
//!
//! The load generator runs on a multi-threaded tokio runtime; `--clients` clients share
//! `--conns` gRPC connections (one HTTP/2 connection each), client `i` on connection
//! `i % conns`, connections spread round-robin over `--endpoints`. They are dialed by
//! `cairn_client` (TLS and `--user` as for every other command; requests that become ready
//! together leave in one write, as grpc-go's writer sends them, so the load generator and
//! the server do not pay a TCP segment per request on the same cores).

mod driver;
mod histogram;
mod lease;
mod mixed;
mod put;
mod range;
mod report;
mod txn_put;
mod watch;

use std::time::Duration;

use cairn_client::{Client, Svc};
use cairn_proto::etcdserverpb::kv_client::KvClient;

use driver::{Plan, Worker, drive};
use report::Summary;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Put keys from the key space (etcd `benchmark put`).
    Put(Puts),
    /// Read one key from the key space per request (etcd `benchmark range`).
    Range(range::Args),
    /// Txns of --txn-ops puts (etcd `benchmark txn-put`).
    TxnPut(txn_put::Args),
    /// Event latency: watchers on --watched-keys keys while a putter writes to them.
    Watch(watch::Args),
    /// Lease keep-alives, one stream per client (each client keeps one lease alive).
    LeaseKeepalive(lease::Args),
    /// Reads and writes mixed at --read-ratio over one key space.
    Mixed(mixed::Args),
}

/// How many requests, how fast, over how many clients and connections.
#[derive(clap::Args, Debug, Clone)]
pub struct Load {
    /// Number of gRPC connections (HTTP/2 channels).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub conns: u64,
    /// Number of concurrent clients (each waits for its response before the next request).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Total number of requests (default 10000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Run for this long instead of a total, e.g. 30s or 2m.
    #[arg(long, value_parser = cairn_client::flags::parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second over all clients together (default: as fast as the server answers).
    #[arg(long)]
    pub rate: Option<f64>,
}

impl Load {
    pub fn total(&self) -> Option<u64> {
        match (self.total, self.duration) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(10_000),
        }
    }
}

/// The key space: keys are decimal indexes zero-padded to --key-size bytes, so the same flags
/// name the same keys in every workload (a `range` run reads what a `put` run wrote).
#[derive(clap::Args, Debug, Clone)]
pub struct Keys {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub key_size: u64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Use keys 0, 1, 2, ... (modulo the key space) instead of a pseudo-random key per request.
    #[arg(long)]
    pub sequential_keys: bool,
}

impl Keys {
    /// Fails when --key-size has too few digits for the key space.
    pub fn validate(&self) -> anyhow::Result<()> {
        let digits = (self.key_space_size - 1).to_string().len() as u64;
        if digits > self.key_size {
            anyhow::bail!(
                "--key-size {} is too short for --key-space-size {}: keys need {digits} bytes",
                self.key_size,
                self.key_space_size
            );
        }
        Ok(())
    }

    /// The key index of request `n`: `n` itself when sequential, otherwise a fixed
    /// pseudo-random sequence (the same in every run, so two servers see the same keys).
    pub fn index(&self, n: u64) -> u64 {
        if self.sequential_keys {
            n % self.key_space_size
        } else {
            mix(n) % self.key_space_size
        }
    }

    pub fn key(&self, index: u64) -> Vec<u8> {
        format!("{index:0w$}", w = self.key_size as usize).into_bytes()
    }
}

/// The flags of the workloads that put values into the key space (put, txn-put, mixed).
#[derive(clap::Args, Debug, Clone)]
pub struct Puts {
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub keys: Keys,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
}

/// How the workloads that read (range, mixed) ask for their reads.
#[derive(clap::Args, Debug, Clone)]
pub struct Reads {
    /// Linearizable (l) or serializable (s) reads.
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    pub consistency: String,
}

impl Reads {
    pub fn serializable(&self) -> bool {
        self.consistency == "s"
    }
}

/// splitmix64: a cheap, well-spread hash of the request number.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value of `size` bytes of lowercase letters (etcd's tool sends one random value too).
pub fn value(size: u64) -> Vec<u8> {
    (0..size).map(|i| b'a' + (mix(i) % 26) as u8).collect()
}

pub fn run(b: Bench, g: &super::Global) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        match b {
            Bench::Put(a) => put::run(a, g).await,
            Bench::Range(a) => range::run(a, g).await,
            Bench::TxnPut(a) => txn_put::run(a, g).await,
            Bench::Watch(a) => watch::run(a, g).await,
            Bench::LeaseKeepalive(a) => lease::run(a, g).await,
            Bench::Mixed(a) => mixed::run(a, g).await,
        }
    })?;
    super::online::print_out(&summary.render(g.format))?;
    summary.check()
}

/// `conns` connections over the endpoints, round-robin. `per_call_timeout` bounds each
/// unary call by --command-timeout; streaming workloads (watch, keep-alive) go without.
pub async fn connect(
    g: &super::Global,
    conns: u64,
    per_call_timeout: bool,
) -> anyhow::Result<Vec<Client>> {
    let dialer = g.dialer()?;
    let endpoints = dialer.endpoints();
    let mut out = Vec::new();
    for i in 0..conns as usize {
        let endpoint = &endpoints[i % endpoints.len()];
        out.push(if per_call_timeout {
            dialer.connect(endpoint).await?
        } else {
            dialer.connect_streaming(endpoint).await?
        });
    }
    Ok(out)
}

/// The connection client `i` uses.
pub fn conn_for(conns: &[Client], client: u64) -> &Client {
    &conns[client as usize % conns.len()]
}

/// One worker per --clients client, built by `make` around a KV client on the client's
/// connection (unary calls, bounded by --command-timeout).
pub async fn kv_workers<W>(
    g: &super::Global,
    load: &Load,
    mut make: impl FnMut(KvClient<Svc>) -> W,
) -> anyhow::Result<Vec<W>> {
    let conns = connect(g, load.conns, true).await?;
    Ok((0..load.clients)
        .map(|c| make(conn_for(&conns, c).kv()))
        .collect())
}

/// Runs a workload of one kind of request through --total or --duration; its latencies are
/// the series `series`.
pub async fn drive_one<W: Worker>(
    load: &Load,
    workload: &'static str,
    series: &'static str,
    workers: Vec<W>,
    notes: Vec<(&'static str, serde_json::Value)>,
) -> Summary {
    let (elapsed, mut all) = drive(&Plan::new(load, workload), workers, 1).await;
    Summary {
        workload,
        elapsed,
        series: vec![(series, all.swap_remove(0))],
        notes,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: Bench,
    }

    fn parse(args: &str) -> Result<Bench, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.split_whitespace()))
            .map(|c| c.bench)
    }

    #[test]
    fn put_flags_and_defaults() {
        let Ok(Bench::Put(a)) = parse("put") else {
            panic!("put parses")
        };
        assert_eq!((a.load.conns, a.load.clients), (1, 1));
        assert_eq!(a.load.total(), Some(10_000));
        assert_eq!((a.keys.key_size, a.keys.key_space_size), (8, 1));
        assert_eq!(a.val_size, 8);
        let Ok(Bench::Put(a)) = parse(
            "put --conns 10 --clients 100 --duration 30s --key-size 16 --val-size 256 \
             --key-space-size 100000 --sequential-keys --rate 5000",
        ) else {
            panic!("put with every flag parses")
        };
        assert_eq!((a.load.conns, a.load.clients), (10, 100));
        assert_eq!(a.load.total(), None);
        assert_eq!(a.load.duration, Some(Duration::from_secs(30)));
        assert_eq!(a.load.rate, Some(5000.0));
        assert!(a.keys.sequential_keys);
        assert_eq!(a.keys.key(42), b"0000000000000042");
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse("put --total 10 --duration 5s").is_err());
        assert!(parse("put --clients 0").is_err());
        assert!(parse("range --consistency x").is_err());
        assert!(parse("lease-keepalive --key-size 8").is_err());
        let Ok(Bench::Put(a)) = parse("put --key-size 4 --key-space-size 100000") else {
            panic!("parses; validated later")
        };
        assert!(
            a.keys
                .validate()
                .unwrap_err()
                .to_string()
                .contains("need 5 bytes")
        );
        let Ok(Bench::Put(a)) = parse("put --key-size 5 --key-space-size 100000") else {
            panic!("parses")
        };
        assert!(a.keys.validate().is_ok());
    }

    #[test]
    fn every_workload_parses() {
        let Ok(Bench::Range(a)) = parse("range --consistency s --clients 100") else {
            panic!("range parses")
        };
        assert!(a.reads.serializable());
        assert!(matches!(parse("range"), Ok(Bench::Range(a)) if !a.reads.serializable()));
        assert!(matches!(parse("txn-put --txn-ops 4"), Ok(Bench::TxnPut(a)) if a.txn_ops == 4));
        assert!(matches!(
            parse("watch --watchers 100 --watched-keys 10 --streams 4"),
            Ok(Bench::Watch(a)) if a.watchers == 100 && a.watched_keys == 10
        ));
        assert!(matches!(
            parse("lease-keepalive --clients 8"),
            Ok(Bench::LeaseKeepalive(_))
        ));
        assert!(
            matches!(parse("mixed --read-ratio 0.9"), Ok(Bench::Mixed(a)) if a.read_ratio == 0.9)
        );
    }

    #[test]
    fn keys_spread_over_the_space() {
        let k = Keys {
            key_size: 8,
            key_space_size: 1000,
            sequential_keys: false,
        };
        let distinct: std::collections::HashSet<u64> = (0..10_000).map(|n| k.index(n)).collect();
        assert!(distinct.len() > 990, "{}", distinct.len());
        let s = Keys {
            sequential_keys: true,
            ..k
        };
        assert_eq!((s.index(0), s.index(999), s.index(1000)), (0, 999, 0));
    }
}
