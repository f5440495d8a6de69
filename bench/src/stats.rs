//! Measurements: latency histograms, live counters, and the delivery ledger that proves every
//! acknowledged message was consumed exactly once per subscription.
//!
//! Latencies are recorded in microseconds into HDR histograms (3 significant digits, 1 us to
//! 1 h); values outside saturate instead of failing. Sequence sets are bitmaps capped at
//! `SEQ_MAX` per producer so a corrupt or foreign sequence number cannot allocate unbounded
//! memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::payload::{ProducerId, Seq};

/// Highest trackable latency, microseconds (1 hour).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Highest sequence number the ledger tracks per producer (bitmap of 512 MiB at most).
pub const SEQ_MAX: u64 = 1 << 32;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("histogram: {0}")]
    Histogram(String),
}

/// An HDR histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

/// Percentiles in milliseconds, as reported in the JSON summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub p99_99_ms: f64,
    pub max_ms: f64,
}

impl LatencyHistogram {
    // The bounds are constants that `new_with_bounds` accepts: an invariant, not an input.
    #[allow(clippy::panic)]
    pub fn new() -> LatencyHistogram {
        let hist = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
            .unwrap_or_else(|e| panic!("constant histogram bounds are valid: {e}"));
        LatencyHistogram { hist }
    }

    pub fn record_ns(&mut self, latency_ns: u64) {
        self.hist.saturating_record((latency_ns / 1_000).max(1));
    }

    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), StatsError> {
        // Same bounds on both sides, so this only fails on a logic error; still typed.
        self.hist
            .add(&other.hist)
            .map_err(|e| StatsError::Histogram(format!("{e:?}")))
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        self.hist.value_at_percentile(percentile) as f64 / 1_000.0
    }

    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            mean_ms: self.hist.mean() / 1_000.0,
            p50_ms: self.percentile_ms(50.0),
            p75_ms: self.percentile_ms(75.0),
            p95_ms: self.percentile_ms(95.0),
            p99_ms: self.percentile_ms(99.0),
            p99_9_ms: self.percentile_ms(99.9),
            p99_99_ms: self.percentile_ms(99.99),
            max_ms: self.hist.max() as f64 / 1_000.0,
        }
    }

    /// (percentile 0..1, latency ms) points for plotting on a "nines" axis.
    pub fn quantile_points(&self) -> Vec<(f64, f64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        self.hist
            .iter_quantiles(5)
            .map(|v| {
                (
                    v.quantile_iterated_to(),
                    v.value_iterated_to() as f64 / 1_000.0,
                )
            })
            .collect()
    }

    /// HdrHistogram's percentile-distribution text format (`.hgrm`), values in milliseconds,
    /// readable by the HdrHistogram plotter and OMB tooling.
    pub fn to_hgrm(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:>12} {:>14} {:>10} {:>14}\n\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        ));
        if !self.hist.is_empty() {
            let mut total_count = 0u64;
            for v in self.hist.iter_quantiles(5) {
                let q = v.quantile_iterated_to();
                let value_ms = v.value_iterated_to() as f64 / 1_000.0;
                total_count += v.count_since_last_iteration();
                if q < 1.0 {
                    out.push_str(&format!(
                        "{:>12.3} {:>2.12} {:>10} {:>14.2}\n",
                        value_ms,
                        q,
                        total_count,
                        1.0 / (1.0 - q)
                    ));
                } else {
                    out.push_str(&format!(
                        "{:>12.3} {:>2.12} {:>10}\n",
                        value_ms,
                        q,
                        self.hist.len()
                    ));
                }
            }
        }
        let mean_ms = if self.hist.is_empty() {
            0.0
        } else {
            self.hist.mean() / 1_000.0
        };
        out.push_str(&format!(
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n",
            mean_ms,
            self.hist.stdev() / 1_000.0
        ));
        out.push_str(&format!(
            "#[Max     = {:>12.3}, Total count    = {:>12}]\n",
            self.hist.max() as f64 / 1_000.0,
            self.hist.len()
        ));
        out.push_str(&format!(
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
            self.hist.buckets(),
            // HdrHistogram's sub-bucket count: 2 * 10^digits rounded up to a power of two.
            (2 * 10u64.pow(u32::from(self.hist.sigfig()))).next_power_of_two()
        ));
        out
    }
}

