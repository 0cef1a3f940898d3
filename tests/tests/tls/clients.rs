//! etcdctl and curl with client certificates against a TLS server: the same body against
//! etcd and cairn.

use std::time::Duration;

use cairn_tests::{Background, Kind, both_kinds, etcdctl, json};

use crate::{ctl, ctl_ok, curl, text, tls_server, with_tls};

const WAIT: Duration = Duration::from_secs(15);

fn json_of(out: std::process::Output) -> serde_json::Value {
    etcdctl::assert_success(&out, "etcdctl -w json");
    etcdctl::parse_json(&text(&out.stdout), "etcdctl -w json")
}

both_kinds!(etcdctl: kv_txn_watch_and_lease, snapshot_cluster_and_members, curl_with_client_certificate);

fn kv_txn_watch_and_lease(kind: Kind) {
    let (_pki, _tls, s) = tls_server(kind, &[]);
    assert_eq!(ctl_ok(&s, &["put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl_ok(&s, &["get", "foo"]), "foo\nbar\n");

    let txn = "value(\"foo\") = \"bar\"\n\nput foo baz\n\nput foo never\n\n";
    let args = with_tls(&s, &["txn"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = etcdctl::etcdctl_stdin(&s.url(), &args, txn);
    etcdctl::assert_success(&out, "txn");
    assert_eq!(text(&out.stdout), "SUCCESS\n\nOK\n");
    assert_eq!(ctl_ok(&s, &["get", "foo", "--print-value-only"]), "baz\n");

    // a watch stream over TLS: history from a revision, then a put made while it runs
    ctl_ok(&s, &["put", "w", "1"]);
    let rev = json::header_revision(&json_of(ctl(&s, &["get", "w", "-w", "json"]))).to_string();
    let watch_args = with_tls(&s, &["watch", "w", "--rev", &rev]);
    let watch_args: Vec<&str> = watch_args.iter().map(String::as_str).collect();
    let mut watch = Background::etcdctl(&s.url(), &watch_args);
    assert_eq!(watch.wait_lines(3, WAIT), ["PUT", "w", "1"]);
    ctl_ok(&s, &["put", "w", "2"]);
    assert_eq!(watch.wait_lines(6, WAIT)[3..], ["PUT", "w", "2"]);

    let granted = ctl_ok(&s, &["lease", "grant", "60"]);
    let id = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease ID in {granted:?}"))
        .to_string();
    assert!(granted.ends_with("granted with TTL(60s)\n"), "{granted}");
    assert_eq!(
        ctl_ok(&s, &["put", "leased", "v", &format!("--lease={id}")]),
        "OK\n"
    );
    let ttl = ctl_ok(&s, &["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    assert!(ctl_ok(&s, &["lease", "revoke", &id]).contains("revoked"));
    assert_eq!(ctl_ok(&s, &["get", "leased"]), "");
}

fn snapshot_cluster_and_members(kind: Kind) {
    let (_pki, _tls, s) = tls_server(kind, &[]);
    ctl_ok(&s, &["put", "k", "v"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let out = ctl_ok(&s, &["snapshot", "save", &file.display().to_string()]);
    assert!(out.contains("Snapshot saved at"), "{out}");
    assert!(std::fs::metadata(&file).unwrap().len() > 0);

    // --cluster dials every member's advertised https:// client URL with the same certificates
    let status = json_of(ctl(&s, &["endpoint", "status", "--cluster", "-w", "json"]));
    assert_eq!(status[0]["Endpoint"], s.url().as_str(), "{status}");
    let health = ctl(&s, &["endpoint", "health", "--cluster"]);
    etcdctl::assert_success(&health, "endpoint health --cluster");
    assert!(
        text(&health.stderr).contains("is healthy") || text(&health.stdout).contains("is healthy")
    );

    let members = json_of(ctl(&s, &["member", "list", "-w", "json"]));
    assert_eq!(
        members["members"][0]["clientURLs"][0],
        s.url().as_str(),
        "{members}"
    );
}

fn curl_with_client_certificate(kind: Kind) {
    let (_pki, tls, s) = tls_server(kind, &[]);
    let get = |path: &str, http1: bool| {
        let mut args = tls.curl_args();
        if http1 {
            args.push("--http1.1".into());
        }
        args.push(format!("{}{path}", s.url()));
        let out = curl(&args);
        assert!(out.status.success(), "curl {path}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    for http1 in [false, true] {
        let health = get("/health", http1);
        assert!(health.contains("\"health\":\"true\""), "{health}");
        let version = get("/version", http1);
        assert!(version.contains("\"etcdserver\""), "{version}");
    }
    // the JSON gateway on the same TLS port, over h2 and HTTP/1.1
    for http1 in [false, true] {
        let mut args = tls.curl_args();
        if http1 {
            args.push("--http1.1".into());
        }
        let put = cairn_tests::gateway::post(
            &s.url(),
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmFy"}"#,
            &args,
        );
        assert_eq!(put.status, 200, "{}", put.body);
        let range =
            cairn_tests::gateway::post(&s.url(), "/v3/kv/range", r#"{"key":"Zm9v"}"#, &args);
        assert_eq!(range.json()["kvs"][0]["value"], "YmFy", "{}", range.body);
    }
    let metrics = get("/metrics", false);
    assert!(metrics.contains("etcd_server_has_leader"), "{metrics:.300}");
}

/// etcdctl's `check perf` (its shortest load, 60 s) over TLS: cairn only, the oracle is not
/// needed to judge throughput.
#[test]
fn check_perf_over_tls() {
    if !cairn_tests::require_etcd() {
        return;
    }
    let (_pki, _tls, s) = tls_server(Kind::Cairn, &[]);
    let args = with_tls(&s, &["check", "perf", "--load", "s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = etcdctl::etcdctl_within(&s.url(), &args, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PASS: Throughput"),
        "check perf over TLS: {stdout}\n{}",
        text(&out.stderr)
    );
}
