//! `etcdctl get` and its flags.

use cairn_tests::json::{Kv, flag, header_revision, int, keys, kvs};
use cairn_tests::{Kind, TestServer, etcdctl_err, etcdctl_json, etcdctl_ok};

use crate::{put_all, revision};

compat_tests!(
    get_json_fields,
    get_ranges_and_limit,
    get_at_revision,
    get_sorted,
    get_output_modes
);

fn get_json_fields(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    assert_eq!(revision(ep), 1, "a fresh cluster starts at revision 1");

    assert_eq!(etcdctl_ok(ep, &["put", "a", "1"]), "OK\n");
    let put = etcdctl_json(ep, &["put", "b", "2"]);
    assert_eq!(header_revision(&put), 3);
    assert!(
        put.get("prev_kv").is_none(),
        "no prev_kv unless asked: {put}"
    );
    assert_eq!(header_revision(&etcdctl_json(ep, &["put", "a", "3"])), 4);

    assert_eq!(etcdctl_ok(ep, &["get", "a"]), "a\n3\n");
    let got = etcdctl_json(ep, &["get", "a"]);
    assert_eq!(header_revision(&got), 4);
    assert_eq!(got["kvs"][0]["key"], "YQ==", "keys are base64 in JSON");
    assert_eq!(got["kvs"][0]["value"], "Mw==");
    assert_eq!(kvs(&got), vec![Kv::new("a", "3", 2, 4, 2)]);
    assert_eq!(int(&got, "count"), 1);
    assert!(!flag(&got, "more"));

    let missing = etcdctl_json(ep, &["get", "nope"]);
    assert_eq!(
        header_revision(&missing),
        4,
        "reads do not bump the revision"
    );
    assert!(kvs(&missing).is_empty());
    assert_eq!(int(&missing, "count"), 0);
    assert_eq!(etcdctl_ok(ep, &["get", "nope"]), "");
    assert_eq!(header_revision(&etcdctl_json(ep, &["put", "c", "4"])), 5);
}

fn get_ranges_and_limit(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    // Revisions 2..=7.
    put_all(
        ep,
        &[
            ("k1", "v1"),
            ("k2", "v2"),
            ("k3", "v3"),
            ("kz", "vz"),
            ("l1", "w1"),
            ("k", "root"),
        ],
    );

    let prefix = etcdctl_json(ep, &["get", "k", "--prefix"]);
    assert_eq!(keys(&prefix), ["k", "k1", "k2", "k3", "kz"]);
    assert_eq!(int(&prefix, "count"), 5);
    assert_eq!(kvs(&prefix)[0], Kv::new("k", "root", 7, 7, 1));
    assert_eq!(
        etcdctl_ok(ep, &["get", "k", "--prefix"]),
        "k\nroot\nk1\nv1\nk2\nv2\nk3\nv3\nkz\nvz\n"
    );

    let from = etcdctl_json(ep, &["get", "k2", "--from-key"]);
    assert_eq!(keys(&from), ["k2", "k3", "kz", "l1"]);
    assert_eq!(kvs(&from)[3], Kv::new("l1", "w1", 6, 6, 1));

    let range = etcdctl_json(ep, &["get", "k1", "k3"]);
    assert_eq!(keys(&range), ["k1", "k2"], "range_end is exclusive");

    let limited = etcdctl_json(ep, &["get", "k", "--prefix", "--limit", "2"]);
    assert_eq!(keys(&limited), ["k", "k1"]);
    assert!(flag(&limited, "more"));
    assert_eq!(int(&limited, "count"), 5, "count ignores the limit");

    let exact = etcdctl_json(ep, &["get", "k", "--prefix", "--limit", "5"]);
    assert_eq!(keys(&exact).len(), 5);
    assert!(!flag(&exact, "more"));

    let first = etcdctl_json(ep, &["get", "", "--from-key", "--limit", "1"]);
    assert_eq!(keys(&first), ["k"]);
    assert!(flag(&first, "more"));
    assert_eq!(int(&first, "count"), 6);
    assert_eq!(header_revision(&first), 7);
}

