//! How a member's identity and first membership come to be: from `--initial-cluster` on a
//! first start, or written by `snapshot restore` into a fresh data dir and applied on the
//! first start after it (so a restored member never depends on the flags it is started with).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::ConsensusError;
use crate::ids::{cluster_id, member_id};
use crate::log_store::LogStore;
use crate::types::Member;

pub(crate) const META_MEMBER_ID: &str = "member_id";
pub(crate) const META_CLUSTER_ID: &str = "cluster_id";
/// Membership a restored member initializes raft with on its first start.
pub(crate) const META_BOOTSTRAP: &str = "bootstrap_members";

/// A member's IDs and the cluster's first membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub member_id: u64,
    pub cluster_id: u64,
    pub members: BTreeMap<u64, Member>,
}

/// A comma-separated URL list (`--initial-advertise-peer-urls`, `--listen-client-urls`, ...).
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// `--initial-cluster`: `NAME=URL,NAME=URL,...`; a name may repeat for several URLs, a URL
/// may appear only once. Shared by the server and `cairnutl snapshot restore`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<String>)>, ConsensusError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for part in split_urls(s) {
        let Some((name, url)) = part.split_once('=') else {
            return Err(ConsensusError::Config(format!(
                "--initial-cluster entry {part:?} must be NAME=URL"
            )));
        };
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => out.push((name.to_string(), vec![url.to_string()])),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for url in out.iter().flat_map(|(_, u)| u) {
        if !seen.insert(url) {
            return Err(ConsensusError::Config(format!(
                "--initial-cluster has duplicate URL {url:?}"
            )));
        }
    }
    Ok(out)
}

/// IDs and membership from etcd-style flags; refuses what etcd refuses. Every member computes
/// the same membership from the same flags (client URLs are published after start), so
/// they all initialize raft with an identical first entry.
pub fn plan(
    name: &str,
    initial_cluster: &[(String, Vec<String>)],
    token: &str,
    advertise_peer_urls: &[String],
) -> Result<Bootstrap, ConsensusError> {
    let mut members = BTreeMap::new();
    let mut me = None;
    for (n, urls) in initial_cluster {
        let id = member_id(urls, token, None);
        let mine = n == name;
        if mine {
            let (mut want, mut have) = (advertise_peer_urls.to_vec(), urls.clone());
            want.sort();
            have.sort();
            if want != have {
                return Err(ConsensusError::Config(format!(
                    "--initial-cluster has {n}={} but --initial-advertise-peer-urls is {}; they must match",
                    urls.join(","),
                    advertise_peer_urls.join(",")
                )));
            }
            me = Some(id);
        }
        if members
            .insert(
                id,
                Member {
                    name: n.clone(),
                    peer_urls: urls.clone(),
                    client_urls: Vec::new(),
                },
            )
            .is_some()
        {
            return Err(ConsensusError::Config(format!(
                "--initial-cluster names member {n:?} twice"
            )));
        }
    }
    let me = me.ok_or_else(|| {
        ConsensusError::Config(format!(
            "couldn't find local name {name:?} in the initial cluster configuration"
        ))
    })?;
    let ids: Vec<u64> = members.keys().copied().collect();
    Ok(Bootstrap {
        member_id: me,
        cluster_id: cluster_id(&ids),
        members,
    })
}

/// Writes the raft side of a restored data dir (`member/raft.redb`): IDs and the membership
/// to start with. `member_dir` must be new.
pub fn write_restored(member_dir: &Path, b: &Bootstrap) -> Result<(), ConsensusError> {
    let log = LogStore::open(&member_dir.join("raft.redb")).map_err(ConsensusError::Storage)?;
    log.write_meta(META_BOOTSTRAP, &b.members)
        .map_err(ConsensusError::Storage)?;
    log.write_meta(META_CLUSTER_ID, &b.cluster_id)
        .map_err(ConsensusError::Storage)?;
    log.write_meta(META_MEMBER_ID, &b.member_id)
        .map_err(ConsensusError::Storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Vec<(String, Vec<String>)> {
        vec![
            ("a".into(), vec!["http://a:2380".into()]),
            ("b".into(), vec!["http://b:2380".into()]),
        ]
    }

    #[test]
    fn initial_cluster_groups_names_and_refuses_duplicate_urls() {
        let c = parse_initial_cluster("a=http://a:1, b=http://b:1,a=http://a:2").unwrap();
        assert_eq!(
            c,
            vec![
                ("a".into(), vec!["http://a:1".into(), "http://a:2".into()]),
                ("b".into(), vec!["http://b:1".into()])
            ]
        );
        let e = parse_initial_cluster("a=http://x:1,b=http://x:1").unwrap_err();
        assert!(e.to_string().contains("duplicate URL"), "{e}");
        let e = parse_initial_cluster("a").unwrap_err();
        assert!(e.to_string().contains("NAME=URL"), "{e}");
    }

    #[test]
    fn plan_checks_like_etcdutl() {
        let b = plan("a", &cluster(), "tok", &["http://a:2380".into()]).unwrap();
        assert_eq!(b.members.len(), 2);
        assert_eq!(
            b.member_id,
            member_id(&["http://a:2380".into()], "tok", None)
        );
        let err = plan("c", &cluster(), "tok", &["http://c:2380".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("couldn't find local name \"c\" in the initial cluster configuration"),
            "{err}"
        );
        let err = plan("a", &cluster(), "tok", &["http://elsewhere:2380".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must match"), "{err}");
    }
}
