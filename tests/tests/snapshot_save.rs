//! Snapshot save: `Maintenance.Snapshot` on cairn, `cairnutl snapshot save`, and real
//! `etcdctl snapshot save` against cairn. Every saved file is read back with the storage
//! crate's reader (`verify`: digest, every record, recomputed HashKV).
//!
//! Cairn only: etcd's snapshot is a bolt file, which the reader does not read.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::request_op::Request as Op;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, HashKvRequest, LeaseGrantRequest, PutRequest, RequestOp,
    SnapshotRequest, StatusRequest, TxnRequest,
};
use cairn_storage::snapshot::{EtcdSnapshot, SnapshotInfo, verify};
use cairn_tests::prng::Rng;
use cairn_tests::{Clients, Kind, TestServer, cairnutl_bin, etcdctl, ports, wait};

/// Upper bound for one cairnutl or etcdctl run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn key(i: usize) -> Vec<u8> {
    format!("snap/{i:05}").into_bytes()
}

/// Mostly incompressible values, so the snapshot spans many 32 KiB chunks.
fn value(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> PutRequest {
    PutRequest {
        key,
        value,
        lease,
        ..Default::default()
    }
}

/// Puts `keys` in one txn (distinct keys, at most 128: etcd's default limit).
async fn put_txn(c: &mut Clients, rng: &mut Rng, keys: &[usize], len: usize) {
    let success = keys
        .iter()
        .map(|&i| RequestOp {
            request: Some(Op::RequestPut(put(key(i), value(rng, len), 0))),
        })
        .collect();
    let txn = TxnRequest {
        success,
        ..Default::default()
    };
    c.kv.txn(txn).await.expect("bulk txn");
}

/// 3000 keys (bulk txns and single puts), overwrites, deletes, and a lease with keys. Bulk
/// writes go in txns to keep the fill to a few hundred round trips.
async fn fill(c: &mut Clients) {
    let mut rng = Rng::new(7);
    let all: Vec<usize> = (0..3000).collect();
    for batch in all[..2900].chunks(100) {
        put_txn(c, &mut rng, batch, 1000).await;
    }
    for i in 2900..3000 {
        c.kv.put(put(key(i), value(&mut rng, 200), 0))
            .await
            .expect("put");
    }
    let overwrites: Vec<usize> = (0..3000).step_by(7).collect();
    for batch in overwrites.chunks(100) {
        put_txn(c, &mut rng, batch, 100).await;
    }
    let del = DeleteRangeRequest {
        key: key(1000),
        range_end: key(1100),
        ..Default::default()
    };
    c.kv.delete_range(del).await.expect("delete range");
    for i in (2000..2100).step_by(10) {
        let del = DeleteRangeRequest {
            key: key(i),
            ..Default::default()
        };
        c.kv.delete_range(del).await.expect("delete");
    }
    let lease = LeaseGrantRequest { ttl: 600, id: 0 };
    let lease = c
        .lease
        .lease_grant(lease)
        .await
        .expect("grant")
        .into_inner();
    for i in 0..5 {
        c.kv.put(put(
            format!("leased/{i}").into_bytes(),
            b"v".to_vec(),
            lease.id,
        ))
        .await
        .expect("leased put");
    }
}

async fn revision(c: &mut Clients) -> i64 {
    let s = c
        .maintenance
        .status(StatusRequest {})
        .await
        .expect("status");
    s.into_inner().header.expect("header").revision
}

async fn hash_kv(c: &mut Clients, revision: i64) -> u32 {
    let h = c.maintenance.hash_kv(HashKvRequest { revision }).await;
    h.expect("hashkv").into_inner().hash
}

/// A started server, filled, with clients connected.
async fn filled_server() -> (TestServer, Clients) {
    let server = TestServer::start(Kind::Cairn);
    let mut c = Clients::connect(&server.endpoint()).await.expect("connect");
    fill(&mut c).await;
    (server, c)
}

/// Runs `cmd` to completion within [`RUN_TIMEOUT`] (killed otherwise). Unlike `output()`,
/// this keeps a stdout the caller redirected.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Output {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("wait for {what}: {e}"))
}

