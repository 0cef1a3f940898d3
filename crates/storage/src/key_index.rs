//! The revision history of one key, split into generations (etcd's `keyIndex`).
//!
//! A generation runs from a key's creation to its deletion; the tombstone is the last revision of
//! a closed generation, and a deleted key ends with an empty generation. The rules below follow
//! etcd's so that compaction keeps exactly what etcd keeps and HashKV agrees.

use std::collections::HashSet;

use crate::revision::Revision;

#[derive(Debug, Clone, Default, PartialEq)]
struct Generation {
    /// Versions written in this generation so far (including a tombstone).
    ver: i64,
    created: Revision,
    revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Walks revisions newest first while `keep_walking` holds; returns the index where it
    /// stopped, or `None` when it walked past the oldest.
    fn walk(&self, mut keep_walking: impl FnMut(Revision) -> bool) -> Option<usize> {
        (0..self.revs.len())
            .rev()
            .find(|&i| !keep_walking(self.revs[i]))
    }
}

/// What a read at some revision sees of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyIndex {
    modified: Revision,
    generations: Vec<Generation>,
}

impl KeyIndex {
    pub fn new() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }

    /// Rebuilds an index entry from a stored KeyValue (startup, snapshot restore).
    pub fn restored(created_main: i64, modified: Revision, version: i64) -> Self {
        KeyIndex {
            modified,
            generations: vec![Generation {
                ver: version,
                created: Revision::new(created_main, 0),
                revs: vec![modified],
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// True when the key currently exists (its last generation is open).
    pub fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.is_empty())
    }

    pub fn modified(&self) -> Revision {
        self.modified
    }

    pub fn put(&mut self, rev: Revision) {
        debug_assert!(
            rev > self.modified,
            "revision must grow: {rev:?} after {:?}",
            self.modified
        );
        let g = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if g.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Records a deletion; returns false if the key does not currently exist.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if !self.is_live() {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if g.is_empty() {
                continue;
            }
            if i != last && g.revs[g.revs.len() - 1].main <= at {
                // the generation's tombstone is at or before `at`: the key was deleted then
                return None;
            }
            if g.revs[0].main <= at {
                return Some(g);
            }
        }
        None
    }

    /// The key as seen by a read at main revision `at`.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let g = self.find_generation(at)?;
        let n = g.walk(|r| r.main > at)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Every revision of this key with main >= `since` (watch replay uses the table instead;
    /// this serves tests and checks).
    pub fn since(&self, since: i64) -> Vec<Revision> {
        self.generations
            .iter()
            .flat_map(|g| g.revs.iter().copied())
            .filter(|r| r.main >= since)
            .collect()
    }

    fn do_compact(&self, at: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let g = &self.generations[gen_idx];
            if g.revs[g.revs.len() - 1].main > at {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.walk(|r| {
            if r.main <= at {
                available.insert(r);
                false
            } else {
                true
            }
        });
        (gen_idx, rev_idx)
    }

    /// Adds to `available` the revisions a compaction at `at` would keep, without compacting.
    pub fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at, available);
        let g = &self.generations[gen_idx];
        if let Some(i) = rev_idx
            && i == g.revs.len() - 1
            && gen_idx != self.generations.len() - 1
        {
            available.remove(&g.revs[i]);
        }
    }

    /// Drops history a compaction at `at` removes; adds kept revisions to `available`.
    pub fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (mut gen_idx, rev_idx) = self.do_compact(at, available);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            if g.revs.len() == 1 && gen_idx != last {
                available.remove(&g.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put@2 put@4 del@6 put@8 put@10 del@12 put@14 put@16 (etcd's key_index_test layout).
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::new();
        ki.put(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        assert!(ki.tombstone(r(12)));
        ki.put(r(14));
        ki.put(r(16));
        ki
    }

    #[test]
    fn get_sees_versions_and_generations() {
        let ki = sample();
        assert_eq!(ki.get(1), None);
        assert_eq!(
            ki.get(3),
            Some(KeyAt {
                modified: r(2),
                created: r(2),
                version: 1
            })
        );
        assert_eq!(
            ki.get(5),
            Some(KeyAt {
                modified: r(4),
                created: r(2),
                version: 2
            })
        );
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(7), None);
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: r(8),
                created: r(8),
                version: 1
            })
        );
        assert_eq!(ki.get(12), None);
        assert_eq!(
            ki.get(100),
            Some(KeyAt {
                modified: r(16),
                created: r(14),
                version: 2
            })
        );
    }

    #[test]
    fn tombstone_of_deleted_key_is_refused() {
        let mut ki = KeyIndex::new();
        ki.put(r(1));
        assert!(ki.tombstone(r(2)));
        assert!(!ki.tombstone(r(3)));
    }

    #[test]
    fn compaction_keeps_newest_at_or_below() {
        let mut ki = sample();
        let mut avail = HashSet::new();
        ki.compact(5, &mut avail);
        assert_eq!(avail, HashSet::from([r(4)]));
        assert_eq!(ki.get(5).unwrap().version, 2);

        // compacting at the tombstone drops the whole first generation
        let mut avail = HashSet::new();
        ki.compact(6, &mut avail);
        assert!(avail.is_empty());
        assert_eq!(ki.get(9).unwrap().modified, r(8));
        assert_eq!(ki.since(0).first(), Some(&r(8)));

        let mut avail = HashSet::new();
        ki.compact(15, &mut avail);
        assert_eq!(avail, HashSet::from([r(14)]));
        assert_eq!(
            ki.get(100),
            Some(KeyAt {
                modified: r(16),
                created: r(14),
                version: 2
            })
        );
    }

    #[test]
    fn keep_matches_compact_without_mutating() {
        for at in 0..18 {
            let ki = sample();
            let mut kept = HashSet::new();
            ki.keep(at, &mut kept);
            let mut compacted = sample();
            let mut avail = HashSet::new();
            compacted.compact(at, &mut avail);
            assert_eq!(kept, avail, "at {at}");
            assert_eq!(ki, sample());
        }
    }

    #[test]
    fn deleted_key_compacts_to_empty() {
        let mut ki = KeyIndex::new();
        ki.put(r(1));
        ki.tombstone(r(2));
        let mut avail = HashSet::new();
        ki.compact(2, &mut avail);
        assert!(ki.is_empty());
        assert!(avail.is_empty());
    }
}
