//! Non-interactive `etcdctl txn` (compares, success and failure branches on stdin).

use cairn_tests::etcdctl::{assert_success, parse_json};
use cairn_tests::json::{Kv, flag, header_revision, int, kv_list, kvs};
use cairn_tests::{Kind, TestServer, etcdctl_json, etcdctl_stdin};

use crate::{put_all, revision};

compat_tests!(txn_success_branch, txn_failure_branch, txn_json_responses);

/// Runs `etcdctl txn` with `script` on stdin (compares, blank line, success ops, blank line,
/// failure ops, blank line) and returns stdout.
fn txn(endpoint: &str, script: &str, json: bool) -> String {
    let args: &[&str] = if json {
        &["-w", "json", "txn"]
    } else {
        &["txn"]
    };
    let out = etcdctl_stdin(endpoint, args, script);
    assert_success(&out, &format!("etcdctl txn <<{script:?}"));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// a: create 2, mod 4, version 2, value "2"; b: create 3, mod 3, version 1, value "x".
fn setup(endpoint: &str) {
    put_all(endpoint, &[("a", "1"), ("b", "x"), ("a", "2")]);
}

fn txn_success_branch(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    setup(ep);
    let script = "value(\"a\") = \"2\"\nversion(\"a\") = \"2\"\ncreate(\"a\") = \"2\"\nmod(\"a\") = \"4\"\n\nput c yes\nget a\n\nput c no\n\n";
    assert_eq!(txn(ep, script, false), "SUCCESS\n\nOK\n\na\n2\n");
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "c"])),
        vec![Kv::new("c", "yes", 5, 5, 1)]
    );

    // Comparisons other than equality, and a missing key (version/create 0).
    let script = "version(\"b\") < \"2\"\nmod(\"b\") != \"4\"\nvalue(\"a\") > \"1\"\ncreate(\"zz\") = \"0\"\nversion(\"zz\") = \"0\"\n\ndel b\n\n\n";
    assert_eq!(txn(ep, script, false), "SUCCESS\n\n1\n");
    assert_eq!(revision(ep), 6);
    assert!(kvs(&etcdctl_json(ep, &["get", "b"])).is_empty());
}

fn txn_failure_branch(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    setup(ep);
    // One false compare fails the whole txn.
    let script = "value(\"a\") = \"2\"\nmod(\"a\") > \"4\"\n\nput f yes\n\nput f no\nget a\n\n";
    assert_eq!(txn(ep, script, false), "FAILURE\n\nOK\n\na\n2\n");
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "f"])),
        vec![Kv::new("f", "no", 5, 5, 1)]
    );

    // A failed txn without failure ops writes nothing and keeps the revision.
    let script = "version(\"a\") = \"7\"\n\nput g 1\n\n\n";
    let out = parse_json(&txn(ep, script, true), "txn");
    assert!(!flag(&out, "succeeded"));
    assert_eq!(header_revision(&out), 5);
    assert!(out.get("responses").is_none(), "no ops ran: {out}");
    assert_eq!(revision(ep), 5);
}

fn txn_json_responses(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    setup(ep);
    put_all(ep, &[("c", "old")]); // 5
    let script =
        "version(\"b\") = \"1\"\n\nget a\nput c new --prev-kv\ndel b --prev-kv\nget c\n\n\n";
    let out = parse_json(&txn(ep, script, true), "txn");
    assert!(flag(&out, "succeeded"));
    assert_eq!(header_revision(&out), 6, "one revision for the whole txn");
    let responses = out["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 4);

    // A read before the first write in the txn reports the revision before the txn.
    let range = &responses[0]["Response"]["ResponseRange"];
    assert_eq!(header_revision(range), 5);
    assert_eq!(kvs(range), vec![Kv::new("a", "2", 2, 4, 2)]);
    assert_eq!(int(range, "count"), 1);

    let put = &responses[1]["Response"]["ResponsePut"];
    assert_eq!(header_revision(put), 6);
    assert_eq!(Kv::from_json(&put["prev_kv"]), Kv::new("c", "old", 5, 5, 1));

    let del = &responses[2]["Response"]["ResponseDeleteRange"];
    assert_eq!(header_revision(del), 6);
    assert_eq!(int(del, "deleted"), 1);
    assert_eq!(kv_list(del, "prev_kvs"), vec![Kv::new("b", "x", 3, 3, 1)]);

    // Reads after a write in the same txn see it.
    let range = &responses[3]["Response"]["ResponseRange"];
    assert_eq!(header_revision(range), 6);
    assert_eq!(kvs(range), vec![Kv::new("c", "new", 5, 6, 2)]);
}
