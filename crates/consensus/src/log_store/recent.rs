//! The most recently appended raft entries, kept in memory.
//!
//! Applying and replicating an entry right after it was appended then neither reads it back
//! from the file nor decodes it again. The entries held are always one contiguous run of
//! indexes. Eviction keeps the payload bytes under a budget but never drops an entry the log
//! has not made durable yet.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use openraft::EntryPayload;

use crate::types::Entry;

/// Payload bytes of flushed entries kept in memory.
pub(super) const RECENT_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(super) struct Recent {
    entries: BTreeMap<u64, Entry>,
    bytes: usize,
    /// Entries at or below this index are durable in the file and may be evicted.
    flushed: Option<u64>,
}

fn payload_len(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(r) => r.command.len() + 64,
        _ => 256,
    }
}

impl Recent {
    /// Adds an entry appended after the last one held (a gap drops what was held: the run
    /// stays contiguous).
    pub fn push(&mut self, e: Entry) {
        let index = e.log_id.index;
        if let Some((&last, _)) = self.entries.last_key_value()
            && last + 1 != index
        {
            self.drop_range(..);
        }
        self.bytes += payload_len(&e);
        self.entries.insert(index, e);
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > RECENT_BYTES {
            let Some(entry) = self.entries.first_entry() else {
                break;
            };
            if self.flushed.is_none_or(|f| *entry.key() > f) {
                break; // not durable yet: only the file would be left to read it from
            }
            self.bytes -= payload_len(&entry.remove());
        }
    }

    /// Every entry up to `index` is durable (`None`: none is).
    pub fn set_flushed(&mut self, index: Option<u64>) {
        self.flushed = index;
        self.evict();
    }

    /// Drops entries at `from` and after (truncate) or up to `upto` (purge).
    pub fn drop_range(&mut self, range: impl RangeBounds<u64>) {
        let gone: Vec<u64> = self.entries.range(range).map(|(i, _)| *i).collect();
        for i in gone {
            if let Some(e) = self.entries.remove(&i) {
                self.bytes -= payload_len(&e);
            }
        }
    }

    /// The entries of `start..end` held here: a suffix of the range (the part at and after the
    /// first index held), or nothing.
    pub fn tail(&self, start: u64, end: u64) -> (u64, Vec<Entry>) {
        let first = self.entries.keys().next().map_or(end, |f| (*f).max(start));
        if first >= end {
            return (end, Vec::new());
        }
        let out = self
            .entries
            .range(first..end)
            .map(|(_, e)| e.clone())
            .collect();
        (first, out)
    }

    pub fn last_index(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    pub fn last(&self) -> Option<&Entry> {
        self.entries.values().next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposer::Writers;
    use crate::types::Request;
    use openraft::{CommittedLeaderId, LogId};

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request::new(vec![0; bytes])),
        }
    }

    fn indexes(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn the_tail_of_a_range_is_served() {
        let mut r = Recent::default();
        for i in 3..=10 {
            r.push(entry(i, 100));
        }
        assert_eq!(r.tail(4, 7).0, 4);
        assert_eq!(indexes(&r.tail(4, 7).1), [4, 5, 6]);
        let (from, got) = r.tail(1, 5);
        assert_eq!(
            (from, indexes(&got)),
            (3, vec![3, 4]),
            "1 and 2 come from the file"
        );
        assert!(r.tail(11, 20).1.is_empty());
        r.drop_range(8..);
        assert_eq!(indexes(&r.tail(6, 20).1), [6, 7]);
        r.drop_range(..=4);
        assert_eq!(r.tail(1, 20).0, 5);
    }

    #[test]
    fn eviction_keeps_the_budget_but_never_unflushed_entries() {
        let mut r = Recent::default();
        let big = RECENT_BYTES / 4;
        for i in 1..=10 {
            r.push(entry(i, big));
        }
        assert_eq!(r.tail(1, 11).0, 1, "nothing is durable yet: all kept");
        r.set_flushed(Some(6));
        assert!(r.bytes <= RECENT_BYTES + big, "{}", r.bytes);
        assert_eq!(r.tail(1, 11).0, 7, "flushed ones evicted, unflushed kept");
        r.set_flushed(Some(10));
        assert!(r.bytes <= RECENT_BYTES);
        assert_eq!(r.last_index(), Some(10));
    }

    /// The apply answers the writers of the entries it gets from here (`proposer.rs`): a
    /// served entry must carry the very writers pushed with it, not a copy or none.
    #[test]
    fn a_served_entry_shares_the_writers_pushed_with_it() {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let writers = Writers::new(vec![tx]);
        let mut r = Recent::default();
        r.push(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Request {
                command: vec![1],
                writers: writers.clone(),
            }),
        });
        let (_, served) = r.tail(1, 2);
        let EntryPayload::Normal(req) = &served[0].payload else {
            panic!("not a normal entry")
        };
        assert_eq!(
            req.writers.take().len(),
            1,
            "the served entry holds the writer"
        );
        assert!(writers.take().is_empty(), "taken once, for everyone");
    }

    #[test]
    fn a_gap_restarts_the_run() {
        let mut r = Recent::default();
        r.push(entry(1, 10));
        r.push(entry(2, 10));
        r.push(entry(5, 10));
        assert_eq!(indexes(&r.tail(0, 10).1), [5]);
    }
}
