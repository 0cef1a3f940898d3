//! A member: the store, the raft log and the openraft instance, started from etcd-style flags.
//!
//! Data dir layout: `member/kv.redb` (MVCC data + applied index), `member/raft.redb` (log,
//! vote, member and cluster IDs), `member/snap/` (raft snapshot marker).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{Command, CommandResponse, Store, StoreOptions};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use prost::Message;

use crate::bootstrap::{Bootstrap, META_BOOTSTRAP, META_CLUSTER_ID, META_MEMBER_ID, plan};
use crate::error::ConsensusError;
use crate::log_store::LogStore;
use crate::network::Network;
use crate::state_machine::StateMachine;
use crate::types::{Member, Raft, Request};

/// How a member starts; names follow etcd's flags.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub name: String,
    /// `--initial-cluster`: member name and its peer URLs.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub store: StoreOptions,
}

/// What `Status` reports about raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    pub leader: Option<u64>,
    pub term: u64,
    pub last_index: u64,
    pub applied_index: u64,
    pub is_leader: bool,
}

pub struct Node {
    pub raft: Raft,
    pub store: Arc<Store>,
    pub member_id: u64,
    pub cluster_id: u64,
    election_timeout: Duration,
}

impl Node {
    pub async fn start(cfg: NodeConfig) -> Result<Node, ConsensusError> {
        let member_dir = cfg.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        std::fs::create_dir_all(&snap_dir).map_err(|e| {
            ConsensusError::Storage(format!("cannot create {}: {e}", snap_dir.display()))
        })?;
        let kv_path = member_dir.join("kv.redb");
        let store_opts = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&kv_path, store_opts))
            .await
            .map_err(|e| ConsensusError::Storage(e.to_string()))??;
        let log = LogStore::open(&member_dir.join("raft.redb")).map_err(ConsensusError::Storage)?;

        // a data dir that has IDs keeps them, whatever the flags say (etcd does the same)
        let known: Option<(u64, u64)> = match (
            log.read_meta(META_MEMBER_ID),
            log.read_meta(META_CLUSTER_ID),
        ) {
            (Ok(Some(m)), Ok(Some(c))) => Some((m, c)),
            _ => None,
        };
        let (member_id, cluster_id, members) = match known {
            Some((m, c)) => (
                m,
                c,
                log.read_meta::<BTreeMap<u64, Member>>(META_BOOTSTRAP)
                    .map_err(ConsensusError::Storage)?,
            ),
            None => {
                let Bootstrap {
                    member_id,
                    cluster_id,
                    members,
                } = plan(
                    &cfg.name,
                    &cfg.initial_cluster,
                    &cfg.initial_cluster_token,
                    &cfg.initial_advertise_peer_urls,
                    &cfg.advertise_client_urls,
                )?;
                (member_id, cluster_id, Some(members))
            }
        };

        let config = Config {
            cluster_name: format!("{cluster_id:x}"),
            heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
            election_timeout_min: cfg.election_timeout.as_millis() as u64,
            election_timeout_max: cfg.election_timeout.as_millis() as u64 * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count),
            max_in_snapshot_log_to_keep: 5000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let sm = StateMachine::new(store.clone(), snap_dir);
        let raft = Raft::new(member_id, Arc::new(config), Network, log.clone(), sm)
            .await
            .map_err(|e| ConsensusError::Stopped(e.to_string()))?;

        if let Some(members) = members {
            if !raft
                .is_initialized()
                .await
                .map_err(|e| ConsensusError::Stopped(e.to_string()))?
            {
                raft.initialize(members)
                    .await
                    .map_err(|e| ConsensusError::Stopped(e.to_string()))?;
            }
            log.write_meta(META_MEMBER_ID, &member_id)
                .map_err(ConsensusError::Storage)?;
            log.write_meta(META_CLUSTER_ID, &cluster_id)
                .map_err(ConsensusError::Storage)?;
        }
        let node = Node {
            raft,
            store,
            member_id,
            cluster_id,
            election_timeout: cfg.election_timeout,
        };
        if node.voters() == vec![member_id] {
            // alone: no need to wait out an election timeout after a restart
            let _ = node.raft.trigger().elect().await;
        }
        Ok(node)
    }

    fn voters(&self) -> Vec<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Proposes a command and waits until it is applied here.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, ConsensusError> {
        let req = Request {
            command: cmd.encode_to_vec(),
        };
        match self.raft.client_write(req).await {
            Ok(resp) => match resp.data.result {
                Some(Ok(r)) => Ok(r),
                Some(Err(e)) => Err(ConsensusError::Command(e)),
                None => Err(ConsensusError::Stopped(
                    "applied entry returned no result".into(),
                )),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ConsensusError::NoLeader)
            }
            Err(e) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }

    /// Waits until this member has applied everything committed before the call (read index).
    pub async fn linearizable(&self) -> Result<(), ConsensusError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(_)) => Err(ConsensusError::NoLeader),
            Err(e) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        RaftStatus {
            leader: m.current_leader,
            term: m.current_term,
            last_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_leader: m.state == ServerState::Leader,
        }
    }

    /// Members in ID order, with whether each is a learner.
    pub fn members(&self) -> Vec<(u64, Member, bool)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: Vec<u64> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone(), !voters.contains(id)))
            .collect()
    }

    /// Records this member's client URLs in the membership when they changed (etcd publishes
    /// its attributes the same way after start). Needs this member to lead.
    pub async fn publish_client_urls(&self, urls: &[String]) -> Result<(), ConsensusError> {
        let current = self
            .members()
            .into_iter()
            .find(|(id, _, _)| *id == self.member_id);
        let Some((_, mut me, _)) = current else {
            return Ok(());
        };
        if me.client_urls == urls {
            return Ok(());
        }
        me.client_urls = urls.to_vec();
        let change = openraft::ChangeMembers::SetNodes(BTreeMap::from([(self.member_id, me)]));
        match self.raft.change_membership(change, true).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(_)) => Err(ConsensusError::NoLeader),
            Err(e) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }

    /// Waits until this member leads (or `timeout` passes); returns whether it does.
    pub async fn wait_leader(&self, timeout: Duration) -> bool {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if rx.borrow().state == ServerState::Leader {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// How long a new leader extends every lease (etcd: the election timeout).
    pub fn lease_grace(&self) -> Duration {
        self.election_timeout
    }

    /// Stops raft, makes the store durable (unless `flush` is false, which tests use to
    /// force a log replay), and waits until this is the last handle on the store, so the data
    /// dir is released when `close` returns.
    pub async fn close(self, flush: bool) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if flush && let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final flush of the store failed; the raft log will be replayed at start");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.store) > 1 && tokio::time::Instant::now() < deadline {
            // openraft's workers drop their handles as their tasks finish
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Arc::strong_count(&self.store) > 1 {
            tracing::warn!(
                "store still referenced after shutdown; the data dir stays locked until the process exits"
            );
        }
    }
}
