//! Replication throttles (KIP-73; Kafka's `ReplicationQuotaManager`), as
//! `kafka-reassign-partitions --throttle` sets them:
//!
//! - rates: the dynamic broker configs `leader.replication.throttled.rate` and
//!   `follower.replication.throttled.rate` (bytes/s; unset: no throttle), per broker;
//! - which replicas: the topic configs `leader.replication.throttled.replicas` and
//!   `follower.replication.throttled.replicas` (`partition:broker,...`, or `*` for every
//!   replica); a broker throttles the partitions the list pairs with its own id.
//!
//! The rate is measured as Kafka's `Rate` over `replication.quota.window.num` samples of
//! `replication.quota.window.size.seconds` (a window shorter than the samples is counted as
//! `num - 1` full windows, so a quiet broker may send up to that many windows' worth at once).
//! Follower side (`replica_fetcher`): while the follower quota is exceeded, a throttled
//! partition that is not caught up is left out of the next Fetch; the bytes appended for
//! throttled partitions are recorded. Leader side (`handlers/fetch/replica.rs`): while the
//! leader quota is exceeded, a throttled partition whose follower is not in the ISR gets no
//! records (its fetch position is still recorded, and it does not end the long poll); the
//! bytes sent for throttled partitions are recorded.
//!
//! Invariants: one quota per side per broker process (shards share it, as Kafka's one
//! manager per broker); a sample list never holds more than `window.num` samples; an
//! unparsable rate or list throttles nothing (the config validators refuse them first).

use std::collections::HashSet;
use std::sync::Mutex;

use super::image::MetadataImage;
use crate::config::BrokerConfig as Config;
use crate::partition::TopicPartition;

/// Which side of replication a quota is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

impl Side {
    /// The dynamic broker config of the rate.
    pub fn rate_key(self) -> &'static str {
        match self {
            Self::Leader => "leader.replication.throttled.rate",
            Self::Follower => "follower.replication.throttled.rate",
        }
    }

    /// The topic config listing the throttled replicas.
    pub fn replicas_key(self) -> &'static str {
        match self {
            Self::Leader => "leader.replication.throttled.replicas",
            Self::Follower => "follower.replication.throttled.replicas",
        }
    }
}

/// Kafka's `Rate` over a `SampledStat`: samples of `window_ms`, at most `samples` kept.
#[derive(Debug, Clone)]
pub struct Rate {
    samples: Vec<(i64, u64)>,
    samples_max: usize,
    window_ms: i64,
}

impl Rate {
    pub fn new(samples_max: u32, window_ms: i64) -> Self {
        Self {
            samples: Vec::new(),
            samples_max: usize::try_from(samples_max.max(1)).unwrap_or(1),
            window_ms: window_ms.max(1),
        }
    }

    fn purge(&mut self, now_ms: i64) {
        let expire_ms = self.window_ms.saturating_mul(self.samples_max as i64);
        self.samples
            .retain(|(start, _)| now_ms.saturating_sub(*start) < expire_ms);
    }

    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        self.purge(now_ms);
        match self.samples.last_mut() {
            Some((start, sum)) if now_ms < start.saturating_add(self.window_ms) => {
                *sum = sum.saturating_add(bytes);
            }
            _ => {
                if self.samples.len() >= self.samples_max {
                    self.samples.remove(0);
                }
                self.samples.push((now_ms, bytes));
            }
        }
    }

    /// Bytes per second (Kafka's `Rate.measure` with `windowSize`).
    pub fn measure(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let sum: u64 = self.samples.iter().map(|(_, b)| *b).sum();
        let oldest = self.samples.first().map_or(now_ms, |(start, _)| *start);
        let mut elapsed_ms = now_ms.saturating_sub(oldest).max(0);
        let full_windows = elapsed_ms / self.window_ms;
        let min_full_windows = self.samples_max as i64 - 1;
        if full_windows < min_full_windows {
            elapsed_ms += (min_full_windows - full_windows) * self.window_ms;
        }
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let rate = sum as f64 * 1000.0 / elapsed_ms.max(1) as f64;
        rate
    }
}

static LEADER: Mutex<Option<Rate>> = Mutex::new(None);
static FOLLOWER: Mutex<Option<Rate>> = Mutex::new(None);

