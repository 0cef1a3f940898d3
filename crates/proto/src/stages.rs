//! Where one request's time goes, stage by stage: a measuring aid for `docs/performance.md`,
//! compiled in only with the `stage-timing` feature (`cargo build --release -p cairn-server
//! --features stage-timing`); without it [`mark`] is empty and costs nothing.
//!
//! The server marks each [`Stage`] as a put passes it. For each stage the time since the stage
//! before it is summed, and every [`REPORT_EVERY`] puts the means (µs) are printed on stderr,
//! one line per report. It assumes one request at a time (`cairnutl bench put --clients 1`):
//! with several in flight the stages of different requests interleave and the sums mean
//! nothing. A stage passed twice before the next one (a second read on the connection, say)
//! counts once, at its first pass.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The stages of a put, in order. `Read` follows `Written` of the request before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The connection read the request's first bytes.
    Read,
    /// The KV handler got the decoded request.
    Handler,
    /// The proposer took the write from its queue.
    Proposer,
    /// Raft handed the entry to the log store.
    Append,
    /// The write-ahead log wrote and synced it.
    Synced,
    /// The state machine got the committed entry.
    Apply,
    /// The state machine applied it.
    Applied,
    /// The waiting writer was answered (by the apply, or by the proposer through raft).
    Answered,
    /// The handler has the response.
    Replied,
    /// The connection writes the response.
    Written,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; N] = [
        Stage::Read,
        Stage::Handler,
        Stage::Proposer,
        Stage::Append,
        Stage::Synced,
        Stage::Apply,
        Stage::Applied,
        Stage::Answered,
        Stage::Replied,
        Stage::Written,
    ];
}

/// Puts per printed report.
pub const REPORT_EVERY: u64 = 5000;

const N: usize = Stage::Written as usize + 1;

/// The sums behind the reports.
#[cfg_attr(not(feature = "stage-timing"), allow(dead_code))]
struct Timings {
    /// When each stage was last passed (ns since the first mark, plus one); 0 for never.
    last: [AtomicU64; N],
    /// Summed time from the stage before, per stage (ns).
    sum: [AtomicU64; N],
    puts: AtomicU64,
}

#[cfg_attr(not(feature = "stage-timing"), allow(dead_code))]
impl Timings {
    const fn new() -> Timings {
        Timings {
            last: [const { AtomicU64::new(0) }; N],
            sum: [const { AtomicU64::new(0) }; N],
            puts: AtomicU64::new(0),
        }
    }

    /// Records `stage` passed at `t` ns; returns the report when `every` puts are complete.
    fn pass(&self, stage: Stage, t: u64, every: u64) -> Option<String> {
        let i = stage as usize;
        let before = self.last[(i + N - 1) % N].load(Relaxed);
        if self.last[i].load(Relaxed) > before {
            return None; // already passed since the stage before
        }
        if before != 0 {
            self.sum[i].fetch_add(t.saturating_sub(before), Relaxed);
        }
        self.last[i].store(t, Relaxed);
        let done =
            stage == Stage::Written && (self.puts.fetch_add(1, Relaxed) + 1).is_multiple_of(every);
        done.then(|| self.report(every))
    }

    /// `stage-timing (µs per put, from the stage before): Read 254.1 Handler 40.2 ...`; the
    /// sums start again from zero.
    fn report(&self, every: u64) -> String {
        let mut line = String::from("stage-timing (µs per put, from the stage before):");
        for (stage, sum) in Stage::ALL.iter().zip(&self.sum) {
            let mean = sum.swap(0, Relaxed) as f64 / every as f64 / 1000.0;
            line.push_str(&format!(" {stage:?} {mean:.1}"));
        }
        line
    }
}

/// Records that a request passed `stage` (only with the `stage-timing` feature).
#[inline(always)]
pub fn mark(stage: Stage) {
    #[cfg(feature = "stage-timing")]
    {
        static TIMINGS: Timings = Timings::new();
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let t = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
            + 1;
        if let Some(report) = TIMINGS.pass(stage, t, REPORT_EVERY) {
            eprintln!("{report}");
        }
    }
    #[cfg(not(feature = "stage-timing"))]
    let _ = stage;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_sums_the_time_since_the_stage_before_and_a_report_gives_the_means() {
        let t = Timings::new();
        let mut now = 1_000;
        let mut reports = Vec::new();
        for _put in 0..2 {
            for (k, stage) in Stage::ALL.iter().enumerate() {
                now += 1_000 * (k as u64 + 1); // stage k takes k + 1 µs
                reports.extend(t.pass(*stage, now, 2));
                // a second pass before the next stage (another read, say) counts nothing
                assert_eq!(t.pass(*stage, now + 500, 2), None);
            }
        }
        // the first put's Read has no Written before it: 1 µs counted once over 2 puts
        assert_eq!(
            reports,
            [
                "stage-timing (µs per put, from the stage before): Read 0.5 Handler 2.0 \
              Proposer 3.0 Append 4.0 Synced 5.0 Apply 6.0 Applied 7.0 Answered 8.0 Replied 9.0 \
              Written 10.0"
            ]
        );
    }
}
