//! A member: the store, the raft log and the openraft instance, started from etcd-style flags,
//! and the client-facing operations that need the leader (forwarded when this member is not).
//!
//! Data dir layout: `member/kv.redb` (MVCC data + applied index), `member/raft.redb` (log,
//! vote, member and cluster IDs), `member/snap/` (raft snapshot marker, incoming snapshots).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{Command, CommandResponse, Store, StoreOptions};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{Config, ServerState, SnapshotPolicy};
use prost::Message;
use tokio::sync::watch;

use crate::bootstrap::{Bootstrap, META_BOOTSTRAP, META_CLUSTER_ID, META_MEMBER_ID, plan};
use crate::error::ConsensusError;
use crate::flusher;
use crate::log_store::LogStore;
use crate::proposer::Proposer;
use crate::removal::Removal;
use crate::snapshot_trigger::{self, AppliedCount};
use crate::state_machine::StateMachine;
use crate::transport::client::{PeerClients, PeerError};
use crate::transport::network::Network;
use crate::transport::wire::{Answer, Forward, decode_reply};
use crate::types::{Member, MemberInfo, Raft};

/// Set in the raft log's meta once this member learned it was removed.
const META_REMOVED_SELF: &str = "removed";

/// How a member starts; names follow etcd's flags.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub name: String,
    /// `--initial-cluster`: member name and its peer URLs.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-state existing`: join a running cluster (after `member add`).
    pub join_existing: bool,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    /// Log entries kept behind a raft snapshot for slow followers (etcd's
    /// `--experimental-snapshot-catchup-entries`).
    pub snapshot_catchup_entries: u64,
    pub store: StoreOptions,
    /// How this member dials its peers: TLS for `https://` peer URLs (`--peer-*` flags).
    pub peer_connector: cairn_tls::Connector,
    /// `--force-new-cluster`: start as a one-member cluster from this member's data.
    pub force_new_cluster: bool,
}

/// What a leadership confirmation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmed {
    Leading,
    NotLeader,
    NoQuorum,
}

/// What `Status` reports about raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    pub leader: Option<u64>,
    pub term: u64,
    pub last_index: u64,
    pub applied_index: u64,
    pub is_leader: bool,
    pub is_learner: bool,
}

pub struct Node {
    pub raft: Raft,
    pub store: Arc<Store>,
    pub member_id: u64,
    pub cluster_id: u64,
    election_timeout: Duration,
    peers: Arc<PeerClients>,
    removal: Removal,
    snap_dir: PathBuf,
    transferring: watch::Sender<bool>,
    /// The last log index when this member started: no read index is below it (see
    /// [`Node::read_index_here`]).
    read_floor: u64,
    /// The last leadership confirmation: when its round started and what it found (see
    /// [`Node::confirm_leader`]).
    confirmed: tokio::sync::Mutex<Option<(std::time::Instant, Confirmed)>>,
    proposer: Proposer,
    /// Tells this member's own tasks to end (they hold the raft log open).
    closing: watch::Sender<bool>,
    remember_removal: tokio::task::JoinHandle<()>,
    snapshots: tokio::task::JoinHandle<()>,
    flusher: tokio::task::JoinHandle<()>,
}

fn stopped(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Stopped(e.to_string())
}

