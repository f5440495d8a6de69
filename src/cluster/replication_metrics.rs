//! Replication metrics on `/metrics` (Kafka's `ReplicaManager` and replica-fetcher metrics):
//! under-replicated and under-min-ISR partitions this broker leads (from the metadata image,
//! as Kafka counts them on the leader), ISR shrinks and expands committed for this broker's
//! partitions, the replica fetchers' max lag (messages; Kafka's `MaxLag`: the leader's high
//! watermark minus the fetch offset, as of the last answer), and replication bytes in
//! (appended by this broker's fetchers) and out (served to followers' fetches).
//!
//! Invariants: counters only grow; a fetcher's lag slot leaves the max when its task ends
//! (`LagSlot` dropped), and dead slots are pruned when a fetcher starts, so the registry is
//! bounded by the live fetchers; the fetch path stores its lag into its own atomic (no lock).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

static ISR_SHRINKS: AtomicU64 = AtomicU64::new(0);
static ISR_EXPANDS: AtomicU64 = AtomicU64::new(0);
static BYTES_IN: AtomicU64 = AtomicU64::new(0);
static BYTES_OUT: AtomicU64 = AtomicU64::new(0);

/// A committed ISR change of a partition this broker leads, from `old_len` to `new_len`
/// members (Kafka's `IsrShrinksPerSec` / `IsrExpandsPerSec`).
pub fn isr_changed(old_len: usize, new_len: usize) {
    match new_len.cmp(&old_len) {
        std::cmp::Ordering::Less => ISR_SHRINKS.fetch_add(1, Ordering::Relaxed),
        std::cmp::Ordering::Greater => ISR_EXPANDS.fetch_add(1, Ordering::Relaxed),
        std::cmp::Ordering::Equal => 0,
    };
}

/// Bytes this broker's replica fetchers appended (Kafka's `ReplicationBytesInPerSec`).
pub fn add_bytes_in(bytes: u64) {
    BYTES_IN.fetch_add(bytes, Ordering::Relaxed);
}

/// Record bytes served to follower fetches (Kafka's `ReplicationBytesOutPerSec`).
pub fn add_bytes_out(bytes: u64) {
    BYTES_OUT.fetch_add(bytes, Ordering::Relaxed);
}

/// One replica fetcher's current max lag (an atomic its fetcher task stores into after each
/// round: no lock on the fetch path); it leaves the max when dropped. The registry's lock is
/// taken only when a fetcher starts or stops and when `/metrics` is scraped.
pub struct LagSlot(Arc<AtomicI64>);

static FETCHER_LAGS: Mutex<Vec<Weak<AtomicI64>>> = Mutex::new(Vec::new());

impl LagSlot {
    pub fn new() -> Self {
        let lag = Arc::new(AtomicI64::new(0));
        if let Ok(mut lags) = FETCHER_LAGS.lock() {
            lags.retain(|w| w.strong_count() > 0);
            lags.push(Arc::downgrade(&lag));
        }
        Self(lag)
    }

    pub fn set(&self, lag: i64) {
        self.0.store(lag.max(0), Ordering::Relaxed);
    }
}

