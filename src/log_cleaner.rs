//! The log cleaner of one shard: compacts the `cleanup.policy=compact` partitions this shard
//! owns, one log at a time, with `storage`'s cleaner (see `storage/src/cleaner`).
//!
//! Each pass measures every compacted log's dirty ratio, picks the dirtiest one that is due
//! (ratio >= `min.cleanable.dirty.ratio`, dirty data older than `max.compaction.lag.ms`, or
//! tombstones whose delete horizon passed) and cleans it; with none due it sleeps
//! `log.cleaner.backoff.ms`. The clean runs as a task on the shard, like any request:
//! `Throttle` holds it to its share of `log.cleaner.io.max.bytes.per.second` and yields to the
//! shard's other tasks every 64 KiB of cleaner I/O, so produce and fetch on the same shard
//! keep running between two steps (BENCHMARKS.md measures the effect on produce p99).
//!
//! Invariants: memory is bounded by this shard's share of `log.cleaner.dedupe.buffer.size`;
//! a partition whose clean found a corrupt batch is logged and never cleaned again until the
//! broker restarts (Kafka marks it uncleanable); its data is left as it was. Running out of file
//! descriptors before a clean installs anything is retried by a later pass; any other I/O error
//! of a clean is fatal, as every disk error of the broker is.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use storage::cleaner::{CleanOptions, CleanerLimits, CompactionConfig};
use storage::StorageError;

use crate::cluster::MetadataImage;
use crate::config::LogCleanerSection;
use crate::metrics::cleaner::CleanerMetrics;
use crate::partition::{Partition, PartitionService, TopicPartition};
use crate::topics::compaction;

/// What the cleaner uses of its shard (built by the shard, `shard::contexts`).
#[derive(Clone, Copy)]
pub struct CleanerContext<'a> {
    /// Shards of the process: each cleaner gets its share of the buffer and I/O limits.
    pub shard_count: usize,
    pub config: &'a LogCleanerSection,
    /// The partitions this shard leads (the ones it cleans).
    pub partitions: &'a PartitionService,
    /// The metadata image (topic configs: which topics are compacted, their overrides).
    pub image: &'a RefCell<MetadataImage>,
    pub metrics: &'a CleanerMetrics,
}

/// Largest records section a compressed batch may inflate to, for the cleaner and for the
/// key check of produce to a compacted topic.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A throttle window: older I/O no longer earns (or owes) time.
const THROTTLE_WINDOW: Duration = Duration::from_secs(1);

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().saturating_add(by));
}

/// Holds cleaner I/O to `bytes_per_second` over one-second windows (Kafka's `Throttler`).
pub struct Throttle {
    bytes_per_second: f64,
    window_start: Cell<Instant>,
    window_bytes: Cell<u64>,
}

impl Throttle {
    pub fn new(bytes_per_second: f64) -> Rc<Self> {
        Rc::new(Throttle {
            bytes_per_second,
            window_start: Cell::new(Instant::now()),
            window_bytes: Cell::new(0),
        })
    }

    /// How long to wait after `bytes` more of I/O.
    fn owed(&self, bytes: u64) -> Duration {
        let elapsed = self.window_start.get().elapsed();
        if elapsed > THROTTLE_WINDOW {
            self.window_start.set(Instant::now());
            self.window_bytes.set(0);
        }
        bump(&self.window_bytes, bytes);
        let due = self.window_bytes.get() as f64 / self.bytes_per_second;
        let due = Duration::try_from_secs_f64(due).unwrap_or(Duration::MAX);
        due.saturating_sub(self.window_start.get().elapsed())
            .min(THROTTLE_WINDOW)
    }

    /// Waits out what `bytes` of I/O owe, and yields at least once.
    pub fn pace(self: Rc<Self>, bytes: u64) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            let wait = self.owed(bytes);
            if wait.is_zero() {
                storage::yield_now().await;
            } else {
                compio::time::sleep(wait).await;
            }
        })
    }
}

/// A partition as the cleaner remembers it: with its topic's id, so nothing remembered about a
/// deleted topic applies to a new topic of the same name.
type PartitionKey = (TopicPartition, crate::topics::TopicId);

/// What the cleaner remembers between passes.
#[derive(Default)]
struct CleanerState {
    /// Partitions whose clean found corrupt data: not cleaned again until restart.
    uncleanable: HashSet<PartitionKey>,
    /// Earliest delete horizon of retained tombstones, per partition.
    horizons: HashMap<PartitionKey, i64>,
}

use crate::clock::system_now_ms as now_ms;

/// The shard's cleaner task (spawned by `shard_main`; dropped at shutdown, which may cut a
/// clean short: the swap protocol makes that a crash the next open recovers from).
pub async fn run(shard: CleanerContext<'_>) {
    let config = shard.config;
    if !config.log_cleaner_enable {
        return;
    }
    let shards = shard.shard_count.max(1) as u64;
    let limits = CleanerLimits {
        dedupe_buffer_bytes: usize::try_from(config.log_cleaner_dedupe_buffer_size / shards)
            .unwrap_or(usize::MAX),
        io_buffer_bytes: usize::try_from(config.log_cleaner_io_buffer_size).unwrap_or(1 << 20),
        decompressed_batch_bytes_max: DECOMPRESSED_BATCH_BYTES_MAX,
    };
    let throttle = Throttle::new(config.log_cleaner_io_max_bytes_per_second / shards as f64);
    let backoff = Duration::from_millis(config.log_cleaner_backoff_ms);
    let mut state = CleanerState::default();
    loop {
        if !pass(&shard, &limits, &throttle, &mut state).await {
            compio::time::sleep(backoff).await;
        }
    }
}

