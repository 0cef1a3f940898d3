//! Concurrent clients on a few keys (so they contend): puts, deletes, txns that compare a
//! key's mod_revision with the one the client last read (a CAS, as Kubernetes writes) or
//! with 0 (create if absent), linearizable gets of one key, and linearizable and
//! serializable ranges over the whole prefix. Each is recorded with its call and return
//! time. A client whose member fails moves on to the next endpoint; what it did not get an
//! answer to is recorded as unknown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse, request_op,
};
use tonic::transport::Channel;

use super::history::{Clock, History, RangeSeen, Recorded};
use super::model::{KvOp, TxnOutcome};
use crate::prng::Rng;

/// How long one call may take before its answer counts as lost.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a client waits after a failed call, as a real client backs off. Without it, a
/// member refusing everything at once (its disk full) made thousands of lost writes in a
/// second, each pending to the end of the history, and the checker could not decide (found by
/// the soak).
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Everything the harness writes is under this prefix.
pub const PREFIX: &[u8] = b"robustness/";

pub fn key_name(key: u8) -> Vec<u8> {
    format!("robustness/key-{key}").into_bytes()
}

/// The key number of a name from [`key_name`].
fn key_number(name: &[u8]) -> Option<u8> {
    name.strip_prefix(b"robustness/key-".as_slice())
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
}

/// The end of a range over everything starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("a prefix") += 1;
    end
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
    // what this client last read of each key: its next txn on the key compares with it
    let mut last_read: HashMap<u8, Option<(u64, i64)>> = HashMap::new();
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
        if roll >= 85 {
            // a range over the prefix: one read of every key, and one snapshot to check
            let serializable = roll >= 93;
            let ok = range_all(client, serializable, keys, id, call, &clock, &history).await;
            if !ok {
                kv = None;
                at = (at + 1) % endpoints.len();
                tokio::time::sleep(RETRY_AFTER).await;
            }
            continue;
        }
        let (op, ok) = if roll < 35 {
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
        } else if roll < 50 {
            let expect = last_read.get(&key).copied().flatten();
            let outcome = timed(client.txn(cas(key, expect, value)))
                .await
                .ok()
                .map(|r| txn_outcome(&r));
            let ok = outcome.is_some();
            (
                KvOp::Txn {
                    key,
                    expect,
                    value,
                    outcome,
                },
                ok,
            )
        } else if roll < 75 {
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
        if let KvOp::Get { found, .. }
        | KvOp::Txn {
            outcome: Some(TxnOutcome::Got(found)),
            ..
        } = &op
            && ok
        {
            last_read.insert(key, *found);
        }
        let returned = ok.then(|| clock.now());
        history.record(Recorded {
            client: id,
            call,
            returned,
            op,
        });
        if !ok {
            // this member may be down: the next one, on a fresh connection, after a pause
            kv = None;
            at = (at + 1) % endpoints.len();
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}

/// A txn on `key`: if its mod_revision is the one `expect` was read at (0: absent), put
/// `value`, else get the key.
fn cas(key: u8, expect: Option<(u64, i64)>, value: u64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            key: key_name(key),
            target: CompareTarget::Mod as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(TargetUnion::ModRevision(expect.map_or(0, |e| e.1))),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key_name(key),
                value: value.to_string().into_bytes(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: key_name(key),
                ..Default::default()
            })),
        }],
    }
}

fn txn_outcome(r: &TxnResponse) -> TxnOutcome {
    if r.succeeded {
        return TxnOutcome::Put(r.header.as_ref().map_or(0, |h| h.revision));
    }
    match r.responses.first().and_then(|o| o.response.as_ref()) {
        Some(Response::ResponseRange(range)) => TxnOutcome::Got(found(range)),
        _ => TxnOutcome::Got(None),
    }
}

/// A range over the whole prefix. Linearizable, it is also a get of every key, all at once;
/// either way it is recorded whole, to be checked against the history at its revision.
/// False when it failed.
async fn range_all(
    client: &mut KvClient<Channel>,
    serializable: bool,
    keys: u8,
    id: u32,
    call: i64,
    clock: &Clock,
    history: &History,
) -> bool {
    let req = RangeRequest {
        key: PREFIX.to_vec(),
        range_end: prefix_end(PREFIX),
        serializable,
        ..Default::default()
    };
    let Ok(r) = timed(client.range(req)).await else {
        return false;
    };
    let returned = clock.now();
    let kvs: Vec<(Vec<u8>, Vec<u8>, i64)> = r
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
        .collect();
    if !serializable {
        for key in 0..keys {
            let found = r
                .kvs
                .iter()
                .find(|kv| key_number(&kv.key) == Some(key))
                .map(|kv| (parse_value(&kv.value), kv.mod_revision));
            history.record(Recorded {
                client: id,
                call,
                returned: Some(returned),
                op: KvOp::Get { key, found },
            });
        }
    }
    history.record_range(RangeSeen {
        serializable,
        returned,
        revision: r.header.map_or(0, |h| h.revision),
        kvs,
    });
    true
}

fn parse_value(v: &[u8]) -> u64 {
    String::from_utf8_lossy(v).parse().unwrap_or(0)
}

/// What a get of one key found: the value the harness wrote and its mod_revision.
pub fn found(r: &RangeResponse) -> Option<(u64, i64)> {
    r.kvs
        .first()
        .map(|kv| (parse_value(&kv.value), kv.mod_revision))
}

/// `call`'s answer, or `Err` when it failed or took longer than [`CALL_TIMEOUT`].
pub(crate) async fn timed<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ()> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        _ => Err(()),
    }
}
