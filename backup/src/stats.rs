//! How far behind the backup is: what `backup run` reports in its status lines and on its
//! Prometheus page (`--listen-metrics-urls`, OpenMetrics text through `prometheus-client`).
//!
//! "Stored" is what a restore can use: in the directory, or uploaded to the object store.
//! The lag is the source's latest revision (from the watch's response headers) minus the
//! stored one, and the age of the oldest change seen and not stored yet.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct Stats {
    registry: Registry,
    source_revision: Gauge,
    sealed_revision: Gauge,
    stored_revision: Gauge,
    lag_revisions: Gauge,
    lag_seconds: Gauge<f64, AtomicU64>,
    full_revision: Gauge,
    full_timestamp: Gauge<f64, AtomicU64>,
    full_age: Gauge<f64, AtomicU64>,
    spooled_files: Gauge,
    bytes_written: Counter,
    bytes_uploaded: Counter,
    retries: Counter,
    upload_failures: Counter,
    /// The first revision of each segment not stored yet, and when its first change was
    /// seen (Unix ms): the oldest is where the lag in seconds counts from.
    unstored: Mutex<BTreeMap<i64, i64>>,
}

/// One status line's worth (also serialized for `-w json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    pub source_revision: i64,
    pub stored_revision: i64,
    pub lag_revisions: i64,
    pub lag_seconds: f64,
    pub full_revision: i64,
    pub full_age_seconds: f64,
    pub spooled_files: i64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        let mut registry = Registry::with_prefix("cairn_backup");
        let s = Stats {
            source_revision: Gauge::default(),
            sealed_revision: Gauge::default(),
            stored_revision: Gauge::default(),
            lag_revisions: Gauge::default(),
            lag_seconds: Gauge::default(),
            full_revision: Gauge::default(),
            full_timestamp: Gauge::default(),
            full_age: Gauge::default(),
            spooled_files: Gauge::default(),
            bytes_written: Counter::default(),
            bytes_uploaded: Counter::default(),
            retries: Counter::default(),
            upload_failures: Counter::default(),
            unstored: Mutex::new(BTreeMap::new()),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "source_revision",
            "Latest revision of the source seen in the watch",
            s.source_revision.clone(),
        );
        r.register(
            "sealed_revision",
            "Every revision up to this one is in a sealed segment (spool or target)",
            s.sealed_revision.clone(),
        );
        r.register(
            "stored_revision",
            "Every revision up to this one is in the target: what a restore can reach",
            s.stored_revision.clone(),
        );
        r.register(
            "lag_revisions",
            "Source revision minus stored revision",
            s.lag_revisions.clone(),
        );
        r.register(
            "lag_seconds",
            "Age of the oldest change seen and not yet stored",
            s.lag_seconds.clone(),
        );
        r.register(
            "last_full_snapshot_revision",
            "Revision of the newest full snapshot",
            s.full_revision.clone(),
        );
        r.register(
            "last_full_snapshot_timestamp_seconds",
            "When the newest full snapshot was stored (Unix seconds)",
            s.full_timestamp.clone(),
        );
        r.register(
            "last_full_snapshot_age_seconds",
            "Age of the newest full snapshot",
            s.full_age.clone(),
        );
        r.register(
            "spooled_files",
            "Finished files waiting in the spool for upload",
            s.spooled_files.clone(),
        );
        r.register(
            "written_bytes",
            "Bytes of segments sealed and full snapshots saved",
            s.bytes_written.clone(),
        );
        r.register(
            "uploaded_bytes",
            "Bytes uploaded to the object store",
            s.bytes_uploaded.clone(),
        );
        r.register(
            "retries",
            "Reconnections to the source after a failure",
            s.retries.clone(),
        );
        r.register(
            "upload_failures",
            "Uploads that failed and were tried again",
            s.upload_failures.clone(),
        );
        Stats { registry, ..s }
    }

    /// A watch response's header revision.
    pub fn saw_source(&self, revision: i64) {
        if revision > self.source_revision.get() {
            self.source_revision.set(revision);
        }
    }

    /// A segment was opened with its first change at `revision`.
    pub fn opened(&self, revision: i64) {
        if let Ok(mut u) = self.unstored.lock() {
            u.entry(revision).or_insert_with(now_ms);
        }
    }

    pub fn sealed(&self, last: i64, bytes: u64) {
        self.sealed_revision
            .set(last.max(self.sealed_revision.get()));
        self.bytes_written.inc_by(bytes);
    }

    pub fn full_saved(&self, revision: i64, bytes: u64) {
        self.bytes_written.inc_by(bytes);
        self.sealed_revision
            .set(revision.max(self.sealed_revision.get()));
    }

    /// A full snapshot is in the target (at the start: the newest one there).
    pub fn full_stored(&self, revision: i64, unix_ms: i64) {
        self.full_revision.set(revision);
        self.full_timestamp.set(unix_ms as f64 / 1000.0);
        self.stored(revision);
    }

    /// Every revision up to `last` is in the target.
    pub fn stored(&self, last: i64) {
        self.stored_revision
            .set(last.max(self.stored_revision.get()));
        self.sealed_revision
            .set(last.max(self.sealed_revision.get()));
        if let Ok(mut u) = self.unstored.lock() {
            u.retain(|first, _| *first > last);
        }
        self.saw_source(last);
    }

    pub fn uploaded(&self, bytes: u64) {
        self.bytes_uploaded.inc_by(bytes);
    }

    pub fn spooled(&self, files: usize) {
        self.spooled_files.set(files as i64);
    }

    pub fn retried(&self) {
        self.retries.inc();
    }

    pub fn upload_failed(&self) {
        self.upload_failures.inc();
    }

    /// The numbers now (and the derived gauges brought up to date).
    pub fn status(&self) -> Status {
        let now = now_ms();
        let oldest = self
            .unstored
            .lock()
            .ok()
            .and_then(|u| u.values().next().copied());
        let lag_seconds = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        let lag = (self.source_revision.get() - self.stored_revision.get()).max(0);
        let full_ts = self.full_timestamp.get();
        let full_age = if full_ts > 0.0 {
            (now as f64 / 1000.0 - full_ts).max(0.0)
        } else {
            0.0
        };
        self.lag_revisions.set(lag);
        self.lag_seconds.set(lag_seconds);
        self.full_age.set(full_age);
        Status {
            source_revision: self.source_revision.get(),
            stored_revision: self.stored_revision.get(),
            lag_revisions: lag,
            lag_seconds,
            full_revision: self.full_revision.get(),
            full_age_seconds: full_age,
            spooled_files: self.spooled_files.get(),
        }
    }

    /// The Prometheus page (OpenMetrics text).
    pub fn render(&self) -> String {
        self.status();
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: source at revision {}, stored to {} (lag {} revisions, {:.1}s), full \
             snapshot at {} ({:.0}s old), {} files in the spool",
            self.source_revision,
            self.stored_revision,
            self.lag_revisions,
            self.lag_seconds,
            self.full_revision,
            self.full_age_seconds,
            self.spooled_files
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_oldest_change_not_stored() {
        let s = Stats::new();
        s.full_stored(10, now_ms());
        s.saw_source(25);
        s.opened(11);
        s.sealed(20, 100);
        s.opened(21);
        let st = s.status();
        assert_eq!((st.stored_revision, st.lag_revisions), (10, 15));
        s.stored(20);
        let st = s.status();
        assert_eq!((st.stored_revision, st.lag_revisions), (20, 5));
        s.stored(25);
        let st = s.status();
        assert_eq!((st.lag_revisions, st.lag_seconds), (0, 0.0));
        let page = s.render();
        for line in [
            "# TYPE cairn_backup_lag_revisions gauge",
            "cairn_backup_stored_revision 25",
            "cairn_backup_written_bytes_total 100",
            "cairn_backup_last_full_snapshot_revision 10",
        ] {
            assert!(page.contains(line), "{line}: {page}");
        }
    }
}
