//! Leases under faults: clients grant short leases, put keys on them, and then keep them
//! alive for a while, revoke them, or let them run out. Checked against the history the
//! watches delivered:
//! - the keys of one lease go in one revision (a revoke or an expiry deletes them together);
//! - a lease never expires before its TTL has passed since its grant or its last
//!   acknowledged keep-alive (a leader change only ever extends leases, as etcd documents);
//! - a revoked lease's keys are gone, and every lease has run out soon after the traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::history::{Clock, History, existed_at};
use super::traffic::{CALL_TIMEOUT, timed};
use super::watches::Seen;
use crate::prng::Rng;

/// Lease keys are under this prefix.
pub const LEASE_PREFIX: &[u8] = b"robustness/lease-";

/// One lease as its client saw it; times are the run's clock (nanoseconds).
#[derive(Clone, Debug)]
pub struct LeaseRecord {
    pub id: i64,
    /// The TTL the grant answered, in seconds.
    pub ttl: i64,
    /// When the grant was called.
    pub granted: i64,
    /// When each keep-alive answered with a live lease was called.
    pub renewed: Vec<i64>,
    /// When the first revoke was called, and whether one was acknowledged.
    pub revoke_called: Option<i64>,
    pub revoked: bool,
    /// Keys a put on the lease was sent for (acknowledged or not).
    pub keys: Vec<Vec<u8>>,
}

impl LeaseRecord {
    /// The earliest the lease may run out: its TTL after the grant or last renewal.
    fn deadline(&self) -> i64 {
        let from = self.renewed.iter().copied().max().unwrap_or(self.granted);
        from.max(self.granted) + self.ttl * 1_000_000_000
    }
}

fn lease_key(id: i64, n: u64) -> Vec<u8> {
    let mut k = LEASE_PREFIX.to_vec();
    k.extend(format!("{id:016x}-{n}").into_bytes());
    k
}

/// Drives leases until `until`, one at a time, on `endpoints` from `first`.
pub async fn client(
    id: u32,
    seed: u64,
    endpoints: Arc<Vec<String>>,
    until: Instant,
    clock: Arc<Clock>,
    history: Arc<History>,
) {
    let mut rng = Rng::new(seed ^ 0x1ea5e ^ (u64::from(id) << 32));
    let mut at = id as usize % endpoints.len();
    while Instant::now() < until {
        let Ok(ch) = crate::grpc::channel(&endpoints[at], CALL_TIMEOUT).await else {
            at = (at + 1) % endpoints.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !one_lease(&mut rng, ch, until, &clock, &history).await {
            at = (at + 1) % endpoints.len();
        }
    }
}

/// One lease's life; false when a call failed (the member may be down).
async fn one_lease(
    rng: &mut Rng,
    ch: Channel,
    until: Instant,
    clock: &Clock,
    history: &History,
) -> bool {
    let mut leases = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch);
    let granted = clock.now();
    let ask = rng.between(2, 4);
    let grant = timed(leases.lease_grant(LeaseGrantRequest { ttl: ask, id: 0 })).await;
    let Ok(grant) = grant else {
        return false;
    };
    if !grant.error.is_empty() || grant.id == 0 {
        return false;
    }
    let mut rec = LeaseRecord {
        id: grant.id,
        ttl: grant.ttl,
        granted,
        renewed: Vec::new(),
        revoke_called: None,
        revoked: false,
        keys: Vec::new(),
    };
    let mut ok = true;
    for n in 0..rng.between(1, 3) as u64 {
        let key = lease_key(rec.id, n);
        rec.keys.push(key.clone());
        let put = PutRequest {
            key,
            value: format!("{}", clock.now()).into_bytes(),
            lease: rec.id,
            ..Default::default()
        };
        if timed(kv.put(put)).await.is_err() {
            ok = false;
            break;
        }
    }
    let fate = rng.below(100);
    if ok && fate < 40 {
        // kept alive a while, then left to run out
        for _ in 0..rng.between(1, 4) {
            tokio::time::sleep(Duration::from_millis(rng.between(300, 900) as u64)).await;
            if Instant::now() >= until {
                break;
            }
            let call = clock.now();
            match keep_alive(&mut leases, rec.id).await {
                Some(ttl) if ttl > 0 => rec.renewed.push(call),
                Some(_) => break,
                None => {
                    ok = false;
                    break;
                }
            }
        }
    } else if ok && fate < 70 {
        tokio::time::sleep(Duration::from_millis(rng.between(100, 1000) as u64)).await;
        rec.revoke_called = Some(clock.now());
        let revoke = timed(leases.lease_revoke(LeaseRevokeRequest { id: rec.id })).await;
        rec.revoked = revoke.is_ok();
        ok = rec.revoked;
    }
    history.record_lease(rec);
    ok
}