/// Counters producers and consumers bump on the hot path and the progress thread samples.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub sent_msgs: AtomicU64,
    pub acked_msgs: AtomicU64,
    pub acked_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    pub consumed_msgs: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub consume_errors: AtomicU64,
}

impl LiveCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A growable bitmap of sequence numbers.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Inserts `seq`; returns false if it was already present. `seq` must be below `SEQ_MAX`.
    pub fn insert(&mut self, seq: Seq) -> bool {
        assert!(seq.0 < SEQ_MAX, "caller checks SEQ_MAX");
        let word = (seq.0 / 64) as usize;
        let bit = 1u64 << (seq.0 % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let Some(slot) = self.words.get_mut(word) else {
            return false;
        };
        let fresh = *slot & bit == 0;
        *slot |= bit;
        if fresh {
            self.len += 1;
        }
        fresh
    }

    #[cfg(test)]
    pub fn contains(&self, seq: Seq) -> bool {
        self.words
            .get((seq.0 / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq.0 % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Members of `self` not in `other`.
    pub fn count_missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let o = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !o).count_ones())
            })
            .sum()
    }
}

/// What one subscription (consumer group, or set of assign-mode consumers) received.
#[derive(Debug)]
pub struct SubscriptionLedger {
    /// Global id of the topic's first producer; the topic's producers have consecutive ids.
    first_producer: u32,
    per_producer: Vec<Mutex<SeqSet>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    foreign: AtomicU64,
}

/// Outcome of recording one consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    First,
    Duplicate,
    Foreign,
}

impl SubscriptionLedger {
    pub fn new(first_producer: u32, producer_count: u32) -> SubscriptionLedger {
        SubscriptionLedger {
            first_producer,
            per_producer: (0..producer_count)
                .map(|_| Mutex::new(SeqSet::default()))
                .collect(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
        }
    }

    pub fn record(&self, producer: ProducerId, seq: Seq) -> Receipt {
        let slot = producer
            .0
            .checked_sub(self.first_producer)
            .and_then(|i| self.per_producer.get(i as usize));
        let Some(slot) = slot else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return Receipt::Foreign;
        };
        if seq.0 >= SEQ_MAX {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return Receipt::Foreign;
        }
        let fresh = match slot.lock() {
            Ok(mut set) => set.insert(seq),
            Err(poisoned) => poisoned.into_inner().insert(seq),
        };
        if fresh {
            self.unique.fetch_add(1, Ordering::Relaxed);
            Receipt::First
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            Receipt::Duplicate
        }
    }

