//! The watch hub (etcd's `watchableStore`): routes committed events to watchers.
//!
//! A watcher is *synced* when it has seen every revision up to the store's current one; new
//! events go straight to its channel. A watcher that starts in the past, or whose channel was
//! full, is *unsynced*: the store's sync thread replays its missing revisions from the `key`
//! table (bounded batches, no lock held while reading) and marks it synced once caught up.
//! A std mutex guards the hub: every critical section is short and never awaits.
//!
//! When a snapshot replaces the store's data ([`WatchHub::reset`]), every watcher with
//! revisions left to see becomes unsynced and is replayed from the new `key` table, as etcd's
//! watchable store does after a snapshot restore. The hub's *epoch* changes with each reset,
//! so a replay read from the old data, or the notification of an apply committed to it,
//! that arrives afterwards is dropped instead of delivered.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use cairn_proto::mvccpb::event::EventType;
use cairn_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::index::KeyRange;

pub type WatcherId = u64;

/// Events for one watcher, or the news that its start revision was compacted.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchBatch {
    /// The watcher they are for (watchers may share one channel).
    pub watcher: WatcherId,
    /// The store revision these events bring the watcher up to.
    pub revision: i64,
    pub events: Vec<Event>,
    /// Non-zero when the watcher was cancelled because its start revision was compacted.
    pub compact_revision: i64,
}

/// What [`WatchHub::progress`] found.
#[derive(Debug)]
pub struct Progress {
    pub revision: i64,
    /// The watchers asked about that are synced (or gone from the hub: nothing to wait for).
    pub synced: Vec<WatcherId>,
    /// Batches that were waiting in the channel: to be sent before any notification.
    pub queued: Vec<WatchBatch>,
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
        let filtered = if ev.r#type == EventType::Put as i32 {
            self.filters.no_put
        } else {
            self.filters.no_delete
        };
        self.range.contains(&kv.key) && !filtered
    }
}

pub(crate) struct HubState {
    next_id: WatcherId,
    watchers: HashMap<WatcherId, Watcher>,
    pub current_rev: i64,
    pub compact_rev: i64,
    /// Bumped by every reset; jobs and notifications of an older epoch are stale.
    epoch: u64,
}

/// One unsynced watcher's catch-up job, as handed to the sync thread.
pub(crate) struct SyncJob {
    pub id: WatcherId,
    pub range: KeyRange,
    pub from: i64,
    pub epoch: u64,
}

pub struct WatchHub {
    state: Mutex<HubState>,
    wake: Condvar,
}

/// How long the sync thread waits before retrying when every channel it has to send to is
/// full, to give their readers time.
pub(crate) const FULL_CHANNEL_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// Capacity of the channel [`WatchHub::watch`] makes, in batches; past it the watcher falls
/// back to replay.
const CHANNEL_BATCHES: usize = 128;

