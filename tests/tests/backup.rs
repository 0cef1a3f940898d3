//! `cairnutl backup run|list|verify` against real servers, the same test body against cairn
//! and against real etcd 3.4: the backup holds a full snapshot and then exactly the revisions
//! written after it, each with the events the writes made; stopped with SIGTERM and killed
//! with SIGKILL, it resumes without a gap or a repeat; `verify` passes on the result and names
//! a damaged segment. Against a real S3 server (moto): the same backup through an outage of
//! the store and a kill meanwhile, one run per target, retention, and a restore from S3.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_backup::segment;
use cairn_backup::timeline::Timeline;
use cairn_proto::mvccpb::event::EventType;
use cairn_tests::binaries::cairnutl_bin;
use cairn_tests::etcdctl::{Background, etcdctl_err, etcdctl_json, etcdctl_ok, etcdctl_stdin};
use cairn_tests::http::metric;
use cairn_tests::s3::S3Server;
use cairn_tests::wait::until;
use cairn_tests::{Kind, TestCluster, TestServer, cairnutl, output_text};

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

/// Waits until the run reports its first full snapshot.
fn wait_full(run: &mut Background) {
    run.wait_for(WAIT, "the full snapshot", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("full snapshot at revision"))
    });
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
        // a change without events is what a look at the lease list found
        for c in changes.into_iter().filter(|c| !c.events.is_empty()) {
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
    changes
        .into_iter()
        .find(|c| c.revision == rev && !c.events.is_empty())
        .unwrap()
}

/// `cairnutl ARGS` with `env` added (an S3 server's).
fn cairnutl_env(env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    Command::new(cairnutl_bin())
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCD_DATA_DIR")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .args(args)
        .output()
        .expect("run cairnutl")
}

/// A member started on `snapshot restore --from-backup BACKUP --to-revision REV`.
fn restore_to(backup: (&str, &[(&str, String)]), rev: i64) -> TestServer {
    restore_to_with(backup, rev, &[])
}

/// As [`restore_to`], with `extra` flags.
fn restore_to_with(
    (backup, env): (&str, &[(&str, String)]),
    rev: i64,
    extra: &[&str],
) -> TestServer {
    let rev = rev.to_string();
    let mut args = vec!["--from-backup", backup, "--to-revision", &rev];
    args.extend(extra);
    TestServer::start_restored(&args, env)
}

