//! The log cleaner's counters of one shard (recorded by `log_cleaner`, read at scrape time).

use std::cell::{Cell, RefCell};

/// Cleaner counters of one shard (see docs/metrics.md).
#[derive(Default)]
pub struct CleanerMetrics {
    pub runs: Cell<u64>,
    pub errors: Cell<u64>,
    pub bytes_read: Cell<u64>,
    pub bytes_written: Cell<u64>,
    pub busy_us: Cell<u64>,
    pub dirty_ratios: RefCell<Vec<(String, u32, f64)>>,
}

/// Plain-data copy of `CleanerMetrics` for a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerSnapshot {
    pub runs: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub busy_seconds: f64,
    /// (topic, partition, dirty ratio) of the compacted partitions this shard owns.
    pub dirty_ratios: Vec<(String, u32, f64)>,
}

impl CleanerMetrics {
    pub fn snapshot(&self) -> CleanerSnapshot {
        CleanerSnapshot {
            runs: self.runs.get(),
            errors: self.errors.get(),
            bytes_read: self.bytes_read.get(),
            bytes_written: self.bytes_written.get(),
            busy_seconds: self.busy_us.get() as f64 / 1e6,
            dirty_ratios: self.dirty_ratios.borrow().clone(),
        }
    }
}