fn cairnutl(endpoints: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(cairnutl_bin());
    cmd.env_remove("ETCDCTL_ENDPOINTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .arg("--endpoints")
        .arg(endpoints)
        .args(args);
    cmd
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cairnutl snapshot save FILE`; asserts success and the one-line report.
async fn save(endpoints: &str, file: &Path) -> Output {
    let f = file.to_str().expect("UTF-8 path");
    let out = run(
        cairnutl(endpoints, &["snapshot", "save", f]),
        "cairnutl save",
    )
    .await;
    assert_ok(&out, "cairnutl snapshot save");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("Snapshot saved at {f} (revision ")),
        "{stdout}"
    );
    assert!(!part(file).exists(), "FILE.part left behind");
    out
}

fn part(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", file.display()))
}

/// Full check of a saved file; returns its header.
fn verified(file: &Path) -> SnapshotInfo {
    let (info, summary) = verify(file, &mut |_| {})
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", file.display()));
    assert_eq!(summary.hash, info.header.hash);
    assert_eq!(summary.leases, 1, "the lease is in the snapshot");
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairnutl_save_matches_the_server() {
    let (server, mut c) = filled_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("snap.db");
    let rev = revision(&mut c).await;

    let out = save(&server.endpoint(), &file).await;
    let info = verified(&file);
    assert_eq!(info.header.revision, rev, "no writes happened in between");
    assert_eq!(info.header.hash, hash_kv(&mut c, rev).await);
    assert_eq!(info.header.lease_count, 1);
    let size = std::fs::metadata(&file).expect("stat").len();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!(
            "Snapshot saved at {} (revision {rev}, {size} bytes)",
            file.display()
        )
    );
    assert!(size > 8 * 32 * 1024, "several chunks: {size} bytes");
    assert!(
        out.stderr.is_empty(),
        "quiet without a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_save_against_cairn_verifies() {
    if !cairn_tests::require_etcd() {
        return;
    }
    let (server, mut c) = filled_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcdctl.db");
    let rev = revision(&mut c).await;
    let (ep, f) = (server.endpoint(), file.display().to_string());
    let out = tokio::task::spawn_blocking(move || etcdctl(&ep, &["snapshot", "save", &f]))
        .await
        .expect("etcdctl thread");
    assert_ok(&out, "etcdctl snapshot save");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Snapshot saved at"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // etcdctl gets etcd's own format: a bbolt database that checks out, at the revision,
    // with the store's HashKV
    let snap = EtcdSnapshot::open(&file).unwrap_or_else(|e| panic!("{e}"));
    let v = snap
        .verify(false, &mut |_| {})
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", file.display()));
    assert_eq!(v.plan.revision, rev);
    assert_eq!(v.summary.hash, hash_kv(&mut c, rev).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_while_writing() {
    let (server, mut c) = filled_server().await;
    let stop = Arc::new(AtomicBool::new(false));
    let puts = Arc::new(AtomicU64::new(0));
    let writer = {
        let (mut c, stop, puts) = (c.clone(), stop.clone(), puts.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = put(format!("busy/{}", i % 50).into_bytes(), vec![b'x'; 64], 0);
                c.kv.put(p).await.expect("put during snapshot");
                puts.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let wait_puts = |n: u64| {
        let puts = puts.clone();
        async move {
            tokio::time::timeout(RUN_TIMEOUT, async {
                while puts.load(Ordering::Relaxed) < n {
                    tokio::time::sleep(wait::POLL).await;
                }
            })
            .await
            .expect("the writer makes progress");
        }
    };
    wait_puts(10).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("busy.db");
    let before = revision(&mut c).await;
    save(&server.endpoint(), &file).await;
    let after = revision(&mut c).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer task");

    let info = verified(&file);
    let rev = info.header.revision;
    assert!(
        before <= rev && rev <= after,
        "{before} <= {rev} <= {after}"
    );
    assert!(after > before, "writes went on during the save");
    assert_eq!(info.header.hash, hash_kv(&mut c, rev).await);
}

/// A client that stops reading holds a read transaction, not a lock: writes and compaction
/// go on; the rest of the stream is still the snapshot of the revision it started at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_blocks_no_writes() {
    let (_server, mut c) = filled_server().await;
    let start = revision(&mut c).await;
    let mut stream = c
        .maintenance
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    let first = stream.message().await.expect("first").expect("a message");
    let header_rev = first.header.as_ref().expect("header").revision;
    assert_eq!(header_rev, start);
    assert!(!first.version.is_empty(), "version is filled");

    for i in 0..50 {
        c.kv.put(put(key(i), b"after".to_vec(), 0))
            .await
            .expect("put while the snapshot is paused");
    }
    let compact = CompactionRequest {
        revision: start - 10,
        physical: true,
    };
    c.kv.compact(compact).await.expect("compact meanwhile");
    assert_eq!(revision(&mut c).await, start + 50);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("paused.db");
    let mut bytes = first.blob;
    let mut last_remaining = first.remaining_bytes;
    let mut messages = 1;
    while let Some(m) = stream.message().await.expect("rest of the stream") {
        assert!(last_remaining > 0, "only the last message says 0 remaining");
        assert!(
            m.remaining_bytes <= last_remaining,
            "remaining_bytes decreases"
        );
        assert!(
            m.blob.len() <= 256 * 1024,
            "blobs of at most 256 KiB (the server's CHUNK)"
        );
        assert_eq!(m.header.as_ref().map(|h| h.revision), Some(start));
        last_remaining = m.remaining_bytes;
        bytes.extend_from_slice(&m.blob);
        messages += 1;
    }
    assert_eq!(last_remaining, 0, "the last message says 0 remaining");
    assert!(messages > 4, "several messages: {messages}");
    std::fs::write(&file, &bytes).expect("write file");
    // no format asked for: etcd's, taken at the first message's revision whatever came after
    let snap = EtcdSnapshot::open(&file).unwrap_or_else(|e| panic!("{e}"));
    let v = snap
        .verify(false, &mut |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.plan.revision, start);
}

/// A client that goes away mid-stream stops the server's writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_stops_the_writer() {
    let (server, mut c) = filled_server().await;
    let mut stream = c
        .maintenance
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    stream.message().await.expect("first").expect("a message");
    drop(stream);
    let log = server.log_path();
    tokio::task::spawn_blocking(move || {
        wait::until(
            RUN_TIMEOUT,
            "the server to log the cancelled snapshot",
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("snapshot stream cancelled by the client")
                    .then_some(())
            },
        )
    })
    .await
    .expect("wait thread");
    c.kv.put(put(b"still".to_vec(), b"fine".to_vec(), 0))
        .await
        .expect("put after the cancelled snapshot");
}

fn dead_endpoint() -> String {
    // nothing listens there: connections are refused at once
    format!("127.0.0.1:{}", ports::free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_the_live_endpoint() {
    let (server, _c) = filled_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("live.db");
    let dead = dead_endpoint();
    let out = save(&format!("{dead},{}", server.endpoint()), &file).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Using endpoint {}", server.endpoint())),
        "{stderr}"
    );
    verified(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_endpoints_dead_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("none.db");
    let f = file.to_str().expect("UTF-8 path");
    let eps = format!("{},{}", dead_endpoint(), dead_endpoint());
    let cmd = cairnutl(&eps, &["--command-timeout", "2s", "snapshot", "save", f]);
    let out = run(cmd, "cairnutl save").await;
    assert!(
        !out.status.success(),
        "saving from dead endpoints succeeded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    assert!(stderr.contains("no healthy endpoint"), "{stderr}");
    assert!(!file.exists(), "FILE created");
    assert!(!part(&file).exists(), "FILE.part left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_to_stdout() {
    let (server, mut c) = filled_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("piped.db");
    let rev = revision(&mut c).await;
    let mut cmd = cairnutl(&server.endpoint(), &["snapshot", "save", "-"]);
    cmd.stdout(std::fs::File::create(&file).expect("create output"));
    let out = run(cmd, "cairnutl save -").await;
    assert_ok(&out, "cairnutl snapshot save -");
    assert!(!part(Path::new("-")).exists(), "no -.part");
    let info = verified(&file);
    assert_eq!(info.header.revision, rev);
}

/// SIGTERM while a client stalls mid-snapshot: the stream ends with an error, never a clean
/// end short of the digest, and the server still exits cleanly (after its drain timeout:
/// a stream with unread data holds the connection like any other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_stalled_snapshot() {
    let (mut server, _c) = filled_server().await;
    // small HTTP/2 windows, so the server's writer blocks soon after the client stops reading
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .expect("endpoint")
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .expect("connect");
    let mut stream = MaintenanceClient::new(channel)
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    stream.message().await.expect("first").expect("a message");
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop thread");
    assert!(status.success(), "clean exit: {status}");
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(end.is_err(), "the stream ended cleanly without the digest");
}