fn with_rate<T>(side: Side, config: &Config, f: impl FnOnce(&mut Rate) -> T) -> T {
    let cell = match side {
        Side::Leader => &LEADER,
        Side::Follower => &FOLLOWER,
    };
    let mut guard = cell
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rate = guard.get_or_insert_with(|| {
        Rate::new(
            config.replication.replication_quota_window_num,
            i64::from(config.replication.replication_quota_window_size_seconds) * 1000,
        )
    });
    f(rate)
}

/// Records `bytes` replicated for throttled partitions on `side`.
pub fn record(side: Side, config: &Config, bytes: u64, now_ms: i64) {
    if bytes > 0 {
        with_rate(side, config, |r| r.record(bytes, now_ms));
    }
}

/// Kafka's `isQuotaExceeded`: the measured rate is above `bound` (bytes/s).
pub fn is_exceeded(side: Side, config: &Config, bound: i64, now_ms: i64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let bound = bound as f64;
    with_rate(side, config, |r| r.measure(now_ms) > bound)
}

/// The throttle rate of `side` in the dynamic broker configs (`None`: not throttled).
pub fn rate_of(dynamic: &super::topics::dynamic::DynamicConfigs, side: Side) -> Option<i64> {
    let (value, _) = dynamic.get(side.rate_key())?;
    value.trim().parse::<i64>().ok().filter(|v| *v >= 0)
}

/// Kafka's `parseThrottledPartitions`: whether the list throttles partition `partition` on
/// `broker` (`*`: every replica).
pub fn lists(list: &str, partition: u32, broker: i32) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').any(|entry| {
        let mut parts = entry.trim().split(':');
        let (Some(p), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        p.trim().parse::<u32>() == Ok(partition) && b.trim().parse::<i32>() == Ok(broker)
    })
}

/// Whether `tp` is a throttled replica on `broker` for `side` (the topic's config).
pub fn is_throttled(image: &MetadataImage, tp: &TopicPartition, broker: i32, side: Side) -> bool {
    image
        .get(&tp.topic)
        .and_then(|meta| meta.configs.get(side.replicas_key()))
        .is_some_and(|list| lists(list, tp.partition, broker))
}

/// What a shard's replica fetchers throttle (refreshed whenever the image changes topics or
/// broker configs: `replicas::apply_roles`).
#[derive(Debug, Default)]
pub struct FollowerThrottle {
    /// `follower.replication.throttled.rate`; `None`: no throttle.
    pub rate: Option<i64>,
    /// Partitions whose follower replica on this broker is throttled.
    pub partitions: HashSet<(String, i32)>,
}

impl FollowerThrottle {
    /// Rebuilds the view from the image for `broker`.
    pub fn refresh(&mut self, image: &MetadataImage, rate: Option<i64>, broker: i32) {
        self.rate = rate;
        self.partitions.clear();
        if rate.is_none() {
            return;
        }
        let key = Side::Follower.replicas_key();
        for meta in image.iter() {
            let Some(list) = meta.configs.get(key) else {
                continue;
            };
            for index in 0..meta.partitions {
                if lists(list, index, broker) {
                    let index = i32::try_from(index).unwrap_or(i32::MAX);
                    self.partitions.insert((meta.name.clone(), index));
                }
            }
        }
    }

    pub fn throttles(&self, topic: &str, partition: i32) -> bool {
        self.rate.is_some() && self.partitions.contains(&(topic.to_owned(), partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `Rate`: a young rate counts `num - 1` full windows, later the time elapsed;
    /// samples older than the windows are dropped.
    #[test]
    fn rate_is_measured_over_the_windows() {
        let mut rate = Rate::new(2, 1000);
        rate.record(1000, 0);
        // One window assumed: 1000 bytes over 1 s.
        assert!((rate.measure(0) - 1000.0).abs() < 1e-6);
        rate.record(1000, 1500);
        // 2000 bytes over 1.5 s.
        assert!((rate.measure(1500) - 2000.0 / 1.5).abs() < 1e-6);
        // The first sample expired (2 windows old): 1000 bytes over 0.6 s plus one window.
        assert!((rate.measure(2100) - 1000.0 / 1.6).abs() < 1e-6);
        assert!(rate.measure(10_000) < 1e-6);
    }

    #[test]
    fn throttled_replica_lists() {
        assert!(lists("*", 7, 3));
        assert!(lists("0:1,1:2", 1, 2));
        assert!(lists(" 0:1 , 1:2 ", 0, 1));
        assert!(!lists("0:1,1:2", 1, 1));
        assert!(!lists("", 0, 1));
        assert!(!lists("0:x,junk", 0, 1));
    }
}