/// `snapshot restore --from-backup --to-revision`: a member started on the result serves the
/// source's data at `rev` with the original revisions, HashKV equal to the source's at `rev`,
/// and the lease.
fn restores_to_a_revision(
    kind: Kind,
    ep: &str,
    (backup, env): (&str, &[(&str, String)]),
    rev: i64,
    lease_hex: &str,
    leases_want: &[&str],
) {
    let rev_flag = format!("--rev={rev}");
    let want_hash =
        etcdctl_json(ep, &["endpoint", "hashkv", &rev_flag])[0]["HashKV"]["hash"].clone();
    let want_kvs = etcdctl_json(ep, &["get", "", "--prefix", &rev_flag])["kvs"].clone();
    let restored = restore_to((backup, env), rev);
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
    // the leases at R: granted ones with no key yet included, revoked ones gone
    let listed = etcdctl_json(&rep, &["lease", "list"]);
    let mut got: Vec<String> = listed["leases"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| format!("{:x}", l["id"].as_i64().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    got.sort();
    // etcdctl prints lease IDs zero-padded to 16 digits
    let mut want: Vec<String> = leases_want
        .iter()
        .map(|s| format!("{:x}", i64::from_str_radix(s, 16).unwrap()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{kind:?}: the leases at revision {rev}");
    // a revision the backup does not reach is refused, naming what it can do
    let out = cairnutl_env(
        env,
        &[
            "snapshot",
            "restore",
            "--from-backup",
            backup,
            "--to-revision",
            "999999",
            "--data-dir",
            "/nonexistent/never-made",
        ],
    );
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
    // a lease in the snapshot, with a key, revoked later
    let early = etcdctl_ok(&ep, &["lease", "grant", "900"]);
    let early = early.split_whitespace().nth(1).unwrap().to_string();
    let out = etcdctl_json(&ep, &["put", "--lease", &early, "before/leased", "x"]);
    let rev = out["header"]["revision"].as_i64().unwrap();
    history.insert(
        rev,
        vec![(EventType::Put, "before/leased".into(), "x".into())],
    );
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");

    let mut run = start_backup(&ep, &backup);
    wait_full(&mut run);
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
    put(&ep, "spacer", "v", &mut history);
    // a lease granted with no key on it, and the early lease revoked (its key goes with it)
    let bare = etcdctl_ok(&ep, &["lease", "grant", "300"]);
    let bare = bare.split_whitespace().nth(1).unwrap().to_string();
    etcdctl_ok(&ep, &["lease", "revoke", &early]);
    let revoked_rev = revision_of(&ep);
    history.insert(
        revoked_rev,
        vec![(EventType::Delete, "before/leased".into(), String::new())],
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

    let spec = backup.display().to_string();
    restores_to_a_revision(kind, &ep, (&spec, &[]), leased_rev, &id, &[&early, &id]);
    // at the end: the bare lease is there (the backup looked at the lease list), the
    // revoked one gone
    restores_to_a_revision(kind, &ep, (&spec, &[]), now, &id, &[&id, &bare]);
    let at = changes_at(&backup, txn_rev).unix_ms;
    let target = cairn_backup::target::Target::open(&backup.display().to_string(), None).unwrap();
    let found = cairn_tests::grpc::block_on(cairn_backup::restore::revision_at(&target, at))
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
    let seg_name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(said.contains(&seg_name), "{kind:?}: {said}");
    // a restore past it is refused, naming it, and writes nothing; one that stops before
    // it (at the snapshot) goes ahead
    let never = dir.path().join("never");
    let restore_past = || {
        cairnutl(&[
            "snapshot",
            "restore",
            "--from-backup",
            &spec,
            "--to-revision",
            &now.to_string(),
            "--data-dir",
            never.to_str().unwrap(),
        ])
    };
    let out = restore_past();
    assert!(
        !out.status.success(),
        "{kind:?}: restored past a damaged segment"
    );
    let said = output_text(&out);
    assert!(
        said.contains(&seg_name) && said.contains("damaged"),
        "{kind:?}: {said}"
    );
    assert!(!never.exists());
    let before = restore_to((&spec, &[]), full);
    let got = etcdctl_json(&before.endpoint(), &["get", "", "--prefix"]);
    assert_eq!(got["header"]["revision"].as_i64(), Some(full), "{kind:?}");
    drop(before);
    // a missing segment: a gap verify names, and a restore past it is refused
    std::fs::remove_file(seg).unwrap();
    let said = output_text(&cairnutl(&["backup", "verify", &spec]));
    assert!(said.contains("gap: revisions"), "{kind:?}: {said}");
    let said = output_text(&restore_past());
    assert!(
        said.contains(&format!("revision {now} is not in the backup")),
        "{kind:?}: {said}"
    );
    assert!(!never.exists());
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

/// `backup run URL --spool-dir SPOOL` against `ep`, with the S3 server's environment.
fn start_s3_backup(s3: &S3Server, ep: &str, url: &str, spool: &Path, extra: &[&str]) -> Background {
    let mut cmd = Command::new(cairnutl_bin());
    cmd.env_remove("ETCDCTL_ENDPOINTS")
        .envs(s3.env())
        // an unreachable store shows within seconds, not object_store's default minutes
        .env("AWS_TIMEOUT", "1s")
        .args(["--endpoints", ep, "backup", "run", url, "--spool-dir"])
        .arg(spool)
        .args(["--segment-age", "200ms"])
        .args(extra);
    Background::spawn(cmd, "cairnutl backup run (s3)".into())
}

/// `backup list -w json` of an S3 target: each chain's (full revision, last revision).
fn s3_chains(s3: &S3Server, url: &str) -> Vec<(i64, i64)> {
    let out = cairnutl_env(&s3.env(), &["-w", "json", "backup", "list", url]);
    assert!(out.status.success(), "{}", output_text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["restorable"][0].as_i64().unwrap(),
                c["restorable"][1].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Sealed segments still waiting in a spool.
fn spooled_segments(spool: &Path) -> Vec<(i64, i64)> {
    Timeline::load(spool)
        .unwrap()
        .segments
        .iter()
        .map(|s| (s.first, s.last))
        .collect()
}

#[test]
fn backup_to_s3_through_an_outage_a_kill_and_retention() {
    let Some(s3) = S3Server::start() else { return };
    s3.bucket("backups");
    let url = "s3://backups/cluster-a";
    let server = TestServer::start(Kind::Cairn);
    let ep = server.endpoint();
    let mut history = BTreeMap::new();
    for i in 0..5 {
        put(&ep, &format!("before/{i}"), "old", &mut history);
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");

    let metrics = format!("127.0.0.1:{}", cairn_tests::ports::free_port());
    let metrics_url = format!("http://{metrics}");
    let mut run = start_s3_backup(
        &s3,
        &ep,
        url,
        &spool,
        &[
            "--listen-metrics-urls",
            &metrics_url,
            "--status-every",
            "200ms",
        ],
    );
    wait_full(&mut run);
    let first_full = revision_of(&ep);
    let lease = etcdctl_ok(&ep, &["lease", "grant", "600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    etcdctl_ok(&ep, &["put", "--lease", &id, "l", "on a lease"]);
    for i in 0..5 {
        put(&ep, &format!("up/{i}"), "v", &mut history);
    }
    let up = revision_of(&ep);
    until(WAIT, "the backup in S3", || {
        s3_chains(&s3, url).last().filter(|c| c.1 >= up).copied()
    });
    assert_eq!(
        s3_chains(&s3, url)[0].0,
        first_full,
        "the first full snapshot"
    );

    // one run per target: a second one, with a spool of its own, is refused naming the first
    let out = cairnutl_env(
        &s3.env(),
        &[
            "--endpoints",
            &ep,
            "backup",
            "run",
            url,
            "--spool-dir",
            &dir.path().join("other").display().to_string(),
        ],
    );
    assert!(!out.status.success());
    let said = output_text(&out);
    assert!(
        said.contains("is held by another backup run (pid"),
        "{said}"
    );

    // the store goes away: the changes wait in the spool, and the failures say so
    s3.pause();
    for i in 0..10 {
        put(&ep, &format!("outage/{i}"), "v", &mut history);
    }
    let outage = revision_of(&ep);
    until(WAIT, "the outage's changes sealed in the spool", || {
        spooled_segments(&spool)
            .last()
            .filter(|s| s.1 >= outage)
            .map(|_| ())
    });
    run.wait_for(WAIT, "an upload failure reported", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("upload of seg-") && l.contains("retrying"))
    });
    // and the lag shows: on the metrics page, and in the status lines
    until(WAIT, "the lag on the metrics page", || {
        let lag = metric(&metrics, "cairn_backup_lag_revisions")?;
        let spooled = metric(&metrics, "cairn_backup_spooled_files")?;
        let seconds = metric(&metrics, "cairn_backup_lag_seconds")?;
        (lag >= 10.0 && spooled >= 1.0 && seconds > 0.0).then_some(())
    });
    run.wait_for(WAIT, "a status line with the lag", |lines| {
        lines.iter().any(|l| {
            l.starts_with("status: source at revision")
                && !l.contains("(lag 0 revisions")
                && !l.ends_with(" 0 files in the spool")
        })
    });
    // killed while the store is away: the spool keeps what it sealed
    run.kill();
    s3.resume();
    for i in 0..5 {
        put(&ep, &format!("after-kill/{i}"), "v", &mut history);
    }
    // the next run uploads the spool first (the dead run's lock is taken over at once: same
    // host, same spool), and goes on without a gap; full snapshots now every second, and
    // retention keeps one
    let mut run = start_s3_backup(
        &s3,
        &ep,
        url,
        &spool,
        &[
            "--full-every",
            "1s",
            "--keep-fulls",
            "1",
            "--listen-metrics-urls",
            &metrics_url,
        ],
    );
    let now = revision_of(&ep);
    until(WAIT, "the spool uploaded", || {
        let chains = s3_chains(&s3, url);
        (chains.first().is_some_and(|c| c.1 >= now) && spooled_segments(&spool).is_empty())
            .then_some(())
    });
    until(WAIT, "no lag once the spool is uploaded", || {
        let lag = metric(&metrics, "cairn_backup_lag_revisions")?;
        let spooled = metric(&metrics, "cairn_backup_spooled_files")?;
        (lag == 0.0 && spooled == 0.0).then_some(())
    });
    run.wait_for(WAIT, "retention at work", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("retention removed s3://backups/cluster-a/full-"))
    });
    put(&ep, "last", "v", &mut history);
    let last = revision_of(&ep);
    let chains = until(WAIT, "one chain left, reaching the last write", || {
        let chains = s3_chains(&s3, url);
        (chains.len() == 1 && chains[0].0 > first_full && chains[0].1 >= last).then_some(chains)
    });
    run.terminate();
    assert!(run.wait_exit(WAIT).success(), "SIGTERM ends it cleanly");
    assert!(
        run.lines().iter().all(|l| !l.contains("not uploaded yet")),
        "a clean stop with the store up uploads everything: {:?}",
        run.lines()
    );

    let out = cairnutl_env(&s3.env(), &["backup", "verify", url]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains(": OK"), "{}", output_text(&out));
    let _ = chains;
    restores_to_a_revision(Kind::Cairn, &ep, (url, &s3.env()), last, &id, &[&id]);
}

/// The member the backup reads from is killed, and it was the leader: the backup goes on
/// through another member, and the chain has every revision once.
#[test]
fn backup_follows_a_cluster_through_its_leader_killed() {
    let mut c = TestCluster::start(3, &[]);
    // the backup reads from the first endpoint that answers: make that member the leader
    let first = c.member_id(0);
    let leader = c.wait_leader(WAIT);
    if leader != 0 {
        etcdctl_ok(
            &c.members[leader].endpoint(),
            &["move-leader", &format!("{first:x}")],
        );
        until(WAIT, "the first member to lead", || {
            (c.wait_leader(WAIT) == 0).then_some(())
        });
    }
    let eps = c.endpoints();
    let mut history = BTreeMap::new();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut run = start_backup(&eps, &backup);
    wait_full(&mut run);
    let full = revision_of(&eps);
    for i in 0..10 {
        put(&eps, &format!("k/{i}"), "before", &mut history);
    }
    wait_covered(&backup, revision_of(&eps));
    c.members[0].kill9();
    c.wait_leader(WAIT);
    let eps = c.endpoints();
    for i in 0..10 {
        put(&eps, &format!("k/{i}"), "after", &mut history);
    }
    let now = revision_of(&eps);
    wait_covered(&backup, now);
    run.terminate();
    assert!(run.wait_exit(WAIT).success());
    assert!(
        run.lines().iter().any(|l| l.starts_with("retrying")),
        "the backup lost its member and reconnected: {:?}",
        run.lines()
    );
    let (full_rev, got) = recorded(&backup);
    assert_eq!(full_rev, full);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        ((full + 1)..=now).collect::<Vec<_>>(),
        "every revision once, across the leader's death"
    );
    let want: BTreeMap<i64, Events> = history.into_iter().filter(|(r, _)| *r > full).collect();
    assert_eq!(got, want);
}

/// The server compacts past the chain's end while the backup is down: the backup says so,
/// takes a new full snapshot, and `backup list` names the revisions no restore reaches; a
/// restore to one of them is refused.
fn compacted_past_the_backup(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let mut history = BTreeMap::new();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut run = start_backup(&ep, &backup);
    wait_full(&mut run);
    for i in 0..5 {
        put(&ep, &format!("k/{i}"), "v", &mut history);
    }
    let end = revision_of(&ep);
    wait_covered(&backup, end);
    run.terminate();
    assert!(run.wait_exit(WAIT).success());

    for i in 0..5 {
        put(&ep, &format!("down/{i}"), "v", &mut history);
    }
    let compacted = revision_of(&ep);
    etcdctl_ok(&ep, &["compact", &compacted.to_string()]);
    put(&ep, "after", "v", &mut history);
    let now = revision_of(&ep);

    let mut run = start_backup(&ep, &backup);
    run.wait_for(WAIT, "the compaction reported", |lines| {
        lines.iter().any(|l| {
            l.starts_with(&format!(
                "the server compacted to revision {compacted}, past this backup's end at {end}"
            ))
        })
    });
    run.wait_for(WAIT, "a new full snapshot", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("full snapshot at revision {now}")))
    });
    run.terminate();
    assert!(run.wait_exit(WAIT).success());

    let t = Timeline::load(&backup).unwrap();
    assert_eq!(t.unreachable(), [(end + 1, now - 1, now)], "{kind:?}");
    let spec = backup.display().to_string();
    let listed = output_text(&cairnutl(&["backup", "list", &spec]));
    assert!(
        listed.contains(&format!(
            "revisions {}..={} cannot be restored to",
            end + 1,
            now - 1
        )),
        "{kind:?}: {listed}"
    );
    let out = cairnutl(&[
        "snapshot",
        "restore",
        "--from-backup",
        &spec,
        "--to-revision",
        &(end + 1).to_string(),
        "--data-dir",
        &dir.path().join("never").display().to_string(),
    ]);
    assert!(!out.status.success(), "{kind:?}");
    assert!(
        output_text(&out).contains(&format!("revision {} is not in the backup", end + 1)),
        "{kind:?}: {}",
        output_text(&out)
    );
    assert!(!dir.path().join("never").exists());
}

#[test]
fn cairn_compacted_past_the_backup() {
    compacted_past_the_backup(Kind::Cairn);
}

#[test]
fn etcd_compacted_past_the_backup() {
    if !cairn_tests::require_etcd() {
        return;
    }
    compacted_past_the_backup(Kind::Etcd);
}

/// Regression (found by tests/bench/backup.sh): a new etcd is at revision 1 with no key row,
/// and its snapshot was taken for revision 0, so the first put (revision 2) came "out of
/// turn" and the backup stopped. Both servers, from their first revision.
fn backup_of_a_new_server(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut run = start_backup(&ep, &backup);
    run.wait_for(WAIT, "the full snapshot", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("full snapshot at revision 1:"))
    });
    let mut history = BTreeMap::new();
    put(&ep, "first", "v", &mut history);
    wait_covered(&backup, 2);
    run.terminate();
    assert!(run.wait_exit(WAIT).success(), "{kind:?}: {:?}", run.lines());
    assert_eq!(recorded(&backup), (1, history), "{kind:?}");
}

#[test]
fn backup_of_a_new_cairn() {
    backup_of_a_new_server(Kind::Cairn);
}

#[test]
fn backup_of_a_new_etcd() {
    if !cairn_tests::require_etcd() {
        return;
    }
    backup_of_a_new_server(Kind::Etcd);
}

/// The compactions the newest chain recorded: (the revision seen at, compacted to).
fn recorded_compactions(dir: &Path) -> Vec<(i64, i64)> {
    let chain = Timeline::load(dir).unwrap().newest().expect("a chain");
    let mut out = Vec::new();
    for s in &chain.segments {
        let (_, changes) = segment::read(&s.path).unwrap();
        out.extend(
            changes
                .iter()
                .filter(|c| c.compacted_to > 0)
                .map(|c| (c.revision, c.compacted_to)),
        );
    }
    out
}

/// HashKV at `rev`: (hash, compact revision).
fn hash_kv(ep: &str, rev: i64) -> (serde_json::Value, serde_json::Value) {
    let out = etcdctl_json(ep, &["endpoint", "hashkv", &format!("--rev={rev}")]);
    let h = &out[0]["HashKV"];
    (h["hash"].clone(), h["compact_revision"].clone())
}

/// A compaction after the snapshot (no watch tells of it) is recorded at the revision the
/// backup stood at when it saw it: a restore past that point is compacted as the source was
/// (HashKV and its compact revision equal the source's, older revisions refused), a restore
/// before it still holds the history the source held then.
fn a_compaction_is_restored_where_it_was_seen(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let mut history = BTreeMap::new();
    put(&ep, "k", "0", &mut history);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut run = start_backup(&ep, &backup);
    wait_full(&mut run);
    let revs: Vec<i64> = (1..=4)
        .map(|i| put(&ep, "k", &i.to_string(), &mut history))
        .collect();
    let compact_to = revs[1];
    etcdctl_ok(&ep, &["compact", &compact_to.to_string()]);
    // a look finds it within a second; with no segment open it waits for the next change
    let deadline = Instant::now() + WAIT;
    let seen_at = loop {
        if let Some(&(at, to)) = recorded_compactions(&backup).first() {
            assert_eq!(to, compact_to, "{kind:?}");
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?}: no compaction recorded"
        );
        let rev = put(&ep, "tick", "v", &mut history);
        wait_covered(&backup, rev);
    };
    assert!(
        seen_at >= revs[3],
        "{kind:?}: seen at {seen_at}, before the compaction"
    );
    let now = put(&ep, "k", "after", &mut history);
    wait_covered(&backup, now);
    run.terminate();
    assert!(run.wait_exit(WAIT).success());
    let spec = backup.display().to_string();

    let restored = restore_to((&spec, &[]), now);
    let rep = restored.endpoint();
    assert_eq!(
        hash_kv(&rep, now),
        hash_kv(&ep, now),
        "{kind:?}: HashKV at {now}"
    );
    let old = etcdctl_err(&rep, &["get", "k", &format!("--rev={}", revs[0])]);
    assert!(
        old.contains("required revision has been compacted"),
        "{kind:?}: {old}"
    );
    drop(restored);

    // before the compaction was seen, the history below it is still there
    let restored = restore_to((&spec, &[]), revs[2]);
    let got = etcdctl_json(
        &restored.endpoint(),
        &["get", "k", &format!("--rev={}", revs[0])],
    );
    assert_eq!(
        got["kvs"][0]["mod_revision"].as_i64(),
        Some(revs[0]),
        "{kind:?}: {got}"
    );
}

