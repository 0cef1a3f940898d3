//! Failures the mirror must survive without skipping or repeating a revision: being killed
//! mid-stream, the source compacting while it is down, the source member dying, and source
//! revisions too large for one destination txn.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_proto::etcdserverpb::RangeRequest;
use cairn_proto::mvccpb::KeyValue;
use cairn_tests::mirror::Mirror;
use cairn_tests::{Clients, Kind, TestServer, grpc, wait};

use crate::{FENCE, assert_mirrored, compact_latest, count, del, put, txn_puts};

fn seed(endpoint: &str, prefix: &str, n: usize) {
    let kvs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("{prefix}k{i:04}"), format!("seed-{i}")))
        .collect();
    for chunk in kvs.chunks(100) {
        txn_puts(endpoint, chunk);
    }
}

/// A source and a destination server, the source filled by `fill`, and a mirror started with
/// `args` that has done its first copy and is watching.
fn mirror_watching(args: &[&str], fill: impl FnOnce(&str)) -> (TestServer, TestServer, Mirror) {
    let src = TestServer::start(Kind::Cairn);
    let dst = TestServer::start(Kind::Cairn);
    fill(&src.endpoint());
    let mut m = Mirror::start(&src.endpoint(), &dst.endpoint(), args);
    m.wait_event("watching", Duration::from_secs(20));
    (src, dst, m)
}

fn events_applied(m: &Mirror) -> u64 {
    m.events()
        .iter()
        .filter(|e| e["event"] == "status")
        .filter_map(|e| e["events_total"].as_u64())
        .max()
        .unwrap_or(0)
}

#[test]
fn killed_mid_stream_resumes_from_the_checkpoint_without_copying_again() {
    let args = ["--prefix", "/s/", FENCE, "--max-txn-ops", "16"];
    let (src, dst, mut m) = mirror_watching(&args, |s| seed(s, "/s/", 150));
    let (s, d) = (src.endpoint(), dst.endpoint());

    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..150 {
                put(&s, &format!("/s/k{:04}", i * 7 % 150), &format!("w{i}"));
                if i % 5 == 0 {
                    del(&s, &format!("/s/k{:04}", i));
                }
            }
        })
    };
    wait::until(
        Duration::from_secs(20),
        "the mirror to apply some events",
        || (events_applied(&m) >= 10).then_some(()),
    );
    m.kill9();
    writer.join().expect("writer");
    // Changes while the mirror is down, deletions included.
    for i in 100..120 {
        del(&s, &format!("/s/k{i:04}"));
    }
    put(&s, "/s/after", "down");

    m.restart();
    let r = m.wait_event("resuming", Duration::from_secs(20));
    assert_eq!(r["phase"], "watching", "{r}");
    assert_mirrored(&s, "/s/", &d, "/s/", &[]);
    assert_eq!(
        count(&m.notable(), "sync_started"),
        0,
        "copied again: {:?}",
        m.notable()
    );
    // Each key's version counts the puts since its creation: a revision applied twice (or
    // skipped) at the destination would show there.
    assert_eq!(versions(&s, "/s/"), versions(&d, "/s/"));
}

#[test]
fn destination_killed_and_restarted_mid_stream() {
    let args = ["--prefix", "/d/", FENCE, "--watch-idle=1s"];
    let (src, mut dst, mut m) = mirror_watching(&args, |s| seed(s, "/d/", 50));
    let (s, d) = (src.endpoint(), dst.endpoint());
    // writes go on until the destination is back, so the mirror always has something to
    // send to the dead one (a fixed count could all be mirrored before the kill)
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                put(&s, &format!("/d/k{:04}", i % 50), &format!("w{i}"));
                i += 1;
            }
        })
    };
    wait::until(
        Duration::from_secs(20),
        "the mirror to apply some events",
        || (events_applied(&m) >= 5).then_some(()),
    );
    dst.kill9();
    m.wait_event("retry", Duration::from_secs(20));
    dst.restart();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert_mirrored(&s, "/d/", &d, "/d/", &[]);
    assert_eq!(versions(&s, "/d/"), versions(&d, "/d/"));
}

