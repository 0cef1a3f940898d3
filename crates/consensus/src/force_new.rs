//! `--force-new-cluster`: a member whose cluster lost its quorum for good starts from its own
//! data as a one-member cluster (etcd's flag), so the others can be added back.
//!
//! Before raft starts, the member's raft log gets one more entry: a membership of this member
//! alone, under a term above any it has seen, after the last entry it holds; the vote is moved
//! to that term. openraft takes the newest membership in the log as the member's, so the
//! member elects itself at once, and its first commit as leader commits every entry before
//! it: nothing it holds is lost (etcd keeps what its WAL committed and drops the rest; Cairn
//! does not store the committed index, so it keeps every entry it has, which may include a
//! write whose client saw a timeout: "possibly applied" either way). The member and cluster
//! IDs stay.
//!
//! etcd rewrites the membership again at every start while the flag is given, so a flag left
//! in a unit file throws away the members added back since. Cairn records the index of the
//! entry it wrote: given the flag again, it does nothing while that entry is still the
//! membership, and refuses to start once members were added after it.

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, Membership, RaftLogReader};

use crate::error::ConsensusError;
use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::types::{Entry, LogId, Member, StoredMembership, Vote};

/// The index of the membership entry `--force-new-cluster` wrote.
pub(crate) const META_FORCED_AT: &str = "force_new_cluster_at";

/// What the rewrite did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Forced {
    /// Never started: the first membership is this member alone.
    Fresh,
    /// A one-member membership was written at this index; these members were dropped.
    Rewritten { index: u64, removed: Vec<u64> },
    /// Already a one-member cluster since the entry at this index.
    Already { index: u64 },
}

fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(e.to_string())
}

/// The membership the member would start with: the newest in its log after what it
/// applied, else the applied one.
async fn effective(
    log: &mut LogStore,
    applied: Option<LogId>,
    applied_membership: StoredMembership,
) -> Result<StoredMembership, ConsensusError> {
    let from = applied.map_or(0, |l| l.index + 1);
    let entries = log.try_get_log_entries(from..).await.map_err(storage)?;
    Ok(entries
        .into_iter()
        .rev()
        .find_map(|e| match e.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(e.log_id), m)),
            _ => None,
        })
        .unwrap_or(applied_membership))
}

/// Makes member `me` a one-member cluster (see the module doc): `bootstrap`, the first
/// membership of a member that never started, keeps only `me`; a member that ran gets its
/// raft state rewritten.
pub(crate) async fn force_new_cluster(
    log: &mut LogStore,
    sm: &mut StateMachine,
    me: u64,
    bootstrap: &mut Option<BTreeMap<u64, Member>>,
) -> Result<Forced, ConsensusError> {
    let (applied, applied_membership) = sm.applied_state().await.map_err(storage)?;
    let state = log.get_log_state().await.map_err(storage)?;
    if let Some(members) = bootstrap.as_mut()
        && state.last_log_id.is_none()
        && applied.is_none()
    {
        members.retain(|id, _| *id == me);
        return Ok(Forced::Fresh);
    }
    let current = effective(log, applied, applied_membership).await?;
    let forced_at: Option<u64> = log.read_meta(META_FORCED_AT).map_err(storage)?;
    let current_index = current.log_id().map(|l| l.index);
    if let Some(at) = forced_at {
        if current_index == Some(at) {
            return Ok(Forced::Already { index: at });
        }
        if current_index.is_some_and(|i| i > at) {
            return Err(ConsensusError::Config(format!(
                "--force-new-cluster was already applied (the one-member membership at log index \
                 {at}), and the membership changed since (members were added back): starting \
                 with it again would remove them; remove --force-new-cluster from this member's \
                 flags"
            )));
        }
    }
    let membership = current.membership();
    let Some(node) = membership.get_node(&me).cloned() else {
        return Err(ConsensusError::Config(format!(
            "--force-new-cluster: member {me:x} is not in the membership its data dir records; \
             this data dir cannot start a cluster of its own"
        )));
    };
    let removed: Vec<u64> = membership
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| *id != me)
        .collect();

    let last = state.last_log_id.max(applied);
    let vote: Option<Vote> = log.read_vote().await.map_err(storage)?;
    let term = vote
        .map(|v| v.leader_id().term)
        .unwrap_or(0)
        .max(last.map_or(0, |l| l.leader_id.term))
        + 1;
    let index = last.map_or(0, |l| l.index + 1);
    let alone =
        Membership::<u64, Member>::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, node)]));
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, me), index),
        payload: EntryPayload::Membership(alone),
    };
    // the vote first: an entry of a term above the vote is one raft would refuse
    log.save_vote(&Vote::new(term, me)).await.map_err(storage)?;
    log.write_entries(vec![entry]).map_err(storage)?;
    log.write_meta(META_FORCED_AT, &index).map_err(storage)?;
    Ok(Forced::Rewritten { index, removed })
}
