//! A three-member source cluster whose leader is killed under a write load: the mirror
//! follows the cluster to the new leader without skipping, repeating or re-copying.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cairn_tests::mirror::Mirror;
use cairn_tests::{Kind, TestCluster, TestServer, require_etcd, wait};

use crate::{FENCE, assert_mirrored, count, try_put_lease};

/// One put; `false` when the cluster refused it (no leader yet, leader gone mid-request).
#[test]
fn the_source_leader_killed_under_load() {
    // the cluster harness grows clusters with etcdctl
    if !require_etcd() {
        return;
    }
    let mut src = TestCluster::start(3, &[]);
    let dst = TestServer::start(Kind::Cairn);
    let d = dst.endpoint();
    let leader = src.wait_leader(Duration::from_secs(60));
    let followers: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| src.members[i].endpoint())
        .collect();
    // the mirror knows every source member; it starts on the leader
    let mut endpoints = vec![src.members[leader].endpoint()];
    endpoints.extend(followers.iter().cloned());
    let source = endpoints.join(",");
    let mut m = Mirror::start(&source, &d, &["--prefix", "/c/", FENCE, "--watch-idle=1s"]);
    m.wait_event("watching", Duration::from_secs(30));

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written, followers) = (stop.clone(), written.clone(), followers.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if try_put_lease(
                    &followers[i % 2],
                    &format!("/c/k{:03}", i % 300),
                    &format!("v{i}"),
                    0,
                )
                .is_ok()
                {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    let at = |n: usize| {
        let written = written.clone();
        move || (written.load(Ordering::Relaxed) >= n).then_some(())
    };
    wait::until(Duration::from_secs(60), "writes before the kill", at(100));
    src.members[leader].kill9();
    src.wait_leader(Duration::from_secs(60));
    let before = written.load(Ordering::Relaxed);
    wait::until(
        Duration::from_secs(60),
        "writes under the new leader",
        at(before + 100),
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    assert_mirrored(&followers[0], "/c/", &d, "/c/", &[]);
    assert_eq!(count(&m.notable(), "sync_started"), 1, "{:?}", m.notable());
}
