//! Watch under auth: a watch needs READ on its whole range; a refused create is answered
//! created and canceled at once (etcdctl prints the reason and exits 5) while the stream
//! stays usable for permitted watches.

use std::time::Duration;

use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use cairn_tests::grpc::{block_on, with_token};
use cairn_tests::{Clients, Kind};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Ctl, auth_server};

auth_tests!(
    watch_needs_read_permission,
    refused_watch_is_created_and_canceled,
    open_watch_outlives_a_revoke_and_its_user
);

const WAIT: Duration = Duration::from_secs(15);
/// etcdctl's `ExitInterrupted`: a watch canceled by the server.
const EXIT_INTERRUPTED: i32 = 5;

/// What etcdctl writes to stderr when the server cancels its watch for `reason`.
fn canceled(reason: &str) -> String {
    format!("watch was canceled ({reason})\nError: watch is canceled by the server\n")
}

/// etcd's e2e `authTestWatch`: test-user may read [key, key4).
fn watch_needs_read_permission(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    root.ok(&[
        "role",
        "grant-permission",
        "test-role",
        "readwrite",
        "key",
        "key4",
    ]);
    for (k, v) in [
        ("key", "value"),
        ("key1", "val1"),
        ("key3", "val3"),
        ("key2", "val2"),
    ] {
        assert_eq!(user.ok(&["put", k, v]), "OK\n");
    }

    let mut one = user.background(&["watch", "key", "--rev", "1"]);
    assert_eq!(one.wait_lines(3, WAIT), ["PUT", "key", "value"]);
    let mut range = user.background(&["watch", "key", "key3", "--rev", "1"]);
    assert_eq!(
        range.wait_lines(9, WAIT),
        [
            "PUT", "key", "value", "PUT", "key1", "val1", "PUT", "key2", "val2"
        ]
    );
    assert_eq!(user.ok(&["put", "key1", "live"]), "OK\n");
    assert_eq!(range.wait_lines(12, WAIT)[9..], ["PUT", "key1", "live"]);

    let denied =
        canceled("rpc error: code = PermissionDenied desc = etcdserver: permission denied");
    for args in [
        &["watch", "key5", "--rev", "1"][..],
        &["watch", "key", "key6", "--rev", "1"],
    ] {
        let f = user.fail(args);
        assert_eq!(
            (f.code, f.stdout.as_str(), f.messages().as_str()),
            (EXIT_INTERRUPTED, "", denied.as_str()),
            "{args:?}"
        );
    }
    let f = Ctl::anonymous(&s).fail(&["watch", "key"]);
    let no_user =
        canceled("rpc error: code = InvalidArgument desc = etcdserver: user name is empty");
    assert_eq!(
        (f.code, f.messages().as_str()),
        (EXIT_INTERRUPTED, no_user.as_str())
    );
}

/// etcd checks a watch's permission once, when it is created: a watch already open keeps
/// its events after the permission is revoked and even after its user is deleted (etcd
/// 3.4.23 and 3.5 alike; the send loop never consults the auth store). Cairn does the same,
/// as docs/security.md says; a new watch is refused at once.
fn open_watch_outlives_a_revoke_and_its_user(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    root.ok(&[
        "role",
        "grant-permission",
        "test-role",
        "read",
        "w/",
        "--prefix",
    ]);
    // from revision 1, so the first put is seen whether it lands before or after the create
    let mut open = user.background(&["watch", "w/", "--prefix", "--rev", "1"]);
    root.ok(&["put", "w/1", "a"]);
    assert_eq!(open.wait_lines(3, WAIT), ["PUT", "w/1", "a"]);

    assert_eq!(
        root.ok(&["role", "revoke-permission", "test-role", "w/", "--prefix"]),
        "Permission of range [w/, w0) is revoked from role test-role\n"
    );
    root.ok(&["put", "w/2", "b"]);
    assert_eq!(open.wait_lines(6, WAIT)[3..], ["PUT", "w/2", "b"]);
    let denied =
        canceled("rpc error: code = PermissionDenied desc = etcdserver: permission denied");
    let f = user.fail(&["watch", "w/", "--prefix"]);
    assert_eq!(
        (f.code, f.messages().as_str()),
        (EXIT_INTERRUPTED, denied.as_str())
    );

    assert_eq!(
        root.ok(&["user", "delete", "test-user"]),
        "User test-user deleted\n"
    );
    root.ok(&["put", "w/3", "c"]);
    assert_eq!(open.wait_lines(9, WAIT)[6..], ["PUT", "w/3", "c"]);
}

fn create(key: &str) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

async fn next(stream: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a watch response in time")
        .expect("the stream stays open")
        .expect("a watch response, not an error")
}

/// The refused create's answer: watch ID -1, created and canceled, the reason being the
/// whole gRPC error text etcd formats (`rpc error: code = ... desc = ...`).
fn assert_refused(r: &WatchResponse, reason: &str) {
    assert_eq!(
        (
            r.watch_id,
            r.created,
            r.canceled,
            r.cancel_reason.as_str(),
            r.events.len()
        ),
        (-1, true, true, reason, 0),
        "{r:?}"
    );
}

fn refused_watch_is_created_and_canceled(kind: Kind) {
    let (s, root, _user) = auth_server(kind);
    root.ok(&["put", "hoo", "x"]);
    let ep = s.endpoint();
    let revision = block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let token = c.authenticate("test-user", "pass").await.unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.send(create("hoo")).await.unwrap();
        let mut stream = c
            .watch
            .watch(with_token(ReceiverStream::new(rx), &token))
            .await
            .unwrap()
            .into_inner();
        let refused = next(&mut stream).await;
        assert_refused(
            &refused,
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
        );
        let revision = refused.header.as_ref().expect("a header").revision;

        // the same stream serves a permitted watch next, with the first watch ID
        tx.send(create("foo")).await.unwrap();
        let created = next(&mut stream).await;
        assert_eq!(
            (created.watch_id, created.created, created.canceled),
            (0, true, false),
            "{created:?}"
        );
        let put = PutRequest {
            key: "foo".into(),
            value: "bar".into(),
            ..Default::default()
        };
        c.kv.put(with_token(put, &token)).await.unwrap();
        let event = next(&mut stream).await;
        assert_eq!(event.watch_id, 0, "{event:?}");
        assert_eq!(event.events.len(), 1, "{event:?}");
        assert_eq!(
            event.events[0].kv.as_ref().map(|kv| kv.key.as_slice()),
            Some(&b"foo"[..])
        );

        // without a token, the reason is the missing user
        let (tx2, rx2) = mpsc::channel(4);
        tx2.send(create("foo")).await.unwrap();
        let mut anonymous = c
            .watch
            .watch(ReceiverStream::new(rx2))
            .await
            .unwrap()
            .into_inner();
        assert_refused(
            &next(&mut anonymous).await,
            "rpc error: code = InvalidArgument desc = etcdserver: user name is empty",
        );
        drop(tx);
        revision
    });
    assert_eq!(
        revision, 2,
        "the header carries the store's revision (hoo's put)"
    );
}
