//! A latency histogram: the `hdrhistogram` crate's, with three significant digits (any value
//! is reported within 0.1%), resizing itself to whatever it is given, in nanoseconds; the few
//! figures the report prints. The max is kept exact beside it (hdrhistogram's is its
//! bucket's top).

use std::time::Duration;

#[derive(Clone)]
pub struct Histogram {
    h: hdrhistogram::Histogram<u64>,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            h: hdrhistogram::Histogram::new(3).expect("3 significant digits is valid"),
            max_ns: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // it grows to hold any value; past what it can hold, the largest it can
        if self.h.record(ns).is_err() {
            self.h.saturating_record(ns);
        }
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        // both resize themselves, so adding never runs out of range
        self.h
            .add(&other.h)
            .expect("histograms of the same precision add");
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The value at quantile `q` (0.0..=1.0); the largest is the exact max.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.h.is_empty() {
            return Duration::ZERO;
        }
        if q >= 1.0 {
            return self.max();
        }
        Duration::from_nanos(self.h.value_at_quantile(q).min(self.max_ns))
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.h.mean() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_half_a_percent() {
        let mut h = Histogram::default();
        // 1..=10_000 microseconds, once each: p50 = 5 ms, p99 = 9.9 ms.
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let close = |got: Duration, want_us: f64| {
            let got = got.as_nanos() as f64 / 1000.0;
            assert!(
                (got - want_us).abs() / want_us < 0.005,
                "{got} vs {want_us}"
            );
        };
        close(h.quantile(0.5), 5_000.0);
        close(h.quantile(0.9), 9_000.0);
        close(h.quantile(0.99), 9_900.0);
        assert_eq!(h.quantile(1.0), Duration::from_millis(10));
        assert_eq!(h.max(), Duration::from_millis(10));
        close(h.mean(), 5_000.5);
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(Duration::from_micros(100));
        b.record(Duration::from_micros(300));
        b.record(Duration::from_micros(200));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), Duration::from_micros(300));
        let p50 = a.quantile(0.5).as_nanos() as f64;
        assert!((p50 - 200_000.0).abs() < 1_000.0, "{p50}");
        assert_eq!(Histogram::default().quantile(0.99), Duration::ZERO);
    }
}
