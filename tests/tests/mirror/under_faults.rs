//! The mirror between two three-member clusters while both suffer the robustness harness's
//! faults (kills, pauses and, as root, partitions, full disks and members behind the purged log) under
//! a write load: the destination ends equal to the source (`--check`), and every key has the
//! same version on both sides. The mirror started on an empty prefix and never re-copied, so
//! a key's version counts the puts applied to it: equal versions prove that no source
//! revision was applied twice or skipped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::RangeRequest;
use cairn_tests::mirror::Mirror;
use cairn_tests::prng::Rng;
use cairn_tests::robustness::faults::{self, Faults};
use cairn_tests::robustness::{partitions, rig};
use cairn_tests::{Clients, Kind, grpc, require_etcd, wait};

use crate::{FENCE, assert_mirrored, count, try_del, try_put_lease};

const PREFIX: &str = "/f/";
const FAULTS_FOR: Duration = Duration::from_secs(15);

/// (key, value, version) of every key under the prefix, read linearizably on `endpoints`
/// (the first that answers).
fn versions(endpoints: &[String]) -> Option<Vec<(String, String, i64)>> {
    for ep in endpoints {
        let ep = ep.clone();
        let read = grpc::block_on(async move {
            let mut c = Clients::connect(&ep).await?;
            let r =
                c.kv.range(RangeRequest {
                    key: PREFIX.into(),
                    range_end: b"/f0".to_vec(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            anyhow::Ok(
                r.kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                            kv.version,
                        )
                    })
                    .collect(),
            )
        });
        if let Ok(v) = read {
            return Some(v);
        }
    }
    None
}

#[test]
fn both_clusters_under_faults_end_equal_with_every_revision_applied_once() {
    // the cluster harness grows clusters with etcdctl
    if !require_etcd() {
        return;
    }
    let all = partitions::available();
    let kinds = if all {
        Faults::All
    } else {
        Faults::KillAndPause
    };
    let mut src = rig::start(Kind::Cairn, 3, &[], all);
    let mut dst = rig::start(Kind::Cairn, 3, &[], all);
    let sources: Vec<String> = src.cluster.members.iter().map(|m| m.endpoint()).collect();
    let dests: Vec<String> = dst.cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut m = Mirror::start(
        &sources.join(","),
        &dests.join(","),
        &["--prefix", PREFIX, FENCE, "--watch-idle=1s"],
    );
    m.wait_event("watching", Duration::from_secs(30));

    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let start = Instant::now();
    let until = start + FAULTS_FOR;
    let (src_log, dst_log) = std::thread::scope(|scope| {
        for w in 0..3u64 {
            let (sources, stop, written) = (&sources, &stop, &written);
            scope.spawn(move || {
                let mut rng = Rng::new(0x5eed ^ w);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ep = rng.pick(sources);
                    let key = format!("{PREFIX}k{:02}", rng.below(40));
                    // lost answers are fine: only the end state is compared
                    let ok = if rng.chance(75) {
                        try_put_lease(ep, &key, &format!("{w}-{i}"), 0).is_ok()
                    } else {
                        try_del(ep, &key).is_ok()
                    };
                    if ok {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
        let (src, dst) = (&mut src, &mut dst);
        let a = scope.spawn(move || faults::inject(src, kinds, 21, start, until));
        let b = scope.spawn(move || faults::inject(dst, kinds, 22, start, until));
        let logs = (
            a.join().expect("source faults"),
            b.join().expect("destination faults"),
        );
        stop.store(true, Ordering::Relaxed);
        logs
    });
    let schedule = format!(
        "source:\n  {}\ndestination:\n  {}",
        src_log.join("\n  "),
        dst_log.join("\n  ")
    );
    assert!(
        written.load(Ordering::Relaxed) > 100,
        "too few writes got through\n{schedule}"
    );
    src.cluster.wait_leader(Duration::from_secs(60));
    dst.cluster.wait_leader(Duration::from_secs(60));

    let deadline = Instant::now() + Duration::from_secs(90);
    let caught_up = loop {
        let now = (versions(&sources), versions(&dests));
        if now.0.is_some() && now.0 == now.1 {
            // the versions prove something only if keys were written again and again
            let state = now.0.unwrap_or_default();
            assert!(
                state.iter().any(|(_, _, v)| *v >= 3),
                "no key was put three times: {state:?}\n{schedule}"
            );
            break None;
        }
        if Instant::now() >= deadline {
            break Some(now);
        }
        std::thread::sleep(wait::POLL);
    };
    let last = caught_up.clone().unwrap_or_default();
    assert!(
        caught_up.is_none(),
        "the destination's keys and versions never matched the source's\nsource: {:?}\ndestination: {:?}\n{schedule}\nmirror events: {:?}",
        last.0,
        last.1,
        m.notable()
    );
    assert_mirrored(&sources[0], PREFIX, &dests[0], PREFIX, &[]);
    // one copy at the start (of nothing): versions count every put applied
    assert_eq!(
        count(&m.notable(), "sync_started"),
        1,
        "{:?}\n{schedule}",
        m.notable()
    );
}
