//! `cairnutl`'s online commands against real etcd and against cairn: `-w json` output checked
//! against what the test did, simple output compared with etcdctl's where the formats match.

use std::process::Command;
use std::time::Duration;

use cairn_proto::etcdserverpb::AlarmRequest;
use cairn_tests::json::{self, Kv};
use cairn_tests::{Background, Clients, Kind, TestServer, cairnutl_bin, etcdctl_ok, grpc};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);

cairn_tests::both_kinds!(
    etcdctl: kv_commands,
    compaction_line,
    alarm_list_and_disarm,
    member_list_and_changes,
    move_leader_to_self,
    watch_events,
    endpoint_cluster_flag,
);

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cairnutl --endpoints <server> <args>` with a deadline.
fn util(s: &TestServer, args: &[&str]) -> Out {
    let mut cmd = Command::new(cairnutl_bin());
    cmd.arg("--endpoints").arg(s.endpoint()).args(args);
    let mut bg = Background::spawn(cmd, format!("cairnutl {}", args.join(" ")));
    let status = bg.wait_exit(TIMEOUT);
    let mut stdout = bg.lines().join("\n");
    if !stdout.is_empty() {
        stdout.push('\n');
    }
    Out {
        ok: status.success(),
        stdout,
        stderr: bg.stderr(),
    }
}

fn util_ok(s: &TestServer, args: &[&str]) -> String {
    let out = util(s, args);
    assert!(out.ok, "cairnutl {args:?} failed:\n{}", out.stderr);
    out.stdout
}

fn util_json(s: &TestServer, args: &[&str]) -> Value {
    let mut full = vec!["-w", "json"];
    full.extend_from_slice(args);
    let out = util_ok(s, &full);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{full:?}: not JSON ({e}):\n{out}"))
}

/// Asserts failure with exactly one `Error: ...` line on stderr; returns that line.
fn util_err(s: &TestServer, args: &[&str]) -> String {
    let out = util(s, args);
    assert!(
        !out.ok,
        "cairnutl {args:?} unexpectedly succeeded:\n{}",
        out.stdout
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one error line, got:\n{}", out.stderr);
    assert!(lines[0].starts_with("Error: "), "{}", lines[0]);
    lines[0].to_string()
}

fn member_id(s: &TestServer) -> u64 {
    let st = grpc::status_blocking(&s.endpoint(), TIMEOUT).expect("status");
    st.header.expect("header").member_id
}

fn kv_commands(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let r1 = json::header_revision(&util_json(&s, &["put", "k/a", "1"]));
    assert_eq!(util_ok(&s, &["put", "k/b", "2"]), "OK\n");
    let put = util_json(&s, &["put", "k/a", "3", "--prev-kv"]);
    let r3 = json::header_revision(&put);
    assert_eq!(r3, r1 + 2);
    assert_eq!(
        Kv::from_json(&put["prev_kv"]),
        Kv::new("k/a", "1", r1, r1, 1)
    );

    let got = util_json(&s, &["get", "k/", "--prefix"]);
    assert_eq!(
        json::kvs(&got),
        vec![
            Kv::new("k/a", "3", r1, r3, 2),
            Kv::new("k/b", "2", r1 + 1, r1 + 1, 1)
        ]
    );
    assert_eq!(json::int(&got, "count"), 2);
    let limited = util_json(&s, &["get", "k/", "--prefix", "--limit", "1"]);
    assert_eq!(json::keys(&limited), vec!["k/a"]);
    assert!(json::flag(&limited, "more"));
    let old = util_json(&s, &["get", "k/a", "--rev", &r1.to_string()]);
    assert_eq!(json::kvs(&old)[0].value, "1");
    assert_eq!(
        json::keys(&util_json(&s, &["get", "k/b", "--from-key"])),
        vec!["k/b"]
    );

    for args in [
        &["get", "k/", "--prefix"][..],
        &["get", "k/a", "k/c"],
        &["get", "k/", "--prefix", "--keys-only"],
        &["get", "k/", "--prefix", "--print-value-only"],
        &["get", "missing"],
    ] {
        assert_eq!(util_ok(&s, args), etcdctl_ok(&ep, args), "{args:?}");
    }

    assert_eq!(util_ok(&s, &["put", "k/c", "4", "--prev-kv"]), "OK\n");
    let del = util_json(&s, &["del", "k/", "--prefix", "--prev-kv"]);
    assert_eq!(json::int(&del, "deleted"), 3);
    assert_eq!(json::kv_list(&del, "prev_kvs").len(), 3);
    assert_eq!(util_ok(&s, &["del", "k/a"]), "0\n");
    let err = util_err(&s, &["put", "k/x", "1", "--lease", "zz"]);
    assert!(err.contains("bad lease ID"), "{err}");
}

fn compaction_line(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let mut rev = 0;
    for i in 0..4 {
        rev = json::header_revision(&util_json(&s, &["put", "c", &i.to_string()]));
    }
    let out = util_json(&s, &["compaction", &(rev - 2).to_string()]);
    assert_eq!(json::int(&out, "compacted_revision"), rev - 2);
    assert_eq!(json::header_revision(&out), rev);
    assert_eq!(
        util_ok(&s, &["compaction", &(rev - 1).to_string(), "--physical"]),
        format!("compacted revision {}\n", rev - 1)
    );
    assert_eq!(
        etcdctl_ok(&ep, &["compaction", &rev.to_string()]),
        format!("compacted revision {rev}\n")
    );
    let err = util_err(&s, &["get", "c", "--rev", &(rev - 3).to_string()]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    let err = util_err(&s, &["compaction", &(rev - 1).to_string()]);
    assert!(err.contains("compacted"), "{err}");
}

fn alarm_list_and_disarm(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let id = member_id(&s);
    assert_eq!(util_ok(&s, &["alarm", "list"]), "");
    assert!(json::kv_list(&util_json(&s, &["alarm", "list"]), "alarms").is_empty());
    grpc::block_on(async {
        let mut c = Clients::connect(&ep).await.expect("connect");
        let activate = AlarmRequest {
            action: 1,
            member_id: id,
            alarm: 1,
        };
        c.maintenance
            .alarm(activate)
            .await
            .expect("activate NOSPACE");
    });
    let line = format!("memberID:{id} alarm:NOSPACE \n");
    assert_eq!(util_ok(&s, &["alarm", "list"]), line);
    assert_eq!(etcdctl_ok(&ep, &["alarm", "list"]), line);
    let listed = util_json(&s, &["alarm", "list"]);
    assert_eq!(json::uint(&listed["alarms"][0], "memberID"), id);
    assert_eq!(json::int(&listed["alarms"][0], "alarm"), 1);
    assert_eq!(util_ok(&s, &["alarm", "disarm"]), line);
    assert_eq!(util_ok(&s, &["alarm", "list"]), "");
    assert_eq!(etcdctl_ok(&ep, &["alarm", "list"]), "");
}

fn member_list_and_changes(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let id = member_id(&s);
    let simple = util_ok(&s, &["member", "list"]);
    assert_eq!(simple, etcdctl_ok(&ep, &["member", "list"]));
    assert_eq!(
        simple,
        format!(
            "{id:x}, started, s1, {}, {}, false\n",
            s.peer_url(),
            s.url()
        )
    );
    let table = util_ok(&s, &["-w", "table", "member", "list"]);
    assert!(
        table.contains("IS LEARNER") && table.contains(&format!("{id:x}")),
        "{table}"
    );
    let list = util_json(&s, &["member", "list"]);
    let m = &list["members"][0];
    assert_eq!(json::uint(m, "ID"), id);
    assert_eq!(m["name"], "s1");
    assert_eq!(m["peerURLs"], serde_json::json!([s.peer_url()]));
    assert_eq!(m["clientURLs"], serde_json::json!([s.url()]));
    assert_eq!(json::uint(&list["header"], "member_id"), id);

    let add = [
        "member",
        "add",
        "s2",
        "--peer-urls",
        "http://127.0.0.1:1",
        "--learner",
    ];
    let out = util_ok(&s, &add);
    assert!(
        out.starts_with("Member ") && out.contains(" added to cluster "),
        "{out}"
    );
    assert!(out.contains("ETCD_NAME=\"s2\""), "{out}");
    let new = util_json(&s, &["member", "list"])["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| json::uint(m, "ID"))
        .find(|&m| m != id)
        .expect("the added learner");
    let listed = util_ok(&s, &["member", "list"]);
    assert!(
        listed.contains(&format!("{new:x}, unstarted, , http://127.0.0.1:1, , true")),
        "{listed}"
    );
    let err = util_err(&s, &["member", "promote", &format!("{new:x}")]);
    assert!(
        err.contains("can only promote a learner member which is in sync with leader"),
        "{err}"
    );
    assert_eq!(
        util_ok(&s, &["member", "remove", &format!("{new:x}")]),
        format!(
            "Member {new:16x} removed from cluster {:16x}\n",
            json::uint(&list["header"], "cluster_id")
        )
    );
    let err = util_err(&s, &["member", "remove", "1234"]);
    assert!(err.contains("etcdserver: member not found"), "{err}");
    let err = util_err(&s, &["member", "remove", "not-hex"]);
    assert!(err.contains("expecting ID in Hex"), "{err}");
}

fn move_leader_to_self(kind: Kind) {
    let s = TestServer::start(kind);
    let id = member_id(&s);
    let args = ["move-leader", &format!("{id:x}")];
    let out = util(&s, &args);
    if out.ok {
        assert_eq!(
            out.stdout,
            format!("Leadership transferred from {id:x} to {id:x}\n")
        );
    } else {
        // Both answers are etcd-compatible; the error must still be one clear line.
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    let err = util_err(&s, &["move-leader", &format!("{:x}", id ^ 1)]);
    assert!(err.contains("bad leader transferee"), "{err}");
}

fn watch_events(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let start = json::header_revision(&util_json(&s, &["put", "w/a", "1"]));
    util_ok(&s, &["put", "w/a", "2"]);
    util_ok(&s, &["del", "w/a"]);
    let from = start.to_string();
    let simple = util_ok(
        &s,
        &[
            "watch",
            "w/",
            "--prefix",
            "--rev",
            &from,
            "--prev-kv",
            "--count",
            "3",
        ],
    );
    assert_eq!(
        simple,
        "PUT\nw/a\n1\nPUT\nw/a\n1\nw/a\n2\nDELETE\nw/a\n2\nw/a\n\n"
    );
    let mut etcdctl = Background::etcdctl(
        &ep,
        &["watch", "w/", "--prefix", "--rev", &from, "--prev-kv"],
    );
    let want: Vec<String> = simple.lines().map(String::from).collect();
    assert_eq!(etcdctl.wait_lines(want.len(), TIMEOUT), want);

    let out = util_ok(
        &s,
        &["-w", "json", "watch", "w/a", "--rev", &from, "--count", "2"],
    );
    let events: Vec<Value> = out
        .lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).expect("watch JSON line");
            v["Events"].as_array().expect("Events").clone()
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(
        Kv::from_json(&events[0]["kv"]),
        Kv::new("w/a", "1", start, start, 1)
    );
    assert_eq!(
        Kv::from_json(&events[1]["kv"]),
        Kv::new("w/a", "2", start, start + 1, 2)
    );

    // A live watch: started before the write it reports.
    let mut cmd = Command::new(cairnutl_bin());
    cmd.args(["--endpoints", &ep, "watch", "live", "--count", "1"]);
    let mut live = Background::spawn(cmd, "cairnutl watch live".into());
    // Put until the watch (created at some unknown point) reports one and exits.
    cairn_tests::wait::until(TIMEOUT, "the live watch to report a put", || {
        util_ok(&s, &["put", "live", "v"]);
        (!live.is_running()).then_some(())
    });
    assert!(live.wait_exit(TIMEOUT).success());
    assert_eq!(live.lines(), ["PUT", "live", "v"]);
}

fn endpoint_cluster_flag(kind: Kind) {
    let s = TestServer::start(kind);
    let status = util_json(&s, &["endpoint", "status", "--cluster"]);
    assert_eq!(status[0]["Endpoint"], s.url());
    assert_eq!(json::uint(&status[0]["Status"], "leader"), member_id(&s));
    let health = util_ok(&s, &["endpoint", "health", "--cluster"]);
    assert!(
        health.starts_with(&format!("{}, true", s.url())),
        "{health}"
    );
    let hash = util_json(&s, &["endpoint", "hashkv", "--cluster"]);
    assert_eq!(hash[0]["Endpoint"], s.url());
}

/// A dead endpoint gets one error line that names it and the cause (tonic alone says only
/// "transport error"), from the plain commands and from the load generator alike.
#[test]
fn unreachable_endpoint_names_the_cause() {
    let endpoint = format!("127.0.0.1:{}", cairn_tests::ports::free_port());
    for args in [
        &["endpoint", "status"][..],
        &["get", "foo"],
        &["bench", "put", "--total", "1"],
    ] {
        let mut cmd = Command::new(cairnutl_bin());
        cmd.arg("--endpoints").arg(&endpoint).args(args);
        let mut bg = Background::spawn(cmd, format!("cairnutl {}", args.join(" ")));
        assert!(!bg.wait_exit(TIMEOUT).success(), "{args:?} succeeded");
        let stderr = bg.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: want one error line, got:\n{stderr}"
        );
        assert!(
            lines[0].starts_with(&format!("Error: cannot connect to {endpoint}: "))
                && lines[0].contains("Connection refused"),
            "{args:?}: {}",
            lines[0]
        );
    }
}
