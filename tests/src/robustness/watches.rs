//! Watch streams under faults: one watcher per member, on the whole keyspace from revision 1
//! with `prev_kv`, starting again after the last revision it got whenever its stream breaks,
//! and asking for a progress notification every 200 ms.
//! What each got must be exactly the history: in revision order, each revision's events
//! together, none missing (revisions have no holes), none twice, the same for every
//! watcher, and every acknowledged put in it; no progress notification ahead of the events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::watch_client::WatchClient;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use tokio_stream::StreamExt;

/// One event as a watcher got it: (revision, key, put?, value, prev value).
pub type Seen = (i64, Vec<u8>, bool, Vec<u8>, Option<Vec<u8>>);

/// How often a watcher asks for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What one watcher got.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub events: Vec<Seen>,
    /// Progress notifications: how many events had come before each, and its revision.
    pub progress: Vec<(usize, i64)>,
    /// The compact revision a watch was refused with, if one was.
    pub compacted: Option<i64>,
}

impl Stream {
    pub fn last(&self) -> Option<i64> {
        self.events.last().map(|e| e.0)
    }
}

/// Watches `endpoint` from `from` until `done` says to stop and it has reached `done`'s
/// revision; with `progress`, asks for a progress notification when idle. A watch refused
/// as compacted ends it.
pub async fn watch(
    endpoint: String,
    from: i64,
    progress: bool,
    got: Arc<Mutex<Stream>>,
    done: Arc<Mutex<Option<i64>>>,
) {
    let deadline = || *done.lock().expect("lock");
    loop {
        let last = got.lock().expect("lock").last().unwrap_or(from - 1);
        if let Some(end) = deadline()
            && last >= end
        {
            return;
        }
        let Ok(ch) = crate::grpc::channel(&endpoint, Duration::from_secs(2)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: vec![0],
                range_end: vec![0],
                start_revision: last + 1,
                prev_kv: true,
                ..Default::default()
            })),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        if tx.send(create).await.is_err() {
            continue;
        }
        let mut client = WatchClient::new(ch);
        let stream = tokio::time::timeout(
            Duration::from_secs(2),
            client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await;
        let Ok(Ok(stream)) = stream else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        let mut asked = Instant::now();
        loop {
            // where does the stream stand? asked every so often, busy or not
            if progress && asked.elapsed() >= PROGRESS_EVERY {
                asked = Instant::now();
                let ask = WatchRequest {
                    request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                };
                let _ = tx.try_send(ask);
            }
            let next = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
            match next {
                Ok(Some(Ok(resp))) => {
                    let mut g = got.lock().expect("lock");
                    if resp.compact_revision != 0 {
                        g.compacted = Some(resp.compact_revision);
                        return;
                    }
                    let notification = resp.events.is_empty()
                        && !resp.created
                        && !resp.canceled
                        && resp.watch_id == -1;
                    if notification && let Some(h) = resp.header {
                        let n = g.events.len();
                        g.progress.push((n, h.revision));
                    }
                    for e in resp.events {
                        let kv = e.kv.unwrap_or_default();
                        g.events.push((
                            kv.mod_revision,
                            kv.key,
                            e.r#type == 0,
                            kv.value,
                            e.prev_kv.map(|p| p.value),
                        ));
                    }
                }
                // no event for a while: done, or still waiting (and asking where it stands)
                Err(_) => {
                    let last = got.lock().expect("lock").last().unwrap_or(0);
                    if deadline().is_some_and(|end| last >= end) {
                        drop(tx);
                        return;
                    }
                }
                // broken: start again after the last revision got
                _ => break,
            }
        }
        drop(tx);
    }
}

/// What is wrong with one watcher's stream against the reference (`want`), if anything.
pub fn check(name: &str, stream: &Stream, want: &[Seen]) -> Vec<String> {
    let got = &stream.events;
    let mut out = Vec::new();
    for &(n, rev) in &stream.progress {
        if let Some(next) = got.get(n)
            && next.0 <= rev
        {
            out.push(format!(
                "{name}: a progress notification at revision {rev} came before the event at revision {}",
                next.0
            ));
        }
    }
    for w in got.windows(2) {
        if w[1].0 < w[0].0 {
            out.push(format!(
                "{name}: revision {} after revision {}",
                w[1].0, w[0].0
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in got {
        if !seen.insert((e.0, e.1.clone())) {
            out.push(format!(
                "{name}: the event of {} at revision {} came twice",
                String::from_utf8_lossy(&e.1),
                e.0
            ));
        }
    }
    if out.is_empty() && got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        out.push(format!(
            "{name}: {} events, the reference {}; the first difference at event {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(at).map(|e| (e.0, String::from_utf8_lossy(&e.1).into_owned())),
            want.get(at).map(|e| (e.0, String::from_utf8_lossy(&e.1).into_owned())),
        ));
    }
    out
}

/// Holes in the reference's revisions: every write makes one revision, so after revision 1
/// (the empty store) every revision up to the last has events.
pub fn check_contiguous(want: &[Seen]) -> Vec<String> {
    let mut expect = 2;
    let mut out = Vec::new();
    for e in want {
        if e.0 > expect {
            out.push(format!(
                "no events of revisions {expect} to {} (the next is {})",
                e.0 - 1,
                e.0
            ));
        }
        expect = expect.max(e.0 + 1);
    }
    out
}

/// Revisions of the reference where a put's prev_kv is not the key's value before it.
pub fn check_prev_kv(want: &[Seen]) -> Vec<String> {
    let mut value: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
    let mut out = Vec::new();
    for (rev, key, put, v, prev) in want {
        if prev.as_ref() != value.get(key) {
            out.push(format!(
                "revision {rev}: prev_kv of {} is {prev:?}, the key held {:?}",
                String::from_utf8_lossy(key),
                value.get(key)
            ));
        }
        if *put {
            value.insert(key.clone(), v.clone());
        } else {
            value.remove(key);
        }
    }
    out
}

/// Blocks until every watcher reached `end` or `timeout` passed.
pub fn wait_all(got: &[Arc<Mutex<Stream>>], end: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if got
            .iter()
            .all(|g| g.lock().expect("lock").last().is_some_and(|e| e >= end))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
