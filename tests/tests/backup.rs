//! `cairnutl backup run|list|verify` against real servers, the same test body against cairn
//! and against real etcd 3.4: the backup holds a full snapshot and then exactly the revisions
//! written after it, each with the events the writes made; stopped with SIGTERM and killed
//! with SIGKILL, it resumes without a gap or a repeat; `verify` passes on the result and names
//! a damaged segment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_backup::segment;
use cairn_backup::timeline::Timeline;
use cairn_proto::mvccpb::event::EventType;
use cairn_tests::binaries::cairnutl_bin;
use cairn_tests::etcdctl::{Background, etcdctl_json, etcdctl_ok, etcdctl_stdin};
use cairn_tests::{Kind, TestServer, cairnutl, output_text};

const WAIT: Duration = Duration::from_secs(30);

/// What a revision's events are, as (type, key, value).
type Events = Vec<(EventType, String, String)>;

fn start_backup(ep: &str, dir: &Path) -> Background {
    let mut cmd = Command::new(cairnutl_bin());
    cmd.env_remove("ETCDCTL_ENDPOINTS").args([
        "--endpoints",
        ep,
        "backup",
        "run",
        &dir.display().to_string(),
        "--segment-age",
        "200ms",
    ]);
    Background::spawn(cmd, "cairnutl backup run".into())
}

fn revision_of(ep: &str) -> i64 {
    etcdctl_json(ep, &["get", "nothing-here"])["header"]["revision"]
        .as_i64()
        .unwrap()
}

/// A put; returns its revision.
fn put(ep: &str, key: &str, value: &str, history: &mut BTreeMap<i64, Events>) -> i64 {
    let out = etcdctl_json(ep, &["put", key, value]);
    let rev = out["header"]["revision"].as_i64().unwrap();
    history.insert(rev, vec![(EventType::Put, key.into(), value.into())]);
    rev
}

