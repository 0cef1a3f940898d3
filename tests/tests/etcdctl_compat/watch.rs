//! `etcdctl watch`, run in the background and read line by line with a deadline.

use cairn_tests::etcdctl::parse_json;
use cairn_tests::json::{Kv, flag, int};
use cairn_tests::{Background, Kind, TestServer, etcdctl_ok};

use crate::{WAIT, put_all};

compat_tests!(
    watch_prefix_prev_kv,
    watch_single_key_history,
    watch_json_events,
    watch_compacted_revision
);

fn watch_prefix_prev_kv(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("w/a", "1"), ("w/b", "2"), ("other", "x")]); // 2, 3, 4

    // From revision 2 the history is replayed, then live events follow.
    let mut watch =
        Background::etcdctl(ep, &["watch", "--prefix", "w/", "--rev", "2", "--prev-kv"]);
    let replayed = watch.wait_lines(6, WAIT);
    assert_eq!(replayed, ["PUT", "w/a", "1", "PUT", "w/b", "2"]);

    put_all(ep, &[("w/a", "3")]); // 5
    assert_eq!(etcdctl_ok(ep, &["del", "w/b"]), "1\n"); // 6
    put_all(ep, &[("other", "y"), ("w/c", "4")]); // 7, 8
    let lines = watch.wait_lines(19, WAIT);
    assert_eq!(
        lines[6..],
        [
            "PUT", "w/a", "1", "w/a", "3", // prev kv, then kv
            "DELETE", "w/b", "2", "w/b", "", // a delete's kv has no value
            "PUT", "w/c", "4",
        ]
    );
}

fn watch_single_key_history(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("k", "1"), ("k2", "x"), ("k", "2")]); // 2, 3, 4

    let mut watch = Background::etcdctl(ep, &["watch", "k", "--rev", "3"]);
    assert_eq!(
        watch.wait_lines(3, WAIT),
        ["PUT", "k", "2"],
        "no k2, nothing before rev 3"
    );
    assert_eq!(etcdctl_ok(ep, &["del", "k"]), "1\n");
    assert_eq!(watch.wait_lines(5, WAIT)[3..], ["DELETE", "k"]);
}

fn watch_json_events(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("j", "1"), ("j", "2")]); // 2, 3
    assert_eq!(etcdctl_ok(ep, &["del", "j"]), "1\n"); // 4

    let mut watch =
        Background::etcdctl(ep, &["-w", "json", "watch", "j", "--rev", "2", "--prev-kv"]);
    // The server may batch events into responses as it likes; count events, not lines.
    let events = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .flat_map(|l| {
                let resp = parse_json(l, "watch -w json");
                assert!(!flag(&resp, "Canceled"), "watch canceled: {resp}");
                resp["Events"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    };
    let lines = watch.wait_for(WAIT, "3 events", |l| events(l).len() >= 3);
    let ev = events(&lines);
    assert_eq!(int(&ev[0], "type"), 0, "PUT is type 0 (omitted)");
    assert_eq!(Kv::from_json(&ev[0]["kv"]), Kv::new("j", "1", 2, 2, 1));
    assert!(ev[0].get("prev_kv").is_none(), "a create has no prev_kv");
    assert_eq!(Kv::from_json(&ev[1]["kv"]), Kv::new("j", "2", 2, 3, 2));
    assert_eq!(Kv::from_json(&ev[1]["prev_kv"]), Kv::new("j", "1", 2, 2, 1));
    assert_eq!(int(&ev[2], "type"), 1, "DELETE is type 1");
    assert_eq!(Kv::from_json(&ev[2]["kv"]), Kv::new("j", "", 0, 4, 0));
    assert_eq!(Kv::from_json(&ev[2]["prev_kv"]), Kv::new("j", "2", 2, 3, 2));

    put_all(ep, &[("j", "5")]); // 5: live, after the replay
    let lines = watch.wait_for(WAIT, "4 events", |l| events(l).len() >= 4);
    let ev = events(&lines);
    assert_eq!(ev.len(), 4);
    assert_eq!(Kv::from_json(&ev[3]["kv"]), Kv::new("j", "5", 5, 5, 1));
    let last = parse_json(lines.last().expect("a line"), "watch -w json");
    assert_eq!(int(&last["Header"], "revision"), 5);
}

fn watch_compacted_revision(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("k", "1"), ("k", "2"), ("k", "3"), ("k", "4")]); // 2..=5
    assert_eq!(
        etcdctl_ok(ep, &["compaction", "4"]),
        "compacted revision 4\n"
    );

    let mut watch = Background::etcdctl(ep, &["watch", "k", "--rev", "3"]);
    let status = watch.wait_exit(WAIT);
    assert!(!status.success(), "a watch below the compaction must fail");
    let all = format!("{}\n{}", watch.lines().join("\n"), watch.stderr());
    assert!(
        all.contains("etcdserver: mvcc: required revision has been compacted"),
        "{all}"
    );

    // At the compaction revision itself the watch works and replays from there.
    let mut watch = Background::etcdctl(ep, &["watch", "k", "--rev", "4"]);
    assert_eq!(
        watch.wait_lines(6, WAIT),
        ["PUT", "k", "3", "PUT", "k", "4"]
    );
}
