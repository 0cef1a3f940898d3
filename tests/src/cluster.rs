//! Multi-member cairn clusters on loopback: every member a real process with its own ports
//! and data dir, bootstrapped from one `--initial-cluster`, grown with real `etcdctl member
//! add`.

use std::time::Duration;

use crate::pki::ServerTls;
use crate::server::{Kind, TestServer};
use crate::{grpc, ports, wait};

/// How long a cluster may take to agree on a leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TestCluster {
    pub members: Vec<TestServer>,
    extra_args: Vec<String>,
    tls: Option<ServerTls>,
}

fn url(port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{port}")
}

impl TestCluster {
    /// Starts `n` members `m1..mn` with `extra_args` and waits until all see one leader.
    pub fn start(n: usize, extra_args: &[&str]) -> Self {
        Self::start_prepared(n, extra_args, |_, _| {})
    }

    /// Like [`TestCluster::start`], after `prepare(member, initial_cluster)` ran for each
    /// member (e.g. `cairnutl snapshot restore` into its data dir).
    pub fn start_prepared(
        n: usize,
        extra_args: &[&str],
        prepare: impl FnMut(&mut TestServer, &str),
    ) -> Self {
        Self::start_inner(Kind::Cairn, n, extra_args, None, |p| p, prepare)
    }

    /// [`TestCluster::start_prepared`] with members of `kind` (real etcd, say, restored with
    /// `etcdctl snapshot restore`).
    pub fn start_prepared_kind(
        kind: Kind,
        n: usize,
        extra_args: &[&str],
        prepare: impl FnMut(&mut TestServer, &str),
    ) -> Self {
        Self::start_inner(kind, n, extra_args, None, |p| p, prepare)
    }

    /// [`TestCluster::start_prepared_kind`] with something in front of each member's peer
    /// port: `front(peer_port)` gives the port the member advertises (a proxy forwarding to
    /// it, say), which the other members dial.
    pub fn start_fronted(
        kind: Kind,
        n: usize,
        extra_args: &[&str],
        front: impl FnMut(u16) -> u16,
        prepare: impl FnMut(&mut TestServer, &str),
    ) -> Self {
        Self::start_inner(kind, n, extra_args, None, front, prepare)
    }

    /// Like [`TestCluster::start`], every member with `tls` (client TLS, and peer TLS when
    /// `tls.peer`).
    pub fn start_tls(n: usize, extra_args: &[&str], tls: &ServerTls) -> Self {
        Self::start_inner(Kind::Cairn, n, extra_args, Some(tls), |p| p, |_, _| {})
    }

    fn start_inner(
        kind: Kind,
        n: usize,
        extra_args: &[&str],
        tls: Option<&ServerTls>,
        mut front: impl FnMut(u16) -> u16,
        mut prepare: impl FnMut(&mut TestServer, &str),
    ) -> Self {
        let ports = ports::free_ports(2 * n);
        let advertised: Vec<u16> = (0..n).map(|i| front(ports[2 * i + 1])).collect();
        let peer_tls = tls.is_some_and(|t| t.peer);
        let initial_cluster = (0..n)
            .map(|i| format!("m{}={}", i + 1, url(advertised[i], peer_tls)))
            .collect::<Vec<_>>()
            .join(",");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut members: Vec<TestServer> = (0..n)
            .map(|i| {
                let mut m = TestServer::cluster_member(
                    kind,
                    &format!("m{}", i + 1),
                    (ports[2 * i], ports[2 * i + 1]),
                    &initial_cluster,
                    &extra_args,
                    tls,
                );
                if advertised[i] != ports[2 * i + 1] {
                    m.advertise_peer_port(advertised[i]);
                }
                m
            })
            .collect();
        for m in &mut members {
            prepare(m, &initial_cluster);
            m.launch();
        }
        for m in &mut members {
            m.wait_ready();
        }
        let cluster = TestCluster {
            members,
            extra_args,
            tls: tls.cloned(),
        };
        cluster.wait_leader(LEADER_TIMEOUT);
        cluster
    }

