//! MoveLeader on openraft 0.9, which has no leadership transfer: the leader waits until the
//! target has its whole log, asks the other voters to hold their elections, stops its own
//! heartbeats, and has the target campaign once the leader lease (which makes voters refuse
//! a candidate while they hear from a leader) has run out. The target wins (its log is
//! complete and nobody else campaigns); the old leader steps down on its first message.
//! Writes on the old leader wait meanwhile, as etcd drops proposals during a transfer.

use std::time::Duration;

use crate::error::{ConsensusError, MembershipError};
use crate::node::Node;
use crate::transport::wire::Forward;

/// Extra time after the leader lease before the target campaigns.
const LEASE_MARGIN: Duration = Duration::from_millis(100);

/// Stops this member from campaigning for `millis`.
pub(crate) fn hold_elections(node: &Node, millis: u64) {
    node.raft.runtime_config().elect(false);
    let raft = node.raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        raft.runtime_config().elect(true);
    });
}

/// Campaigns once, `after_millis` from now.
pub(crate) fn campaign(node: &Node, after_millis: u64) {
    let raft = node.raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after_millis)).await;
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!(error = %e, "campaign for leader transfer failed");
        }
    });
}

/// Re-enables what a transfer paused, however it ends.
struct Resume<'n>(&'n Node);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
        self.0.raft.runtime_config().elect(true);
        self.0.set_transferring(false);
    }
}

impl Node {
    /// Makes `target` the leader; must run on the leader.
    pub async fn move_leader(&self, target: u64, timeout: Duration) -> Result<(), ConsensusError> {
        if !self.status().is_leader {
            return Err(ConsensusError::NotLeader);
        }
        if target == self.member_id {
            return Ok(());
        }
        let voters = self.voters();
        if !voters.contains(&target) {
            return Err(MembershipError::BadLeaderTransferee.into());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let target_url = self
            .peer_url(target)
            .ok_or(MembershipError::BadLeaderTransferee)?;
        self.set_transferring(true);
        let _resume = Resume(self);

        // the target must hold the whole log, or it cannot win
        let mut rx = self.raft.metrics();
        loop {
            let (last, matched) = self.replication_progress(target);
            if last.is_some() && matched == last {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(ConsensusError::LeaderUnreachable(
                    "the transferee did not catch up with the leader's log in time".into(),
                ));
            }
        }

        let lease = self.election_timeout() * 2 + LEASE_MARGIN;
        let hold = (lease * 3).as_millis() as u64;
        for v in voters
            .iter()
            .filter(|v| **v != target && **v != self.member_id)
        {
            if let Some(url) = self.peer_url(*v)
                && let Err(e) = self
                    .peers()
                    .forward(&url, &Forward::HoldElections(hold), self.election_timeout())
                    .await
            {
                tracing::warn!(member = %format!("{v:x}"), error = %e, "could not pause elections for the leader transfer");
            }
        }
        self.raft.runtime_config().elect(false);
        self.raft.runtime_config().heartbeat(false);
        let ask = Forward::Campaign {
            after_millis: lease.as_millis() as u64,
        };
        match self
            .peers()
            .forward(&target_url, &ask, self.election_timeout())
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ConsensusError::from(e)),
            Err(e) => return Err(e.into()),
        }
        loop {
            if rx.borrow().current_leader == Some(target) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(ConsensusError::LeaderUnreachable(
                    "leadership did not move in time".into(),
                ));
            }
        }
    }
}
