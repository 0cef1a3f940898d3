//! Membership changes, run on the leader, refused the way etcd refuses them.
//!
//! - add: a new member's ID is etcd's (`member_id(urls, "", now)`); it enters as a learner
//!   (raft replicates to it at once) and, unless added as a learner, is made a voter.
//!   Like etcd with `--strict-reconfig-check`, a voter is only added when the started voters
//!   keep a quorum (the 1-member special case included), and at most one learner exists.
//! - promote: only a learner whose log is within 90% of the leader's (etcd's rule).
//! - remove / update (peer URLs) / publish (a started member's name and client URLs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;

use crate::error::{ConsensusError, MembershipError};
use crate::ids::member_id;
use crate::node::Node;
use crate::transport::wire::Answer;
use crate::types::{Member, MemberInfo, TypeConfig};

/// etcd's default `--experimental-max-learners`.
const MAX_LEARNERS: usize = 1;
/// A learner may be promoted once its log reaches this share of the leader's.
const PROMOTE_READY: f64 = 0.9;
/// How long a voter add waits for the joint configuration to be appended.
const APPEND_WAIT: Duration = Duration::from_secs(5);

fn change_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ConsensusError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ConsensusError::Stopped(format!("membership change refused by raft: {c}"))
        }
        other => ConsensusError::Stopped(other.to_string()),
    }
}

/// Runs a membership change through raft and answers with the member it concerned.
async fn change(
    node: &Node,
    change: ChangeMembers<u64, Member>,
    retain: bool,
    member: MemberInfo,
) -> Result<Answer, ConsensusError> {
    let r = node
        .raft
        .change_membership(change, retain)
        .await
        .map_err(change_error)?;
    Ok(answer(node, r, Some(member)))
}

/// Records a member's new attributes (URLs, name).
async fn set_node(node: &Node, m: MemberInfo) -> Result<Answer, ConsensusError> {
    let nodes = ChangeMembers::SetNodes(BTreeMap::from([(m.id, m.member.clone())]));
    change(node, nodes, true, m).await
}

fn answer(node: &Node, r: ClientWriteResponse<TypeConfig>, member: Option<MemberInfo>) -> Answer {
    Answer::Members {
        index: r.log_id.index,
        member,
        members: node.members(),
    }
}

fn find(node: &Node, id: u64) -> Result<MemberInfo, ConsensusError> {
    node.members()
        .into_iter()
        .find(|m| m.id == id)
        .ok_or(MembershipError::MemberNotFound.into())
}

fn check_urls(urls: &[String]) -> Result<(), ConsensusError> {
    let ok = !urls.is_empty()
        && urls.iter().all(|u| {
            u.strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
                .and_then(|hp| hp.trim_end_matches('/').rsplit_once(':'))
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        });
    if ok {
        Ok(())
    } else {
        Err(MembershipError::BadUrls.into())
    }
}

fn urls_taken(node: &Node, urls: &[String], except: Option<u64>) -> bool {
    node.members()
        .iter()
        .any(|m| Some(m.id) != except && m.member.peer_urls.iter().any(|u| urls.contains(u)))
}

pub(crate) async fn add(
    node: &Node,
    peer_urls: Vec<String>,
    is_learner: bool,
) -> Result<Answer, ConsensusError> {
    node.require_leader()?;
    check_urls(&peer_urls)?;
    if urls_taken(node, &peer_urls, None) {
        return Err(MembershipError::PeerUrlExists.into());
    }
    let members = node.members();
    if is_learner {
        if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(MembershipError::TooManyLearners.into());
        }
    } else {
        let voters: Vec<&MemberInfo> = members.iter().filter(|m| !m.is_learner).collect();
        let started = voters.iter().filter(|m| !m.member.name.is_empty()).count();
        let after = voters.len() + 1;
        let lone_restore = started == 1 && after == 2;
        if !lone_restore && started < after / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted.into());
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = member_id(&peer_urls, "", Some(now));
    if members.iter().any(|m| m.id == id) {
        return Err(MembershipError::MemberIdExists.into());
    }
    let member = Member {
        name: String::new(),
        peer_urls,
        client_urls: Vec::new(),
    };
    let r = node
        .raft
        .add_learner(id, member.clone(), false)
        .await
        .map_err(change_error)?;
    let info = MemberInfo {
        id,
        member,
        is_learner,
    };
    if is_learner {
        return Ok(answer(node, r, Some(info)));
    }
    // A new voter joins through a joint configuration that needs the new member's ack when
    // the cluster is small (1 -> 2), so it cannot be awaited here: it commits when the new
    // member starts (etcd's cluster is likewise without quorum until then).
    let raft = node.raft.clone();
    tokio::spawn(async move {
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        if let Err(e) = raft.change_membership(change, false).await {
            tracing::warn!(member = %format!("{id:x}"), error = %e, "making the new member a voter failed");
        }
    });
    let mut rx = node.raft.metrics();
    let appended = tokio::time::timeout(APPEND_WAIT, async {
        loop {
            let is_voter = rx
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            if is_voter || rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    if appended.is_err() {
        return Err(ConsensusError::LeaderUnreachable(
            "the new voter was added as a learner but the configuration change did not start in time".into(),
        ));
    }
    // answered once the learner entry is applied: the joint configuration after it may not
    // commit before the new member starts (1 -> 2), and waiting for it here would time out
    let index = r.log_id.index;
    Ok(Answer::Members {
        index,
        member: Some(info),
        members: node.members(),
    })
}

pub(crate) async fn remove(node: &Node, id: u64) -> Result<Answer, ConsensusError> {
    node.require_leader()?;
    let m = find(node, id)?;
    let ids = BTreeSet::from([id]);
    let removal = if m.is_learner {
        ChangeMembers::RemoveNodes(ids)
    } else {
        if node.members().iter().filter(|m| !m.is_learner).count() <= 1 {
            return Err(MembershipError::NotEnoughStarted.into());
        }
        ChangeMembers::RemoveVoters(ids)
    };
    change(node, removal, false, m).await
}

pub(crate) async fn update(
    node: &Node,
    id: u64,
    peer_urls: Vec<String>,
) -> Result<Answer, ConsensusError> {
    node.require_leader()?;
    check_urls(&peer_urls)?;
    let mut m = find(node, id)?;
    if urls_taken(node, &peer_urls, Some(id)) {
        return Err(MembershipError::PeerUrlExists.into());
    }
    m.member.peer_urls = peer_urls;
    set_node(node, m).await
}

pub(crate) async fn promote(node: &Node, id: u64) -> Result<Answer, ConsensusError> {
    node.require_leader()?;
    let m = find(node, id)?;
    if !m.is_learner {
        return Err(MembershipError::NotLearner.into());
    }
    let (leader_last, matched) = node.replication_progress(id);
    if (matched.unwrap_or(0) as f64) < leader_last.unwrap_or(0) as f64 * PROMOTE_READY {
        return Err(MembershipError::LearnerNotReady.into());
    }
    let voter = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
    let mut info = m;
    info.is_learner = false;
    change(node, voter, false, info).await
}

pub(crate) async fn publish(
    node: &Node,
    id: u64,
    name: String,
    client_urls: Vec<String>,
) -> Result<Answer, ConsensusError> {
    node.require_leader()?;
    let mut m = find(node, id)?;
    if m.member.name == name && m.member.client_urls == client_urls {
        return Ok(Answer::Done);
    }
    m.member.name = name;
    m.member.client_urls = client_urls;
    set_node(node, m).await
}
