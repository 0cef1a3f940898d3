//! Concurrent clients: puts, linearizable gets and deletes on a few keys (so they contend),
//! each recorded with its call and return time. A client whose member fails moves on to
//! the next endpoint; what it did not get an answer to is recorded as unknown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse};
use tonic::transport::Channel;

use super::history::{Clock, History, Recorded};
use super::model::KvOp;
use crate::prng::Rng;

/// How long one call may take before its answer counts as lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub fn key_name(key: u8) -> Vec<u8> {
    format!("robustness/key-{key}").into_bytes()
}

/// Drives one client until `until`: `seed` picks its operations, `endpoints` are tried in
/// turn from `first`.
pub async fn client(
    id: u32,
    seed: u64,
    keys: u8,
    endpoints: Arc<Vec<String>>,
    until: Instant,
    clock: Arc<Clock>,
    history: Arc<History>,
) {
    let mut rng = Rng::new(seed ^ (u64::from(id) << 32));
    let mut at = id as usize % endpoints.len();
    let mut kv: Option<KvClient<Channel>> = None;
    let mut counter = 0u64;
    while Instant::now() < until {
        let client = match kv.as_mut() {
            Some(c) => c,
            None => match crate::grpc::channel(&endpoints[at], CALL_TIMEOUT).await {
                Ok(ch) => kv.insert(KvClient::new(ch)),
                Err(_) => {
                    at = (at + 1) % endpoints.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let key = rng.below(u64::from(keys)) as u8;
        let roll = rng.below(100);
        counter += 1;
        let value = (u64::from(id) << 40) | counter;
        let call = clock.now();
        let (op, ok) = if roll < 45 {
            let req = PutRequest {
                key: key_name(key),
                value: value.to_string().into_bytes(),
                ..Default::default()
            };
            let r = timed(client.put(req)).await;
            let revision = r
                .as_ref()
                .ok()
                .and_then(|r| r.header.as_ref())
                .map(|h| h.revision);
            (
                KvOp::Put {
                    key,
                    value,
                    revision,
                },
                revision.is_some(),
            )
        } else if roll < 88 {
            let req = RangeRequest {
                key: key_name(key),
                ..Default::default()
            };
            match timed(client.range(req)).await {
                Ok(r) => (
                    KvOp::Get {
                        key,
                        found: found(&r),
                    },
                    true,
                ),
                Err(()) => (KvOp::Get { key, found: None }, false),
            }
        } else {
            let req = DeleteRangeRequest {
                key: key_name(key),
                ..Default::default()
            };
            let deleted = timed(client.delete_range(req))
                .await
                .ok()
                .map(|r| r.deleted > 0);
            let ok = deleted.is_some();
            (KvOp::Delete { key, deleted }, ok)
        };
        let returned = ok.then(|| clock.now());
        history.record(Recorded {
            client: id,
            call,
            returned,
            op,
        });
        if !ok {
            // this member may be down: the next one, on a fresh connection
            kv = None;
            at = (at + 1) % endpoints.len();
        }
    }
}

/// What a get of one key found: the value the harness wrote and its mod_revision.
pub fn found(r: &RangeResponse) -> Option<(u64, i64)> {
    r.kvs.first().map(|kv| {
        let v = String::from_utf8_lossy(&kv.value).parse().unwrap_or(0);
        (v, kv.mod_revision)
    })
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ()> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        _ => Err(()),
    }
}
