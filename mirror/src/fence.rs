//! The fence: one mirror per destination prefix. A mirror claims the prefix by creating the
//! owner key under its own destination lease, keeps the lease alive, and makes every data txn
//! conditional on the owner key still holding its ID. A second mirror finds the key and is
//! refused; a mirror that died (kill -9) stops renewing, its lease expires after the TTL, and
//! the next start takes over.

use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::Error;
use crate::keys::show;

/// A held claim.
#[derive(Debug, Clone)]
pub struct Fence {
    pub owner_key: Vec<u8>,
    /// The owner key's exact value: what every txn compares against.
    pub value: Vec<u8>,
    pub lease: i64,
    pub ttl: Duration,
}

impl Fence {
    pub fn compare(&self) -> Compare {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: self.owner_key.clone(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::Value(self.value.clone())),
        }
    }

    /// A txn's failure branch: read the owner key, to tell a lapse from a takeover.
    pub fn on_failure(&self) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: self.owner_key.clone(),
                ..Default::default()
            })),
        }
    }

    /// The error for a txn whose compare failed, given what the failure branch read.
    pub fn lost(&self, current: Option<&[u8]>) -> Error {
        match current {
            None => Error::FenceLost {
                owner_key: show(&self.owner_key),
            },
            Some(v) => Error::Fenced {
                owner: String::from_utf8_lossy(v).into_owned(),
                owner_key: show(&self.owner_key),
            },
        }
    }
}

/// Claims `owner_key` for `identity` (a short JSON describing this mirror). Waits while a
/// previous owner's lease runs out; refuses at once when that owner is seen renewing it.
pub async fn acquire(
    dest: &Client,
    owner_key: Vec<u8>,
    identity: &str,
    ttl: Duration,
) -> Result<Fence, Error> {
    let grant = dest
        .lease()
        .lease_grant(dest.request(
            LeaseGrantRequest {
                ttl: ttl.as_secs() as i64,
                id: 0,
            },
            true,
        ))
        .await
        .map_err(|s| dest.err(s))?
        .into_inner();
    let fence = Fence {
        owner_key,
        value: identity.as_bytes().to_vec(),
        lease: grant.id,
        ttl,
    };
    let deadline = Instant::now() + ttl * 2 + Duration::from_secs(2);
    // (owner value, its lease, the remaining TTL last seen)
    let mut seen: Option<(Vec<u8>, i64, i64)> = None;
    for attempt in 0.. {
        // Our lease must outlive the wait for a previous owner's to run out.
        if attempt > 0 && !keep_alive_once(dest, fence.lease, ttl).await? {
            return Box::pin(acquire(dest, fence.owner_key, identity, ttl)).await;
        }
        let claim = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: fence.owner_key.clone(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::CreateRevision(0)),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: fence.owner_key.clone(),
                    value: fence.value.clone(),
                    lease: fence.lease,
                    ..Default::default()
                })),
            }],
            failure: vec![fence.on_failure()],
        };
        let r = dest.txn(claim).await?;
        if r.succeeded {
            return Ok(fence);
        }
        let Some(kv) = crate::destination::first_range_kv(&r) else {
            continue; // deleted between the compare and the read
        };
        let remaining = dest.time_to_live(kv.lease).await?.ttl;
        let refreshed = matches!(&seen, Some((v, l, prev)) if *v == kv.value && *l == kv.lease && remaining > *prev);
        if refreshed || Instant::now() > deadline {
            return Err(fence.lost(Some(&kv.value)));
        }
        seen = Some((kv.value.clone(), kv.lease, remaining));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    unreachable!("the claim loop only returns")
}

/// Keeps the fence's lease alive until the lease is gone or `stop` fires. Returns when the
/// destination says the lease no longer exists (the engine then finds the fence lost on its
/// next txn); network errors are retried on the next tick.
pub async fn keep_alive(pool: std::sync::Arc<crate::client::Pool>, fence: Fence) {
    let period = fence.ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        let Ok(dest) = pool.get().await else { continue };
        match keep_alive_once(&dest, fence.lease, period).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {}
        }
    }
}

/// One keepalive round trip: `Ok(false)` when the lease does not exist any more.
pub async fn keep_alive_once(dest: &Client, lease: i64, timeout: Duration) -> Result<bool, Error> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id: lease }).await;
    let call = async {
        let mut stream = dest
            .lease()
            .lease_keep_alive(dest.request(ReceiverStream::new(rx), false))
            .await
            .map_err(|s| dest.err(s))?
            .into_inner();
        match stream.next().await {
            Some(Ok(r)) => Ok(r.ttl > 0),
            Some(Err(s)) => Err(dest.err(s)),
            None => Err(Error::WatchBroken("lease keepalive stream closed".into())),
        }
    };
    tokio::time::timeout(timeout.max(Duration::from_secs(1)), call)
        .await
        .unwrap_or_else(|_| Err(Error::WatchBroken("lease keepalive timed out".into())))
}