/// Waits until the backup's newest chain reaches `rev`.
fn wait_covered(dir: &Path, rev: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = Timeline::load(dir).unwrap();
        if t.newest().is_some_and(|c| c.last >= rev) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the backup did not reach revision {rev}: {:?}",
            t.newest()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every change of the newest chain's segments, by revision.
fn recorded(dir: &Path) -> (i64, BTreeMap<i64, Events>) {
    let chain = Timeline::load(dir).unwrap().newest().expect("a chain");
    let mut out = BTreeMap::new();
    for s in &chain.segments {
        let (_, changes) = segment::read(&s.path).unwrap();
        for c in changes {
            let events = c
                .events
                .iter()
                .map(|e| {
                    let kv = e.kv.as_ref().unwrap();
                    (
                        EventType::try_from(e.r#type).unwrap(),
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        String::from_utf8_lossy(&kv.value).into_owned(),
                    )
                })
                .collect();
            assert!(
                out.insert(c.revision, events).is_none(),
                "revision {} twice",
                c.revision
            );
        }
    }
    (chain.full.revision, out)
}

/// The recorded change at `rev`.
fn changes_at(dir: &Path, rev: i64) -> segment::Change {
    let chain = Timeline::load(dir).unwrap().newest().expect("a chain");
    let s = chain
        .segments
        .iter()
        .find(|s| (s.first..=s.last).contains(&rev))
        .expect("a segment holding the revision");
    let (_, changes) = segment::read(&s.path).unwrap();
    changes.into_iter().find(|c| c.revision == rev).unwrap()
}

/// `snapshot restore --from-backup --to-revision`: a member started on the result serves the
/// source's data at `rev` with the original revisions, HashKV equal to the source's at `rev`,
/// and the lease.
fn restores_to_a_revision(kind: Kind, ep: &str, backup: &Path, rev: i64, lease_hex: &str) {
    let rev_flag = format!("--rev={rev}");
    let want_hash =
        etcdctl_json(ep, &["endpoint", "hashkv", &rev_flag])[0]["HashKV"]["hash"].clone();
    let want_kvs = etcdctl_json(ep, &["get", "", "--prefix", &rev_flag])["kvs"].clone();
    let backup = backup.display().to_string();
    let restored = TestServer::start_prepared(Kind::Cairn, "restored", &[], |dir, peer| {
        let out = cairnutl(&[
            "snapshot",
            "restore",
            "--from-backup",
            &backup,
            "--to-revision",
            &rev.to_string(),
            "--name",
            "restored",
            "--initial-cluster",
            &format!("restored={peer}"),
            "--initial-advertise-peer-urls",
            peer,
            "--data-dir",
            &dir.display().to_string(),
        ]);
        assert!(out.status.success(), "{kind:?}: {}", output_text(&out));
    });
    let rep = restored.endpoint();
    let got = etcdctl_json(&rep, &["get", "", "--prefix"]);
    assert_eq!(
        got["header"]["revision"].as_i64(),
        Some(rev),
        "{kind:?}: the revision"
    );
    assert_eq!(
        got["kvs"], want_kvs,
        "{kind:?}: keys, values, revisions, versions, leases"
    );
    let hash = etcdctl_json(&rep, &["endpoint", "hashkv", &rev_flag])[0]["HashKV"]["hash"].clone();
    assert_eq!(hash, want_hash, "{kind:?}: HashKV at {rev}");
    let ttl = etcdctl_json(&rep, &["lease", "timetolive", lease_hex]);
    assert_eq!(ttl["granted-ttl"].as_i64(), Some(600), "{kind:?}: {ttl}");
    // a revision the backup does not reach is refused, naming what it can do
    let out = cairnutl(&[
        "snapshot",
        "restore",
        "--from-backup",
        &backup,
        "--to-revision",
        "999999",
        "--data-dir",
        "/nonexistent/never-made",
    ]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("it restores to revisions"),
        "{}",
        output_text(&out)
    );
}

fn backup_follows_every_revision(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let mut history = BTreeMap::new();
    for i in 0..5 {
        put(&ep, &format!("before/{i}"), "old", &mut history);
    }
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");

    let mut run = start_backup(&ep, &backup);
    run.wait_for(WAIT, "the full snapshot", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("full snapshot at revision"))
    });
    let full = Timeline::load(&backup)
        .unwrap()
        .newest()
        .unwrap()
        .full
        .revision;
    assert_eq!(
        full,
        revision_of(&ep),
        "the snapshot is of the revision it started at"
    );

    // puts, an overwrite, a delete, a txn of several, a put on a lease
    put(&ep, "a", "1", &mut history);
    put(&ep, "b", "2", &mut history);
    put(&ep, "a", "3", &mut history);
    let del = etcdctl_json(&ep, &["del", "b"])["header"]["revision"]
        .as_i64()
        .unwrap();
    history.insert(del, vec![(EventType::Delete, "b".into(), String::new())]);
    etcdctl_stdin(&ep, &["txn"], "\nput t/1 x\nput t/2 y\ndel a\n\n\n");
    let txn_rev = revision_of(&ep);
    history.insert(
        txn_rev,
        vec![
            (EventType::Put, "t/1".into(), "x".into()),
            (EventType::Put, "t/2".into(), "y".into()),
            (EventType::Delete, "a".into(), String::new()),
        ],
    );
    let lease = etcdctl_ok(&ep, &["lease", "grant", "600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    let leased = etcdctl_json(&ep, &["put", "--lease", &id, "l", "on a lease"]);
    let leased_rev = leased["header"]["revision"].as_i64().unwrap();
    history.insert(
        leased_rev,
        vec![(EventType::Put, "l".into(), "on a lease".into())],
    );
    wait_covered(&backup, revision_of(&ep));
    run.terminate();
    assert!(run.wait_exit(WAIT).success(), "SIGTERM ends it cleanly");

    // down: writes go on; killed mid-segment later: nothing lost, nothing twice
    put(&ep, "while/down", "1", &mut history);
    let mut run = start_backup(&ep, &backup);
    run.wait_for(WAIT, "the resume", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("resuming after revision"))
    });
    for i in 0..20 {
        put(&ep, &format!("after/{i}"), "v", &mut history);
    }
    wait_covered(&backup, revision_of(&ep) - 3);
    run.kill();
    for i in 0..5 {
        put(&ep, &format!("after-kill/{i}"), "v", &mut history);
    }
    let mut run = start_backup(&ep, &backup);
    let now = revision_of(&ep);
    wait_covered(&backup, now);
    run.terminate();
    assert!(run.wait_exit(WAIT).success());

    let (full_rev, got) = recorded(&backup);
    assert_eq!(full_rev, full);
    let want: BTreeMap<i64, Events> = history.into_iter().filter(|(r, _)| *r > full).collect();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        ((full + 1)..=now).collect::<Vec<_>>(),
        "{kind:?}: every revision after the snapshot, once"
    );
    assert_eq!(got, want, "{kind:?}: each revision's events");

    // the lease a key went on is described with the change that first used it
    let lease_id = i64::from_str_radix(&id, 16).unwrap();
    let leases = changes_at(&backup, leased_rev).leases;
    assert_eq!(leases.len(), 1, "{kind:?}: {leases:?}");
    assert_eq!(
        (leases[0].id, leases[0].granted_ttl),
        (lease_id, 600),
        "{kind:?}"
    );
    assert!((500..=600).contains(&leases[0].ttl), "{kind:?}: {leases:?}");

    let out = cairnutl(&["backup", "verify", &backup.display().to_string()]);
    assert!(out.status.success(), "{kind:?}: {}", output_text(&out));

    restores_to_a_revision(kind, &ep, &backup, leased_rev, &id);
    let at = changes_at(&backup, txn_rev).unix_ms;
    let found = cairn_backup::restore::revision_at(&backup, at)
        .unwrap()
        .unwrap();
    assert!(
        (txn_rev..=now).contains(&found),
        "{kind:?}: --to-time found {found}"
    );
    let out = cairnutl(&["backup", "list", &backup.display().to_string()]);
    let listed = output_text(&out);
    assert!(
        listed.contains(&format!("restorable to revisions {full}..={now}")),
        "{kind:?}: {listed}"
    );
    assert!(
        listed.contains("changes recorded from 20"),
        "{kind:?}: {listed}"
    );

    // a damaged segment is named, with a non-zero exit
    let seg = &Timeline::load(&backup).unwrap().segments[0].path;
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(seg, bytes).unwrap();
    let out = cairnutl(&["backup", "verify", &backup.display().to_string()]);
    assert!(
        !out.status.success(),
        "{kind:?}: verify passed a damaged segment"
    );
    let said = output_text(&out);
    assert!(
        said.contains(&seg.file_name().unwrap().to_string_lossy().into_owned()),
        "{kind:?}: {said}"
    );
}

#[test]
fn backup_of_cairn_follows_every_revision() {
    backup_follows_every_revision(Kind::Cairn);
}

#[test]
fn backup_of_etcd_follows_every_revision() {
    if !cairn_tests::require_etcd() {
        return;
    }
    backup_follows_every_revision(Kind::Etcd);
}
