//! Watch stream features over gRPC, each body against real etcd (the oracle) and cairn:
//! progress requests, progress notifications, fragments, prev_kv, filters, cancel, many
//! watchers on one stream whose reader stalls, and watchers going away with their stream.

use std::time::Duration;

use cairn_proto::etcdserverpb::watch_create_request::FilterType;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use cairn_proto::mvccpb::event::EventType;
use cairn_tests::grpc::block_on;
use cairn_tests::{Clients, Kind, TestServer};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

cairn_tests::both_kinds!(
    grpc: progress_and_cancel,
    fragments_split_large_revisions,
    prev_kv_and_filters,
    many_watchers_on_a_stalled_stream_miss_nothing,
    a_closed_stream_cancels_its_watchers,
);

const DEADLINE: Duration = Duration::from_secs(10);

fn create(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn put(k: &str, v: Vec<u8>) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}

/// Opens a watch stream with its first request already queued (etcd sends no response
/// headers before the first message); later requests go through the returned sender.
async fn open(
    c: &mut Clients,
    first: WatchRequest,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let (tx, rx) = mpsc::channel(8);
    tx.send(first).await.unwrap();
    let stream = c
        .watch
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

async fn next(s: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(DEADLINE, s.next())
        .await
        .expect("a watch response in time")
        .unwrap()
        .unwrap()
}

fn progress_and_cancel(kind: Kind) {
    let s = TestServer::start_with(
        kind,
        &["--experimental-watch-progress-notify-interval", "300ms"],
    );
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        c.kv.put(put("a", b"1".to_vec())).await.unwrap();
        let first = create(WatchCreateRequest {
            key: "a".into(),
            progress_notify: true,
            ..Default::default()
        });
        let (tx, mut stream) = open(&mut c, first).await;
        let created = next(&mut stream).await;
        assert!(created.created);
        let id = created.watch_id;
        // with nothing happening, progress notifications arrive carrying the current revision
        let progress = next(&mut stream).await;
        assert_eq!(
            (progress.watch_id, progress.events.len()),
            (id, 0),
            "{progress:?}"
        );
        assert_eq!(progress.header.unwrap().revision, 2);
        // a progress request is answered too
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await
        .unwrap();
        let answered = loop {
            let r = next(&mut stream).await;
            if r.watch_id != id {
                break r;
            }
        };
        assert!(
            answered.events.is_empty() && !answered.created && !answered.canceled,
            "{answered:?}"
        );
        assert_eq!(answered.header.unwrap().revision, 2);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: id,
            })),
        })
        .await
        .unwrap();
        let cancelled = loop {
            let r = next(&mut stream).await;
            if r.canceled {
                break r;
            }
        };
        assert_eq!(cancelled.watch_id, id);
    });
}

fn fragments_split_large_revisions(kind: Kind) {
    // responses above the gRPC limit (--max-request-bytes + 512 KiB in etcd) are split when
    // the watcher asks for fragments
    let s = TestServer::start_with(kind, &["--max-request-bytes", "4096"]);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        for i in 0..300 {
            c.kv.put(put(&format!("f/{i:03}"), vec![b'x'; 3000]))
                .await
                .unwrap();
        }
        // the deletes' prev_kvs make one ~900 KB revision from small requests
        let first = create(WatchCreateRequest {
            key: "f/".into(),
            range_end: "f0".into(),
            fragment: true,
            prev_kv: true,
            ..Default::default()
        });
        let (_tx, mut stream) = open(&mut c, first).await;
        assert!(next(&mut stream).await.created);
        let del = DeleteRangeRequest {
            key: "f/".into(),
            range_end: "f0".into(),
            ..Default::default()
        };
        c.kv.delete_range(del).await.unwrap();
        let mut events = 0;
        let mut parts = 0;
        loop {
            let r = next(&mut stream).await;
            parts += 1;
            events += r.events.len();
            if !r.fragment {
                break;
            }
        }
        assert_eq!(events, 300, "every event arrives");
        assert!(
            parts > 1,
            "one revision of ~900 KB is split under the ~516 KB limit"
        );
    });
}