/// One look over the shard's compacted logs; cleans the dirtiest due one. Returns whether a
/// clean made progress (then the next pass starts at once).
async fn pass(
    shard: &CleanerContext<'_>,
    limits: &CleanerLimits,
    throttle: &Rc<Throttle>,
    state: &mut CleanerState,
) -> bool {
    let now = now_ms();
    let mut ratios = Vec::new();
    let mut best: Option<(f64, Rc<Partition>, CompactionConfig, bool, PartitionKey)> = None;
    {
        // Forget deleted topics' partitions.
        let image = shard.image.borrow();
        state
            .uncleanable
            .retain(|(_, id)| image.by_id(*id).is_some());
        state
            .horizons
            .retain(|(_, id), _| image.by_id(*id).is_some());
    }
    for partition in shard.partitions.all() {
        let (overrides, key) = match shard.image.borrow().get(&partition.tp.topic) {
            Some(meta) if compaction::policy(&meta.configs).compact => {
                (meta.configs.clone(), (partition.tp.clone(), meta.id))
            }
            _ => continue,
        };
        let settings = compaction::settings(shard.config, &overrides);
        let Ok(info) = partition.storage().dirty_info(&settings, now).await else {
            continue;
        };
        ratios.push((
            partition.tp.topic.clone(),
            partition.tp.partition,
            info.dirty_ratio,
        ));
        if state.uncleanable.contains(&key) {
            continue;
        }
        let force = state.horizons.get(&key).is_some_and(|&h| now > h);
        if (info.is_due(&settings) || force)
            && best.as_ref().is_none_or(|(r, ..)| info.dirty_ratio > *r)
        {
            best = Some((info.dirty_ratio, partition, settings, force, key));
        }
    }
    *shard.metrics.dirty_ratios.borrow_mut() = ratios;
    let Some((_, partition, settings, force, key)) = best else {
        return false;
    };
    clean_one(
        shard, &partition, settings, force, limits, throttle, state, key,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn clean_one(
    shard: &CleanerContext<'_>,
    partition: &Partition,
    settings: CompactionConfig,
    force: bool,
    limits: &CleanerLimits,
    throttle: &Rc<Throttle>,
    state: &mut CleanerState,
    key: PartitionKey,
) -> bool {
    let pace = |bytes: u64| throttle.clone().pace(bytes);
    let is_last = |producer: i64, last_offset: i64| {
        partition
            .producers
            .borrow()
            .is_last_batch(crate::producers::ProducerId(producer), last_offset)
    };
    // Kafka cleans only below the LSO: an open transaction's records are not final yet.
    if partition.has_open_transaction_in_sealed_segments() {
        return false;
    }
    // Aborted transactional batches are dropped, never kept as a key's latest value.
    let Ok(aborted) = partition.aborted_entries().await else {
        tracing::warn!(partition = %partition.tp.dir_name(), "aborted-transaction index unreadable; not cleaning");
        return false;
    };
    let is_aborted = |producer: i64, offset: i64| {
        crate::partition::txn_index::is_aborted_in(&aborted, producer, offset)
    };
    let started = Instant::now();
    let result = partition
        .storage()
        .clean(CleanOptions {
            now_ms: now_ms(),
            config: settings,
            limits: limits.clone(),
            pace: Some(&pace),
            crash_at: None,
            force,
            is_last_producer_batch: Some(&is_last),
            is_aborted_batch: Some(&is_aborted),
        })
        .await;
    let metrics = shard.metrics;
    bump(&metrics.busy_us, started.elapsed().as_micros() as u64);
    bump(&metrics.runs, 1);
    let tp = &partition.tp;
    match result {
        Ok(stats) => {
            bump(&metrics.bytes_read, stats.bytes_read);
            bump(&metrics.bytes_written, stats.bytes_written);
            match stats.next_delete_horizon_ms {
                Some(h) => state.horizons.insert(key, h),
                None => state.horizons.remove(&key),
            };
            tracing::info!(partition = %tp.dir_name(), from = stats.first_dirty_offset,
                to = stats.end_offset, read = stats.bytes_read, written = stats.bytes_written,
                records_read = stats.records_read, records_kept = stats.records_kept,
                ms = started.elapsed().as_millis() as u64, "cleaned log");
            !stats.abandoned && stats.end_offset > stats.first_dirty_offset
        }
        // Closed or deleted (DeleteTopics) while cleaning: its files went away under us.
        Err(_) if partition.storage().is_closed() => false,
        Err(StorageError::Closed) => false,
        Err(
            e @ (StorageError::CorruptBatch(_)
            | StorageError::InvalidRecord(_)
            | StorageError::InvalidMagic(_)
            | StorageError::CorruptState(_)),
        ) => {
            bump(&metrics.errors, 1);
            tracing::error!(partition = %tp.dir_name(), error = %e,
                "log cleaner stopped for this partition: its data is left as it is");
            state.uncleanable.insert(key);
            false
        }
        // Out of fds before anything was installed (many client connections, say): the log
        // is as it was, a later pass retries. Not a disk fault, so not fatal.
        Err(e @ StorageError::OutOfFiles(_)) => {
            bump(&metrics.errors, 1);
            tracing::warn!(partition = %tp.dir_name(), error = %e,
                "log cleaner gave up a clean for now, retried by a later pass");
            false
        }
        Err(e) => shards::fatal(format!("log cleaner I/O error on {}: {e}", tp.dir_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_owes_time_beyond_its_rate() {
        let t = Throttle::new(1_000_000.0);
        assert!(t.owed(1_000).is_zero() || t.owed(0) < Duration::from_millis(2));
        let owed = t.owed(500_000);
        assert!(owed > Duration::from_millis(400), "{owed:?}");
        let unlimited = Throttle::new(f64::MAX);
        assert!(unlimited.owed(u64::MAX / 2).is_zero());
    }
}
