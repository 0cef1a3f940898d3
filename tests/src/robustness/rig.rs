//! A cluster set up for every fault this machine allows: a delaying proxy in front of each
//! member's peer port (`peer_proxy`), and as root, each member in a group of its own (for
//! `partitions`) with its data dir on a small disk of its own (to fill up).

use crate::cluster::TestCluster;
use crate::disk::SmallDisk;
use crate::server::Kind;

use super::partitions::{self, Net};
use super::peer_proxy::PeerProxy;

/// Each member's disk: room enough for a run, until a fault makes it barely more than it
/// holds.
pub const DISK_BYTES: u64 = 1 << 30;

pub struct Rig {
    pub cluster: TestCluster,
    /// The firewall chain that partitions the members, when set up.
    pub net: Option<Net>,
    /// Member i's data dir is on `disks[i]`, when set up.
    pub disks: Vec<SmallDisk>,
    /// The proxy in front of member i's peer port, when set up (`all`, more than one member).
    pub proxies: Vec<PeerProxy>,
}

/// Starts `n` members of `kind` with `extra_args`; with `all`, set up for delays, partitions
/// and full disks (the last two need root; `partitions::available` tells).
pub fn start(kind: Kind, n: usize, extra_args: &[&str], all: bool) -> Rig {
    let groups = all.then(|| Net::groups(n));
    let mut proxies = Vec::new();
    let front = |peer_port: u16| {
        if !all || n < 2 {
            return peer_port;
        }
        let p = PeerProxy::start(peer_port).expect("a peer proxy on loopback");
        let port = p.port();
        proxies.push(p);
        port
    };
    let disks: Vec<SmallDisk> = if all {
        (0..n)
            .map(|_| SmallDisk::mount(DISK_BYTES).expect("a small disk (root)"))
            .collect()
    } else {
        Vec::new()
    };
    let mut next = 0;
    let cluster = TestCluster::start_fronted(kind, n, extra_args, front, |m, _| {
        if let Some(g) = &groups {
            m.set_group(g[next]);
        }
        if let Some(d) = disks.get(next) {
            d.hold_data_dir(&m.data_dir());
        }
        next += 1;
    });
    let net = groups.map(|g| {
        let ports: Vec<u16> = cluster.members.iter().map(|m| m.peer_port()).collect();
        let dialed = if proxies.is_empty() {
            ports.clone()
        } else {
            proxies.iter().map(PeerProxy::port).collect()
        };
        partitions::Net::new(g, ports, dialed)
            .unwrap_or_else(|e| panic!("cannot make partitions: {e}"))
    });
    Rig {
        cluster,
        net,
        disks,
        proxies,
    }
}
