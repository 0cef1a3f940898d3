//! Flags, with etcd's names and defaults; every flag can also come from `ETCD_<FLAG>`.
//! Parsed once, validated once into [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_client::flags::parse_duration;
use cairn_consensus::bootstrap::{parse_initial_cluster, split_urls};
use clap::Parser;

use crate::tls_flags::{TlsConfig, TlsFlags};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: an etcd v3 compatible key-value server built for operations"
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory [default: <name>.cairn].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (gRPC, /health, /metrics).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub listen_client_urls: String,
    /// Client URLs of this member, as told to the rest of the cluster and to clients.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// Peer URLs of this member, as told to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping [default: <name>=<initial-advertise-peer-urls>].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Force to create a new one member cluster: this member's data with a membership of
    /// itself alone (after a quorum is lost for good; see docs/disaster-recovery.md).
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER")]
    pub force_new_cluster: bool,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a raft snapshot.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Log entries kept behind a raft snapshot for slow followers to catch up from; a
    /// follower further behind gets a streamed copy of the leader's store.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: i64,
    /// Interpret 'auto-compaction-retention' as 'periodic' (hours, or a duration) or 'revision'.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention; 0 disables auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Extra URLs to serve /metrics and /health on.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// The etcd version reported by Status and /version (clients gate features on it).
    #[arg(long, env = "CAIRN_ETCD_VERSION", default_value = "3.5.0")]
    pub etcd_version: String,
    /// Interval between watch progress notifications.
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub experimental_watch_progress_notify_interval: Duration,
    /// Before serving, compare this member's HashKV with its peers' and refuse to start on a
    /// mismatch.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub experimental_initial_corrupt_check: bool,
    /// Serve the JSON gateway (`/v3/...`, `/v3beta/...`) on the client URLs, as etcd.
    #[arg(
        long,
        env = "ETCD_ENABLE_GRPC_GATEWAY",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub enable_grpc_gateway: bool,
    /// How often the leader compares every member's HashKV at a common revision and raises a
    /// CORRUPT alarm on a mismatch (0 disables).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = parse_duration)]
    pub experimental_corrupt_check_time: Duration,
    /// Sets the maximum revisions deleted in each compaction batch.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT",
        default_value_t = 1000
    )]
    pub experimental_compaction_batch_limit: usize,
    /// Sets the sleep interval between each compaction batch.
    #[arg(long, env = "ETCD_EXPERIMENTAL_COMPACTION_SLEEP_INTERVAL", default_value = "10ms", value_parser = parse_duration)]
    pub experimental_compaction_sleep_interval: Duration,
    /// Log level (debug, info, warn, error).
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// Specify auth token type and options: 'simple' or
    /// 'jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m'.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// The lifetime in seconds of a simple auth token after its last use.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Specify bcrypt algorithm cost factor for auth password hashing (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
}

/// How auto-compaction runs, after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    /// Keep this much history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: Vec<Listen>,
    pub listen_peer: Vec<Listen>,
    pub listen_metrics: Vec<Listen>,
    pub tls: TlsConfig,
    pub auth_token: crate::tokens::TokenConfig,
    pub auth_token_ttl: Duration,
    pub bcrypt_cost: u32,
    pub compaction: cairn_storage::CompactionPace,
    pub advertise_client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-state existing`.
    pub join_existing: bool,
    pub force_new_cluster: bool,
    pub initial_cluster_token: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub quota_backend_bytes: i64,
    pub auto_compaction: AutoCompaction,
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
    pub etcd_version: String,
    pub progress_notify_interval: Duration,
    pub initial_corrupt_check: bool,
    pub enable_grpc_gateway: bool,
    /// `None`: no periodic corruption check.
    pub corrupt_check_every: Option<Duration>,
    pub log_level: String,
}

/// One listen URL: where, and whether it is https://.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: bool,
    /// The URL as given.
    pub url: String,
}

/// etcd's default quota: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

/// `http://host:port` or `https://host:port` to a socket address (names resolved, e.g.
/// `localhost`).
pub fn listen_url(url: &str) -> anyhow::Result<Listen> {
    use std::net::ToSocketAddrs;
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => bail!("listen URL {url:?} must look like http://HOST:PORT or https://HOST:PORT"),
    };
    let hostport = rest.trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("listen URL {url:?} has no usable host:port"))?
        .next()
        .with_context(|| format!("listen URL {url:?} resolves to no address"))?;
    Ok(Listen {
        addr,
        tls,
        url: url.to_string(),
    })
}

