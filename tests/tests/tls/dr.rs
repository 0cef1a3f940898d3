//! The disaster-recovery case end to end: a real etcd 3.4 with client-certificate TLS is the
//! source; `cairnutl snapshot save` backs it up and `cairnutl make-mirror` keeps a TLS cairn
//! (another CA) equal to it. And cairnutl's endpoint commands against TLS etcd and TLS cairn.

use std::time::Duration;

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