fn prev_kv_and_filters(kind: Kind) {
    let s = TestServer::start(kind);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let first = create(WatchCreateRequest {
            key: "p".into(),
            prev_kv: true,
            ..Default::default()
        });
        let (tx, mut stream) = open(&mut c, first).await;
        assert!(next(&mut stream).await.created);
        tx.send(create(WatchCreateRequest {
            key: "p".into(),
            filters: vec![FilterType::Noput as i32],
            ..Default::default()
        }))
        .await
        .unwrap();
        let nodel = next(&mut stream).await;
        assert!(nodel.created);
        c.kv.put(put("p", b"one".to_vec())).await.unwrap();
        c.kv.put(put("p", b"two".to_vec())).await.unwrap();
        c.kv.delete_range(DeleteRangeRequest {
            key: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let r = next(&mut stream).await;
            for e in r.events {
                let prev = e.prev_kv.map(|kv| kv.value).unwrap_or_default();
                seen.push((r.watch_id, e.r#type, prev));
            }
        }
        let first = seen
            .iter()
            .filter(|(w, _, _)| *w != nodel.watch_id)
            .map(|(_, t, p)| (*t, p.clone()))
            .collect::<Vec<_>>();
        assert_eq!(
            first,
            vec![
                (EventType::Put as i32, vec![]),
                (EventType::Put as i32, b"one".to_vec()),
                (EventType::Delete as i32, b"two".to_vec()),
            ],
            "prev_kv: none for a create, the previous value otherwise"
        );
        let filtered: Vec<i32> = seen
            .iter()
            .filter(|(w, _, _)| *w == nodel.watch_id)
            .map(|(_, t, _)| *t)
            .collect();
        assert_eq!(
            filtered,
            vec![EventType::Delete as i32],
            "NOPUT leaves only the delete"
        );
    });
}

/// Twenty watchers share one stream; 400 puts of 1 KiB land while the client reads nothing, so
/// every buffer on the way fills (the server's per-stream queue, HTTP/2 flow control) and the
/// watchers must catch up from the store. Each still gets every event once, in order.
fn many_watchers_on_a_stalled_stream_miss_nothing(kind: Kind) {
    const WATCHERS: usize = 20;
    const PUTS: i64 = 400;
    let s = TestServer::start(kind);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let on_prefix = || {
            create(WatchCreateRequest {
                key: "w/".into(),
                range_end: "w0".into(),
                ..Default::default()
            })
        };
        let (tx, mut stream) = open(&mut c, on_prefix()).await;
        for _ in 1..WATCHERS {
            tx.send(on_prefix()).await.unwrap();
        }
        let mut seen: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
        while seen.len() < WATCHERS {
            let r = next(&mut stream).await;
            assert!(r.created && r.events.is_empty(), "{r:?}");
            seen.insert(r.watch_id, Vec::new());
        }
        // the revision of each put, in order
        let mut want = Vec::new();
        for i in 0..PUTS {
            let put = c.kv.put(put(&format!("w/{i}"), vec![b'v'; 1024]));
            want.push(put.await.unwrap().into_inner().header.unwrap().revision);
        }
        while seen.values().any(|revs| revs.len() < want.len()) {
            let r = next(&mut stream).await;
            assert!(!r.canceled, "{r:?}");
            let revs = seen.get_mut(&r.watch_id).expect("a known watcher");
            revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
        }
        for (id, revs) in &seen {
            assert_eq!(revs, &want, "watcher {id}");
        }
    });
}

/// A client that drops its stream (or its connection) leaves no watcher behind: the
/// server's watcher gauge goes back to what it was.
fn a_closed_stream_cancels_its_watchers(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    let watchers =
        || cairn_tests::http::metric(&ep, "etcd_debugging_mvcc_watcher_total").expect("the gauge");
    let before = watchers();
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let first = create(WatchCreateRequest {
            key: "a".into(),
            ..Default::default()
        });
        let (tx, mut stream) = open(&mut c, first).await;
        for key in ["b", "c"] {
            tx.send(create(WatchCreateRequest {
                key: key.into(),
                ..Default::default()
            }))
            .await
            .unwrap();
        }
        for _ in 0..3 {
            assert!(next(&mut stream).await.created);
        }
        assert_eq!(watchers(), before + 3.0);
        drop((tx, stream, c));
    });
    cairn_tests::wait::until(DEADLINE, "the watchers to go", || {
        (watchers() == before).then_some(())
    });
}

/// A progress request answered while a watcher still replays history must not run ahead of
/// the events it has yet to send (found by the robustness harness: a notification at the
/// current revision overtook a watcher's queued events). Cairn only: etcd 3.4.23, Debian's,
/// has this bug (etcd issue 15220, fixed by etcd PR 15237 in later releases); the harness
/// found it there too.
#[test]
fn a_requested_progress_notification_waits_for_the_events_before_it() {
    let s = TestServer::start(Kind::Cairn);
    block_on(async {
        let mut c = Clients::connect(&s.endpoint()).await.unwrap();
        let mut last = 0;
        for i in 0..2000 {
            let r =
                c.kv.put(put(&format!("k/{i:04}"), b"v".to_vec()))
                    .await
                    .unwrap();
            last = r.into_inner().header.unwrap().revision;
        }
        let ask = || WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        };
        // a watcher from revision 1 replays 2000 revisions; the request comes right after
        let (tx, mut stream) = open(
            &mut c,
            create(WatchCreateRequest {
                key: vec![0],
                range_end: vec![0],
                start_revision: 1,
                ..Default::default()
            }),
        )
        .await;
        tx.send(ask()).await.unwrap();
        let mut seen = 0;
        let notified = loop {
            let r = next(&mut stream).await;
            if let Some(e) = r.events.last() {
                seen = e.kv.as_ref().unwrap().mod_revision;
            } else if r.watch_id == -1 {
                break r.header.unwrap().revision;
            }
        };
        assert_eq!(notified, last);
        assert_eq!(
            seen, last,
            "a progress notification at revision {notified} came after events up to {seen} only"
        );

        // a watcher that catches up without a single event (a quiet key) is answered too
        // (etcd's bug 17507 was a deferred notification that never came)
        let (tx, mut stream) = open(
            &mut c,
            create(WatchCreateRequest {
                key: b"quiet".to_vec(),
                start_revision: 1,
                ..Default::default()
            }),
        )
        .await;
        tx.send(ask()).await.unwrap();
        let answered = loop {
            let r = next(&mut stream).await;
            if r.watch_id == -1 {
                break r;
            }
            assert!(r.events.is_empty(), "{r:?}");
        };
        assert_eq!(answered.header.unwrap().revision, last);
    });
}