impl Node {
    pub async fn start(cfg: NodeConfig) -> Result<Node, ConsensusError> {
        let member_dir = cfg.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        std::fs::create_dir_all(&snap_dir).map_err(|e| {
            ConsensusError::Storage(format!("cannot create {}: {e}", snap_dir.display()))
        })?;
        crate::transport::snapshot::remove_unfinished(&snap_dir);
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
            None if cfg.join_existing => {
                let (m, c) = crate::join::discover(
                    &cfg.initial_cluster,
                    &cfg.initial_advertise_peer_urls,
                    &cfg.peer_connector,
                )
                .await?;
                (m, c, None)
            }
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
                )?;
                (member_id, cluster_id, Some(members))
            }
        };
        let refuse_removed = || {
            ConsensusError::Config(format!(
                "member {member_id:x} has been permanently removed from the cluster; its data dir {} \
                 cannot be used again: delete it, `member add` the member anew and start it with \
                 --initial-cluster-state existing",
                cfg.data_dir.display()
            ))
        };
        if log
            .read_meta::<bool>(META_REMOVED_SELF)
            .map_err(ConsensusError::Storage)?
            .unwrap_or(false)
        {
            return Err(refuse_removed());
        }

        let kv_path = member_dir.join("kv.redb");
        let store_opts = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&kv_path, store_opts))
            .await
            .map_err(|e| ConsensusError::Storage(e.to_string()))??;

        let config = Config {
            cluster_name: format!("{cluster_id:x}"),
            heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
            election_timeout_min: cfg.election_timeout.as_millis() as u64,
            election_timeout_max: cfg.election_timeout.as_millis() as u64 * 2,
            // taken by `snapshot_trigger` after --snapshot-count applied writes
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: cfg.snapshot_catchup_entries,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let removal = Removal::new(member_id);
        let applied = AppliedCount::default();
        let mut sm = StateMachine::new(
            store.clone(),
            snap_dir.clone(),
            removal.clone(),
            applied.clone(),
        )
        .map_err(|e| ConsensusError::Storage(e.to_string()))?;
        let mut members = members;
        if cfg.force_new_cluster {
            let forced = crate::force_new::force_new_cluster(
                &mut log.clone(),
                &mut sm,
                member_id,
                &mut members,
            )
            .await?;
            tracing::warn!(member_id = %format!("{member_id:x}"), ?forced, "--force-new-cluster: this member is a one-member cluster; add the others back with `member add` after wiping their data dirs, and remove the flag");
        }
        if removal.me_removed() {
            return Err(refuse_removed());
        }
        let peers = Arc::new(PeerClients::new(
            cluster_id,
            member_id,
            removal.clone(),
            cfg.peer_connector.clone(),
        ));
        let network = Network {
            peers: peers.clone(),
            store: store.clone(),
        };
        let read_floor = log
            .clone()
            .get_log_state()
            .await
            .map_err(|e| ConsensusError::Storage(e.to_string()))?
            .last_log_id
            .map_or(0, |l| l.index);
        let raft = Raft::new(member_id, Arc::new(config), network, log.clone(), sm)
            .await
            .map_err(stopped)?;

        if let Some(members) = members
            && !raft.is_initialized().await.map_err(stopped)?
        {
            raft.initialize(members).await.map_err(stopped)?;
        }
        log.write_meta(META_MEMBER_ID, &member_id)
            .map_err(ConsensusError::Storage)?;
        log.write_meta(META_CLUSTER_ID, &cluster_id)
            .map_err(ConsensusError::Storage)?;
        let closing = watch::Sender::new(false);
        // a removed member remembers it, so its data dir is refused at the next start
        let remember_removal = {
            let (removal, log, mut closing) = (removal.clone(), log.clone(), closing.subscribe());
            tokio::spawn(async move {
                tokio::select! {
                    _ = removal.wait() => {
                        if let Err(e) = log.write_meta(META_REMOVED_SELF, &true) {
                            tracing::error!(error = %e, "could not record that this member was removed");
                        }
                    }
                    _ = closing.wait_for(|c| *c) => {}
                }
            })
        };
        let snapshots = snapshot_trigger::start(
            raft.clone(),
            applied,
            cfg.snapshot_count,
            closing.subscribe(),
        );
        let flusher = flusher::start(store.clone(), closing.subscribe());
        let node = Node {
            flusher,
            snapshots,
            proposer: Proposer::start(raft.clone()),
            raft,
            store,
            member_id,
            cluster_id,
            election_timeout: cfg.election_timeout,
            peers,
            removal,
            snap_dir,
            transferring: watch::Sender::new(false),
            read_floor,
            confirmed: tokio::sync::Mutex::new(None),
            closing,
            remember_removal,
        };
        if node.voters() == vec![member_id] {
            // alone: no need to wait out an election timeout after a restart
            let _ = node.raft.trigger().elect().await;
        }
        Ok(node)
    }

    pub(crate) fn voters(&self) -> Vec<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    pub(crate) fn peers(&self) -> &Arc<PeerClients> {
        &self.peers
    }

    pub(crate) fn removal(&self) -> &Removal {
        &self.removal
    }

    pub(crate) fn snap_dir(&self) -> PathBuf {
        self.snap_dir.clone()
    }

    pub(crate) fn election_timeout(&self) -> Duration {
        self.election_timeout
    }

    pub(crate) fn set_transferring(&self, on: bool) {
        self.transferring.send_replace(on);
    }

    /// The first peer URL of member `id`.
    pub(crate) fn peer_url(&self, id: u64) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let member = m.membership_config.membership().get_node(&id)?;
        member.peer_urls.first().cloned()
    }

    /// On the leader: its last log index and how far member `id`'s log matches it.
    pub(crate) fn replication_progress(&self, id: u64) -> (Option<u64>, Option<u64>) {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index);
        (m.last_log_index, matched)
    }

    pub(crate) fn require_leader(&self) -> Result<(), ConsensusError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ConsensusError::NotLeader)
        }
    }

    /// How long a request waits for a leader to appear before `no leader`.
    fn leader_wait(&self) -> Duration {
        (self.election_timeout * 3).max(Duration::from_secs(2))
    }

    /// Runs `req` on the leader: here, or forwarded to it. Waits (bounded) for a leader to
    /// exist; retries when leadership moves before the request reached a leader.
    pub(crate) async fn on_leader(&self, req: Forward) -> Result<Answer, ConsensusError> {
        let deadline = tokio::time::Instant::now() + self.leader_wait();
        let mut rx = self.raft.metrics();
        loop {
            let leader = rx.borrow().current_leader;
            let outcome = match leader {
                Some(l) if l == self.member_id => crate::leader::serve(self, req.clone()).await,
                Some(l) => match self.peer_url(l) {
                    Some(url) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match self.peers.forward(&url, &req, left.max(REQUEST_WAIT)).await {
                            Ok(answer) => answer.map_err(ConsensusError::from),
                            Err(PeerError::Unreachable(_)) => Err(ConsensusError::NoLeader),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    None => Err(ConsensusError::NoLeader),
                },
                None => Err(ConsensusError::NoLeader),
            };
            match outcome {
                Err(ConsensusError::NoLeader | ConsensusError::NotLeader) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ConsensusError::NoLeader);
                    }
                    let step = tokio::time::Instant::now() + Duration::from_millis(50);
                    let _ = tokio::time::timeout_at(step.min(deadline), rx.changed()).await;
                }
                other => return other,
            }
        }
    }

    /// Proposes an encoded command on this member, which must lead; returns the entry's index
    /// and what applying it returned.
    pub(crate) async fn propose_here(
        &self,
        command: Vec<u8>,
    ) -> Result<(u64, CommandResponse), ConsensusError> {
        if *self.transferring.borrow() {
            // a leader transfer is running: the proposal goes to the next leader
            let mut rx = self.transferring.subscribe();
            let _ = tokio::time::timeout(self.leader_wait(), rx.wait_for(|t| !*t)).await;
            return Err(ConsensusError::NotLeader);
        }
        self.proposer.propose(command).await
    }

    /// Proposes a command (forwarded to the leader when this member does not lead) and waits
    /// until it is applied here.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, ConsensusError> {
        if self.is_leader() {
            match self.propose_here(cmd.encode_to_vec()).await {
                Err(ConsensusError::NotLeader) => {}
                other => return other.map(|(_, r)| r),
            }
        }
        match self.on_leader(Forward::Write(cmd.encode_to_vec())).await? {
            Answer::Written { index, reply } => {
                self.wait_applied(index).await?;
                decode_reply(&reply).map_err(ConsensusError::Stopped)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The leader's read index (this member must lead).
    ///
    /// openraft's is the larger of the leader's first entry in its term and what it knows to
    /// be committed. A leader killed and restarted before anyone campaigned comes back leading
    /// its old term (openraft allows that), so its first entry is old, and what it knows to be
    /// committed is its state machine's last durable apply, up to a second behind the writes
    /// it acknowledged. Nothing it acknowledged is past its log's end at the start, so the read
    /// index is at least that (found by the robustness soak; `tests/tests/leader_restart.rs`).
    pub(crate) async fn read_index_here(&self) -> Result<u64, ConsensusError> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index).max(self.read_floor)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(ConsensusError::NotLeader)
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ConsensusError::NoLeader)
            }
            Err(e) => Err(stopped(e)),
        }
    }

    /// Confirms, with a round of heartbeats a quorum answers, that this member still leads
    /// after the call. openraft's leader does not step down when it loses its followers, so a
    /// leader cut off by a partition still says it leads; what it alone decides (a lease
    /// renewal) must be confirmed so. Concurrent callers share a round that started after they
    /// called (found by the robustness harness: a partitioned ex-leader renewed leases that
    /// the new leader then let expire early).
    pub(crate) async fn confirm_leader(&self) -> Result<(), ConsensusError> {
        let asked = std::time::Instant::now();
        let mut last = self.confirmed.lock().await;
        let outcome = match *last {
            Some((started, outcome)) if started >= asked => outcome,
            _ => {
                let started = std::time::Instant::now();
                let outcome = match self.read_index_here().await {
                    Ok(_) => Confirmed::Leading,
                    Err(ConsensusError::NotLeader) => Confirmed::NotLeader,
                    Err(ConsensusError::NoLeader) => Confirmed::NoQuorum,
                    Err(e) => return Err(e),
                };
                *last = Some((started, outcome));
                outcome
            }
        };
        match outcome {
            Confirmed::Leading => Ok(()),
            Confirmed::NotLeader => Err(ConsensusError::NotLeader),
            Confirmed::NoQuorum => Err(ConsensusError::NoLeader),
        }
    }

    /// Waits until this member has applied everything committed before the call (read index,
    /// asked of the leader when this member does not lead).
    pub async fn linearizable(&self) -> Result<(), ConsensusError> {
        if self.is_leader() {
            match self.read_index_here().await {
                Ok(index) => return self.wait_applied(index).await,
                Err(ConsensusError::NotLeader) => {}
                Err(e) => return Err(e),
            }
        }
        match self.on_leader(Forward::ReadIndex).await? {
            Answer::ReadIndex(index) => self.wait_applied(index).await,
            other => Err(unexpected(other)),
        }
    }

    /// Waits until this member's state machine has applied `index`.
    pub(crate) async fn wait_applied(&self, index: u64) -> Result<(), ConsensusError> {
        self.raft
            .wait(Some(REQUEST_WAIT))
            .applied_index_at_least(Some(index), "apply a forwarded request")
            .await
            .map(|_| ())
            .map_err(|e| {
                ConsensusError::LeaderUnreachable(format!("waiting to apply entry {index}: {e}"))
            })
    }

    /// Renews a lease on the leader; returns its TTL (0 for an unknown lease).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, ConsensusError> {
        match self.on_leader(Forward::LeaseKeepAlive(id)).await? {
            Answer::Lease { ttl, .. } => Ok(ttl),
            other => Err(unexpected(other)),
        }
    }

    /// A lease's remaining TTL, granted TTL and keys, as the leader knows them (TTL -1 when
    /// the lease does not exist).
    pub async fn lease_time_to_live(
        &self,
        id: i64,
    ) -> Result<(i64, i64, Vec<Vec<u8>>), ConsensusError> {
        match self.on_leader(Forward::LeaseTimeToLive(id)).await? {
            Answer::Lease {
                ttl,
                granted_ttl,
                keys,
            } => Ok((ttl, granted_ttl, keys)),
            other => Err(unexpected(other)),
        }
    }

    /// Whether this member leads now (cheap: no copy of the metrics).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The current raft term (cheap: no copy of the metrics).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn status(&self) -> RaftStatus {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let is_learner = !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.member_id);
        RaftStatus {
            leader: m.current_leader,
            term: m.current_term,
            last_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_leader: m.state == ServerState::Leader,
            is_learner,
        }
    }

    /// Members in ID order, with whether each is a learner.
    pub fn members(&self) -> Vec<MemberInfo> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: Vec<u64> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| MemberInfo {
                id: *id,
                member: n.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// Another member's (hash, compact revision) at `rev`, asked over the peer transport (its
    /// peer URLs in turn); the error says why there is none (unreachable, compacted, behind).
    pub async fn peer_hash_kv(
        &self,
        member: &MemberInfo,
        rev: i64,
        timeout: Duration,
    ) -> Result<(u32, i64), String> {
        let mut why = String::from("no peer URLs");
        for url in &member.member.peer_urls {
            match self.peers.hash_kv(url, rev, timeout).await {
                Ok(Ok(h)) => return Ok((h.hash, h.compact_revision)),
                Ok(Err(refused)) => return Err(refused),
                Err(e) => why = e.to_string(),
            }
        }
        Err(why)
    }

    async fn change(
        &self,
        req: Forward,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>), ConsensusError> {
        match self.on_leader(req).await? {
            Answer::Members {
                index,
                member,
                members,
            } => {
                self.wait_applied(index).await?;
                Ok((member, members))
            }
            Answer::Done => Ok((None, self.members())),
            other => Err(unexpected(other)),
        }
    }

    /// `member add`: the new member (ID derived as etcd does) and the members after.
    pub async fn add_member(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(MemberInfo, Vec<MemberInfo>), ConsensusError> {
        let (m, all) = self
            .change(Forward::AddMember {
                peer_urls,
                is_learner,
            })
            .await?;
        let m = m.ok_or_else(|| ConsensusError::Stopped("member add answered no member".into()))?;
        Ok((m, all))
    }

    pub async fn remove_member(&self, id: u64) -> Result<Vec<MemberInfo>, ConsensusError> {
        Ok(self.change(Forward::RemoveMember(id)).await?.1)
    }

    pub async fn update_member(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<MemberInfo>, ConsensusError> {
        Ok(self
            .change(Forward::UpdateMember { id, peer_urls })
            .await?
            .1)
    }

    pub async fn promote_member(&self, id: u64) -> Result<Vec<MemberInfo>, ConsensusError> {
        Ok(self.change(Forward::PromoteMember(id)).await?.1)
    }

    /// Records this member's name and client URLs in the membership (etcd publishes its
    /// attributes the same way after start).
    pub async fn publish(&self, name: &str, client_urls: &[String]) -> Result<(), ConsensusError> {
        let current = self.members().into_iter().find(|m| m.id == self.member_id);
        if let Some(me) = &current
            && me.member.name == name
            && me.member.client_urls == client_urls
        {
            return Ok(());
        }
        self.change(Forward::Publish {
            id: self.member_id,
            name: name.to_string(),
            client_urls: client_urls.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// Completes when this member learns it was removed from the cluster.
    pub async fn removed(&self) {
        self.removal.wait().await
    }

    /// Completes, with the reason, if raft stops by itself (a storage failure it cannot go
    /// on from). The member is then of no use to the cluster until it is restarted, so the
    /// server exits, as etcd does.
    pub async fn failed(&self) -> String {
        // polled: a waiter on raft's metrics would be woken by every appended entry (a
        // thread wake-up per put, measured at 1 client)
        let mut tick = tokio::time::interval(FAILURE_POLL);
        loop {
            tick.tick().await;
            let metrics = self.raft.metrics();
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            // raft's core task is gone without a word (a panic in openraft drops its metrics
            // sender): the member would go on serving stale reads with raft dead, as one in
            // the robustness soak did
            if metrics.has_changed().is_err() {
                return "raft's core task ended unexpectedly (a panic: see the log above)".into();
            }
        }
    }

    /// Waits until this member leads (or `timeout` passes); returns whether it does.
    pub async fn wait_leader(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |m| m.state == ServerState::Leader)
            .await
    }

    /// Waits until some member leads (or `timeout` passes); returns whether one does.
    pub async fn wait_any_leader(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |m| m.current_leader.is_some()).await
    }

    async fn wait_for(
        &self,
        timeout: Duration,
        ok: impl Fn(&openraft::RaftMetrics<u64, Member>) -> bool,
    ) -> bool {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if ok(&rx.borrow()) {
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
        self.closing.send_replace(true);
        let _ = self.remember_removal.await;
        let _ = self.snapshots.await;
        let _ = self.flusher.await;
        if flush && let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final flush of the store failed; the raft log will be replayed at start");
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.stop_background()).await;
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

/// How often [`Node::failed`] looks at raft's state.
const FAILURE_POLL: Duration = Duration::from_millis(500);

/// How long a forwarded request may wait for its answer or its local apply.
const REQUEST_WAIT: Duration = Duration::from_secs(7);

fn unexpected(a: Answer) -> ConsensusError {
    ConsensusError::Stopped(format!("unexpected answer from the leader: {a:?}"))
}