/// Every URL of a comma-separated list.
fn listen_urls(list: &str) -> anyhow::Result<Vec<Listen>> {
    split_urls(list).iter().map(|u| listen_url(u)).collect()
}

/// The host part of each URL (for the SANs of a self-signed certificate).
pub fn hosts(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| u.split_once("://").map(|(_, rest)| rest))
        .filter_map(|hp| hp.trim_end_matches('/').rsplit_once(':').map(|(h, _)| h))
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect()
}

fn auto_compaction(mode: &str, retention: &str) -> anyhow::Result<AutoCompaction> {
    let off = retention.trim() == "0" || retention.trim().is_empty();
    match mode {
        _ if off => Ok(AutoCompaction::Off),
        "periodic" => {
            // a bare number means hours, as in etcd
            let d = match retention.parse::<f64>() {
                Ok(h) => Duration::from_secs_f64(h * 3600.0),
                Err(_) => parse_duration(retention).map_err(anyhow::Error::msg)?,
            };
            Ok(AutoCompaction::Periodic(d))
        }
        "revision" => Ok(AutoCompaction::Revision(retention.parse().with_context(
            || format!("--auto-compaction-retention {retention:?} must be a number of revisions"),
        )?)),
        other => bail!("--auto-compaction-mode {other:?} must be 'periodic' or 'revision'"),
    }
}

