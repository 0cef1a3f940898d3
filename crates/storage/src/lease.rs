//! Leases in memory (etcd's lessor). Grants and revocations are replicated commands that also
//! write the `lease` table; expiry times are local and only the leader acts on them.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// etcd's largest TTL (`MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Debug, Clone)]
pub struct Lease {
    pub id: i64,
    /// The TTL granted (after raising to the minimum).
    pub ttl: i64,
    pub expiry: Instant,
    pub keys: BTreeSet<Vec<u8>>,
    /// Restored with the time it had left (a point-in-time restore): this deadline, not a
    /// full TTL, is what this member's first promotion keeps, if it comes before it.
    pub restored_until: Option<Instant>,
}

impl Lease {
    /// Whole seconds left, truncated like etcd; never negative.
    pub fn remaining_secs(&self, now: Instant) -> i64 {
        self.expiry.saturating_duration_since(now).as_secs() as i64
    }
}

#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<i64, Lease>,
    /// Which lease each leased key is attached to (etcd's `itemMap`).
    items: HashMap<Vec<u8>, i64>,
    min_ttl: i64,
}

impl Lessor {
    pub fn new(min_ttl: i64) -> Self {
        Lessor {
            leases: HashMap::new(),
            items: HashMap::new(),
            min_ttl,
        }
    }

    /// The shortest TTL a grant gets.
    pub fn min_ttl(&self) -> i64 {
        self.min_ttl
    }

    /// The TTL a grant of `ttl` ends up with.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    pub fn insert(&mut self, id: i64, ttl: i64, now: Instant) -> &Lease {
        let lease = Lease {
            id,
            ttl,
            expiry: now + secs(ttl),
            keys: BTreeSet::new(),
            restored_until: None,
        };
        self.leases.entry(id).or_insert(lease)
    }

    /// A lease restored with `remaining` seconds left (of `ttl`): its clock starts there.
    pub fn insert_restored(&mut self, id: i64, ttl: i64, remaining: i64, now: Instant) {
        let until = now + secs(remaining.min(ttl));
        let l = self.leases.entry(id).or_insert(Lease {
            id,
            ttl,
            expiry: until,
            keys: BTreeSet::new(),
            restored_until: None,
        });
        l.expiry = until;
        l.restored_until = Some(until);
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Attaches `key` to lease `id` (0 = no lease), detaching it from any lease it had.
    pub fn move_key(&mut self, key: &[u8], id: i64) {
        if let Some(old) = self.items.remove(key)
            && let Some(l) = self.leases.get_mut(&old)
        {
            l.keys.remove(key);
        }
        if id != 0
            && let Some(l) = self.leases.get_mut(&id)
        {
            l.keys.insert(key.to_vec());
            self.items.insert(key.to_vec(), id);
        }
    }

    /// Removes a lease and forgets its keys' attachment; returns it with its keys.
    pub fn revoke(&mut self, id: i64) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        for k in &lease.keys {
            self.items.remove(k);
        }
        Some(lease)
    }

    /// Keep-alive: restarts the lease's clock; returns its TTL.
    pub fn renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let l = self.leases.get_mut(&id)?;
        l.expiry = now + secs(l.ttl);
        l.restored_until = None;
        Some(l.ttl)
    }

    /// Leases whose time is up, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut v: Vec<(Instant, i64)> = self
            .leases
            .values()
            .filter(|l| l.expiry <= now)
            .map(|l| (l.expiry, l.id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// A new leader restarts every clock (etcd's `Promote`): leases never expire early because
    /// leadership moved. A lease restored with the time it had left keeps that deadline
    /// (plus `extend`) at this member's first promotion before it passes, as etcd keeps a
    /// checkpointed remaining TTL; every later promotion restarts it in full.
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        for l in self.leases.values_mut() {
            l.expiry = match l.restored_until.take() {
                Some(until) if until > now => until + extend,
                _ => now + secs(l.ttl) + extend,
            };
        }
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.leases.keys().copied().collect();
        ids.sort();
        ids
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.clamp(0, MAX_LEASE_TTL) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_lease_keeps_the_time_it_had_left_through_its_first_promotion_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Lessor::new(1);
        l.insert_restored(7, 60, 20, t0);
        l.insert_restored(8, 60, 20, t0);
        l.insert(9, 60, t0);
        assert_eq!(l.get(7).unwrap().remaining_secs(t0), 20);
        // the first leader keeps the restored deadline, plus the grace
        l.renew(8, t0 + s(1));
        l.promote(t0 + s(2), s(1));
        assert_eq!(l.get(7).unwrap().remaining_secs(t0), 21);
        assert_eq!(
            l.get(8).unwrap().remaining_secs(t0 + s(2)),
            61,
            "renewed: in full"
        );
        assert_eq!(l.get(9).unwrap().remaining_secs(t0 + s(2)), 61);
        // a later promotion restarts every clock in full
        l.promote(t0 + s(10), s(1));
        assert_eq!(l.get(7).unwrap().remaining_secs(t0 + s(10)), 61);
        // a first promotion after the deadline passed: in full too
        l.insert_restored(10, 60, 5, t0);
        l.promote(t0 + s(30), s(1));
        assert_eq!(l.get(10).unwrap().remaining_secs(t0 + s(30)), 61);
    }

    #[test]
    fn grant_renew_expire() {
        let t0 = Instant::now();
        let mut l = Lessor::new(2);
        assert_eq!(l.effective_ttl(1), 2);
        l.insert(7, 5, t0);
        l.insert(8, 10, t0);
        assert_eq!(l.get(7).unwrap().remaining_secs(t0), 5);
        assert!(l.expired(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(l.expired(t0 + Duration::from_secs(5)), vec![7]);
        assert_eq!(l.renew(7, t0 + Duration::from_secs(4)), Some(5));
        assert!(l.expired(t0 + Duration::from_secs(8)).is_empty());
        assert_eq!(l.expired(t0 + Duration::from_secs(20)), vec![7, 8]);
        assert_eq!(l.renew(99, t0), None);
    }

    #[test]
    fn keys_attach_and_detach() {
        let mut l = Lessor::new(1);
        l.insert(1, 5, Instant::now());
        l.insert(2, 5, Instant::now());
        l.move_key(b"a", 1);
        l.move_key(b"b", 1);
        l.move_key(b"a", 2);
        assert_eq!(
            l.get(1).unwrap().keys.iter().cloned().collect::<Vec<_>>(),
            vec![b"b".to_vec()]
        );
        assert_eq!(l.get(2).unwrap().keys.len(), 1);
        l.move_key(b"a", 0);
        assert!(l.get(2).unwrap().keys.is_empty());
        let revoked = l.revoke(1).unwrap();
        assert_eq!(revoked.keys.len(), 1);
        l.move_key(b"b", 0);
    }
}
