//! `--with-leases`: a key attached to lease L at the source is attached to lease L (same ID)
//! at the destination, granted with the source's TTL. While L lives at the source the mirror
//! renews the destination lease each time it sees the source's remaining TTL go up (someone
//! renewed it there), so the destination's remaining TTL follows the source's from above.
//! When L is gone at the source its keys' deletions arrive through the watch like any other
//! change; once those are mirrored, the destination lease is revoked. If the mirror is down,
//! destination leases run out on their own no later than the source's would have plus one
//! poll period.
//!
//! Using the source's IDs needs no mapping table: after a restart the destination lease of
//! source lease L is simply L.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};

use crate::client::Client;
use crate::error::Error;
use crate::fence::keep_alive_once;
use crate::pager::Pager;

struct State {
    granted: i64,
    dest_renewed: Instant,
    next_poll: Instant,
    /// The source revision at which the source lease was seen gone.
    gone_at: Option<i64>,
}

#[derive(Default)]
pub struct Leases {
    map: Mutex<HashMap<i64, State>>,
    /// Set when a destination lease vanished while its source lease lives: the keys it held
    /// are gone at the destination, and only a full copy brings them back.
    lost: AtomicBool,
}

impl Leases {
    pub fn active(&self) -> i64 {
        self.map.lock().expect("leases lock").len() as i64
    }

    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Relaxed)
    }

    /// The destination lease for source lease `id` (0 for none), created when first seen.
    pub async fn ensure(&self, src: &Client, dst: &Client, id: i64) -> Result<i64, Error> {
        if id == 0 {
            return Ok(0);
        }
        if let Some(s) = self.map.lock().expect("leases lock").get(&id) {
            return Ok(if s.gone_at.is_some() { 0 } else { id });
        }
        let t = src.time_to_live(id).await?;
        let now = Instant::now();
        if t.ttl <= 0 {
            // Expired or revoked since: its keys' deletions follow in the stream.
            let rev = gone_revision(src, t.header).await?;
            self.insert(id, 0, now, Some(rev));
            return Ok(0);
        }
        let grant = LeaseGrantRequest {
            ttl: t.granted_ttl.max(1),
            id,
        };
        match dst.lease().lease_grant(dst.request(grant, true)).await {
            Ok(_) => {}
            // Ours, from before a restart: renew it now.
            Err(s) if s.message().contains("lease already exists") => {
                keep_alive_once(dst, id, Duration::from_secs(5)).await?;
            }
            Err(s) => return Err(dst.err(s)),
        }
        self.insert(id, t.granted_ttl.max(1), now, None);
        Ok(id)
    }

    fn insert(&self, id: i64, granted: i64, renewed: Instant, gone_at: Option<i64>) {
        self.map.lock().expect("leases lock").insert(
            id,
            State {
                granted,
                dest_renewed: renewed,
                next_poll: Instant::now() + Duration::from_millis(300),
                gone_at,
            },
        );
    }

    /// One round of polling: renew, or revoke once the deletions are mirrored.
    pub async fn tick(&self, src: &Client, dst: &Client, mirrored: i64) -> Result<(), Error> {
        let now = Instant::now();
        let due: Vec<(i64, Option<i64>)> = self
            .map
            .lock()
            .expect("leases lock")
            .iter()
            .filter(|(_, s)| s.next_poll <= now)
            .map(|(id, s)| (*id, s.gone_at))
            .collect();
        for (id, gone_at) in due {
            if let Some(at) = gone_at {
                if mirrored >= at {
                    let req = LeaseRevokeRequest { id };
                    match dst.lease().lease_revoke(dst.request(req, true)).await {
                        Ok(_) => {}
                        Err(s) if s.code() == tonic::Code::NotFound => {}
                        Err(s) => return Err(dst.err(s)),
                    }
                    self.map.lock().expect("leases lock").remove(&id);
                } else {
                    self.schedule(id, Duration::from_millis(300));
                }
                continue;
            }
            let t = src.time_to_live(id).await?;
            if t.ttl <= 0 {
                let rev = gone_revision(src, t.header).await?;
                if let Some(s) = self.map.lock().expect("leases lock").get_mut(&id) {
                    s.gone_at = Some(rev);
                }
                continue;
            }
            let (granted, renewed) = {
                let m = self.map.lock().expect("leases lock");
                let Some(s) = m.get(&id) else { continue };
                (s.granted, s.dest_renewed)
            };
            let dest_left = granted as f64 - renewed.elapsed().as_secs_f64();
            if t.ttl as f64 > dest_left - 1.0 {
                if !keep_alive_once(dst, id, Duration::from_secs(5)).await? {
                    self.lost.store(true, Relaxed);
                    self.map.lock().expect("leases lock").remove(&id);
                    continue;
                }
                if let Some(s) = self.map.lock().expect("leases lock").get_mut(&id) {
                    s.dest_renewed = Instant::now();
                }
            }
            let period =
                Duration::from_millis((granted as u64 * 1000 / 4).min(t.ttl as u64 * 1000))
                    .clamp(Duration::from_millis(300), Duration::from_secs(10));
            self.schedule(id, period);
        }
        Ok(())
    }

    fn schedule(&self, id: i64, after: Duration) {
        if let Some(s) = self.map.lock().expect("leases lock").get_mut(&id) {
            s.next_poll = Instant::now() + after;
        }
    }

    /// After a restart: takes over the destination leases of keys already mirrored, and
    /// asks for a full copy when one of them ran out while the mirror was down.
    pub async fn reconcile(
        &self,
        src: &Client,
        dst: &Client,
        keys: &crate::keys::KeyMap,
        checkpoint: i64,
    ) -> Result<(), Error> {
        let (start, end) = keys.source_range();
        let mut pager = Pager::new(src.clone(), start, end, 0, true);
        let mut oldest: HashMap<i64, i64> = HashMap::new();
        while let Some(page) = pager.next_page().await? {
            for kv in page.into_iter().filter(|kv| kv.lease != 0) {
                let e = oldest.entry(kv.lease).or_insert(kv.mod_revision);
                *e = (*e).min(kv.mod_revision);
            }
        }
        for (id, first_mod) in oldest {
            if first_mod > checkpoint {
                continue; // its keys are put again by the replay
            }
            let d = dst.time_to_live(id).await?;
            if d.ttl > 0 {
                let age = Duration::from_secs((d.granted_ttl - d.ttl).max(0) as u64);
                let renewed = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                self.insert(id, d.granted_ttl, renewed, None);
                continue;
            }
            if src.time_to_live(id).await?.ttl > 0 {
                return Err(Error::NeedResync(format!(
                    "destination lease {id:x} expired while the mirror was down, though the source still has it: copying the prefix again"
                )));
            }
        }
        Ok(())
    }
}

/// A source revision at which a lease is known to be gone: the answer's header, or (etcd
/// answers NotFound, without one) the source's current revision.
async fn gone_revision(
    src: &Client,
    header: Option<cairn_proto::etcdserverpb::ResponseHeader>,
) -> Result<i64, Error> {
    match header {
        Some(h) if h.revision > 0 => Ok(h.revision),
        _ => src.current_revision().await,
    }
}
