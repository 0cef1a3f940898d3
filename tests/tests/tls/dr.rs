//! The disaster-recovery case end to end: a real etcd 3.4 with client-certificate TLS is the
//! source; `cairnutl snapshot save` backs it up and `cairnutl make-mirror` keeps a TLS cairn
//! (another CA) equal to it. `cairnutl backup run` of a TLS server with auth, and its
//! point-in-time restore. And cairnutl's endpoint commands against TLS etcd and TLS cairn.

use std::time::Duration;

use cairn_backup::timeline::Timeline;
use cairn_tests::etcdctl::{self, Background};
use cairn_tests::mirror::{Mirror, check, wait_equal_tls};
use cairn_tests::pki::Pki;
use cairn_tests::{Kind, TestServer, both_kinds, require_etcd};

use crate::{cairnutl, ctl_ok, text, tls_server};

const CATCH_UP: Duration = Duration::from_secs(60);

both_kinds!(etcdctl: cairnutl_endpoint_commands_over_tls);

#[test]
fn tls_etcd_backed_up_and_mirrored_into_tls_cairn() {
    if !require_etcd() {
        return;
    }
    let (_src_pki, src_tls, etcd) = tls_server(Kind::Etcd, &[]);
    let mut dst_pki = Pki::new("dr-ca");
    let dst_tls = dst_pki.server_tls(false);
    let cairn = TestServer::start_tls(Kind::Cairn, &dst_tls, &[]);
    for i in 0..20 {
        ctl_ok(&etcd, &["put", &format!("/app/k{i:02}"), &format!("v{i}")]);
    }
    ctl_ok(&etcd, &["put", "/other/skip", "x"]);

    // a nightly backup of the TLS etcd
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.snap");
    let source_ep = format!("--endpoints={}", etcd.url());
    let mut args = vec![source_ep.clone()];
    args.extend(src_tls.client_args());
    args.extend(["snapshot".into(), "save".into(), file.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cairnutl(&args);
    assert!(
        out.status.success(),
        "snapshot save from TLS etcd: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Snapshot saved at"),
        "{}",
        text(&out.stdout)
    );
    assert!(std::fs::metadata(&file).unwrap().len() > 1024);

    // a warm standby: the source's flags are the global ones, the destination's --dest-*
    let mut mirror_args: Vec<String> = src_tls.client_args();
    mirror_args.extend([
        "--prefix".into(),
        "/app/".into(),
        "--dest-cacert".into(),
        dst_tls.ca.display().to_string(),
        "--dest-cert".into(),
        dst_tls.client.cert.display().to_string(),
        "--dest-key".into(),
        dst_tls.client.key.display().to_string(),
    ]);
    let mirror_args: Vec<&str> = mirror_args.iter().map(String::as_str).collect();
    let _mirror = Mirror::start(&etcd.url(), &cairn.url(), &mirror_args);
    let source = (etcd.endpoint(), Some(&src_tls));
    let dest = (cairn.endpoint(), Some(&dst_tls));
    wait_equal_tls(
        (&source.0, source.1),
        "/app/",
        (&dest.0, dest.1),
        "/app/",
        CATCH_UP,
    );
    ctl_ok(&etcd, &["put", "/app/late", "streamed"]);
    ctl_ok(&etcd, &["del", "/app/k00"]);
    wait_equal_tls(
        (&source.0, source.1),
        "/app/",
        (&dest.0, dest.1),
        "/app/",
        CATCH_UP,
    );
    assert_eq!(
        ctl_ok(&cairn, &["get", "/other/skip"]),
        "",
        "outside the prefix"
    );

    let out = check(&etcd.url(), &cairn.url(), &mirror_args);
    assert!(
        out.status.success(),
        "make-mirror --check: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn cairnutl_endpoint_commands_over_tls(kind: Kind) {
    let (_pki, tls, s) = tls_server(kind, &[]);
    ctl_ok(&s, &["put", "k", "v"]);
    let run = |cmd: &[&str]| {
        let mut args = vec![format!("--endpoints={}", s.url())];
        args.extend(tls.client_args());
        args.extend(cmd.iter().map(|c| c.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cairnutl(&args);
        assert!(
            out.status.success(),
            "cairnutl {cmd:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let status = run(&["endpoint", "status", "-w", "json"]);
    assert!(status.contains(&s.url()), "{status}");
    let health = run(&["endpoint", "health"]);
    assert!(health.contains("true"), "{health}");
    let hash = run(&["endpoint", "hashkv", "--cluster", "-w", "json"]);
    assert!(hash.contains(&s.url()) && hash.contains("hash"), "{hash}");
    let defrag = run(&["defrag"]);
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
    // bare HOST:PORT endpoints use TLS once certificates are given, as in etcdctl
    let mut args = vec![format!("--endpoints={}", s.endpoint())];
    args.extend(tls.client_args());
    args.extend(["get".into(), "k".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cairnutl(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "k\nv\n");
}

both_kinds!(etcdctl: continuous_backup_over_tls_with_auth);

/// `cairnutl backup run` against a client-certificate TLS server with auth enabled (as
/// Kubernetes' etcd runs): certificates and `--user` through the shared client library; the
/// point-in-time restore holds the source's keys at the last revision, and its users.
fn continuous_backup_over_tls_with_auth(kind: Kind) {
    let (_pki, tls, s) = tls_server(kind, &[]);
    ctl_ok(&s, &["user", "add", "root:rootpw"]);
    ctl_ok(&s, &["auth", "enable"]);
    let as_root = |args: &[&str]| {
        let mut all = vec!["--user", "root:rootpw"];
        all.extend(args);
        ctl_ok(&s, &all)
    };
    as_root(&["put", "before", "v"]);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let mut cmd = std::process::Command::new(cairn_tests::cairnutl_bin());
    cmd.env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={}", s.url()))
        .args(tls.client_args())
        .args(["--user", "root:rootpw", "backup", "run"])
        .arg(&backup)
        .args(["--segment-age", "200ms"]);
    let mut run = Background::spawn(cmd, "cairnutl backup run over TLS".into());
    run.wait_for(Duration::from_secs(30), "the full snapshot", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("full snapshot at revision"))
    });
    for i in 0..10 {
        as_root(&["put", &format!("k/{i}"), &format!("v{i}")]);
    }
    as_root(&["del", "k/3"]);
    let got = as_root(&["get", "", "--prefix", "-w", "json"]);
    let source: serde_json::Value = serde_json::from_str(&got).unwrap();
    let now = source["header"]["revision"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Timeline::load(&backup)
        .unwrap()
        .newest()
        .is_none_or(|c| c.last < now)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{kind:?}: the backup did not reach {now}: {:?}",
            run.lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.terminate();
    assert!(run.wait_exit(Duration::from_secs(30)).success());

    let now_arg = now.to_string();
    let from = backup.display().to_string();
    let restored =
        TestServer::start_restored(&["--from-backup", &from, "--to-revision", &now_arg], &[]);
    // auth came with the snapshot: the restored member asks for the same user
    let ep = restored.endpoint();
    let denied = etcdctl::etcdctl(&ep, &["get", "k/1"]);
    assert!(
        !denied.status.success(),
        "{kind:?}: auth is enabled on the restore"
    );
    let got = etcdctl::etcdctl_json(&ep, &["--user", "root:rootpw", "get", "", "--prefix"]);
    assert_eq!(got["kvs"], source["kvs"], "{kind:?}");
    assert_eq!(got["header"]["revision"].as_i64(), Some(now), "{kind:?}");
}