impl WatchHub {
    pub(crate) fn new(current_rev: i64, compact_rev: i64) -> Self {
        WatchHub {
            state: Mutex::new(HubState {
                next_id: 1,
                watchers: HashMap::new(),
                current_rev,
                compact_rev,
                epoch: 0,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a watcher from `start_rev` (0 = from the next revision) with a channel of
    /// its own.
    pub fn watch(
        &self,
        range: KeyRange,
        start_rev: i64,
        filters: WatchFilters,
    ) -> (WatcherId, mpsc::Receiver<WatchBatch>) {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        (self.watch_into(range, start_rev, filters, tx), rx)
    }

    /// Registers a watcher that sends its batches (tagged with its id) to `tx`, which other
    /// watchers may share: one client stream's watchers are served by one task. When `tx` is
    /// full the watcher falls back to replay, as with a channel of its own.
    pub fn watch_into(
        &self,
        range: KeyRange,
        start_rev: i64,
        filters: WatchFilters,
        tx: mpsc::Sender<WatchBatch>,
    ) -> WatcherId {
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
        id
    }

    pub fn cancel(&self, id: WatcherId) -> bool {
        self.lock().watchers.remove(&id).is_some()
    }

    /// Whether one watcher is synced (the tests' view; the watch stream asks through
    /// [`WatchHub::progress`], which also takes the queued batches).
    #[cfg(test)]
    pub(crate) fn is_synced(&self, id: WatcherId) -> bool {
        self.lock().watchers.get(&id).is_some_and(|w| w.synced)
    }

    /// Where the watchers `ids`, which all send to the channel `rx` reads, stand, for a
    /// progress notification: the current revision, which of them are synced, and the batches
    /// already queued for them. Everything up to that revision is in those batches for a
    /// synced watcher, so a notification queued after them is never ahead of its events
    /// (etcd's bug 15220 was a notification that overtook them). Taken under the hub's lock,
    /// which every send to a watcher's channel holds.
    pub fn progress(
        &self,
        ids: impl IntoIterator<Item = WatcherId>,
        rx: &mut mpsc::Receiver<WatchBatch>,
    ) -> Progress {
        let s = self.lock();
        let mut queued = Vec::new();
        while let Ok(b) = rx.try_recv() {
            queued.push(b);
        }
        let synced = ids
            .into_iter()
            .filter(|id| s.watchers.get(id).is_none_or(|w| w.synced))
            .collect();
        Progress {
            revision: s.current_rev,
            synced,
            queued,
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.lock().current_rev
    }

    /// The current epoch; an apply reads it under the store's state lock and hands it back
    /// to [`WatchHub::notify`].
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// The store's data was replaced (a snapshot was installed) and is now at `current_rev`,
    /// compacted at `compact_rev`. Every watcher with revisions up to `current_rev` still to
    /// see becomes unsynced: the sync thread replays it from the new data, or cancels it with
    /// the compact revision if its next revision was compacted. Called under the store's state
    /// lock, so no apply on the new data can notify before this.
    pub(crate) fn reset(&self, current_rev: i64, compact_rev: i64) {
        let mut s = self.lock();
        s.epoch += 1;
        s.current_rev = current_rev;
        s.compact_rev = compact_rev;
        for w in s.watchers.values_mut() {
            w.synced = w.next_rev > current_rev;
        }
        drop(s);
        self.wake.notify_all();
    }

    /// Delivers one committed apply's events (each tagged with its revision by `mod_revision`)
    /// to synced watchers and moves the hub to `current_rev`. `epoch` is the hub's epoch when
    /// the apply began; a stale one (the data was replaced since) is ignored.
    pub(crate) fn notify(&self, events: &[Event], current_rev: i64, compact_rev: i64, epoch: u64) {
        let mut s = self.lock();
        if s.epoch != epoch {
            return;
        }
        let first_rev = s.current_rev + 1;
        s.current_rev = current_rev;
        s.compact_rev = compact_rev;
        let mut fell_behind = false;
        for (id, w) in s.watchers.iter_mut().filter(|(_, w)| w.synced) {
            // a watcher may start in the future: nothing before its start revision
            let from = w.next_rev;
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| w.wants(e) && revision_of(e) >= from)
                .cloned()
                .collect();
            if !mine.is_empty() {
                let batch = WatchBatch {
                    watcher: *id,
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
        let epoch = s.epoch;
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
                    epoch,
                });
            }
        }
        let mut blocked = false;
        for id in compacted {
            let notice = WatchBatch {
                watcher: id,
                revision: current_rev,
                events: vec![],
                compact_revision: compact_rev,
            };
            // a full channel keeps the watcher, to be told on a later round
            if let Some(w) = s.watchers.get(&id) {
                if matches!(w.tx.try_send(notice), Err(TrySendError::Full(_))) {
                    blocked = true;
                } else {
                    s.watchers.remove(&id);
                }
            }
        }
        drop(s);
        if blocked && jobs.is_empty() {
            // nothing else to do until its reader makes room
            std::thread::sleep(FULL_CHANNEL_RETRY);
        }
        (jobs, current_rev)
    }

    /// Hands replayed events (revisions `job.from..=upto`) to a watcher. It becomes synced when
    /// `upto` is the hub's current revision; a full channel leaves it unsynced to retry.
    /// Returns false when nothing could be delivered.
    pub(crate) fn deliver(&self, job: &SyncJob, events: Vec<Event>, upto: i64) -> bool {
        let mut s = self.lock();
        let current = s.current_rev;
        if job.epoch != s.epoch {
            // read from data a snapshot has since replaced
            return true;
        }
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
                    watcher: job.id,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn put_event(key: &str, rev: i64) -> Event {
        let kv = KeyValue {
            key: key.into(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            ..Default::default()
        };
        event_of(kv, rev, false)
    }

    #[test]
    fn reset_replays_every_watcher_and_drops_stale_work() {
        let hub = WatchHub::new(10, -1);
        let all = || (KeyRange::all(), WatchFilters::default());
        let (behind, mut behind_rx) = hub.watch(all().0, 0, all().1);
        let (ahead, _ahead_rx) = hub.watch(all().0, 30, all().1);
        let (old, mut old_rx) = hub.watch(all().0, 5, all().1);
        let (jobs, _) = hub.take_jobs(Duration::ZERO);
        let stale_job = jobs.into_iter().find(|j| j.id == old).unwrap();
        let stale_epoch = hub.epoch();

        hub.reset(20, 8);
        assert!(!hub.is_synced(behind), "revisions 11..=20 to replay");
        assert!(hub.is_synced(ahead), "nothing to replay before 30");
        assert_eq!(hub.current_revision(), 20);
        // a replay read from the old data and an apply committed to it arrive late: dropped
        assert!(hub.deliver(&stale_job, vec![put_event("a", 5)], 10));
        hub.notify(&[put_event("b", 11)], 11, -1, stale_epoch);
        assert!(behind_rx.try_recv().is_err());
        assert!(old_rx.try_recv().is_err());
        assert_eq!(hub.current_revision(), 20);

        // the next round replays from each position, or cancels below the compaction
        let (jobs, current) = hub.take_jobs(Duration::ZERO);
        assert_eq!(current, 20);
        let froms: Vec<_> = jobs.iter().map(|j| (j.id, j.from)).collect();
        assert_eq!(froms, vec![(behind, 11)]);
        let cancel = old_rx.try_recv().unwrap();
        assert_eq!((cancel.compact_revision, cancel.events.len()), (8, 0));
        assert_eq!(hub.watcher_count(), 2);
        assert!(hub.deliver(&jobs[0], vec![put_event("c", 15)], 20));
        assert_eq!(
            behind_rx.try_recv().unwrap().events,
            vec![put_event("c", 15)]
        );
        assert!(hub.is_synced(behind));
    }

    #[test]
    fn watchers_sharing_a_channel_get_batches_tagged_with_their_ids() {
        let hub = WatchHub::new(10, -1);
        let (tx, mut rx) = mpsc::channel(8);
        let filters = WatchFilters::default();
        let a = hub.watch_into(KeyRange::prefix(b"a"), 0, filters, tx.clone());
        let b = hub.watch_into(KeyRange::prefix(b"b"), 0, filters, tx.clone());
        hub.notify(
            &[put_event("a1", 11), put_event("b1", 11)],
            11,
            -1,
            hub.epoch(),
        );
        let mut got: Vec<(WatcherId, Vec<u8>)> = (0..2)
            .map(|_| {
                let batch = rx.try_recv().unwrap();
                (batch.watcher, batch.events[0].kv.clone().unwrap().key)
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![(a, b"a1".to_vec()), (b, b"b1".to_vec())]);
        assert!(rx.try_recv().is_err(), "one batch per watcher");
    }

    #[test]
    fn a_compaction_notice_waits_for_room_in_a_full_channel() {
        let hub = WatchHub::new(20, 8);
        let (tx, mut rx) = mpsc::channel(1);
        let filters = WatchFilters::default();
        let busy = hub.watch_into(KeyRange::all(), 0, filters, tx.clone());
        let old = hub.watch_into(KeyRange::all(), 5, filters, tx.clone());
        hub.notify(&[put_event("a", 21)], 21, 8, hub.epoch());
        // the channel is full: the notice cannot go, so the watcher stays registered
        let _ = hub.take_jobs(Duration::ZERO);
        assert_eq!(hub.watcher_count(), 2);
        assert_eq!(rx.try_recv().unwrap().watcher, busy);
        let _ = hub.take_jobs(Duration::ZERO);
        let notice = rx.try_recv().unwrap();
        assert_eq!((notice.watcher, notice.compact_revision), (old, 8));
        assert_eq!(hub.watcher_count(), 1);
    }
}
