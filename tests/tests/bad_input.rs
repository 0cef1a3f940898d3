//! Bad input gets etcd's error, the server stays up, and nothing already written is lost.
//! Each body runs against real etcd (the oracle) and against cairn.

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{
    CompactionRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, StatusRequest,
    TxnRequest, WatchCreateRequest, WatchRequest,
};
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer, require_etcd};
use tokio_stream::StreamExt;
use tonic::Code;

cairn_tests::both_kinds!(grpc:
    refused_requests_keep_the_data,
    oversized_requests,
    watch_below_compaction
);

fn put(k: &str, v: Vec<u8>) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}

/// Asserts a call failed with exactly this code and message.
fn expect_err<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    let e = r.expect_err("the server must refuse this");
    assert_eq!((e.code(), e.message()), (code, msg));
}

fn refused_requests_keep_the_data(kind: Kind) {
    let s = TestServer::start(kind);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let rev =
            c.kv.put(put("keep", b"me".to_vec()))
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .revision;
        assert_eq!(rev, 2);

        let ops: Vec<RequestOp> = (0..129)
            .map(|i| RequestOp {
                request: Some(Request::RequestPut(put(&format!("k{i}"), vec![]))),
            })
            .collect();
        let too_many = TxnRequest {
            success: ops,
            ..Default::default()
        };
        expect_err(
            c.kv.txn(too_many).await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );

        let dup = TxnRequest {
            success: vec![
                RequestOp {
                    request: Some(Request::RequestPut(put("d", vec![]))),
                },
                RequestOp {
                    request: Some(Request::RequestPut(put("d", vec![]))),
                },
            ],
            ..Default::default()
        };
        expect_err(
            c.kv.txn(dup).await,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        expect_err(
            c.kv.range(RangeRequest::default()).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        );
        expect_err(
            c.kv.put(put("", b"x".to_vec())).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        );
        expect_err(
            c.kv.put(PutRequest {
                lease: 0x1234,
                ..put("l", vec![])
            })
            .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        expect_err(
            c.kv.put(PutRequest {
                ignore_value: true,
                ..put("missing", vec![])
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        );
        expect_err(
            c.kv.range(RangeRequest {
                key: "keep".into(),
                revision: 100,
                ..Default::default()
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );
        expect_err(
            c.lease
                .lease_grant(LeaseGrantRequest {
                    ttl: 9_000_000_001,
                    id: 0,
                })
                .await,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        );
        // a range whose end sorts before its key is empty, not an error
        let empty =
            c.kv.range(RangeRequest {
                key: "z".into(),
                range_end: "a".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!((empty.get_ref().count, empty.get_ref().kvs.len()), (0, 0));

        // nothing above wrote anything: the revision and the key are as before
        let got =
            c.kv.range(RangeRequest {
                key: "keep".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.header.unwrap().revision, 2);
        assert_eq!(got.kvs[0].value, b"me");
        c.maintenance
            .status(StatusRequest {})
            .await
            .expect("still serving");
    });
}

fn oversized_requests(kind: Kind) {
    let s = TestServer::start(kind);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        // past --max-request-bytes (1.5 MiB) but within gRPC's limit: etcd's own error
        expect_err(
            c.kv.put(put("big", vec![b'x'; 1_700_000])).await,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        );
        // past gRPC's receive limit (max request bytes + 512 KiB): refused by the transport
        let e =
            c.kv.put(put("huge", vec![b'x'; 3_000_000]))
                .await
                .expect_err("must be refused");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        let ok =
            c.kv.put(put("small", b"fine".to_vec()))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(
            ok.header.unwrap().revision,
            2,
            "the refused puts wrote nothing"
        );
    });
}

fn watch_below_compaction(kind: Kind) {
    let s = TestServer::start(kind);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        for i in 0..5 {
            c.kv.put(put("w", vec![i])).await.unwrap();
        }
        c.kv.compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap();
        expect_err(
            c.kv.range(RangeRequest {
                key: "w".into(),
                revision: 3,
                ..Default::default()
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        expect_err(
            c.kv.compact(CompactionRequest {
                revision: 4,
                physical: false,
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "w".into(),
                start_revision: 2,
                ..Default::default()
            })),
        };
        let mut stream = c
            .watch
            .watch(tokio_stream::iter(vec![create]).chain(tokio_stream::pending()))
            .await
            .unwrap()
            .into_inner();
        let created = stream.next().await.unwrap().unwrap();
        assert!(created.created);
        let cancelled = stream.next().await.unwrap().unwrap();
        assert!(cancelled.canceled, "{cancelled:?}");
        assert_eq!(cancelled.compact_revision, 4);
        assert!(cancelled.events.is_empty());
        // and the server is fine afterwards
        let got =
            c.kv.range(RangeRequest {
                key: "w".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((got.kvs[0].value.clone(), got.kvs[0].version), (vec![4], 5));
    });
}

#[test]
fn etcd_is_present_in_ci() {
    // require_etcd panics when CI=true and the packages are missing; elsewhere it only reports
    let _ = require_etcd();
}