    /// Client endpoints of the running members, comma separated (etcdctl's --endpoints;
    /// with TLS, etcdctl also needs [`TestCluster::tls_args`]).
    pub fn endpoints(&mut self) -> String {
        self.running()
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// etcdctl's `--cacert --cert --key` for a TLS cluster (empty without TLS).
    pub fn tls_args(&self) -> Vec<String> {
        self.tls
            .as_ref()
            .map(|t| t.client_args())
            .unwrap_or_default()
    }

    /// Indexes of the members whose process runs.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_running())
            .collect()
    }

    /// The member ID each running member reports for itself.
    pub fn member_id(&self, i: usize) -> u64 {
        self.members[i]
            .status(Duration::from_secs(5))
            .expect("status")
            .header
            .expect("header")
            .member_id
    }

    /// The ID (hex, as etcdctl takes it) of the member listed with `peer_url`.
    pub fn member_id_listed(&mut self, peer_url: &str) -> String {
        let list = crate::etcdctl_json(&self.endpoints(), &["member", "list"]);
        let id = list["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["peerURLs"][0] == peer_url))
            .and_then(|m| m["ID"].as_u64())
            .unwrap_or_else(|| panic!("no member with peer URL {peer_url}: {list}"));
        format!("{id:x}")
    }

    /// Waits until every running member names the same leader, which is running; returns
    /// the leader's index.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        wait::until(
            timeout,
            "all running members to agree on a running leader",
            || {
                let mut leader = None;
                let mut ids = Vec::new();
                for (i, m) in self.members.iter().enumerate() {
                    let Ok(s) = m.status(Duration::from_secs(2)) else {
                        continue;
                    };
                    ids.push((i, s.header.as_ref().map(|h| h.member_id).unwrap_or(0)));
                    if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                        return None;
                    }
                    leader = Some(s.leader);
                }
                let leader = leader?;
                ids.iter().find(|(_, id)| *id == leader).map(|(i, _)| *i)
            },
        )
    }

    /// Waits until every running member reports the same HashKV at the same revision;
    /// returns (hash, revision).
    pub fn wait_converged(&mut self, timeout: Duration) -> (u32, i64) {
        let running = self.running();
        let endpoints: Vec<String> = running
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect();
        let tls = self.tls.clone();
        wait::until(timeout, "every member to reach the same HashKV", || {
            let mut seen = Vec::new();
            for ep in &endpoints {
                let h = grpc::hash_kv_blocking_tls(ep, tls.as_ref(), 0).ok()?;
                seen.push(h);
            }
            let first = seen[0];
            seen.iter().all(|h| *h == first).then_some(first)
        })
    }

    /// `etcdctl member add` a new member (as a learner or a voter), set up to start with
    /// `--initial-cluster-state existing` (not started: `members[i].launch()` does);
    /// returns its index.
    pub fn add_member(&mut self, learner: bool) -> usize {
        let [client, peer] = ports::free_ports(2)[..] else {
            unreachable!()
        };
        let name = format!("m{}", self.members.len() + 1);
        let endpoints = self.endpoints();
        let peer_url = url(peer, self.tls.as_ref().is_some_and(|t| t.peer));
        let flag = format!("--peer-urls={peer_url}");
        let mut args: Vec<String> = self.tls_args();
        args.extend(["member".into(), "add".into(), name.clone(), flag]);
        if learner {
            args.push("--learner".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = crate::etcdctl_ok(&endpoints, &args);
        let initial_cluster = out
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
            .unwrap_or_else(|| panic!("member add printed no ETCD_INITIAL_CLUSTER: {out}"))
            .trim_matches('"')
            .to_string();
        let mut extra = self.extra_args.clone();
        extra.extend(["--initial-cluster-state".into(), "existing".into()]);
        let kind = self.members[0].kind();
        self.members.push(TestServer::cluster_member(
            kind,
            &name,
            (client, peer),
            &initial_cluster,
            &extra,
            self.tls.as_ref(),
        ));
        self.members.len() - 1
    }
}
