//! What the leader does with work a follower hands it ([`Forward`]), and what any member does
//! with the steps of a leader transfer. Membership changes live in [`crate::membership`].

use std::time::Instant;

use crate::error::ConsensusError;
use crate::membership;
use crate::node::Node;
use crate::transfer;
use crate::transport::wire::{Answer, Forward, encode_reply};

pub(crate) async fn serve(node: &Node, req: Forward) -> Result<Answer, ConsensusError> {
    match req {
        Forward::Write(cmd) => {
            let (index, reply) = node.propose_here(cmd).await?;
            Ok(Answer::Written {
                index,
                reply: encode_reply(reply),
            })
        }
        Forward::ReadIndex => node.read_index_here().await.map(Answer::ReadIndex),
        Forward::AddMember {
            peer_urls,
            is_learner,
        } => membership::add(node, peer_urls, is_learner).await,
        Forward::RemoveMember(id) => membership::remove(node, id).await,
        Forward::UpdateMember { id, peer_urls } => membership::update(node, id, peer_urls).await,
        Forward::PromoteMember(id) => membership::promote(node, id).await,
        Forward::Publish {
            id,
            name,
            client_urls,
        } => membership::publish(node, id, name, client_urls).await,
        Forward::LeaseKeepAlive(id) => {
            node.require_leader()?;
            // an unknown lease answers TTL 0, not an error (etcd's behaviour)
            let ttl = node.store.lease_renew(id).unwrap_or(0);
            // the renewal counts only if a quorum still follows this leader after it: any
            // later leader then restarts the lease's clock after the renewal
            node.confirm_leader().await?;
            Ok(Answer::Lease {
                ttl,
                granted_ttl: 0,
                keys: Vec::new(),
            })
        }
        Forward::LeaseTimeToLive(id) => {
            node.require_leader()?;
            node.confirm_leader().await?;
            Ok(match node.store.lease(id) {
                Some(l) => Answer::Lease {
                    ttl: l.remaining_secs(Instant::now()),
                    granted_ttl: l.ttl,
                    keys: l.keys.into_iter().collect(),
                },
                // etcd answers a missing lease with TTL -1 rather than an error
                None => Answer::Lease {
                    ttl: -1,
                    granted_ttl: 0,
                    keys: Vec::new(),
                },
            })
        }
        Forward::HoldElections(millis) => {
            transfer::hold_elections(node, millis);
            Ok(Answer::Done)
        }
        Forward::Campaign { after_millis } => {
            transfer::campaign(node, after_millis);
            Ok(Answer::Done)
        }
    }
}