    /// A message that is not ours (bad header or another run's tag).
    pub fn record_foreign(&self) {
        self.foreign.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Compares against what this topic's producers had acknowledged (`acked[i]` belongs to
    /// producer `first_producer + i`).
    pub fn verify(&self, acked: &[SeqSet]) -> Verification {
        let mut lost = 0;
        let mut consumed_unacked = 0;
        for (i, slot) in self.per_producer.iter().enumerate() {
            let seen = match slot.lock() {
                Ok(set) => set.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let empty = SeqSet::default();
            let acked_set = acked.get(i).unwrap_or(&empty);
            lost += acked_set.count_missing_from(&seen);
            consumed_unacked += seen.count_missing_from(acked_set);
        }
        Verification {
            unique: self.unique(),
            lost,
            duplicates: self.duplicates.load(Ordering::Relaxed),
            consumed_unacked,
            foreign: self.foreign.load(Ordering::Relaxed),
        }
    }
}

/// Delivery check of one subscription.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Verification {
    /// Distinct messages received.
    pub unique: u64,
    /// Acknowledged by the broker but never consumed.
    pub lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Consumed but not acknowledged (e.g. delivery reported an error yet the write landed).
    pub consumed_unacked: u64,
    /// Not ours: bad magic, unknown producer, or another run's tag.
    pub foreign: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_histograms_adds_counts_and_keeps_extremes() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for ms in 1..=100 {
            a.record_ns(ms * 1_000_000);
        }
        for _ in 0..100 {
            b.record_ns(500 * 1_000_000);
        }
        a.merge(&b).unwrap();
        assert_eq!(a.len(), 200);
        let s = a.summary();
        assert!((s.p50_ms - 100.0).abs() <= 0.1, "p50 {}", s.p50_ms);
        assert!((s.max_ms - 500.0).abs() <= 0.5, "max {}", s.max_ms);
        assert!((s.p99_ms - 500.0).abs() <= 0.5);
        // Merging an empty histogram changes nothing.
        let before = a.summary();
        a.merge(&LatencyHistogram::new()).unwrap();
        assert_eq!(a.summary(), before);
    }

    #[test]
    fn out_of_range_latency_saturates() {
        let mut h = LatencyHistogram::new();
        h.record_ns(0);
        h.record_ns(u64::MAX);
        assert_eq!(h.len(), 2);
        assert!(h.summary().max_ms >= 3_599_000.0);
    }

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000 {
            h.record_ns(us * 1_000);
        }
        let text = h.to_hgrm();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Mean    ="));
        assert!(text.contains("Total count    =        10000]"));
        let rows = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("Value"))
            .count();
        assert!(rows > 20, "{rows} percentile rows");
    }

    #[test]
    fn ledger_counts_loss_duplicates_and_foreign() {
        let ledger = SubscriptionLedger::new(0, 2);
        let mut acked = vec![SeqSet::default(), SeqSet::default()];
        for s in 0..100 {
            acked[0].insert(Seq(s));
            acked[1].insert(Seq(s));
        }
        for s in 0..100 {
            if s != 42 {
                assert_eq!(ledger.record(ProducerId(0), Seq(s)), Receipt::First);
            }
            ledger.record(ProducerId(1), Seq(s));
        }
        assert_eq!(ledger.record(ProducerId(1), Seq(7)), Receipt::Duplicate);
        assert_eq!(ledger.record(ProducerId(9), Seq(1)), Receipt::Foreign);
        assert_eq!(ledger.record(ProducerId(1), Seq(500)), Receipt::First);
        let v = ledger.verify(&acked);
        assert_eq!(v.lost, 1);
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.foreign, 1);
        assert_eq!(v.consumed_unacked, 1);
        assert_eq!(v.unique, 200);
    }

    #[test]
    fn ledger_of_a_later_topic_maps_producer_ids() {
        let ledger = SubscriptionLedger::new(4, 2);
        assert_eq!(ledger.record(ProducerId(3), Seq(0)), Receipt::Foreign);
        assert_eq!(ledger.record(ProducerId(5), Seq(0)), Receipt::First);
        assert_eq!(ledger.record(ProducerId(6), Seq(0)), Receipt::Foreign);
        ledger.record_foreign();
        let mut acked = vec![SeqSet::default(), SeqSet::default()];
        acked[1].insert(Seq(0));
        let v = ledger.verify(&acked);
        assert_eq!((v.unique, v.lost, v.foreign), (1, 0, 3));
    }

    #[test]
    fn seq_set_basics() {
        let mut s = SeqSet::default();
        assert!(s.insert(Seq(1000)));
        assert!(!s.insert(Seq(1000)));
        assert!(s.contains(Seq(1000)));
        assert!(!s.contains(Seq(999)));
        assert!(!s.contains(Seq(1 << 40)));
        assert_eq!(s.len(), 1);
    }
}
