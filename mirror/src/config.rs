//! What a mirror is told: both clusters, the prefix mapping and the knobs. Validated once by
//! [`Config::validate`]; the engine trusts it afterwards.

use std::time::Duration;

use cairn_client::ClientConfig;

use crate::error::Error;
use crate::keys::KeyMap;

/// HTTP/2 pings on every connection, so a dead member is noticed even while a watch is idle:
/// (interval, timeout).
pub const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(5));

#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach each cluster (`cairn_client`'s: endpoints tried in turn, TLS, user,
    /// `command_timeout` as the deadline of each unary call; watch streams have none, they
    /// are checked for liveness).
    pub source: ClientConfig,
    pub destination: ClientConfig,
    pub keys: KeyMap,
    /// Start from this source revision (everything up to it is taken as already mirrored)
    /// instead of a full copy; ignored when the destination has a checkpoint.
    pub start_revision: i64,
    /// Most operations in one destination txn, the checkpoint put included.
    pub max_txn_ops: usize,
    /// Most bytes of keys and values in one destination txn (below the destination's
    /// request size limit, 1.5 MiB by default).
    pub max_txn_bytes: usize,
    /// Destination txns in flight during a full copy.
    pub sync_parallelism: usize,
    /// Chained destination txns in flight while watching (1: wait for each answer).
    pub txn_pipeline: usize,
    /// While behind, let consecutive whole source revisions share a destination txn
    /// (each still atomic and in order); off: exactly one txn per source revision.
    pub merge_revisions: bool,
    /// Attach mirrored keys to leases with the source's lease IDs and TTLs.
    pub with_leases: bool,
    /// On the first copy (no checkpoint yet), delete destination keys the source lacks.
    /// Re-syncs of an existing mirror always prune.
    pub prune_first_sync: bool,
    /// Ignore a checkpoint written for another source cluster or prefix and copy afresh.
    pub force_resync: bool,
    /// TTL of the lease that holds this mirror's claim on the destination prefix.
    pub fence_ttl: Duration,
    /// With no watch response for this long, ask for progress; twice that, and the stream
    /// is taken as dead and reopened.
    pub watch_idle: Duration,
}

impl Config {
    /// The defaults; both clusters get [`KEEPALIVE`] and require-leader (a member that lost
    /// its leader fails calls at once instead of stalling the mirror, etcd issue #9569).
    pub fn new(source: ClientConfig, destination: ClientConfig, keys: KeyMap) -> Self {
        let mirrored = |mut c: ClientConfig| {
            c.keepalive = Some(KEEPALIVE);
            c.require_leader = true;
            c
        };
        Config {
            source: mirrored(source),
            destination: mirrored(destination),
            keys,
            start_revision: 0,
            max_txn_ops: 128,
            max_txn_bytes: 1024 * 1024,
            sync_parallelism: 8,
            txn_pipeline: 64,
            merge_revisions: true,
            with_leases: false,
            prune_first_sync: false,
            force_resync: false,
            fence_ttl: Duration::from_secs(10),
            watch_idle: Duration::from_secs(5),
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.source.endpoints.is_empty() {
            return Err(Error::Config(
                "no source endpoints: pass --endpoints".into(),
            ));
        }
        if self.destination.endpoints.is_empty() {
            return Err(Error::Config(
                "no destination endpoints: pass DEST as HOST:PORT[,HOST:PORT...]".into(),
            ));
        }
        if self.max_txn_ops < 2 {
            return Err(Error::Config(format!(
                "--max-txn-ops {} is too small: every destination txn carries the checkpoint too, so it must be at least 2",
                self.max_txn_ops
            )));
        }
        if self.fence_ttl < Duration::from_secs(2) {
            return Err(Error::Config("--fence-ttl must be at least 2s".into()));
        }
        if self.start_revision < 0 {
            return Err(Error::Config("--rev must not be negative".into()));
        }
        Ok(())
    }

    /// Data operations per destination txn: one slot is the checkpoint's.
    pub fn data_ops_per_txn(&self) -> usize {
        self.max_txn_ops - 1
    }
}
