//! A file real etcd 3.4 wrote: the workspace's `fixtures/etcd/v3.4-small.db` (an `etcdctl
//! snapshot save`, its SHA-256 at the end) and `.bare.db` (the same without it), against the
//! numbers `etcdctl snapshot status` printed for it in `v3.4-small.json`.

mod common;

use std::path::PathBuf;

use cairn_bbolt::Db;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/etcd")
        .join(name)
}

/// The number after `"field":` in the fixture's JSON.
fn number(json: &str, field: &str) -> u64 {
    let at = json.find(&format!("\"{field}\":")).expect("the field") + field.len() + 3;
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

#[test]
fn etcd_3_4_snapshot_matches_etcdctl_status() {
    let Ok(json) = std::fs::read_to_string(fixture("v3.4-small.json")) else {
        eprintln!("fixtures/etcd is absent; skipped");
        return;
    };
    for (name, digest) in [("v3.4-small.db", 32), ("v3.4-small.bare.db", 0)] {
        let path = fixture(name);
        let len = std::fs::metadata(&path).unwrap().len() - digest;
        let db = Db::open(&path, len).unwrap();
        db.check().unwrap();
        assert_eq!(db.page_size(), 4096);
        assert_eq!(db.size(), number(&json, "totalSize"), "{name}");
        let names = db.bucket_names().unwrap();
        for etcd in [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "meta",
        ] {
            assert!(
                names.contains(&etcd.as_bytes().to_vec()),
                "{name}: bucket {etcd}"
            );
        }
        assert_eq!(
            common::walk_all(&db).unwrap() as u64,
            number(&json, "totalKey"),
            "{name}"
        );
    }
}
