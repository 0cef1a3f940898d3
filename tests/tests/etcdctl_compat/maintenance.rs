//! `etcdctl compaction | defrag | endpoint status | endpoint health | endpoint hashkv`.

use cairn_tests::etcdctl::assert_success;
use cairn_tests::hashkv::{self, Entry};
use cairn_tests::json::{Kv, header_revision, int, kvs, uint};
use cairn_tests::{Kind, TestServer, etcdctl, etcdctl_err, etcdctl_json, etcdctl_ok};

use crate::{put_all, revision};

compat_tests!(
    compaction,
    compaction_in_batches,
    defrag,
    endpoint_status,
    endpoint_health,
    endpoint_hashkv
);

fn compaction(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(
        ep,
        &[
            ("k", "v1"),
            ("k", "v2"),
            ("k", "v3"),
            ("k", "v4"),
            ("k", "v5"),
        ],
    ); // 2..=6

    assert_eq!(
        etcdctl_ok(ep, &["compaction", "4"]),
        "compacted revision 4\n"
    );
    let err = etcdctl_err(ep, &["get", "k", "--rev", "3"]);
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    // The compaction revision itself stays readable.
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k", "--rev", "4"])),
        vec![Kv::new("k", "v3", 2, 4, 3)]
    );
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "k"])),
        vec![Kv::new("k", "v5", 2, 6, 5)]
    );

    let err = etcdctl_err(ep, &["compaction", "4"]);
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let err = etcdctl_err(ep, &["compaction", "7"]);
    assert!(
        err.contains("etcdserver: mvcc: required revision is a future revision"),
        "{err}"
    );

    assert_eq!(
        etcdctl_ok(ep, &["compaction", "--physical", "6"]),
        "compacted revision 6\n"
    );
    let err = etcdctl_err(ep, &["get", "k", "--rev", "5"]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    assert_eq!(revision(ep), 6, "compaction does not bump the revision");
    let status = etcdctl_json(ep, &["endpoint", "hashkv"]);
    assert_eq!(int(&status[0]["HashKV"], "compact_revision"), 6);
}

/// A compaction deleting its rows a few at a time (`--experimental-compaction-batch-limit 3`,
/// both servers' flag): the result is the same as in one go, and `--physical` answers once the
/// rows are gone. Cairn also paces the batches 50 ms apart (etcd 3.4 sleeps 10 ms, without a
/// flag), so the 27 rows take at least 9 pauses: a reply sooner did not wait.
fn compaction_in_batches(kind: Kind) {
    let mut flags = vec!["--experimental-compaction-batch-limit", "3"];
    if kind == Kind::Cairn {
        flags.extend(["--experimental-compaction-sleep-interval", "50ms"]);
    }
    let server = TestServer::start_with(kind, &flags);
    let ep = &server.endpoint();
    for round in 0..10 {
        let v = format!("v{round}");
        put_all(ep, &[("a", &v), ("b", &v), ("c", &v)]); // a@2+3r, b@3+3r, c@4+3r
    }
    assert_eq!(etcdctl_ok(ep, &["del", "b"]), "1\n"); // 32
    let started = std::time::Instant::now();
    assert_eq!(
        etcdctl_ok(ep, &["compaction", "--physical", "31"]),
        "compacted revision 31\n"
    );
    if kind == Kind::Cairn {
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(9 * 50),
            "answered after {:?}, before the rows could be deleted",
            started.elapsed()
        );
    }
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "", "--from-key", "--rev", "31"])),
        vec![
            Kv::new("a", "v9", 2, 29, 10),
            Kv::new("b", "v9", 3, 30, 10),
            Kv::new("c", "v9", 4, 31, 10),
        ]
    );
    let err = etcdctl_err(ep, &["get", "a", "--rev", "30"]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    // b@30 is kept but not hashed: b is deleted at the hash revision (etcd's Keep)
    let expect = hashkv::hash(&[
        Entry::put(29, 0, "a", "v9", 2, 10),
        Entry::put(31, 0, "c", "v9", 4, 10),
        Entry::tombstone(32, 0, "b"),
    ]);
    assert_eq!(hashkv(ep, &[]), (u64::from(expect), 31));
}

fn defrag(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("a", "1"), ("b", "2"), ("a", "3")]); // 2, 3, 4
    assert_eq!(
        etcdctl_ok(ep, &["compaction", "--physical", "4"]),
        "compacted revision 4\n"
    );

    assert_eq!(
        etcdctl_ok(ep, &["defrag"]),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    assert_eq!(revision(ep), 4);
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "", "--from-key"])),
        vec![Kv::new("a", "3", 2, 4, 2), Kv::new("b", "2", 3, 3, 1)]
    );
    put_all(ep, &[("c", "4")]);
    assert_eq!(revision(ep), 5, "writes continue after defrag");
}

