//! Txn under auth: every compare needs READ, every op of both branches is checked whichever
//! branch runs, a refused txn writes nothing, and nested txns are checked op by op.

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare,
};
use cairn_tests::grpc::{block_on, with_token};
use cairn_tests::{Clients, Kind};

use crate::{DENIED, assert_status, auth_server, refuses_like_later_etcd};

auth_tests!(
    txn_needs_read_on_compares_and_every_op_of_both_branches,
    nested_txn_ops_are_checked,
);

/// etcd's e2e `authTestTxn`: keys ending in 1 are not granted to test-user, keys ending in
/// 2 are.
fn txn_needs_read_on_compares_and_every_op_of_both_branches(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    for k in ["c1", "s1", "f1", "c2", "s2", "f2"] {
        root.ok(&["put", k, "v"]);
    }
    for k in ["c2", "s2", "f2"] {
        root.ok(&["role", "grant-permission", "test-role", "readwrite", k]);
    }
    let ok = |script: &str| user.ok_stdin(&["txn"], script);
    let denied = |script: &str| {
        let f = user.fail_stdin(&["txn"], script);
        assert_eq!((f.code, f.last_line()), (1, DENIED), "txn <<{script:?}");
    };

    assert_eq!(
        ok("version(\"c2\") = \"1\"\n\nget s2\n\nget f2\n\n"),
        "SUCCESS\n\ns2\nv\n"
    );
    assert_eq!(
        ok("version(\"c2\") = \"9\"\n\nget s2\n\nget f2\n\n"),
        "FAILURE\n\nf2\nv\n"
    );
    denied("version(\"c1\") = \"1\"\n\nget s2\n\nget f2\n\n");
    denied("version(\"c2\") = \"1\"\n\nget s1\n\nget f2\n\n");
    // the failure branch does not run, and is checked all the same
    denied("version(\"c2\") = \"1\"\n\nget s2\n\nget f1\n\n");
    // writes: a refused op anywhere refuses the whole txn, which then writes nothing
    denied("version(\"c2\") = \"1\"\n\nput s2 new\n\nput f1 x\n\n");
    denied("version(\"c2\") = \"1\"\n\nput s1 new\n\n\n");
    denied("version(\"c2\") = \"1\"\n\nput s2 new\ndel s1\n\n\n");
    assert_eq!(root.ok(&["get", "s2"]), "s2\nv\n");
    assert_eq!(root.ok(&["get", "s1"]), "s1\nv\n");
    assert_eq!(root.ok(&["get", "f1"]), "f1\nv\n");
    assert_eq!(
        ok("value(\"c2\") = \"v\"\n\nput s2 new\n\ndel f2\n\n"),
        "SUCCESS\n\nOK\n"
    );
    assert_eq!(root.ok(&["get", "s2"]), "s2\nnew\n");
}

fn put(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.into(),
            value: b"nested".to_vec(),
            ..Default::default()
        })),
    }
}

fn range(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

fn version_is_zero(key: &str) -> Compare {
    Compare {
        key: key.into(),
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Version as i32,
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    }
}

/// A txn whose success branch is one nested txn.
fn nested(inner: TxnRequest) -> TxnRequest {
    TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestTxn(inner)),
        }],
        ..Default::default()
    }
}

/// A nested txn's compares and ops need the same permissions as top-level ones. etcd
/// 3.4.23 does not look inside nested txns (fixed in 3.4.42 and 3.5.28, "enforce auth
/// checks for nested txn ops"): there test-user writes and reads hoo.
fn nested_txn_ops_are_checked(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    root.ok(&["put", "hoo", "root's"]);
    let ep = s.endpoint();
    let fixed = refuses_like_later_etcd(kind);
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let token = c.authenticate("test-user", "pass").await.unwrap();
        let txn = |inner: TxnRequest| with_token(nested(inner), &token);
        let granted = TxnRequest {
            compare: vec![version_is_zero("foo")],
            success: vec![put("foo")],
            ..Default::default()
        };
        let r = c.kv.txn(txn(granted)).await.unwrap().into_inner();
        assert!(r.succeeded, "{r:?}");

        let refused = [
            TxnRequest {
                success: vec![put("hoo")],
                ..Default::default()
            },
            TxnRequest {
                success: vec![range("hoo")],
                ..Default::default()
            },
            TxnRequest {
                compare: vec![version_is_zero("hoo")],
                ..Default::default()
            },
            TxnRequest {
                failure: vec![put("foo"), put("hoo")],
                ..Default::default()
            },
        ];
        for inner in refused {
            let what = format!("{inner:?}");
            let answer = c.kv.txn(txn(inner)).await;
            if fixed {
                assert_status(
                    answer,
                    tonic::Code::PermissionDenied,
                    "etcdserver: permission denied",
                );
            } else {
                assert!(
                    answer.is_ok(),
                    "etcd 3.4.23 lets {what} through: {answer:?}"
                );
            }
        }
    });
    let hoo = root.ok(&["get", "hoo"]);
    if fixed {
        assert_eq!(hoo, "hoo\nroot's\n", "no nested write went through");
    } else {
        assert_eq!(hoo, "hoo\nnested\n", "etcd 3.4.23's nested put wrote it");
    }
}
