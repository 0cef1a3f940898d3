//! A member started with `--initial-cluster-state existing` and an empty data dir: it was
//! added with `member add` and learns its ID and the cluster's from the running members.

use std::time::Duration;

use crate::error::ConsensusError;
use crate::removal::Removal;
use crate::transport::client::PeerClients;
use crate::transport::service::MembersReply;
use crate::transport::wire;

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// (member ID, cluster ID) for the member advertising `my_peer_urls`.
pub async fn discover(
    initial_cluster: &[(String, Vec<String>)],
    my_peer_urls: &[String],
    connector: &cairn_tls::Connector,
) -> Result<(u64, u64), ConsensusError> {
    let mut mine = my_peer_urls.to_vec();
    mine.sort();
    let peers = PeerClients::new(0, 0, Removal::new(0), connector.clone());
    let mut tried = Vec::new();
    for url in initial_cluster
        .iter()
        .flat_map(|(_, urls)| urls)
        .filter(|u| !my_peer_urls.contains(u))
    {
        tried.push(url.clone());
        let Ok(mut client) = peers.client(url) else {
            continue;
        };
        let mut req = tonic::Request::new(peers.envelope(Vec::new()));
        req.set_timeout(ASK_TIMEOUT);
        let reply = match tokio::time::timeout(ASK_TIMEOUT, client.members(req)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(e)) => {
                tracing::warn!(peer = %url, error = %e.message(), "cannot list members");
                continue;
            }
            Err(_) => continue,
        };
        let reply: MembersReply = wire::decode(&reply.body).map_err(ConsensusError::Stopped)?;
        let found = reply.members.iter().find(|m| {
            let mut urls = m.member.peer_urls.clone();
            urls.sort();
            urls == mine
        });
        return match found {
            Some(m) => Ok((m.id, reply.cluster_id)),
            None => Err(ConsensusError::Config(format!(
                "the cluster at {url} has no member with peer URLs {}; add this member first \
                 (etcdctl member add NAME --peer-urls={}) and start it with the URLs it was added with",
                my_peer_urls.join(","),
                my_peer_urls.join(",")
            ))),
        };
    }
    Err(ConsensusError::Config(format!(
        "--initial-cluster-state existing: no member of the cluster answered at {}; \
         start this member once the cluster is running, or use --initial-cluster-state new",
        if tried.is_empty() {
            "(no other member in --initial-cluster)".to_string()
        } else {
            tried.join(", ")
        }
    )))
}