fn endpoint_status(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("a", "1"), ("b", "2")]); // 2, 3

    let all = etcdctl_json(ep, &["endpoint", "status"]);
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["Endpoint"], ep.as_str());
    let status = &all[0]["Status"];
    assert_eq!(header_revision(status), 3);
    let member = uint(&status["header"], "member_id");
    assert_ne!(member, 0);
    assert_eq!(
        uint(status, "leader"),
        member,
        "a single member leads itself"
    );
    let version = status["version"].as_str().expect("version");
    assert!(
        version.starts_with("3."),
        "clients gate features on an etcd version: {version}"
    );
    assert!(int(status, "dbSize") > 0);
    assert!(int(status, "dbSizeInUse") > 0);
    assert!(uint(status, "raftTerm") >= 1);
    let index = uint(status, "raftIndex");
    assert!(
        index >= 3,
        "at least the two puts went through the log: {index}"
    );
    assert!(uint(status, "raftAppliedIndex") >= 3);

    let simple = etcdctl_ok(ep, &["endpoint", "status"]);
    let fields: Vec<&str> = simple.trim_end().split(", ").collect();
    assert_eq!(
        fields[..3],
        [ep.as_str(), &format!("{member:x}"), version],
        "{simple}"
    );
    assert_eq!(
        fields[4..6],
        ["true", "false"],
        "is leader, is learner: {simple}"
    );
}

fn endpoint_health(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let health = etcdctl_json(ep, &["endpoint", "health"]);
    assert_eq!(health[0]["endpoint"], ep.as_str());
    assert_eq!(health[0]["health"], true);
    // etcdctl 3.4 prints the simple health line on stderr.
    let out = etcdctl(ep, &["endpoint", "health"]);
    assert_success(&out, "etcdctl endpoint health");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "{ep} is healthy: successfully committed proposal: took = "
        )),
        "{text}"
    );
}

/// HashKV as etcdctl reports it: (hash, compact_revision).
fn hashkv(endpoint: &str, extra: &[&str]) -> (u64, i64) {
    let mut args = vec!["endpoint", "hashkv"];
    args.extend_from_slice(extra);
    let out = etcdctl_json(endpoint, &args);
    let h = &out[0]["HashKV"];
    (uint(h, "hash"), int(h, "compact_revision"))
}

fn endpoint_hashkv(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("a", "1"), ("b", "2"), ("a", "3")]); // 2, 3, 4
    assert_eq!(etcdctl_ok(ep, &["del", "b"]), "1\n"); // 5
    put_all(ep, &[("c", "4")]); // 6

    let a2 = Entry::put(2, 0, "a", "1", 2, 1);
    let b3 = Entry::put(3, 0, "b", "2", 3, 1);
    let a4 = Entry::put(4, 0, "a", "3", 2, 2);
    let b5 = Entry::tombstone(5, 0, "b");
    let c6 = Entry::put(6, 0, "c", "4", 6, 1);
    let expect = |entries: &[&Entry]| {
        u64::from(hashkv::hash(
            &entries.iter().map(|e| (*e).clone()).collect::<Vec<_>>(),
        ))
    };

    // Before any compaction etcd reports compact_revision -1.
    let full = expect(&[&a2, &b3, &a4, &b5, &c6]);
    assert_eq!(hashkv(ep, &[]), (full, -1));
    assert_eq!(hashkv(ep, &["--rev", "3"]), (expect(&[&a2, &b3]), -1));
    assert_eq!(
        etcdctl_ok(ep, &["endpoint", "hashkv"]),
        format!("{ep}, {full}\n")
    );

    // etcd hashes a revision <= compact_revision only if it is the newest revision, at the
    // hash revision, of a key that is live then (kvindex.Keep(rev)). After compacting at 4 the
    // backend still holds b@3 (readable with --rev 4), but b is deleted at 5, so b@3 is skipped.
    assert_eq!(
        etcdctl_ok(ep, &["compaction", "--physical", "4"]),
        "compacted revision 4\n"
    );
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "b", "--rev", "4"])),
        vec![Kv::new("b", "2", 3, 3, 1)]
    );
    assert_eq!(hashkv(ep, &[]), (expect(&[&a4, &b5, &c6]), 4));
    assert_eq!(hashkv(ep, &["--rev", "5"]), (expect(&[&a4, &b5]), 4));
    let err = etcdctl_err(ep, &["endpoint", "hashkv", "--rev", "4"]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    // Compacting at 5 removes b's whole generation, its tombstone included.
    assert_eq!(
        etcdctl_ok(ep, &["compaction", "--physical", "5"]),
        "compacted revision 5\n"
    );
    assert_eq!(hashkv(ep, &[]), (expect(&[&a4, &c6]), 5));
}
