//! The in-memory index from user key to its revision history (etcd's `treeIndex`).
//!
//! Rebuilt from the `key` table at open, like etcd: the table is the truth, the index a cache
//! that makes reads at any revision cheap.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::key_index::{KeyAt, KeyIndex};
use crate::revision::Revision;

/// A key range as etcd encodes it: `end` empty = the single key, `end == [0]` = every key
/// from `key` on, otherwise `[key, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub key: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyRange {
    pub fn new(key: Vec<u8>, end: Vec<u8>) -> Self {
        KeyRange { key, end }
    }

    /// Every key (etcd's `"\0"` to `"\0"`).
    pub fn all() -> Self {
        KeyRange::new(vec![0], vec![0])
    }

    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        KeyRange::new(prefix.to_vec(), prefix_end(prefix))
    }

    pub fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        if self.is_single() {
            return k == self.key.as_slice();
        }
        if k < self.key.as_slice() {
            return false;
        }
        self.end == [0] || k < self.end.as_slice()
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let start = Bound::Included(self.key.as_slice());
        if self.end == [0] {
            (start, Bound::Unbounded)
        } else {
            (start, Bound::Excluded(self.end.as_slice()))
        }
    }
}

/// The range end that makes `[prefix, end)` cover every key starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`); `[0]`, every key from `prefix` on, when `prefix` is all 0xff.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.keys.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::new();
                ki.put(rev);
                self.keys.insert(key.to_vec(), ki);
            }
        }
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Used when rebuilding from the table: the first revision seen of a key generation.
    pub fn restore(
        &mut self,
        key: &[u8],
        created_main: i64,
        rev: Revision,
        version: i64,
        tombstone: bool,
    ) {
        match self.keys.get_mut(key) {
            Some(ki) if tombstone => {
                ki.tombstone(rev);
            }
            Some(ki) => ki.put(rev),
            None if tombstone => {}
            None => {
                self.keys
                    .insert(key.to_vec(), KeyIndex::restored(created_main, rev, version));
            }
        }
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.keys.get(key).and_then(|ki| ki.get(at))
    }

    /// Visits the keys of `range` that exist at `at`, in key order; stops when `f` says so.
    pub fn visit(&self, range: &KeyRange, at: i64, mut f: impl FnMut(&[u8], KeyAt) -> bool) {
        if range.is_single() {
            if let Some(k) = self.get(&range.key, at) {
                f(&range.key, k);
            }
            return;
        }
        if !range.end.is_empty() && range.end != [0] && range.end <= range.key {
            return;
        }
        for (k, ki) in self.keys.range::<[u8], _>(range.bounds()) {
            if let Some(at_rev) = ki.get(at)
                && !f(k, at_rev)
            {
                return;
            }
        }
    }

    /// Keys and their revisions at `at`: at most `limit` (0 = all), plus the total count.
    pub fn revisions(
        &self,
        range: &KeyRange,
        at: i64,
        limit: usize,
    ) -> (Vec<(Vec<u8>, KeyAt)>, usize) {
        let mut out = Vec::new();
        let mut total = 0;
        self.visit(range, at, |k, a| {
            if limit == 0 || out.len() < limit {
                out.push((k.to_vec(), a));
            }
            total += 1;
            true
        });
        (out, total)
    }

    pub fn count(&self, range: &KeyRange, at: i64) -> usize {
        let mut n = 0;
        self.visit(range, at, |_, _| {
            n += 1;
            true
        });
        n
    }

    /// Revisions a compaction at `at` keeps (HashKV uses this).
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at, &mut available);
        }
        available
    }

    /// Compacts every key at `at`; returns the revisions still needed.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.keys.retain(|_, ki| {
            ki.compact(at, &mut available);
            !ki.is_empty()
        });
        available
    }

    /// Compacts at `at` up to `max` keys from `from` on, adding the revisions still needed
    /// to `available`; returns the key to go on from, `None` when none is left. The keys
    /// before `from` must have been compacted at `at` (or later) already.
    pub fn compact_chunk(
        &mut self,
        from: &[u8],
        at: i64,
        max: usize,
        available: &mut HashSet<Revision>,
    ) -> Option<Vec<u8>> {
        let mut emptied = Vec::new();
        let mut next = None;
        let range = (Bound::Included(from), Bound::Unbounded);
        for (i, (key, ki)) in self.keys.range_mut::<[u8], _>(range).enumerate() {
            if i == max {
                next = Some(key.clone());
                break;
            }
            ki.compact(at, available);
            if ki.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        next
    }

    /// Keys with any history in the index (live or not).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys that exist now.
    pub fn live_keys(&self) -> usize {
        self.keys.values().filter(|ki| ki.is_live()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: i64) -> Revision {
        Revision::new(m, 0)
    }

    #[test]
    fn range_forms() {
        let mut t = TreeIndex::default();
        t.put(b"a", r(1));
        t.put(b"b", r(2));
        t.put(b"c", r(3));
        t.tombstone(b"b", r(4));
        let keys = |range: KeyRange, at| -> Vec<Vec<u8>> {
            t.revisions(&range, at, 0)
                .0
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(KeyRange::new(b"a".to_vec(), vec![]), 4),
            vec![b"a".to_vec()]
        );
        assert_eq!(
            keys(KeyRange::new(b"a".to_vec(), b"c".to_vec()), 3),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            keys(KeyRange::new(b"a".to_vec(), b"c".to_vec()), 4),
            vec![b"a".to_vec()]
        );
        assert_eq!(
            keys(KeyRange::new(b"b".to_vec(), vec![0]), 4),
            vec![b"c".to_vec()]
        );
        assert_eq!(
            keys(KeyRange::new(b"c".to_vec(), b"a".to_vec()), 4),
            Vec::<Vec<u8>>::new()
        );
        let (first, total) = t.revisions(&KeyRange::all(), 3, 1);
        assert_eq!((first.len(), total), (1, 3));
        assert_eq!(t.count(&KeyRange::all(), 4), 2);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
        assert!(
            KeyRange::prefix(b"a/").contains(b"a/x") && !KeyRange::prefix(b"a/").contains(b"a0")
        );
    }

    #[test]
    fn compaction_in_chunks_equals_compaction_at_once() {
        // 9 keys: some overwritten, some deleted (before and after the point), one recreated
        let mut t = TreeIndex::default();
        let mut main = 1;
        for round in 0..3 {
            for k in 0..9u8 {
                main += 1;
                t.put(&[b'a' + k], r(main));
                if (k + round) % 4 == 0 {
                    main += 1;
                    t.tombstone(&[b'a' + k], r(main));
                }
            }
        }
        let at = main - 6;
        let mut whole = t.clone();
        let keep = whole.compact(at);
        for chunk in 1..=10 {
            let mut chunked = t.clone();
            let (mut available, mut from) = (HashSet::new(), Vec::new());
            while let Some(next) = chunked.compact_chunk(&from, at, chunk, &mut available) {
                from = next;
            }
            assert_eq!(available, keep, "chunks of {chunk}");
            assert_eq!(chunked, whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn compaction_drops_deleted_keys() {
        let mut t = TreeIndex::default();
        t.put(b"a", r(1));
        t.tombstone(b"a", r(2));
        t.put(b"b", r(3));
        let kept = t.compact(3);
        assert_eq!(kept, HashSet::from([r(3)]));
        assert_eq!(t.get(b"a", 3), None);
        assert_eq!(t.live_keys(), 1);
    }
}