impl Flags {
    pub fn validate(self) -> anyhow::Result<Config> {
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            bail!(
                "--initial-cluster-state {:?} must be 'new' or 'existing'",
                self.initial_cluster_state
            );
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            bail!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout,
                self.heartbeat_interval
            );
        }
        let peer_urls = split_urls(&self.initial_advertise_peer_urls);
        let initial_cluster = match &self.initial_cluster {
            Some(s) => parse_initial_cluster(s)?,
            None => vec![(self.name.clone(), peer_urls.clone())],
        };
        let listen_client = listen_urls(&self.listen_client_urls)?;
        let listen_peer = listen_urls(&self.listen_peer_urls)?;
        let listen_metrics = listen_urls(self.listen_metrics_urls.as_deref().unwrap_or(""))?;
        let first_https = |l: &[Listen]| l.iter().find(|l| l.tls).map(|l| l.url.clone());
        let https_client = first_https(&listen_client).or_else(|| first_https(&listen_metrics));
        let tls = self.tls.validate(
            https_client.as_deref(),
            first_https(&listen_peer).as_deref(),
        )?;
        Ok(Config {
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.cairn", self.name))),
            listen_client,
            listen_peer,
            listen_metrics,
            tls,
            auth_token: crate::tokens::TokenConfig::parse(&self.auth_token)?,
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl.max(1)),
            // etcd: a cost outside bcrypt's range falls back to the default
            bcrypt_cost: if (4..=31).contains(&self.bcrypt_cost) {
                self.bcrypt_cost
            } else {
                10
            },
            // etcd: a batch limit of 0 (or below) means its default
            compaction: cairn_storage::CompactionPace {
                batch_limit: match self.experimental_compaction_batch_limit {
                    0 => cairn_storage::CompactionPace::default().batch_limit,
                    n => n,
                },
                sleep_interval: self.experimental_compaction_sleep_interval,
            },
            advertise_client_urls: split_urls(&self.advertise_client_urls),
            peer_urls,
            initial_cluster,
            join_existing: self.initial_cluster_state == "existing",
            force_new_cluster: self.force_new_cluster,
            initial_cluster_token: self.initial_cluster_token,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count.max(1),
            snapshot_catchup_entries: self.experimental_snapshot_catchup_entries,
            quota_backend_bytes: if self.quota_backend_bytes <= 0 {
                DEFAULT_QUOTA_BYTES
            } else {
                self.quota_backend_bytes
            },
            auto_compaction: auto_compaction(
                &self.auto_compaction_mode,
                &self.auto_compaction_retention,
            )?,
            max_txn_ops: self.max_txn_ops,
            max_request_bytes: self.max_request_bytes,
            etcd_version: self.etcd_version,
            progress_notify_interval: self.experimental_watch_progress_notify_interval,
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            enable_grpc_gateway: self.enable_grpc_gateway,
            corrupt_check_every: (!self.experimental_corrupt_check_time.is_zero())
                .then_some(self.experimental_corrupt_check_time),
            log_level: self.log_level,
            name: self.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("cairn").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_follow_etcd() {
        let c = flags(&[]).validate().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("default.cairn"));
        assert_eq!(c.listen_client[0].addr, "127.0.0.1:2379".parse().unwrap());
        assert!(!c.listen_client[0].tls);
        assert_eq!(
            c.initial_cluster,
            vec![(
                "default".to_string(),
                vec!["http://localhost:2380".to_string()]
            )]
        );
        assert_eq!(
            (c.max_txn_ops, c.max_request_bytes, c.quota_backend_bytes),
            (128, 1_572_864, DEFAULT_QUOTA_BYTES)
        );
        assert_eq!(c.auto_compaction, AutoCompaction::Off);
        let c = flags(&["--name", "n1"]).validate().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("n1.cairn"));
        assert!(c.enable_grpc_gateway);
        let c = flags(&["--enable-grpc-gateway=false"]).validate().unwrap();
        assert!(!c.enable_grpc_gateway);
    }

    /// Duration flags take Go's forms, as etcd's do (one parser: `cairn_client::flags`).
    #[test]
    fn durations_in_gos_forms() {
        let c = flags(&[
            "--experimental-watch-progress-notify-interval",
            "1m30s",
            "--experimental-corrupt-check-time",
            "2h",
        ])
        .validate()
        .unwrap();
        assert_eq!(c.progress_notify_interval, Duration::from_secs(90));
        assert_eq!(c.corrupt_check_every, Some(Duration::from_secs(7200)));
        assert!(
            Flags::try_parse_from(["cairn", "--experimental-corrupt-check-time", "5 days"])
                .is_err()
        );
    }

    #[test]
    fn initial_cluster_and_bad_values() {
        let ic = parse_initial_cluster("a=http://x:1,b=http://y:2,a=http://z:3").unwrap();
        assert_eq!(
            ic[0],
            (
                "a".to_string(),
                vec!["http://x:1".to_string(), "http://z:3".to_string()]
            )
        );
        assert!(
            parse_initial_cluster("a=http://x:1,b=http://x:1")
                .unwrap_err()
                .to_string()
                .contains("duplicate URL")
        );
        assert!(parse_initial_cluster("nonsense").is_err());
        assert!(
            flags(&["--initial-cluster-state", "bogus"])
                .validate()
                .is_err()
        );
        assert!(
            flags(&["--listen-client-urls", "https://127.0.0.1:1"])
                .validate()
                .unwrap_err()
                .to_string()
                .contains("TLS key/cert (--cert-file, --key-file) must be provided")
        );
        let c = flags(&[
            "--listen-client-urls",
            "https://127.0.0.1:1,http://127.0.0.1:2",
            "--auto-tls",
        ])
        .validate()
        .unwrap();
        assert_eq!(
            c.listen_client.iter().map(|l| l.tls).collect::<Vec<_>>(),
            vec![true, false]
        );
        assert_eq!(
            hosts(&["https://[::1]:2379".into(), "http://node-a:2380/".into()]),
            vec!["::1".to_string(), "node-a".to_string()]
        );
        assert!(
            flags(&["--listen-client-urls", "unix://x"])
                .validate()
                .is_err()
        );
        assert!(flags(&["--election-timeout", "100"]).validate().is_err());
    }

    #[test]
    fn auto_compaction_forms() {
        assert_eq!(
            auto_compaction("periodic", "1").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            auto_compaction("periodic", "30m").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            auto_compaction("revision", "1000").unwrap(),
            AutoCompaction::Revision(1000)
        );
        assert!(auto_compaction("weekly", "1").is_err());
    }
}
