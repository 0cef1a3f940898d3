//! The robustness harness (issue 20): a real cluster (Cairn, or etcd 3.4 as the oracle) under
//! concurrent clients while faults hit its members at seeded random moments; then every
//! client operation is checked for linearizability with `porcupine-rs` (a port of the
//! checker etcd's own robustness tests use), every watch stream against the history, and
//! the members' HashKV against each other. A run is replayed from its seed (the traffic and
//! the fault schedule follow from it; the timing does not).
//!
//! # Layout
//! - [`model`]: etcd's key-value semantics for the checker, and a deliberately wrong one.
//! - [`history`]: the record of operations, and its preparation for the checker.
//! - [`traffic`]: the key-value clients.
//! - [`leases`]: the lease clients and what leases must do.
//! - [`maintenance`]: compactions and defrags, and what must hold after them.
//! - [`faults`]: SIGKILL and restart, SIGSTOP and SIGCONT, partitions, delays, full disks.
//! - [`partitions`]: a member cut off from the others by firewall rules.
//! - [`peer_proxy`]: delays on a member's peer links, by a TCP proxy in front of it.
//! - [`rig`]: a cluster set up for every fault (proxies, groups, small disks).
//! - [`watches`]: the watchers and what their streams must hold.
//! - [`ranges`]: ranges checked as snapshots of the history.

pub mod faults;
pub mod history;
pub mod leases;
pub mod maintenance;
pub mod model;
pub mod partitions;
pub mod peer_proxy;
pub mod ranges;
pub mod rig;
pub mod traffic;
pub mod watches;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use porcupine_rs::{
    CheckResult, Model, Operation, check_operations_info, check_operations_timeout,
};

use crate::server::Kind;
use faults::Faults;
use history::{Clock, History};
use model::{EtcdKey, KvOp};

/// One run's shape.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: Kind,
    pub members: usize,
    pub faults: Faults,
    pub seconds: u64,
    pub clients: u32,
    pub keys: u8,
    pub seed: u64,
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    /// What the run did, by kind (see [`mix`]).
    pub mix: String,
    pub schedule: Vec<String>,
    pub violations: Vec<String>,
    /// The checked history, kept for [`check_with`] (the self-check).
    pub history: Vec<Operation<EtcdKey>>,
}

impl Report {
    /// The seed, the schedule and the violations, for a failure message.
    pub fn describe(&self, s: &Scenario) -> String {
        format!(
            "{s:?}: {} operations ({}), {} violations\nfault schedule:\n  {}\nviolations:\n  {}\nreplay: the same scenario with seed {}",
            self.operations,
            self.mix,
            self.violations.len(),
            self.schedule.join("\n  "),
            self.violations.join("\n  "),
            s.seed
        )
    }
}

