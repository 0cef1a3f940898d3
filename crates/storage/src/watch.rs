//! The watch hub (etcd's `watchableStore`): routes committed events to watchers.
//!
//! A watcher is *synced* when it has seen every revision up to the store's current one; new
//! events go straight to its channel. A watcher that starts in the past, or whose channel was
//! full, is *unsynced*: the store's sync thread replays its missing revisions from the `key`
//! table (bounded batches, no lock held while reading) and marks it synced once caught up.
//! A std mutex guards the hub: every critical section is short and never awaits.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use cairn_proto::mvccpb::event::EventType;
use cairn_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;

use crate::index::KeyRange;

pub type WatcherId = u64;

/// Events for one watcher, or the news that its start revision was compacted.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchBatch {
    /// The store revision these events bring the watcher up to.
    pub revision: i64,
    pub events: Vec<Event>,
    /// Non-zero when the watcher was cancelled because its start revision was compacted.
    pub compact_revision: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WatchFilters {
    pub no_put: bool,
    pub no_delete: bool,
}

struct Watcher {
    range: KeyRange,
    filters: WatchFilters,
    /// The first revision this watcher has not been sent.
    next_rev: i64,
    synced: bool,
    tx: mpsc::Sender<WatchBatch>,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        let is_put = ev.r#type == EventType::Put as i32;
        self.range.contains(&kv.key)
            && !(is_put && self.filters.no_put)
            && !(!is_put && self.filters.no_delete)
    }
}

pub(crate) struct HubState {
    next_id: WatcherId,
    watchers: HashMap<WatcherId, Watcher>,
    pub current_rev: i64,
    pub compact_rev: i64,
}

/// One unsynced watcher's catch-up job, as handed to the sync thread.
pub(crate) struct SyncJob {
    pub id: WatcherId,
    pub range: KeyRange,
    pub from: i64,
}

pub struct WatchHub {
    state: Mutex<HubState>,
    wake: Condvar,
}

/// Capacity of each watcher's channel, in batches; past it the watcher falls back to replay.
const CHANNEL_BATCHES: usize = 128;

impl WatchHub {
    pub(crate) fn new(current_rev: i64, compact_rev: i64) -> Self {
        WatchHub {
            state: Mutex::new(HubState {
                next_id: 1,
                watchers: HashMap::new(),
                current_rev,
                compact_rev,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a watcher from `start_rev` (0 = from the next revision).
    pub fn watch(
        &self,
        range: KeyRange,
        start_rev: i64,
        filters: WatchFilters,
    ) -> (WatcherId, mpsc::Receiver<WatchBatch>) {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        let next_rev = if start_rev <= 0 {
            s.current_rev + 1
        } else {
            start_rev
        };
        let synced = next_rev > s.current_rev;
        s.watchers.insert(
            id,
            Watcher {
                range,
                filters,
                next_rev,
                synced,
                tx,
            },
        );
        drop(s);
        if !synced {
            self.wake.notify_all();
        }
        (id, rx)
    }

    pub fn cancel(&self, id: WatcherId) -> bool {
        self.lock().watchers.remove(&id).is_some()
    }

    pub fn is_synced(&self, id: WatcherId) -> bool {
        self.lock().watchers.get(&id).is_some_and(|w| w.synced)
    }

    pub fn current_revision(&self) -> i64 {
        self.lock().current_rev
    }

    /// Delivers one committed apply's events (each tagged with its revision by `mod_revision`)
    /// to synced watchers and moves the hub to `current_rev`.
    pub(crate) fn notify(&self, events: &[Event], current_rev: i64, compact_rev: i64) {
        let mut s = self.lock();
        let first_rev = s.current_rev + 1;
        s.current_rev = current_rev;
        s.compact_rev = compact_rev;
        let mut fell_behind = false;
        for w in s.watchers.values_mut().filter(|w| w.synced) {
            // a watcher may start in the future: nothing before its start revision
            let from = w.next_rev;
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| w.wants(e) && revision_of(e) >= from)
                .cloned()
                .collect();
            if !mine.is_empty() {
                let batch = WatchBatch {
                    revision: current_rev,
                    events: mine,
                    compact_revision: 0,
                };
                if w.tx.try_send(batch).is_err() {
                    w.synced = false;
                    w.next_rev = first_rev;
                    fell_behind = true;
                    continue;
                }
            }
            w.next_rev = w.next_rev.max(current_rev + 1);
        }
        s.watchers.retain(|_, w| !w.tx.is_closed());
        drop(s);
        if fell_behind {
            self.wake.notify_all();
        }
    }

    /// Blocks until some watcher needs replay (or `timeout` passes); returns the jobs and the
    /// revision bounds to replay within. Watchers below the compact revision are cancelled here.
    pub(crate) fn take_jobs(&self, timeout: std::time::Duration) -> (Vec<SyncJob>, i64) {
        let mut s = self.lock();
        if !s.watchers.values().any(|w| !w.synced) {
            s = self
                .wake
                .wait_timeout(s, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let compact_rev = s.compact_rev;
        let current_rev = s.current_rev;
        let mut compacted = Vec::new();
        let mut jobs = Vec::new();
        for (id, w) in s.watchers.iter().filter(|(_, w)| !w.synced) {
            // starting exactly at the compact revision is fine: that revision is still readable
            if w.next_rev < compact_rev {
                compacted.push(*id);
            } else {
                jobs.push(SyncJob {
                    id: *id,
                    range: w.range.clone(),
                    from: w.next_rev,
                });
            }
        }
        for id in compacted {
            if let Some(w) = s.watchers.remove(&id) {
                let _ = w.tx.try_send(WatchBatch {
                    revision: current_rev,
                    events: vec![],
                    compact_revision: compact_rev,
                });
            }
        }
        (jobs, current_rev)
    }

    /// Hands replayed events (revisions `job.from..=upto`) to a watcher. It becomes synced when
    /// `upto` is the hub's current revision; a full channel leaves it unsynced to retry.
    /// Returns false when nothing could be delivered.
    pub(crate) fn deliver(&self, job: &SyncJob, events: Vec<Event>, upto: i64) -> bool {
        let mut s = self.lock();
        let current = s.current_rev;
        let Some(w) = s.watchers.get_mut(&job.id) else {
            return true;
        };
        if w.synced || w.next_rev != job.from {
            return true;
        }
        let events: Vec<Event> = events.into_iter().filter(|e| w.wants(e)).collect();
        if !events.is_empty()
            && w.tx
                .try_send(WatchBatch {
                    revision: upto,
                    events,
                    compact_revision: 0,
                })
                .is_err()
        {
            return false;
        }
        w.next_rev = upto + 1;
        w.synced = w.next_rev > current;
        true
    }

    pub fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }
}

fn revision_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Turns a stored change into a watch event (a tombstone carries only its key).
pub fn event_of(kv: KeyValue, revision: i64, tombstone: bool) -> Event {
    if tombstone {
        let kv = KeyValue {
            mod_revision: revision,
            ..kv
        };
        Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv),
            prev_kv: None,
        }
    } else {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        }
    }
}
