//! A latency histogram with bounded relative error (HdrHistogram's layout, two significant
//! digits): 128 linear sub-buckets per power of two of nanoseconds, so any recorded value is
//! reported within 0.4% (the bucket's midpoint), in 60 KB whatever the count.

use std::time::Duration;

/// Values below `1 << SUB_BITS` ns get a bucket each; above, each octave has `1 << (SUB_BITS - 1)`.
const SUB_BITS: u32 = 8;
const HALF: usize = 1 << (SUB_BITS - 1);
const BUCKETS: usize = (64 - SUB_BITS as usize + 2) * HALF;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

/// The bucket of a value: exact below 256 ns, then 128 buckets per octave.
fn index(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = octave - (SUB_BITS - 1);
    (shift as usize + 1) * HALF + ((v >> shift) as usize - HALF)
}

/// The lowest value and the width of a bucket.
fn bounds(i: usize) -> (u64, u64) {
    if i < (1 << SUB_BITS) {
        return (i as u64, 1);
    }
    let shift = (i / HALF - 1) as u32;
    let sub = (i % HALF + HALF) as u64;
    (sub << shift, 1 << shift)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0.0..=1.0): the midpoint of the bucket holding the
    /// `ceil(q * count)`-th smallest value, kept within the exact min and max (the largest
    /// rank is the exact max).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max();
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bounds(i);
                let mid = low + width / 2;
                return Duration::from_nanos(mid.clamp(self.min_ns, self.max_ns));
            }
        }
        self.max()
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.sum_ns / u128::from(self.count)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "value {v} index {i}");
            let (low, width) = bounds(i);
            assert!(
                low <= v && v - low < width,
                "value {v} in [{low}, +{width})"
            );
            last = i;
        }
    }

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
