//! The client loop every workload shares. Each client takes the next request number from a
//! shared counter until --total is reached or --duration is over, waits for its slot when
//! --rate is given, and times the call from just before it is sent until its response.
//!
//! Latencies go into one histogram per client (no shared lock on the hot path), merged at the
//! end. With --rate a late request is sent at once and timed from its send, not from its slot
//! (like etcd's tool; a server that falls behind shows up as a lower rate, not higher latency).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::histogram::Histogram;

/// One client's connection state; `call` sends request number `n` and waits for the answer.
pub trait Worker: Send + 'static {
    /// The series request `n` is counted in (`mixed` splits reads from writes).
    fn series(&self, _n: u64) -> usize {
        0
    }
    fn call(&mut self, n: u64) -> impl Future<Output = Result<(), tonic::Status>> + Send;
}

/// Latencies and errors of one kind of request.
#[derive(Clone, Default)]
pub struct Series {
    pub hist: Histogram,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Series {
    pub fn error(&mut self, e: &tonic::Status) {
        self.errors += 1;
        if self.first_error.is_none() {
            let msg = if e.message().is_empty() {
                e.code().description().to_string()
            } else {
                e.message().to_string()
            };
            self.first_error = Some(msg);
        }
    }

    pub fn merge(&mut self, other: &Series) {
        self.hist.merge(&other.hist);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// What the loop runs: how many requests or for how long, and how fast.
pub struct Plan {
    pub total: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
    /// What the progress bar says.
    pub label: String,
}

impl Plan {
    pub fn new(load: &super::Load, label: &str) -> Plan {
        Plan {
            total: load.total(),
            duration: load.duration,
            rate: load.rate.filter(|r| *r > 0.0),
            label: label.to_string(),
        }
    }
}

/// Runs every worker to the end of the plan; returns the wall time and the merged series.
pub async fn drive<W: Worker>(
    plan: &Plan,
    workers: Vec<W>,
    series: usize,
) -> (Duration, Vec<Series>) {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = plan.duration.map(|d| start + d);
    let bar = progress(plan, done.clone(), start);
    let mut tasks = Vec::new();
    for mut w in workers {
        let (next, done) = (next.clone(), done.clone());
        let (total, rate) = (plan.total, plan.rate);
        tasks.push(tokio::spawn(async move {
            let mut out = vec![Series::default(); series];
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if total.is_some_and(|t| n >= t) {
                    break;
                }
                if let Some(r) = rate {
                    let slot = start + Duration::from_secs_f64(n as f64 / r);
                    if deadline.is_some_and(|d| slot >= d) {
                        break;
                    }
                    tokio::time::sleep_until(slot).await;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let s = w.series(n);
                let sent = Instant::now();
                match w.call(n).await {
                    Ok(()) => out[s].hist.record(sent.elapsed()),
                    Err(e) => out[s].error(&e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            out
        }));
    }
    let mut merged = vec![Series::default(); series];
    for t in tasks {
        // A panicking worker is a bug in the tool: let it surface.
        let out = t.await.expect("bench worker panicked");
        for (m, o) in merged.iter_mut().zip(&out) {
            m.merge(o);
        }
    }
    let elapsed = start.elapsed();
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    (elapsed, merged)
}

/// A bar on a terminal (requests done of --total, or seconds of --duration), refreshed by a
/// ticker so the clients never touch it.
fn progress(
    plan: &Plan,
    done: Arc<AtomicU64>,
    start: Instant,
) -> Option<(indicatif::ProgressBar, tokio::task::JoinHandle<()>)> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (len, template) = match (plan.total, plan.duration) {
        (Some(t), _) => (t, "{msg} {bar:40} {pos}/{len} ({per_sec}, {eta})"),
        (None, Some(d)) => (d.as_secs().max(1), "{msg} {bar:40} {pos}/{len} s"),
        (None, None) => return None,
    };
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(plan.label.clone());
    let by_time = plan.total.is_none();
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if by_time {
                b.set_position(start.elapsed().as_secs());
            } else {
                b.set_position(done.load(Ordering::Relaxed));
            }
        }
    });
    Some((bar, ticker))
}
