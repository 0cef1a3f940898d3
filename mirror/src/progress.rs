//! What the mirror tells its caller: [`Event`]s through a callback (the library never
//! prints), and [`Stats`], the counters behind the status line and the metrics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::error::Side;

/// Something the caller may want to show. Serialized as `{"event": "...", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The mirror holds the destination prefix.
    Started {
        mirror_id: String,
        checkpoint_key: String,
    },
    /// Where it starts from, as the destination's checkpoint says.
    Resuming { revision: i64, phase: Phase },
    /// A full copy of the prefix at `revision` begins (`reason` says why).
    SyncStarted { revision: i64, reason: String },
    /// Keys copied so far in the current full copy.
    SyncProgress { revision: i64, keys: u64 },
    /// The copy is complete and destination keys the source lacks were deleted.
    SyncDone {
        revision: i64,
        keys: u64,
        pruned: u64,
        kept_extra: u64,
        seconds: f64,
    },
    /// Watching the source from `revision`.
    Watching { revision: i64 },
    /// Periodic status, about once a second.
    Status(Status),
    /// A call failed; the mirror reconnects after `backoff_ms`.
    Retry {
        side: Option<Side>,
        error: String,
        attempt: u32,
        backoff_ms: u64,
    },
    /// Something the operator should know that is not an error.
    Warning { message: String },
    /// Shut down on request; everything acknowledged is checkpointed.
    Stopped { mirrored_revision: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting = 0,
    Syncing = 1,
    Pruning = 2,
    Watching = 3,
    Retrying = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Syncing,
            2 => Phase::Pruning,
            3 => Phase::Watching,
            4 => Phase::Retrying,
            _ => Phase::Starting,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub phase: Phase,
    pub source_revision: i64,
    pub mirrored_revision: i64,
    pub lag_revisions: i64,
    pub lag_seconds: f64,
    pub events_per_second: f64,
    pub events_total: u64,
    pub keys_copied_total: u64,
    pub retries_total: u64,
    pub txn_reorders_total: u64,
}

/// The callback events go to.
pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

/// Counters shared by the engine, the status reporter and the metrics endpoint.
#[derive(Default)]
pub struct Stats {
    pub source_revision: AtomicI64,
    pub mirrored_revision: AtomicI64,
    pub events_total: AtomicU64,
    pub txns_total: AtomicU64,
    pub keys_copied_total: AtomicU64,
    pub keys_pruned_total: AtomicU64,
    pub resyncs_total: AtomicU64,
    pub retries_total: AtomicU64,
    /// Chained watch-phase txns the destination ran out of order (and that were resent).
    pub txn_reorders_total: AtomicU64,
    pub leases_active: AtomicI64,
    phase: AtomicU8,
    /// Source revisions seen but not yet mirrored, with when they were first seen: the
    /// oldest one's age is the lag in seconds.
    unmirrored: Mutex<VecDeque<(i64, Instant)>>,
}

impl Stats {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Relaxed))
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Relaxed);
    }

    /// The source is at `rev` (from any response header).
    pub fn saw_source(&self, rev: i64) {
        let prev = self.source_revision.fetch_max(rev, Relaxed);
        if rev > prev && rev > self.mirrored_revision.load(Relaxed) {
            let mut q = self.unmirrored.lock().expect("stats lock");
            if q.back().is_none_or(|(r, _)| *r < rev) {
                q.push_back((rev, Instant::now()));
            }
        }
    }

    /// Everything up to `rev` is at the destination.
    pub fn mirrored(&self, rev: i64) {
        self.mirrored_revision.fetch_max(rev, Relaxed);
        self.source_revision.fetch_max(rev, Relaxed);
        let mut q = self.unmirrored.lock().expect("stats lock");
        while q.front().is_some_and(|(r, _)| *r <= rev) {
            q.pop_front();
        }
    }

    pub fn lag_seconds(&self) -> f64 {
        let q = self.unmirrored.lock().expect("stats lock");
        q.front()
            .map(|(_, t)| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    pub fn status(&self, events_per_second: f64) -> Status {
        let source = self.source_revision.load(Relaxed);
        let mirrored = self.mirrored_revision.load(Relaxed);
        Status {
            phase: self.phase(),
            source_revision: source,
            mirrored_revision: mirrored,
            lag_revisions: (source - mirrored).max(0),
            lag_seconds: self.lag_seconds(),
            events_per_second,
            events_total: self.events_total.load(Relaxed),
            keys_copied_total: self.keys_copied_total.load(Relaxed),
            retries_total: self.retries_total.load(Relaxed),
            txn_reorders_total: self.txn_reorders_total.load(Relaxed),
        }
    }
}

/// Emits a [`Event::Status`] every `period` until the returned task is aborted.
pub fn spawn_status(
    stats: Arc<Stats>,
    report: Reporter,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = (Instant::now(), stats.events_total.load(Relaxed));
        loop {
            tokio::time::sleep(period).await;
            let now = (Instant::now(), stats.events_total.load(Relaxed));
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            let rate = (now.1 - last.1) as f64 / secs;
            last = now;
            report(Event::Status(stats.status(rate)));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_follows_the_oldest_unmirrored_revision() {
        let s = Stats::default();
        s.mirrored(10);
        s.saw_source(12);
        s.saw_source(15);
        assert_eq!(s.status(0.0).lag_revisions, 5);
        assert!(s.lag_seconds() >= 0.0);
        s.mirrored(12);
        assert_eq!(s.unmirrored.lock().unwrap().len(), 1);
        s.mirrored(15);
        assert_eq!(s.lag_seconds(), 0.0);
        assert_eq!(s.status(0.0).lag_revisions, 0);
    }
}