#[test]
fn a_compaction_of_cairn_is_restored_where_it_was_seen() {
    a_compaction_is_restored_where_it_was_seen(Kind::Cairn);
}

#[test]
fn a_compaction_of_etcd_is_restored_where_it_was_seen() {
    if !cairn_tests::require_etcd() {
        return;
    }
    a_compaction_is_restored_where_it_was_seen(Kind::Etcd);
}

/// An age key made by the real `age-keygen`: (the identity file, its public key).
fn age_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    use cairn_tests::binaries::AGE_KEYGEN;
    let key = dir.join(name);
    let out = Command::new(AGE_KEYGEN)
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let out = Command::new(AGE_KEYGEN)
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    (
        key,
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    )
}

/// No file of `dir` holds `secret` in the clear, and every backup file is encrypted.
fn all_encrypted(dir: &Path, secret: &str) {
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{name} holds the value in the clear"
        );
        if name != "lock" {
            assert!(name.ends_with(".age"), "{name} is not encrypted");
            files += 1;
        }
    }
    assert!(files >= 2, "a snapshot and a segment at least");
}

/// `backup run --encrypt-to`: every file kept is age-encrypted (the real `age -d` reads
/// them), list works without the key, verify and restore need `--identity` and say so, and
/// with it restore the source's state (from a directory and from S3).
#[test]
fn an_encrypted_backup_is_read_with_its_identity_only() {
    if !cairn_tests::binaries::require_age() {
        return;
    }
    let server = TestServer::start(Kind::Cairn);
    let ep = server.endpoint();
    let mut history = BTreeMap::new();
    let secret = "a-value-only-the-key-holder-reads";
    put(&ep, "before", secret, &mut history);
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = age_key(dir.path(), "key.txt");
    let (other_key, _) = age_key(dir.path(), "other.txt");
    let backup = dir.path().join("backup");
    let spec = backup.display().to_string();

    let mut cmd = Command::new(cairnutl_bin());
    cmd.env_remove("ETCDCTL_ENDPOINTS")
        .args(["--endpoints", &ep, "backup", "run", &spec])
        .args(["--segment-age", "200ms", "--encrypt-to", &public]);
    let mut run = Background::spawn(cmd, "cairnutl backup run --encrypt-to".into());
    wait_full(&mut run);
    for i in 0..10 {
        put(&ep, &format!("k/{i}"), secret, &mut history);
    }
    let now = revision_of(&ep);
    wait_covered(&backup, now);
    run.terminate();
    assert!(run.wait_exit(WAIT).success(), "{:?}", run.lines());
    all_encrypted(&backup, secret);

    // the real age tool decrypts a segment Cairn wrote
    let seg = Timeline::load(&backup).unwrap().segments[0].path.clone();
    let out = Command::new(cairn_tests::binaries::AGE)
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(&seg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(&out.stdout[..8], &segment::MAGIC, "a segment inside");

    // list without the key: the revisions; verify and restore: the key is asked for
    let listed = output_text(&cairnutl(&["backup", "list", &spec]));
    assert!(listed.contains(&format!("..={now}")), "{listed}");
    assert!(listed.contains("the segments are encrypted"), "{listed}");
    let out = cairnutl(&["backup", "verify", &spec]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("give --identity FILE"),
        "{}",
        output_text(&out)
    );
    let never = dir.path().join("never");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "restore",
            "--from-backup",
            &spec,
            "--data-dir",
            never.to_str().unwrap(),
        ];
        let now = now.to_string();
        args.extend(["--to-revision", &now]);
        args.extend(extra);
        cairnutl(&args)
    };
    let out = restore(&[]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("give --identity FILE"),
        "{}",
        output_text(&out)
    );
    let other = other_key.display().to_string();
    let out = restore(&["--identity", &other]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("cannot decrypt"),
        "{}",
        output_text(&out)
    );
    assert!(!never.exists(), "nothing written without the key");

    let id = key.display().to_string();
    let out = cairnutl(&["backup", "verify", &spec, "--identity", &id]);
    assert!(out.status.success(), "{}", output_text(&out));
    let listed = output_text(&cairnutl(&["backup", "list", &spec, "--identity", &id]));
    assert!(listed.contains("changes recorded from 20"), "{listed}");
    let env: [(&str, String); 0] = [];
    let want = hash_kv(&ep, now);
    let restored = restore_to_with((&spec, &env), now, &["--identity", &id]);
    assert_eq!(hash_kv(&restored.endpoint(), now), want, "HashKV at {now}");
    drop(restored);

    // from S3: the bucket holds encrypted files; restored with the key
    let Some(s3) = S3Server::start() else { return };
    s3.bucket("backups");
    let url = "s3://backups/encrypted";
    let spool = dir.path().join("spool");
    let mut run = start_s3_backup(&s3, &ep, url, &spool, &["--encrypt-to", &public]);
    wait_full(&mut run);
    put(&ep, "k/s3", secret, &mut history);
    let now = revision_of(&ep);
    let deadline = Instant::now() + WAIT;
    while !s3_chains(&s3, url).iter().any(|c| c.1 >= now) {
        assert!(Instant::now() < deadline, "the bucket never reached {now}");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.terminate();
    assert!(run.wait_exit(WAIT).success(), "{:?}", run.lines());
    let out = cairnutl_env(&s3.env(), &["-w", "json", "backup", "list", url]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let full = v["chains"][0]["full"]["path"].as_str().unwrap().to_string();
    assert!(
        full.starts_with(url) && full.ends_with(".snap.age"),
        "{full}"
    );
    let want = hash_kv(&ep, now);
    let restored = restore_to_with((url, &s3.env()), now, &["--identity", &id]);
    assert_eq!(
        hash_kv(&restored.endpoint(), now),
        want,
        "HashKV at {now} from S3"
    );

    // a damaged file is named by verify
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let out = cairnutl(&["backup", "verify", &spec, "--identity", &id]);
    assert!(!out.status.success());
    let said = output_text(&out);
    assert!(
        said.contains(&seg.display().to_string()) && said.contains("cannot decrypt"),
        "{said}"
    );
}

/// `lease timetolive ID` on `ep`: (TTL left, granted TTL).
fn time_to_live(ep: &str, id: &str) -> (i64, i64) {
    let v = etcdctl_json(ep, &["lease", "timetolive", id]);
    (
        v["ttl"].as_i64().unwrap(),
        v["granted-ttl"].as_i64().unwrap(),
    )
}

/// A restore gives each lease the time it had left at the target, as far as the backup saw:
/// a lease left to run down restores with its clock run down (not a full TTL), one kept
/// alive restores with about its full TTL; a restart after that gives full TTLs again.
fn leases_restore_with_the_time_they_had_left(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut run = start_backup(&ep, &backup);
    wait_full(&mut run);
    let grant = |ttl: &str| {
        let out = etcdctl_ok(&ep, &["lease", "grant", ttl]);
        out.split_whitespace().nth(1).unwrap().to_string()
    };
    let (fading, kept) = (grant("60"), grant("60"));
    let mut history = BTreeMap::new();
    etcdctl_ok(&ep, &["put", "--lease", &fading, "fading", "v"]);
    etcdctl_ok(&ep, &["put", "--lease", &kept, "kept", "v"]);
    let mut keepalive = Background::etcdctl(&ep, &["lease", "keep-alive", &kept]);
    // the fading lease runs down (the backup asks again every 5 s); the other is renewed
    let deadline = Instant::now() + Duration::from_secs(40);
    while time_to_live(&ep, &fading).0 > 48 {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: the lease does not run down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let at = put(&ep, "target", "v", &mut history);
    let (source_left, _) = time_to_live(&ep, &fading);
    assert!(
        source_left > 0,
        "{kind:?}: the lease expired before the target"
    );
    wait_covered(&backup, at);
    run.terminate();
    assert!(run.wait_exit(WAIT).success());
    keepalive.kill();

    let spec = backup.display().to_string();
    let restored = restore_to((&spec, &[]), at);
    let rep = restored.endpoint();
    let (left, granted) = time_to_live(&rep, &fading);
    assert_eq!(granted, 60, "{kind:?}");
    // seen at most 5 s before the target: at most what it had, and within the refresh of it
    assert!(
        left <= source_left + 1 && left >= source_left - 8,
        "{kind:?}: restored with {left} s left, the source had {source_left}"
    );
    let (left, _) = time_to_live(&rep, &kept);
    assert!(
        left >= 30,
        "{kind:?}: the renewed lease restored with {left} s left"
    );
    // the time left is the restore's first start only
    let mut restored = restored;
    restored.restart();
    let (left, _) = time_to_live(&restored.endpoint(), &fading);
    assert!(left >= 58, "{kind:?}: after a restart, {left} s left");
}

#[test]
fn leases_of_cairn_restore_with_the_time_they_had_left() {
    leases_restore_with_the_time_they_had_left(Kind::Cairn);
}

#[test]
fn leases_of_etcd_restore_with_the_time_they_had_left() {
    if !cairn_tests::require_etcd() {
        return;
    }
    leases_restore_with_the_time_they_had_left(Kind::Etcd);
}