/// One keep-alive on its own stream: the TTL answered, or `None` when it failed.
async fn keep_alive(leases: &mut LeaseClient<Channel>, id: i64) -> Option<i64> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(LeaseKeepAliveRequest { id }).await.ok()?;
    let call = async {
        let mut stream = leases
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        match stream.next().await {
            Some(r) => r.map(|r| r.ttl),
            None => Err(tonic::Status::unavailable("the keep-alive stream ended")),
        }
    };
    let ttl = tokio::time::timeout(CALL_TIMEOUT, call).await.ok()?.ok();
    drop(tx);
    ttl
}

/// What is wrong with the leases against the history `events`; `known` is
/// [`History::existed_by`].
pub fn check(leases: &[LeaseRecord], events: &[Seen], known: &[(i64, i64)]) -> Vec<String> {
    // each lease key's put and delete revisions
    let mut puts: BTreeMap<&[u8], i64> = BTreeMap::new();
    let mut deletes: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
    for (rev, key, put, _, _) in events {
        if !key.starts_with(LEASE_PREFIX) {
            continue;
        }
        if *put {
            puts.entry(key).or_insert(*rev);
        } else {
            deletes.entry(key).or_default().push(*rev);
        }
    }
    let mut out = Vec::new();
    for l in leases {
        let name = format!("lease {:x} (TTL {} s)", l.id, l.ttl);
        let put: Vec<&[u8]> = l
            .keys
            .iter()
            .map(Vec::as_slice)
            .filter(|k| puts.contains_key(k))
            .collect();
        if put.is_empty() {
            continue;
        }
        let revs: BTreeSet<i64> = put
            .iter()
            .flat_map(|k| deletes.get(k).into_iter().flatten().copied())
            .collect();
        let Some(&deleted) = revs.iter().next() else {
            out.push(format!(
                "{name}: its keys are still there after the traffic{}",
                if l.revoked {
                    ", though it was revoked"
                } else {
                    ""
                }
            ));
            continue;
        };
        let all_then = put
            .iter()
            .all(|k| deletes.get(k).is_some_and(|d| d == &[deleted]));
        if revs.len() > 1 || !all_then {
            out.push(format!(
                "{name}: its keys did not go in one revision (deletions at {revs:?})"
            ));
        }
        let Some(by) = existed_at(known, deleted) else {
            continue;
        };
        if l.revoke_called.is_some_and(|t| t < by) {
            continue;
        }
        let deadline = l.deadline();
        if by < deadline {
            out.push(format!(
                "{name}: it expired (revision {deleted}, by {:.3}s) before its TTL ran out at {:.3}s (granted {:.3}s, {} keep-alives)",
                by as f64 / 1e9,
                deadline as f64 / 1e9,
                l.granted as f64 / 1e9,
                l.renewed.len()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn lease(granted: i64, renewed: &[i64], revoke: Option<i64>) -> LeaseRecord {
        LeaseRecord {
            id: 7,
            ttl: 2,
            granted,
            renewed: renewed.to_vec(),
            revoke_called: revoke,
            revoked: revoke.is_some(),
            keys: vec![lease_key(7, 0), lease_key(7, 1)],
        }
    }

    fn ev(rev: i64, n: u64, put: bool) -> Seen {
        (rev, lease_key(7, n), put, Vec::new(), None)
    }

    #[test]
    fn early_expiry_split_deletion_and_leftover_keys_are_caught() {
        let events = vec![
            ev(2, 0, true),
            ev(3, 1, true),
            ev(9, 0, false),
            ev(9, 1, false),
        ];
        // revision 9 existed by 5 s
        let known = vec![(9, 5 * S)];
        assert!(check(&[lease(0, &[2 * S], None)], &events, &known).is_empty());
        // renewed at 4 s: it may not go before 6 s
        assert_eq!(check(&[lease(0, &[4 * S], None)], &events, &known).len(), 1);
        // revoked before: fine
        assert!(check(&[lease(0, &[4 * S], Some(4 * S))], &events, &known).is_empty());
        let split = vec![
            ev(2, 0, true),
            ev(3, 1, true),
            ev(9, 0, false),
            ev(10, 1, false),
        ];
        assert_eq!(check(&[lease(0, &[], None)], &split, &known).len(), 1);
        let left = vec![ev(2, 0, true), ev(3, 1, true)];
        assert_eq!(check(&[lease(0, &[], Some(S))], &left, &known).len(), 1);
    }
}
