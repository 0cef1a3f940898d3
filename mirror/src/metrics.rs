//! Prometheus metrics of a running mirror, served on `--listen-metrics-urls` at `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::Error;
use crate::progress::{Phase, Stats};

/// The metrics in Prometheus' text format.
pub fn render(s: &Stats) -> String {
    let st = s.status(0.0);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "cairn_mirror_source_revision",
        "gauge",
        "Latest source revision seen.",
        st.source_revision.to_string(),
    );
    metric(
        "cairn_mirror_mirrored_revision",
        "gauge",
        "Every source revision up to this one is at the destination.",
        st.mirrored_revision.to_string(),
    );
    metric(
        "cairn_mirror_lag_revisions",
        "gauge",
        "Source revision minus mirrored revision.",
        st.lag_revisions.to_string(),
    );
    metric(
        "cairn_mirror_lag_seconds",
        "gauge",
        "Age of the oldest source revision seen and not yet mirrored.",
        format!("{:.3}", st.lag_seconds),
    );
    metric(
        "cairn_mirror_events_total",
        "counter",
        "Source watch events applied at the destination.",
        st.events_total.to_string(),
    );
    metric(
        "cairn_mirror_txns_total",
        "counter",
        "Destination txns committed.",
        s.txns_total.load(Relaxed).to_string(),
    );
    metric(
        "cairn_mirror_keys_copied_total",
        "counter",
        "Keys copied by the current or last full copy.",
        st.keys_copied_total.to_string(),
    );
    metric(
        "cairn_mirror_keys_pruned_total",
        "counter",
        "Destination keys deleted because the source lacked them.",
        s.keys_pruned_total.load(Relaxed).to_string(),
    );
    metric(
        "cairn_mirror_resyncs_total",
        "counter",
        "Full copies after compaction, lost leases or a source restore.",
        s.resyncs_total.load(Relaxed).to_string(),
    );
    metric(
        "cairn_mirror_retries_total",
        "counter",
        "Reconnections after failures.",
        s.retries_total.load(Relaxed).to_string(),
    );
    metric(
        "cairn_mirror_txn_reorders_total",
        "counter",
        "Pipelined txns the destination ran out of order; they were sent again.",
        s.txn_reorders_total.load(Relaxed).to_string(),
    );
    metric(
        "cairn_mirror_leases",
        "gauge",
        "Destination leases the mirror keeps (--with-leases).",
        s.leases_active.load(Relaxed).to_string(),
    );
    let phase = st.phase;
    let _ = writeln!(
        out,
        "# HELP cairn_mirror_phase 1 for the phase the mirror is in.\n# TYPE cairn_mirror_phase gauge"
    );
    for p in [
        Phase::Starting,
        Phase::Syncing,
        Phase::Pruning,
        Phase::Watching,
        Phase::Retrying,
    ] {
        let name = serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "cairn_mirror_phase{{phase=\"{name}\"}} {}",
            u8::from(p == phase)
        );
    }
    out
}

/// Serves `/metrics` on each `http://HOST:PORT` URL until the returned tasks are aborted.
pub async fn serve(
    urls: &[String],
    stats: Arc<Stats>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let render: cairn_client::metrics::Render =
        Arc::new(move || (render(&stats), cairn_client::metrics::PROMETHEUS_TEXT));
    cairn_client::metrics::serve(urls, render)
        .await
        .map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let s = Stats::default();
        s.mirrored(7);
        s.saw_source(9);
        s.set_phase(Phase::Watching);
        let t = render(&s);
        assert!(t.contains("cairn_mirror_lag_revisions 2\n"), "{t}");
        assert!(
            t.contains("cairn_mirror_phase{phase=\"watching\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE cairn_mirror_events_total counter"),
            "{t}"
        );
    }
}