impl Default for LagSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// The largest lag of the live fetchers (a dropped slot no longer upgrades).
fn max_lag() -> i64 {
    FETCHER_LAGS
        .lock()
        .map(|lags| {
            lags.iter()
                .filter_map(Weak::upgrade)
                .map(|lag| lag.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// (under-replicated, under-min-ISR) among the partitions `node_id` leads; `min_isr` gives a
/// topic's `min.insync.replicas`.
pub fn leader_counts(
    image: &super::image::MetadataImage,
    node_id: i32,
    min_isr: impl Fn(&super::topics::TopicMeta) -> i32,
) -> (u64, u64) {
    let (mut under_replicated, mut under_min_isr) = (0u64, 0u64);
    for meta in image.iter() {
        let led = meta.registrations.iter().filter(|r| r.leader == node_id);
        let mut min = None;
        for r in led {
            if r.isr.len() < r.replicas.len() {
                under_replicated += 1;
            }
            let min = *min.get_or_insert_with(|| usize::try_from(min_isr(meta)).unwrap_or(1));
            if r.isr.len() < min {
                under_min_isr += 1;
            }
        }
    }
    (under_replicated, under_min_isr)
}

/// The replication metrics of this node (Prometheus text; empty for the single node of old).
pub fn render(shard: &super::kraft_metrics::MetricsContext<'_>) -> String {
    use std::fmt::Write;
    if shard.cluster.is_none() {
        return String::new();
    }
    let (under_replicated, under_min_isr) = {
        let image = shard.image.borrow();
        // The topic's effective min.insync.replicas, as `replicas` resolves it (not imported:
        // `replicas` records into these counters).
        let dynamic = shard.dynamic_configs.borrow().clone();
        leader_counts(&image, shard.node_id, |meta| {
            crate::topics::dynamic::resolve_with(shard.default_log, &dynamic, &meta.configs)
                .map_or(1, |c| c.min_insync_replicas)
        })
    };
    let max_lag = u64::try_from(max_lag()).unwrap_or(0);
    let metrics: [(&str, &str, &str, u64); 7] = [
        (
            "sluice_replication_under_replicated_partitions",
            "gauge",
            "Partitions this broker leads whose ISR is smaller than their replica set.",
            under_replicated,
        ),
        (
            "sluice_replication_under_min_isr_partitions",
            "gauge",
            "Partitions this broker leads whose ISR is smaller than min.insync.replicas.",
            under_min_isr,
        ),
        (
            "sluice_replication_isr_shrinks_total",
            "counter",
            "ISR shrinks committed for partitions this broker leads.",
            ISR_SHRINKS.load(Ordering::Relaxed),
        ),
        (
            "sluice_replication_isr_expands_total",
            "counter",
            "ISR expansions committed for partitions this broker leads.",
            ISR_EXPANDS.load(Ordering::Relaxed),
        ),
        (
            "sluice_replication_follower_max_lag",
            "gauge",
            "Largest lag in messages (leader high watermark minus fetch offset) of the partitions this broker follows.",
            max_lag,
        ),
        (
            "sluice_replication_bytes_in_total",
            "counter",
            "Bytes appended by this broker's replica fetchers.",
            BYTES_IN.load(Ordering::Relaxed),
        ),
        (
            "sluice_replication_bytes_out_total",
            "counter",
            "Record bytes this broker served to followers' fetches.",
            BYTES_OUT.load(Ordering::Relaxed),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in metrics {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::election::tests::image;

    #[test]
    fn leader_counts_follow_the_isr_of_led_partitions() {
        let img = image(
            &[],
            &[
                (&[1, 2, 3], &[1, 2, 3], 1),
                (&[1, 2, 3], &[1, 2], 1),
                (&[1, 2, 3], &[1], 1),
                (&[2, 1, 3], &[2], 2), // led by 2: not counted for 1
            ],
        );
        assert_eq!(leader_counts(&img, 1, |_| 2), (2, 1));
        assert_eq!(leader_counts(&img, 2, |_| 2), (1, 1));
        assert_eq!(leader_counts(&img, 3, |_| 2), (0, 0));
    }

    #[test]
    fn isr_changes_and_lag_slots() {
        let (shrinks, expands) = (
            ISR_SHRINKS.load(Ordering::Relaxed),
            ISR_EXPANDS.load(Ordering::Relaxed),
        );
        isr_changed(3, 2);
        isr_changed(2, 3);
        isr_changed(2, 2);
        assert!(ISR_SHRINKS.load(Ordering::Relaxed) > shrinks);
        assert!(ISR_EXPANDS.load(Ordering::Relaxed) > expands);
        let slot = LagSlot::new();
        slot.set(1_000_000_007);
        assert_eq!(max_lag(), 1_000_000_007);
        drop(slot);
        assert_ne!(max_lag(), 1_000_000_007, "a dropped slot leaves the max");
    }
}