fn get_at_revision(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("x", "a"), ("x", "b"), ("y", "c")]); // revisions 2, 3, 4
    assert_eq!(etcdctl_ok(ep, &["del", "x"]), "1\n"); // revision 5

    assert_eq!(etcdctl_ok(ep, &["get", "x", "--rev", "2"]), "x\na\n");
    let at2 = etcdctl_json(ep, &["get", "x", "--rev", "2"]);
    assert_eq!(kvs(&at2), vec![Kv::new("x", "a", 2, 2, 1)]);
    assert_eq!(
        header_revision(&at2),
        5,
        "the header carries the current revision"
    );
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "x", "--rev", "3"])),
        vec![Kv::new("x", "b", 2, 3, 2)]
    );
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "", "--from-key", "--rev", "4"])),
        vec![Kv::new("x", "b", 2, 3, 2), Kv::new("y", "c", 4, 4, 1)]
    );
    assert!(kvs(&etcdctl_json(ep, &["get", "x", "--rev", "5"])).is_empty());
    assert!(kvs(&etcdctl_json(ep, &["get", "x"])).is_empty());

    let err = etcdctl_err(ep, &["get", "x", "--rev", "6"]);
    assert!(
        err.contains("etcdserver: mvcc: required revision is a future revision"),
        "{err}"
    );

    // A delete ends the key's generation: the next put starts at version 1.
    assert_eq!(etcdctl_ok(ep, &["put", "x", "d"]), "OK\n");
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "x"])),
        vec![Kv::new("x", "d", 6, 6, 1)]
    );
}

fn get_sorted(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    // s/a: create 3, mod 3, version 1, value 3
    // s/b: create 4, mod 7, version 2, value 2
    // s/c: create 2, mod 6, version 3, value 5
    put_all(
        ep,
        &[
            ("s/c", "1"),
            ("s/a", "3"),
            ("s/b", "2"),
            ("s/c", "4"),
            ("s/c", "5"),
            ("s/b", "2"),
        ],
    );
    let sorted = |args: &[&str]| {
        let mut full = vec!["get", "s/", "--prefix"];
        full.extend_from_slice(args);
        keys(&etcdctl_json(ep, &full))
    };
    assert_eq!(sorted(&[]), ["s/a", "s/b", "s/c"]);
    assert_eq!(sorted(&["--order", "DESCEND"]), ["s/c", "s/b", "s/a"]);
    assert_eq!(
        sorted(&["--sort-by", "KEY", "--order", "DESCEND"]),
        ["s/c", "s/b", "s/a"]
    );
    assert_eq!(sorted(&["--sort-by", "CREATE"]), ["s/c", "s/a", "s/b"]);
    assert_eq!(
        sorted(&["--sort-by", "CREATE", "--order", "DESCEND"]),
        ["s/b", "s/a", "s/c"]
    );
    assert_eq!(sorted(&["--sort-by", "MODIFY"]), ["s/a", "s/c", "s/b"]);
    assert_eq!(sorted(&["--sort-by", "VALUE"]), ["s/b", "s/a", "s/c"]);
    assert_eq!(
        sorted(&["--sort-by", "VERSION", "--order", "DESCEND"]),
        ["s/c", "s/b", "s/a"]
    );

    // With a sort the limit applies after sorting the whole range.
    let top = etcdctl_json(
        ep,
        &[
            "get",
            "s/",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
            "--limit",
            "1",
        ],
    );
    assert_eq!(kvs(&top), vec![Kv::new("s/b", "2", 4, 7, 2)]);
    assert!(flag(&top, "more"));
    assert_eq!(int(&top, "count"), 3);
}

fn get_output_modes(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    put_all(ep, &[("m1", "one"), ("m2", "two"), ("m1", "uno")]); // revisions 2, 3, 4

    // etcdctl 3.4 has no --count-only; its JSON count with --limit 1 shows the same number.
    let counted = etcdctl_json(ep, &["get", "m", "--prefix", "--limit", "1"]);
    assert_eq!(int(&counted, "count"), 2);

    let keys_only = etcdctl_json(ep, &["get", "m", "--prefix", "--keys-only"]);
    assert_eq!(
        kvs(&keys_only),
        vec![Kv::new("m1", "", 2, 4, 2), Kv::new("m2", "", 3, 3, 1)]
    );
    for kv in keys_only["kvs"].as_array().expect("kvs") {
        assert!(
            kv.get("value").is_none(),
            "keys-only must not carry values: {kv}"
        );
    }
    assert_eq!(
        etcdctl_ok(ep, &["get", "m", "--prefix", "--keys-only"]),
        "m1\n\nm2\n\n"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "m", "--prefix", "--print-value-only"]),
        "uno\ntwo\n"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "m1", "--rev", "2", "--print-value-only"]),
        "one\n"
    );
    // Serializable reads see the same data on a single member.
    assert_eq!(
        kvs(&etcdctl_json(ep, &["get", "m2", "--consistency", "s"])),
        vec![Kv::new("m2", "two", 3, 3, 1)]
    );
}
