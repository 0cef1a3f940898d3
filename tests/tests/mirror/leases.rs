//! `--with-leases`: leased keys keep a lease at the destination and expire with the source's.

use std::time::Duration;

use cairn_tests::mirror::{Mirror, contents};
use cairn_tests::{Clients, Kind, TestServer, grpc, wait};

use crate::{FENCE, assert_mirrored, grant, put, put_lease};

fn ttl(endpoint: &str, id: i64) -> (i64, i64) {
    let ep = endpoint.to_string();
    grpc::block_on(async move {
        let mut c = Clients::connect(&ep).await?;
        let r = c
            .lease
            .lease_time_to_live(cairn_proto::etcdserverpb::LeaseTimeToLiveRequest {
                id,
                keys: false,
            })
            .await?
            .into_inner();
        anyhow::Ok((r.ttl, r.granted_ttl))
    })
    .expect("lease time-to-live")
}

#[test]
fn a_leased_key_expires_at_the_destination_with_the_source() {
    let src = TestServer::start(Kind::Cairn);
    let dst = TestServer::start(Kind::Cairn);
    let (s, d) = (src.endpoint(), dst.endpoint());
    let short = grant(&s, 4);
    put_lease(&s, "/l/short", "expires", short);
    put(&s, "/l/plain", "stays");
    let mut m = Mirror::start(&s, &d, &["--prefix", "/l/", FENCE, "--with-leases"]);
    m.wait_event("watching", Duration::from_secs(20));
    // A lease first seen in the stream, not in the copy.
    let long = grant(&s, 60);
    put_lease(&s, "/l/long", "kept alive", long);
    assert_mirrored(&s, "/l/", &d, "/l/", &["--with-leases"]);
    let (left, granted) = ttl(&d, long);
    assert_eq!(granted, 60);
    assert!(left > 50, "destination lease {long:x} has {left}s left");
    assert!(
        contents(&d, "/l/", "/l/")
            .iter()
            .any(|(k, _, leased)| k == "/l/short" && *leased)
    );

    // Nobody keeps `short` alive: it expires at the source, then at the destination.
    wait::until(
        Duration::from_secs(15),
        "the source lease to expire",
        || {
            contents(&s, "/l/short", "/l/short")
                .is_empty()
                .then_some(())
        },
    );
    assert_mirrored(&s, "/l/", &d, "/l/", &["--with-leases"]);
    wait::until(
        Duration::from_secs(15),
        "the destination lease to be revoked",
        || (ttl(&d, short).0 <= 0).then_some(()),
    );
    assert!(ttl(&d, long).0 > 0);
}
