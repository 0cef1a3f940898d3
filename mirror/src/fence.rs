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

    /// The claim refused: `owner` holds the key and is alive (`why` says how we know).
    pub fn refused(&self, owner: &[u8], why: String) -> Error {
        Error::Fenced {
            owner: String::from_utf8_lossy(owner).into_owned(),
            owner_key: show(&self.owner_key),
            why,
        }
    }

    /// The error for a txn whose compare failed, given what the failure branch read.
    pub fn lost(&self, current: Option<&[u8]>) -> Error {
        match current {
            None => Error::FenceLost {
                owner_key: show(&self.owner_key),
            },
            Some(v) => self.refused(v, "it took the key over".to_string()),
        }
    }
}

/// Claims `owner_key` for `identity` (a short JSON describing this mirror). Waits while a
/// previous owner's lease runs out; refuses as soon as that owner is seen renewing it twice
/// (a live mirror renews every third of its TTL; one killed a moment ago may still have one
/// keepalive in flight, which must not look like a live owner), or when the lease neither
/// runs out nor is seen renewed within twice the TTL plus 2 s.
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
    let wait = ttl * 2 + Duration::from_secs(2);
    let deadline = Instant::now() + wait;
    let mut owner: Option<OwnerWatch> = None;
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
        let sent = Instant::now();
        let remaining = dest.time_to_live(kv.lease).await?.ttl;
        let seen = Seen {
            sent,
            received: Instant::now(),
            remaining,
        };
        let watch = match &mut owner {
            Some(w) if w.value == kv.value && w.lease == kv.lease => w,
            _ => owner.insert(OwnerWatch::new(kv.value.clone(), kv.lease)),
        };
        if watch.observe(seen) >= 2 {
            let why = format!("it keeps renewing its lease {:x}", kv.lease);
            return Err(fence.refused(&kv.value, why));
        }
        if Instant::now() > deadline {
            let why = format!(
                "its lease {:x} did not run out within {}s ({remaining}s left)",
                kv.lease,
                wait.as_secs()
            );
            return Err(fence.refused(&kv.value, why));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    unreachable!("the claim loop only returns")
}

/// One LeaseTimeToLive answer about the owner's lease: when it was asked and answered, and
/// the whole seconds left (truncated by the server).
#[derive(Clone, Copy, Debug)]
struct Seen {
    sent: Instant,
    received: Instant,
    remaining: i64,
}

/// What the claim loop knows of the owner's lease: each answer bounds the instant the lease
/// expires; an answer whose earliest expiry is past an earlier answer's latest one proves
/// the owner renewed it in between. Whole-second TTLs make "the TTL went up" too coarse to
/// see (a 2 s lease renewed every 0.7 s always reads 1 s).
struct OwnerWatch {
    value: Vec<u8>,
    lease: i64,
    /// The latest the lease can expire without another renewal.
    expires_by: Option<Instant>,
    renewals: u32,
}

/// Room for the two clocks' reads around the server's own (both monotonic, one machine or
/// not: only differences are compared).
const SLACK: Duration = Duration::from_millis(250);

impl OwnerWatch {
    fn new(value: Vec<u8>, lease: i64) -> OwnerWatch {
        OwnerWatch {
            value,
            lease,
            expires_by: None,
            renewals: 0,
        }
    }

    /// Takes one answer in; returns the renewals proven so far.
    fn observe(&mut self, s: Seen) -> u32 {
        if s.remaining < 0 {
            return self.renewals; // gone: the key goes with it
        }
        let left = Duration::from_secs(s.remaining as u64);
        let earliest = s.sent + left;
        let latest = s.received + left + Duration::from_secs(1);
        self.expires_by = Some(match self.expires_by {
            Some(by) if earliest > by + SLACK => {
                self.renewals += 1;
                latest
            }
            Some(by) => by.min(latest),
            None => latest,
        });
        self.renewals
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64, remaining: i64) -> Seen {
        let t = t0 + Duration::from_millis(ms);
        Seen {
            sent: t,
            received: t + Duration::from_millis(5),
            remaining,
        }
    }

    /// A 2 s lease renewed every 0.7 s reads "1 s left" every time; the bounds still prove
    /// the renewals.
    #[test]
    fn a_live_owner_is_seen_renewing() {
        let t0 = Instant::now();
        let mut w = OwnerWatch::new(b"o".to_vec(), 7);
        assert_eq!(w.observe(at(t0, 0, 1)), 0); // expires by 2.005 s
        assert_eq!(w.observe(at(t0, 400, 1)), 0);
        assert_eq!(w.observe(at(t0, 1400, 1)), 1); // earliest 2.4 s: renewed
        assert_eq!(w.observe(at(t0, 1800, 1)), 1);
        assert_eq!(w.observe(at(t0, 2800, 1)), 2);
    }

    /// A dead owner's lease only counts down, whatever the truncation: no renewal, ever.
    #[test]
    fn a_dead_owner_is_not() {
        let t0 = Instant::now();
        let mut w = OwnerWatch::new(b"o".to_vec(), 7);
        // expiry at 1.9 s: the server reads 1 until 0.9 s, then 0, then the lease is gone
        for (ms, left) in [
            (0, 1),
            (300, 1),
            (600, 1),
            (900, 0),
            (1200, 0),
            (1500, 0),
            (1950, -1),
        ] {
            assert_eq!(w.observe(at(t0, ms, left)), 0, "at {ms} ms");
        }
    }
}
