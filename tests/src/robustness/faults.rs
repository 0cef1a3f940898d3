//! Faults at seeded random moments: a member (the leader as likely as any) killed with
//! SIGKILL and restarted, or paused with SIGSTOP and resumed. Each is written down, so a
//! failure shows the schedule and a seed replays it.

use std::time::{Duration, Instant};

use crate::cluster::TestCluster;
use crate::prng::Rng;

/// Which faults a scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    /// SIGKILL and restart.
    Kill,
    /// SIGKILL and restart, or SIGSTOP and SIGCONT.
    KillAndPause,
}

/// Injects faults into `cluster` until `until`, one every 1–2.5 s; returns what was done,
/// one line each, with the time since `start`.
pub fn inject(
    cluster: &mut TestCluster,
    faults: Faults,
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
        let pause = faults == Faults::KillAndPause && rng.chance(50);
        let member = &mut cluster.members[victim];
        if pause {
            log.push(format!("{} SIGSTOP {name} for {down:?}", at(start)));
            member.pause();
            std::thread::sleep(down);
            member.resume();
        } else {
            log.push(format!(
                "{} SIGKILL {name}, restarted after {down:?}",
                at(start)
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