/// Every key under `prefix`.
fn under(endpoint: &str, prefix: &str) -> Vec<KeyValue> {
    let (ep, key) = (endpoint.to_string(), prefix.as_bytes().to_vec());
    let mut end = key.clone();
    *end.last_mut().expect("prefix") += 1;
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        let r =
            c.kv.range(RangeRequest {
                key,
                range_end: end,
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::Ok(r.kvs)
    })
    .expect("range")
}

/// (key, version) of every key under `prefix`.
fn versions(endpoint: &str, prefix: &str) -> Vec<(Vec<u8>, i64)> {
    let kvs = under(endpoint, prefix);
    kvs.into_iter().map(|kv| (kv.key, kv.version)).collect()
}

#[test]
fn compaction_while_the_mirror_is_down_resyncs_and_prunes() {
    let args = ["--prefix", "/c/", FENCE];
    let (src, dst, mut m) = mirror_watching(&args, |s| seed(s, "/c/", 100));
    let (s, d) = (src.endpoint(), dst.endpoint());
    assert_mirrored(&s, "/c/", &d, "/c/", &[]);
    m.kill9();

    for i in 0..30 {
        del(&s, &format!("/c/k{i:04}"));
    }
    put(&s, "/c/k0050", "rewritten");
    put(&s, "/c/new", "added");
    compact_latest(&s);

    m.restart();
    let started = m.wait_event("sync_started", Duration::from_secs(20));
    let reason = started["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("compacted"), "{started}");
    let done = m.wait_event("sync_done", Duration::from_secs(30));
    assert_eq!(done["pruned"], 30, "{done}");
    m.wait_event("watching", Duration::from_secs(20));
    put(&s, "/c/after-resync", "streamed");
    assert_mirrored(&s, "/c/", &d, "/c/", &[]);
}

#[test]
fn source_killed_and_restarted() {
    let args = ["--prefix", "/r/", FENCE, "--watch-idle=1s"];
    let (mut src, dst, mut m) = mirror_watching(&args, |s| put(s, "/r/a", "1"));
    let (s, d) = (src.endpoint(), dst.endpoint());
    assert_mirrored(&s, "/r/", &d, "/r/", &[]);

    src.kill9();
    m.wait_event("retry", Duration::from_secs(20));
    src.restart();
    put(&s, "/r/b", "2");
    del(&s, "/r/a");
    assert_mirrored(&s, "/r/", &d, "/r/", &[]);
    assert_eq!(count(&m.notable(), "sync_started"), 1, "{:?}", m.notable());
}

/// Destination mod revisions of the keys under `prefix`.
fn dest_revisions(endpoint: &str, prefix: &str) -> BTreeSet<i64> {
    under(endpoint, prefix)
        .iter()
        .map(|kv| kv.mod_revision)
        .collect()
}

#[test]
fn txns_larger_than_max_txn_ops_are_split() {
    // 10 ops per destination txn: 9 of data and the checkpoint.
    let args = ["--prefix", "/t/", FENCE, "--max-txn-ops", "10"];
    let (src, dst, m) = mirror_watching(&args, |s| seed(s, "/t/init/", 45));
    let (s, d) = (src.endpoint(), dst.endpoint());
    let big: Vec<(String, String)> = (0..50)
        .map(|i| (format!("/t/big/{i:03}"), format!("b{i}")))
        .collect();
    txn_puts(&s, &big);
    assert_mirrored(&s, "/t/", &d, "/t/", &[]);
    assert_eq!(
        dest_revisions(&d, "/t/init/").len(),
        5,
        "45 keys in txns of 9"
    );
    assert_eq!(
        dest_revisions(&d, "/t/big/").len(),
        6,
        "one 50-op revision in txns of 9"
    );
    assert_eq!(count(&m.notable(), "retry"), 0, "{:?}", m.notable());
}
