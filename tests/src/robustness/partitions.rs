//! Network partitions between members, made with the kernel's firewall: each member runs as a
//! group of its own, so an `iptables` rule on loopback can drop exactly the packets one member
//! sends to the others' peer ports, and theirs to its peer port. An isolated member keeps its
//! client port (clients still reach it, as in etcd's robustness tests, which cut the peer
//! network only). Dropped, not refused: the connections stall as on a real partition, and
//! resume when it heals.
//!
//! With a proxy in front of each member's peer port (`peer_proxy`), the members dial the
//! proxies' ports: the rules drop what a member sends to those, and its answers from its own
//! peer port.
//!
//! Needs root and a working `iptables` (Debian's package; `.ci/run` installs it). Each run
//! has a chain of its own, named after the process and the run, jumped to from `OUTPUT` and
//! removed when the run ends, so runs in parallel do not meet.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this process runs as root (a firewall rule, and a member in a group of its own,
/// need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether partitions can be made here: root, and `iptables` answers.
pub fn available() -> bool {
    is_root() && iptables(&["-L", "OUTPUT", "-n"]).is_ok()
}

fn iptables(args: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// The firewall of one run's cluster.
pub struct Net {
    chain: String,
    groups: Vec<u32>,
    /// The port each member listens on for peers.
    peer_ports: Vec<u16>,
    /// The port the others dial to reach each member (its own, or its proxy's).
    dialed_ports: Vec<u16>,
}

impl Net {
    /// Group IDs for `n` members, unused by any other run of this process or (by the pid)
    /// of another.
    pub fn groups(n: usize) -> Vec<u32> {
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let base = 1_000_000 + (std::process::id() % 100_000) * 100 + (run % 25) * 4;
        (0..n as u32).map(|i| base + i).collect()
    }

    /// Sets up an empty chain for members running as `groups`, listening on `peer_ports` and
    /// reached on `dialed_ports`.
    pub fn new(
        groups: Vec<u32>,
        peer_ports: Vec<u16>,
        dialed_ports: Vec<u16>,
    ) -> Result<Net, String> {
        let chain = format!("CAIRN-R{}", groups[0]);
        // a chain left by a run that died is emptied and reused
        let _ = iptables(&["-N", &chain]);
        iptables(&["-F", &chain])?;
        if iptables(&["-C", "OUTPUT", "-j", &chain]).is_err() {
            iptables(&["-I", "OUTPUT", "-j", &chain])?;
        }
        Ok(Net {
            chain,
            groups,
            peer_ports,
            dialed_ports,
        })
    }

    /// Cuts member `x` off from the others: what it sends to their peer ports and what they
    /// send to its peer port (requests and its answers) are dropped.
    pub fn isolate(&self, x: usize) -> Result<(), String> {
        let own = self.peer_ports[x].to_string();
        let dialed = self.dialed_ports[x].to_string();
        let gid = self.groups[x].to_string();
        let others: Vec<String> = (0..self.peer_ports.len())
            .filter(|&i| i != x)
            .map(|i| self.dialed_ports[i].to_string())
            .collect();
        let base = ["-A", &self.chain, "-o", "lo", "-p", "tcp", "-m", "owner"];
        let rule = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
            iptables(&args)
        };
        rule(&[
            "--gid-owner",
            &gid,
            "-m",
            "multiport",
            "--dports",
            &others.join(","),
            "-j",
            "DROP",
        ])?;
        rule(&["--gid-owner", &gid, "--sport", &own, "-j", "DROP"])?;
        for (i, g) in self.groups.iter().enumerate() {
            if i != x {
                rule(&[
                    "--gid-owner",
                    &g.to_string(),
                    "--dport",
                    &dialed,
                    "-j",
                    "DROP",
                ])?;
            }
        }
        Ok(())
    }

    /// Ends every partition.
    pub fn heal(&self) -> Result<(), String> {
        iptables(&["-F", &self.chain])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = iptables(&["-D", "OUTPUT", "-j", &self.chain]);
        let _ = iptables(&["-F", &self.chain]);
        let _ = iptables(&["-X", &self.chain]);
    }
}
