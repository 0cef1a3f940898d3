//! Faults at seeded random moments: a member (the leader as likely as any) killed with
//! SIGKILL and restarted, paused with SIGSTOP and resumed, or cut off from the other members
//! by a network partition and healed (`partitions`). Each is written down, so a failure shows
//! the schedule and a seed replays it.

use std::time::{Duration, Instant};

use super::partitions::Net;
use crate::cluster::TestCluster;
use crate::prng::Rng;

/// Which faults a scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    /// SIGKILL and restart.
    Kill,
    /// SIGKILL and restart, or SIGSTOP and SIGCONT.
    KillAndPause,
    /// Those, partitions of one member from the others (needs root: see
    /// [`super::partitions::available`]), and a member killed for 3–5 s, long enough for
    /// the others to purge the log it needs (it catches up from a snapshot).
    All,
}

/// Injects faults into `cluster` until `until`, one every 1–2.5 s; returns what was done,
/// one line each, with the time since `start`.
pub fn inject(
    cluster: &mut TestCluster,
    faults: Faults,
    net: Option<&Net>,
    seed: u64,
    start: Instant,
    until: Instant,
) -> Vec<String> {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9));
    let mut log = Vec::new();
    let at = |start: Instant| format!("{:>6.2}s", start.elapsed().as_secs_f64());
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
        let partition = faults == Faults::All && n > 1 && roll < 35;
        // down long enough for the others to snapshot and purge the log it needs
        let behind = faults == Faults::All && n > 1 && (35..45).contains(&roll);
        let down = if behind {
            Duration::from_millis(rng.between(3000, 5000) as u64)
        } else {
            down
        };
        let pause = !partition && !behind && faults != Faults::Kill && rng.chance(50);
        let member = &mut cluster.members[victim];
        if let (true, Some(net)) = (partition, net) {
            let off = Duration::from_millis(rng.between(500, 2500) as u64);
            log.push(format!("{} partition {name} off for {off:?}", at(start)));
            if let Err(e) = net.isolate(victim) {
                log.push(format!("{} the partition failed: {e}", at(start)));
            }
            std::thread::sleep(off);
            if let Err(e) = net.heal() {
                log.push(format!("{} healing failed: {e}", at(start)));
            }
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
