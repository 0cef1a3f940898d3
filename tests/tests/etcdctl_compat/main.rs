//! etcdctl compatibility: every test body runs once against real etcd 3.4 (the oracle) and
//! once against cairn, driven by the real `etcdctl` binary, and checks outputs field by field
//! against values computed from what the test did on a fresh one-member cluster (whose
//! revision starts at 1, so the Nth write is revision N + 1).
//!
//! Test names are `<module>::<body>::{etcd,cairn}`: `cargo test -p cairn-tests -- ::etcd` runs
//! the oracle side only.

/// Every body here drives etcdctl, so the cairn side needs the etcd packages too.
macro_rules! compat_tests {
    ($($body:ident),* $(,)?) => { cairn_tests::both_kinds!(etcdctl: $($body),*); };
}

mod cluster;
mod concurrency;
mod get;
mod lease;
mod maintenance;
mod put_del;
mod txn;
mod watch;

/// Deadline for background etcdctl processes to print what the test expects.
const WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Current store revision, read with `get -w json` (reads never bump it).
fn revision(endpoint: &str) -> i64 {
    cairn_tests::json::header_revision(&cairn_tests::etcdctl_json(endpoint, &["get", "any"]))
}

/// Writes each `(key, value)` with `etcdctl put`.
fn put_all(endpoint: &str, pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        assert_eq!(cairn_tests::etcdctl_ok(endpoint, &["put", k, v]), "OK\n");
    }
}
