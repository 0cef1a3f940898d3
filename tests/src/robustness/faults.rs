//! Faults at seeded random moments: a member (the leader as likely as any) killed with
//! SIGKILL and restarted, paused with SIGSTOP and resumed, cut off from the other members
//! by a network partition and healed (`partitions`), its peer links slowed down for a while
//! (`peer_proxy`), or left without disk space for a while (restarted with room if it
//! exited). Each is written down, so a failure shows the schedule
//! and a seed replays it.

use std::time::{Duration, Instant};

use super::rig::{DISK_BYTES, Rig};
use crate::cluster::TestCluster;
use crate::prng::Rng;

/// Which faults a scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    /// SIGKILL and restart.
    Kill,
    /// SIGKILL and restart, or SIGSTOP and SIGCONT.
    KillAndPause,
    /// Those, partitions of one member from the others and full disks (both need root: see
    /// [`super::partitions::available`]), delays of 50–150 ms (and up to 50 ms more) on
    /// one member's peer links for 1–3 s, and a member killed for 3–5 s, long enough for
    /// the others to purge the log it needs (it catches up from a snapshot).
    All,
}

/// Injects faults into `cluster` until `until`, one every 1–2.5 s; returns what was done,
/// one line each, with the time since `start`.
pub fn inject(
    rig: &mut Rig,
    faults: Faults,
    seed: u64,
    start: Instant,
    until: Instant,
) -> Vec<String> {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9));
    let mut log = Vec::new();
    let at = |start: Instant| format!("{:>6.2}s", start.elapsed().as_secs_f64());
    let Rig {
        cluster,
        net,
        disks,
        proxies,
    } = rig;
    loop {
        let wait = Duration::from_millis(rng.between(1000, 2500) as u64);
        if Instant::now() + wait >= until {
            break;
        }
        std::thread::sleep(wait);
        let n = cluster.members.len();
        let victim = rng.below(n as u64) as usize;
        let leader = leader_of(cluster);
        let role = if leader == Some(victim) {
            " (the leader)"
        } else {
            ""
        };
        let name = format!("m{}{role}", victim + 1);
        let down = Duration::from_millis(rng.between(200, 1200) as u64);
        let roll = rng.below(100);
        let partition = faults == Faults::All && n > 1 && roll < 30;
        let slow = faults == Faults::All && n > 1 && (30..45).contains(&roll);
        // down long enough for the others to snapshot and purge the log it needs
        let behind = faults == Faults::All && n > 1 && (45..55).contains(&roll);
        let down = if behind {
            Duration::from_millis(rng.between(3000, 5000) as u64)
        } else {
            down
        };
        let full = faults == Faults::All && (55..65).contains(&roll);
        let pause =
            !partition && !slow && !behind && !full && faults != Faults::Kill && rng.chance(50);
        let member = &mut cluster.members[victim];
        if let (true, Some(disk)) = (full, disks.get(victim)) {
            let left = 16 << 10;
            let full_for = Duration::from_millis(rng.between(1000, 2000) as u64);
            log.push(format!(
                "{} disk of {name} full (16 KiB left) for {full_for:?}",
                at(start)
            ));
            disk.grow(disk.used() + left);
            std::thread::sleep(full_for);
            disk.grow(DISK_BYTES);
            // a member stops on a write that found no room (as etcd does): its exit may
            // take a moment, and an operator would start it again
            let settle = Instant::now() + Duration::from_secs(2);
            while member.is_running() && Instant::now() < settle {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !member.is_running() {
                log.push(format!(
                    "{} m{} exited on the full disk: restarted",
                    at(start),
                    victim + 1
                ));
                member.restart();
            }
        } else if let (true, Some(net)) = (partition, net.as_ref()) {
            let off = Duration::from_millis(rng.between(500, 2500) as u64);
            log.push(format!("{} partition {name} off for {off:?}", at(start)));
            if let Err(e) = net.isolate(victim) {
                log.push(format!("{} the partition failed: {e}", at(start)));
            }
            std::thread::sleep(off);
            if let Err(e) = net.heal() {
                log.push(format!("{} healing failed: {e}", at(start)));
            }
        } else if let (true, Some(proxy)) = (slow, proxies.get(victim)) {
            let base = Duration::from_millis(rng.between(50, 150) as u64);
            let spread = Duration::from_millis(50);
            let slow_for = Duration::from_millis(rng.between(1000, 3000) as u64);
            log.push(format!(
                "{} peer links of {name} delayed {base:?} (+ up to {spread:?}) for {slow_for:?}",
                at(start)
            ));
            proxy.delay(base, spread);
            std::thread::sleep(slow_for);
            proxy.undelay();
        } else if pause {
            log.push(format!("{} SIGSTOP {name} for {down:?}", at(start)));
            member.pause();
            std::thread::sleep(down);
            member.resume();
        } else {
            log.push(format!(
                "{} SIGKILL {name}, restarted after {down:?}{}",
                at(start),
                if behind {
                    " (behind the purged log)"
                } else {
                    ""
                }
            ));
            member.kill9();
            std::thread::sleep(down);
            member.restart();
        }
    }
    for (i, m) in cluster.members.iter_mut().enumerate() {
        if !m.is_running() {
            log.push(format!("{} m{} had exited: restarted", at(start), i + 1));
            m.restart();
        }
    }
    log
}

/// The member that says it leads, if one answers.
fn leader_of(cluster: &mut TestCluster) -> Option<usize> {
    for i in cluster.running() {
        if let Ok(s) = cluster.members[i].status(Duration::from_millis(500))
            && s.leader != 0
            && s.header.as_ref().is_some_and(|h| h.member_id == s.leader)
        {
            return Some(i);
        }
    }
    None
}