/// Runs `s` and checks everything.
pub fn run(s: &Scenario) -> Report {
    let mut rig = rig::start(
        s.kind,
        s.members,
        snapshot_args(s.kind),
        s.faults == Faults::All,
    );
    let endpoints: Arc<Vec<String>> =
        Arc::new(rig.cluster.members.iter().map(|m| m.endpoint()).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let clock = Arc::new(Clock::new());
    let history = Arc::new(History::default());
    let start = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let until = start + Duration::from_secs(s.seconds);
    let done = Arc::new(Mutex::new(None));
    let seen: Vec<Arc<Mutex<watches::Stream>>> = endpoints
        .iter()
        .map(|_| Arc::new(Mutex::new(watches::Stream::default())))
        .collect();
    // etcd 3.4.23 (Debian's) answers a progress request ahead of queued events (its bug
    // 15220, which the harness finds): it is not asked for them
    let progress = s.kind == Kind::Cairn;
    for (ep, got) in endpoints.iter().zip(&seen) {
        rt.spawn(watches::watch(
            ep.clone(),
            1,
            progress,
            got.clone(),
            done.clone(),
        ));
    }
    let mut clients: Vec<_> = (0..s.clients)
        .map(|id| {
            rt.spawn(traffic::client(
                id,
                s.seed,
                s.keys,
                endpoints.clone(),
                until,
                clock.clone(),
                history.clone(),
            ))
        })
        .collect();
    for id in 0..LEASE_CLIENTS {
        clients.push(rt.spawn(leases::client(
            id,
            s.seed,
            endpoints.clone(),
            until,
            clock.clone(),
            history.clone(),
        )));
    }
    let compactions = maintenance::Compactions::default();
    let maintenance_log = Arc::new(Mutex::new(Vec::new()));
    clients.push(rt.spawn(maintenance::run(
        s.seed,
        endpoints.clone(),
        seen.clone(),
        until,
        compactions.clone(),
        maintenance_log.clone(),
        start,
    )));
    let mut schedule = faults::inject(&mut rig, s.faults, s.seed, start, until);
    rt.block_on(async {
        for c in clients {
            let _ = c.await;
        }
    });
    schedule.extend(maintenance_log.lock().expect("lock").drain(..));
    schedule.push(format!(
        "  0.00s the run began at unix time {}.{:03}",
        wall.as_secs(),
        wall.subsec_millis()
    ));
    // the schedule in time order (each line starts with its time)
    schedule.sort_by(|a, b| {
        let t = |l: &str| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.trim_end_matches('s').parse::<f64>().ok())
        };
        t(a).partial_cmp(&t(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut report = Report {
        schedule,
        ..Report::default()
    };
    rig.cluster.wait_leader(crate::cluster::LEADER_TIMEOUT);
    rt.block_on(leases_run_out(&endpoints, Duration::from_secs(20)));
    // the end state, read after the faults: what every acknowledged write must have led to
    let last = rt.block_on(final_reads(s, &endpoints, &clock, &history));
    let Some(last) = last else {
        report
            .violations
            .push("the cluster did not answer after the faults ended".into());
        return report;
    };
    *done.lock().expect("lock") = Some(last);
    watches::wait_all(&seen, last, Duration::from_secs(30));
    let streams: Vec<watches::Stream> = seen
        .iter()
        .map(|g| g.lock().expect("lock").clone())
        .collect();
    // the reference: the first stream that got everything (each is checked against it, and
    // it against the revisions, the acknowledged writes, the ranges and the leases)
    let full = streams.iter().find(|g| g.last().is_some_and(|l| l >= last));
    let reference = full.unwrap_or(&streams[0]).events.clone();
    let holes = watches::check_contiguous(&reference);
    let existed = history.existed_by();

    // a member that did not catch up: where each stands, to tell a stuck member from a
    // stuck watch (the soak's open case)
    let behind: Vec<usize> = (0..streams.len())
        .filter(|&i| streams[i].last().is_none_or(|l| l < last))
        .collect();
    if !behind.is_empty() {
        report.violations.push(format!(
            "the watches on {} did not reach revision {last} within 30 s; {}",
            behind
                .iter()
                .map(|i| format!("m{}", i + 1))
                .collect::<Vec<_>>()
                .join(", "),
            where_members_stand(&endpoints)
        ));
    }
    let recorded = history.all();
    report.operations = recorded.len();
    report.mix = mix(&recorded, &history, &streams, &report.schedule);
    // the writes the watch history settles, when a stream got every revision without a hole
    let complete = full.is_some() && holes.is_empty();
    let persisted = complete.then(|| history::Persisted {
        revision_of: reference
            .iter()
            .filter(|e| e.2)
            .filter_map(|e| Some((std::str::from_utf8(&e.3).ok()?.parse().ok()?, e.0)))
            .collect(),
        existed: &existed,
    });
    report.history = history::prepare(&recorded, persisted.as_ref());
    report
        .violations
        .extend(check_with::<EtcdKey>(&report.history));
    for (i, got) in streams.iter().enumerate() {
        report.violations.extend(watches::check(
            &format!("the watch on m{}", i + 1),
            got,
            &reference,
        ));
    }
    report.violations.extend(holes);
    report.violations.extend(watches::check_prev_kv(&reference));
    report
        .violations
        .extend(acknowledged_in(&recorded, &reference));
    report
        .violations
        .extend(ranges::check(&history.ranges(), &reference));
    report
        .violations
        .extend(leases::check(&history.leases(), &reference, &existed));
    let compactions = compactions.lock().expect("lock").clone();
    report.violations.extend(rt.block_on(maintenance::check(
        s.seed,
        &endpoints,
        &compactions,
        &reference,
        last,
    )));
    report.violations.extend(hashes_agree(&endpoints, last));
    report
}

/// The run's operations by kind, the leases by fate, the maintenance and the faults done,
/// and the progress notifications checked: one line.
fn mix(
    ops: &[history::Recorded],
    history: &History,
    streams: &[watches::Stream],
    schedule: &[String],
) -> String {
    let count = |f: &dyn Fn(&KvOp) -> bool| ops.iter().filter(|r| f(&r.op)).count();
    let ranges = history.ranges();
    let serializable = ranges.iter().filter(|r| r.serializable).count();
    let leases = history.leases();
    let revoked = leases.iter().filter(|l| l.revoked).count();
    let renewed = leases.iter().filter(|l| !l.renewed.is_empty()).count();
    let lines = |word: &str| schedule.iter().filter(|l| l.contains(word)).count();
    let progress: usize = streams.iter().map(|s| s.progress.len()).sum();
    format!(
        "puts {}, txns {}, gets {}, deletes {}, lost answers {}, ranges {} ({serializable} serializable), \
         leases {} ({revoked} revoked, {renewed} kept alive), compactions {}, defrags {}, \
         kills {}, pauses {}, partitions {}, delays {}, full disks {}, progress notifications {progress}",
        count(&|o| matches!(o, KvOp::Put { .. })),
        count(&|o| matches!(o, KvOp::Txn { .. })),
        count(&|o| matches!(o, KvOp::Get { .. })),
        count(&|o| matches!(o, KvOp::Delete { .. })),
        ops.iter().filter(|r| r.returned.is_none()).count(),
        ranges.len(),
        leases.len(),
        lines(" compact to "),
        lines(" defrag "),
        lines(" SIGKILL "),
        lines(" SIGSTOP "),
        lines(" partition "),
        lines(" delayed "),
        lines(" full (16 KiB left)"),
    )
}

/// Raft snapshots (and log purges behind them) every few hundred entries, so a member down
/// for seconds comes back behind the purged log. etcd 3.4 keeps a fixed 5,000 entries
/// behind a snapshot.
fn snapshot_args(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Cairn => &[
            "--snapshot-count",
            "300",
            "--experimental-snapshot-catchup-entries",
            "50",
        ],
        Kind::Etcd => &["--snapshot-count", "300"],
    }
}

/// Lease clients per run.
const LEASE_CLIENTS: u32 = 2;

/// Waits (at most `timeout`) until no lease key is left: every lease has run out or was
/// revoked. What is left then is reported by [`leases::check`].
async fn leases_run_out(endpoints: &[String], timeout: Duration) {
    use cairn_proto::etcdserverpb::RangeRequest;
    use cairn_proto::etcdserverpb::kv_client::KvClient;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for ep in endpoints {
            let Ok(ch) = crate::grpc::channel(ep, Duration::from_secs(2)).await else {
                continue;
            };
            let req = RangeRequest {
                key: leases::LEASE_PREFIX.to_vec(),
                range_end: traffic::prefix_end(leases::LEASE_PREFIX),
                count_only: true,
                ..Default::default()
            };
            if let Ok(r) = KvClient::new(ch).range(req).await
                && r.into_inner().count == 0
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A get of every key on the first member that answers: recorded, and the revision then.
async fn final_reads(
    s: &Scenario,
    endpoints: &[String],
    clock: &Clock,
    history: &History,
) -> Option<i64> {
    use cairn_proto::etcdserverpb::RangeRequest;
    use cairn_proto::etcdserverpb::kv_client::KvClient;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for ep in endpoints {
            let Ok(ch) = crate::grpc::channel(ep, Duration::from_secs(2)).await else {
                continue;
            };
            let mut kv = KvClient::new(ch);
            let mut last = None;
            for key in 0..s.keys {
                let call = clock.now();
                let req = RangeRequest {
                    key: traffic::key_name(key),
                    ..Default::default()
                };
                let Ok(r) = kv.range(req).await else {
                    last = None;
                    break;
                };
                let r = r.into_inner();
                history.record(history::Recorded {
                    client: u32::MAX,
                    call,
                    returned: Some(clock.now()),
                    op: KvOp::Get {
                        key,
                        found: traffic::found(&r),
                    },
                });
                last = r.header.map(|h| h.revision);
            }
            if last.is_some() {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Checks `ops` against `M`, key by key; each key found not linearizable is named with the
/// longest prefix the checker could order and the operations it could not place next.
pub fn check_with<M: Model<Op = KvOp>>(ops: &[Operation<EtcdKey>]) -> Vec<String> {
    let ops: Vec<Operation<M>> = ops
        .iter()
        .map(|o| Operation {
            client_id: o.client_id,
            call_time: o.call_time,
            return_time: o.return_time,
            op: o.op.clone(),
            metadata: None,
        })
        .collect();
    let mut out = Vec::new();
    let mut keys: Vec<u8> = ops.iter().map(|o| o.op.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let part: Vec<Operation<M>> = ops.iter().filter(|o| o.op.key() == key).cloned().collect();
        match check_operations_timeout(&part, Duration::from_secs(60)) {
            CheckResult::Ok => {}
            CheckResult::Unknown => out.push(format!(
                "key {key}: the checker could not decide within 60 s ({} operations)",
                part.len()
            )),
            CheckResult::Illegal => {
                let (_, info) = check_operations_info(&part);
                out.push(format!(
                    "key {key}: not linearizable\n{}",
                    minimal(&part, &info)
                ));
            }
        }
    }
    out
}

/// The longest order the checker found (its last operations) and the next ones by call
/// time that none of its orders could place: the heart of a failing history.
fn minimal<M: Model<Op = KvOp>>(
    part: &[Operation<M>],
    info: &porcupine_rs::LinearizationInfo<M>,
) -> String {
    let longest = info
        .partial_linearizations
        .iter()
        .flatten()
        .max_by_key(|l| l.len())
        .cloned()
        .unwrap_or_default();
    let placed: std::collections::HashSet<usize> = longest.iter().copied().collect();
    let show = |i: usize| {
        let o = &part[i];
        let ret = if o.return_time == i64::MAX {
            "never (unknown)".to_string()
        } else {
            format!("{:.6}s", o.return_time as f64 / 1e9)
        };
        format!(
            "    client {:?} called {:.6}s returned {ret}: {:?}",
            o.client_id,
            o.call_time as f64 / 1e9,
            o.op
        )
    };
    let mut lines = vec![format!(
        "  ordered ({} of {}), the last:",
        longest.len(),
        part.len()
    )];
    lines.extend(longest.iter().rev().take(6).rev().map(|&i| show(i)));
    let mut rest: Vec<usize> = (0..part.len()).filter(|i| !placed.contains(i)).collect();
    rest.sort_by_key(|&i| part[i].call_time);
    lines.push("  could not be placed next:".into());
    lines.extend(rest.into_iter().take(6).map(show));
    lines.join("\n")
}

/// Acknowledged puts missing from the reference watch (a lost write).
fn acknowledged_in(ops: &[history::Recorded], reference: &[watches::Seen]) -> Vec<String> {
    let events: std::collections::HashSet<(i64, Vec<u8>, Vec<u8>)> = reference
        .iter()
        .filter(|e| e.2)
        .map(|e| (e.0, e.1.clone(), e.3.clone()))
        .collect();
    ops.iter()
        .filter_map(|r| match &r.op {
            KvOp::Put {
                key,
                value,
                revision: Some(rev),
            } if r.returned.is_some() => {
                let e = (
                    *rev,
                    traffic::key_name(*key),
                    value.to_string().into_bytes(),
                );
                (!events.contains(&e)).then(|| {
                    format!(
                        "an acknowledged put of key {key} at revision {rev} is not in the history"
                    )
                })
            }
            _ => None,
        })
        .collect()
}

/// Each member's raft and store position (Maintenance.Status), for a run in which one did
/// not catch up: which member, how far behind, who it thinks leads.
fn where_members_stand(endpoints: &[String]) -> String {
    endpoints
        .iter()
        .enumerate()
        .map(
            |(i, ep)| match crate::grpc::status_blocking(ep, Duration::from_secs(2)) {
                Ok(s) => format!(
                    "m{}: revision {}, raft index {}, applied {}, term {}, leader {:x}",
                    i + 1,
                    s.header.as_ref().map_or(0, |h| h.revision),
                    s.raft_index,
                    s.raft_applied_index,
                    s.raft_term,
                    s.leader
                ),
                Err(e) => format!("m{}: no status ({e})", i + 1),
            },
        )
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every member's HashKV at `revision`, once they all reached it: equal.
fn hashes_agree(endpoints: &[String], revision: i64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hashes: Vec<_> = endpoints
            .iter()
            .map(|ep| crate::grpc::hash_kv_blocking(ep, revision).ok())
            .collect();
        if hashes.iter().all(Option::is_some) {
            let first = hashes[0];
            return if hashes.iter().all(|h| *h == first) {
                Vec::new()
            } else {
                vec![format!(
                    "HashKV at revision {revision} differs between members: {hashes:?}"
                )]
            };
        }
        if Instant::now() >= deadline {
            return vec![format!(
                "not every member reached revision {revision}: {hashes:?}; {}",
                where_members_stand(endpoints)
            )];
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
