//! `--quota-backend-bytes` and the NOSPACE alarm, against etcd and cairn alike: fill a small
//! quota by overwriting one key, see the put fail with "database space exceeded" and the alarm
//! listed; reads and deletes still work, writes and lease grants do not; after compaction,
//! defragment and `alarm disarm`, writes work again.

use std::time::Duration;

use cairn_proto::etcdserverpb::{PutRequest, StatusResponse};
use cairn_tests::grpc::{block_on, status_blocking};
use cairn_tests::{Clients, Kind, TestServer, etcdctl_err, etcdctl_ok};
use tonic::Code;

/// 4 MiB: above an empty database of either kind, reached after a few dozen 64 KiB values.
const QUOTA: &str = "4194304";
const VALUE_BYTES: usize = 64 * 1024;
/// Bound on the fill loop: the quota holds at most 64 such values, history included.
const MAX_PUTS: usize = 200;
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn status(server: &TestServer) -> StatusResponse {
    status_blocking(&server.endpoint(), Duration::from_secs(10)).expect("status")
}

/// Overwrites `key` with fresh 64 KiB values until a put is refused; returns how many took.
fn fill(server: &TestServer) -> usize {
    let endpoint = server.endpoint();
    block_on(async move {
        let mut c = Clients::connect(&endpoint).await.expect("connect");
        for i in 0..MAX_PUTS {
            let req = PutRequest {
                key: b"key".to_vec(),
                value: vec![b'a' + (i % 26) as u8; VALUE_BYTES],
                ..Default::default()
            };
            match c.kv.put(req).await {
                Ok(_) => continue,
                Err(s) => {
                    assert_eq!(s.code(), Code::ResourceExhausted, "put {i}: {s:?}");
                    assert_eq!(s.message(), NOSPACE, "put {i}");
                    return i;
                }
            }
        }
        panic!("{MAX_PUTS} puts of {VALUE_BYTES} bytes never exceeded a {QUOTA}-byte quota");
    })
}

fn nospace_alarm_until_compact_defrag_disarm(kind: Kind) {
    let server = TestServer::start_with(kind, &["--quota-backend-bytes", QUOTA]);
    let ep = server.endpoint();
    let empty = status(&server);
    assert!(empty.errors.is_empty(), "{:?}", empty.errors);
    etcdctl_ok(&ep, &["put", "other", "v"]);

    let puts = fill(&server);
    let full = status(&server);
    let member_id = full.header.as_ref().unwrap().member_id;
    // etcdctl prints the alarm's protobuf text form, trailing space included
    let alarm_line = format!("memberID:{member_id} alarm:NOSPACE \n");
    assert_eq!(etcdctl_ok(&ep, &["alarm", "list"]), alarm_line);
    assert_eq!(full.errors, [alarm_line.trim_end_matches('\n')]);

    // capped: reads and deletes work; puts, txns with puts and lease grants do not
    assert!(etcdctl_ok(&ep, &["get", "key", "--print-value-only"]).len() > VALUE_BYTES);
    assert_eq!(etcdctl_ok(&ep, &["del", "other"]), "1\n");
    assert!(etcdctl_err(&ep, &["put", "small", "v"]).contains(NOSPACE));
    assert!(etcdctl_err(&ep, &["lease", "grant", "60"]).contains(NOSPACE));

    let rev = status(&server).header.unwrap().revision.to_string();
    etcdctl_ok(&ep, &["compaction", "--physical", &rev]);
    etcdctl_ok(&ep, &["defrag"]);
    let defragged = status(&server);
    eprintln!(
        "{kind:?}: empty db {} B; after {puts} puts of {VALUE_BYTES} B: db {} B (in use {}); \
         after compact+defrag: db {} B (in use {})",
        empty.db_size,
        full.db_size,
        full.db_size_in_use,
        defragged.db_size,
        defragged.db_size_in_use
    );
    assert!(
        defragged.db_size < full.db_size,
        "defragment shrank nothing"
    );
    // still capped until the alarm is disarmed
    assert!(etcdctl_err(&ep, &["put", "small", "v"]).contains(NOSPACE));

    assert_eq!(etcdctl_ok(&ep, &["alarm", "disarm"]), alarm_line);
    assert_eq!(etcdctl_ok(&ep, &["alarm", "list"]), "");
    assert_eq!(etcdctl_ok(&ep, &["put", "small", "v"]), "OK\n");
    etcdctl_ok(&ep, &["lease", "grant", "60"]);
    assert!(status(&server).errors.is_empty());
}

cairn_tests::both_kinds!(etcdctl: nospace_alarm_until_compact_defrag_disarm);
