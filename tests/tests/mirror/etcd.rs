//! Real etcd (Debian's 3.4) on either side.

use std::time::Duration;

use cairn_tests::mirror::Mirror;
use cairn_tests::{Kind, TestServer, require_etcd};

use crate::{FENCE, assert_mirrored, del, grant, put, put_lease, txn_puts};

fn mirror_between(source: Kind, dest: Kind) {
    let src = TestServer::start(source);
    let dst = TestServer::start(dest);
    let (s, d) = (src.endpoint(), dst.endpoint());
    let seed: Vec<(String, String)> = (0..120)
        .map(|i| (format!("/e/k{i:03}"), format!("v{i}")))
        .collect();
    txn_puts(&s, &seed);
    let copied = grant(&s, 60);
    put_lease(&s, "/e/leased-before", "copied", copied);
    let args = [
        "--prefix",
        "/e/",
        "--dest-prefix",
        "/m/",
        FENCE,
        "--max-txn-ops",
        "32",
        "--with-leases",
    ];
    let mut m = Mirror::start(&s, &d, &args);
    m.wait_event("watching", Duration::from_secs(20));
    let streamed = grant(&s, 60);
    put_lease(&s, "/e/leased-after", "streamed", streamed);
    put(&s, "/e/k005", "changed");
    del(&s, "/e/k006");
    let big: Vec<(String, String)> = (0..40)
        .map(|i| (format!("/e/big/{i:02}"), "x".repeat(i)))
        .collect();
    txn_puts(&s, &big);
    assert_mirrored(&s, "/e/", &d, "/m/", &["--with-leases"]);
}

#[test]
fn etcd_to_cairn() {
    if require_etcd() {
        mirror_between(Kind::Etcd, Kind::Cairn);
    }
}

#[test]
fn cairn_to_etcd() {
    if require_etcd() {
        mirror_between(Kind::Cairn, Kind::Etcd);
    }
}
