//! A lock-free fixed-bucket histogram of microsecond durations (relay latency, later fsync
//! latency). Recording is a few atomic adds: it runs once per delivered frame. Rendering
//! it as Prometheus text is the `http` layer's job; this module only holds the numbers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000,
];

/// A fixed-bucket histogram of microsecond durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, us: u64) {
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Upper bounds of the buckets, µs, with each bucket's cumulative count; then the total
    /// count and sum (µs).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = BUCKETS_US
            .iter()
            .enumerate()
            .map(|(i, b)| {
                cumulative += self.buckets[i].load(Ordering::Relaxed);
                (*b, cumulative)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// (upper bound µs, cumulative count) per bucket, ascending.
    pub buckets: Vec<(u64, u64)>,
    /// Observations in all (including those above the last bucket).
    pub count: u64,
    /// Sum of all observations, µs.
    pub sum_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        for us in [10, 60, 900, 5_000_000] {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets[0], (50, 1));
        assert_eq!(s.buckets[1], (100, 2));
        assert_eq!(s.buckets[4], (1_000, 3));
        assert_eq!(s.buckets.last(), Some(&(1_000_000, 3)));
        assert_eq!((s.count, s.sum_us), (4, 5_000_970));
    }
}
