//! A latency histogram with fixed log-scale buckets (1-2.5-5 steps from 1 µs to 10 s), the
//! shape Prometheus renders as cumulative `_bucket{le=...}` series.
//!
//! Invariants: every histogram has the same bucket bounds, so merging is adding counts bucket by
//! bucket; `count` equals the sum of all bucket counts (the last bucket is the `+Inf` overflow);
//! `sum_ns` saturates instead of wrapping. Recording is O(log buckets) with no allocation.

use std::time::Duration;

/// Upper bounds (inclusive, in nanoseconds) of the finite buckets.
pub const BUCKET_BOUNDS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Finite buckets plus the `+Inf` overflow bucket.
pub const BUCKET_COUNT: usize = BUCKET_BOUNDS_NS.len() + 1;

/// Per-bucket (not cumulative) counts of observed durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BUCKET_COUNT],
    count: u64,
    sum_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKET_COUNT],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // First bound >= ns; past the last bound lands on the overflow bucket.
        let bucket = BUCKET_BOUNDS_NS.partition_point(|&bound| bound < ns);
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot = slot.saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds `other`'s observations to this one (same bounds by construction).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(upper bound in seconds, cumulative count)` for every finite bucket, then
    /// `(f64::INFINITY, count)`: Prometheus' `le` series.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = BUCKET_BOUNDS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY));
        let mut running = 0u64;
        bounds.zip(self.buckets.iter()).map(move |(le, &n)| {
            running = running.saturating_add(n);
            (le, running)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn bounds_are_strictly_increasing() {
        assert!(BUCKET_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn records_land_in_the_first_bucket_whose_bound_is_not_below() {
        let mut h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(us(1)); // exactly on the 1 µs bound: inclusive
        h.record(Duration::from_nanos(1_001)); // just past it: 2.5 µs bucket
        h.record(Duration::from_secs(3_600)); // overflow
        let cumulative: Vec<_> = h.cumulative().collect();
        assert_eq!(cumulative.len(), BUCKET_COUNT);
        assert_eq!(cumulative[0], (0.000001, 2));
        assert_eq!(cumulative[1], (0.0000025, 3));
        assert_eq!(cumulative[BUCKET_COUNT - 2], (10.0, 3));
        assert_eq!(cumulative[BUCKET_COUNT - 1], (f64::INFINITY, 4));
        assert_eq!(h.count(), 4);
        let expected_sum = (1_000 + 1_001) as f64 / 1e9 + 3_600.0;
        assert!((h.sum_seconds() - expected_sum).abs() < 1e-6);
    }

    #[test]
    fn merge_adds_bucket_by_bucket() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        let mut both = Histogram::default();
        for (i, n) in [3u64, 40, 700, 9_000, 120_000, 2_000_000]
            .iter()
            .enumerate()
        {
            let target = if i % 2 == 0 { &mut a } else { &mut b };
            target.record(us(*n));
            both.record(us(*n));
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, both);
        assert_eq!(merged.count(), 6);
        let mut empty = Histogram::default();
        empty.merge(&merged);
        assert_eq!(empty, merged);
    }

    #[test]
    fn cumulative_counts_never_decrease_and_end_at_count() {
        let mut h = Histogram::default();
        for n in [1u64, 5, 5, 80, 80, 80, 6_000_000, 20_000_000] {
            h.record(us(n));
        }
        let series: Vec<_> = h.cumulative().map(|(_, c)| c).collect();
        assert!(series.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(series.last().copied(), Some(h.count()));
    }
}
