//! The controller mutation quota (KIP-599, Kafka's `ControllerMutationQuotaManager`):
//! `controller_mutation_rate` per user / client id limits the partitions that CreateTopics,
//! CreatePartitions and DeleteTopics create or delete, per second.
//!
//! Measured in a token bucket (Kafka's `TokenBucket` stat): it refills at the quota and holds at
//! most `quota * quota.window.num * quota.window.size.seconds` tokens (the burst); each
//! partition takes one. The quota is exhausted while the bucket is below zero, and the throttle
//! time is how long the refill takes to bring it back to zero. Strict requests (CreateTopics
//! v6+, CreatePartitions v3+, DeleteTopics v5+) are refused with THROTTLING_QUOTA_EXCEEDED when
//! the bucket is already exhausted (one request may take it below zero, as Kafka's
//! `StrictControllerMutationQuota` checks before it records); older versions are always
//! recorded and only throttled (`PermissiveControllerMutationQuota`).
//!
//! Invariants: at most `quota.sensors.max` buckets exist (idle ones for an hour go first, then
//! the least recently used); the tokens never exceed the burst.

use std::collections::HashMap;
use std::sync::Mutex;

use super::rate::WindowConfig;
use super::resolve::MetricTags;

/// Kafka's `TokenBucket`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenBucket {
    tokens: f64,
    last_update_ms: Option<u64>,
}

impl TokenBucket {
    fn burst(quota: f64, window: &WindowConfig) -> f64 {
        window.samples as f64 * (window.window_ms as f64 / 1000.0) * quota
    }

    /// Refills to `now_ms` (a new bucket starts full) and returns the tokens.
    pub fn measure(&mut self, quota: f64, window: &WindowConfig, now_ms: u64) -> f64 {
        let burst = Self::burst(quota, window);
        let refill = match self.last_update_ms {
            None => burst,
            Some(last) => quota * (now_ms.saturating_sub(last) as f64 / 1000.0),
        };
        self.tokens = burst.min(self.tokens + refill);
        self.last_update_ms = Some(now_ms);
        self.tokens
    }

    pub fn record(&mut self, quota: f64, window: &WindowConfig, permits: f64, now_ms: u64) {
        let burst = Self::burst(quota, window);
        self.measure(quota, window, now_ms);
        self.tokens = burst.min(self.tokens - permits);
    }

    fn last_update_ms(&self) -> u64 {
        self.last_update_ms.unwrap_or(0)
    }
}

/// Kafka's throttle time of an exhausted bucket: the time to refill it to zero.
fn throttle_ms(tokens: f64, quota: f64) -> u64 {
    if tokens >= 0.0 || quota <= 0.0 {
        return 0;
    }
    let ms = -tokens / quota * 1000.0;
    if ms.is_finite() {
        ms.round() as u64
    } else {
        u64::MAX
    }
}

/// The outcome of recording mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Recorded; the response carries `throttle_ms` (0 within the quota).
    Recorded { throttle_ms: u64 },
    /// Strict and exhausted: refused (THROTTLING_QUOTA_EXCEEDED), nothing recorded.
    Refused { throttle_ms: u64 },
}

/// Every client's bucket, shared by every shard.
#[derive(Debug)]
pub struct MutationBuckets {
    window: WindowConfig,
    sensors_max: usize,
    buckets: Mutex<HashMap<MetricTags, TokenBucket>>,
}

impl MutationBuckets {
    /// Buckets over `window` (the burst), at most `sensors_max` of them.
    pub fn new(window: WindowConfig, sensors_max: usize) -> Self {
        Self {
            window,
            sensors_max,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Records `permits` partitions for `tags` under `quota` (per second).
    pub fn record(
        &self,
        tags: MetricTags,
        quota: f64,
        permits: f64,
        strict: bool,
        now_ms: u64,
    ) -> Mutation {
        let (window, sensors_max) = (&self.window, self.sensors_max);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&tags) {
            make_room(&mut buckets, sensors_max, now_ms);
        }
        let bucket = buckets.entry(tags).or_default();
        if strict {
            let tokens = bucket.measure(quota, window, now_ms);
            if tokens < 0.0 {
                return Mutation::Refused {
                    throttle_ms: throttle_ms(tokens, quota),
                };
            }
            bucket.record(quota, window, permits, now_ms);
            return Mutation::Recorded { throttle_ms: 0 };
        }
        bucket.record(quota, window, permits, now_ms);
        Mutation::Recorded {
            throttle_ms: throttle_ms(bucket.measure(quota, window, now_ms), quota),
        }
    }
}

fn make_room(buckets: &mut HashMap<MetricTags, TokenBucket>, sensors_max: usize, now_ms: u64) {
    if buckets.len() < sensors_max {
        return;
    }
    buckets.retain(|_, b| {
        now_ms.saturating_sub(b.last_update_ms()) < super::INACTIVE_SENSOR_EXPIRATION_MS
    });
    if buckets.len() >= sensors_max {
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.last_update_ms())
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            buckets.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    fn tags() -> MetricTags {
        ("alice".into(), String::new())
    }

    /// Kafka's TokenBucket example: quota 5, burst 5 * 100 * 1 = 500; 560 leaves -60, which
    /// takes 12 s to refill.
    #[test]
    fn kafkas_token_bucket_example() {
        let window = WindowConfig {
            samples: 100,
            window_ms: 1000,
        };
        let mut bucket = TokenBucket::default();
        bucket.record(5.0, &window, 560.0, 1_000);
        let tokens = bucket.measure(5.0, &window, 1_000);
        assert!((tokens + 60.0).abs() < 1e-9, "{tokens}");
        assert_eq!(throttle_ms(tokens, 5.0), 12_000);
        // 6 s later half of it is refilled.
        assert!((bucket.measure(5.0, &window, 7_000) + 30.0).abs() < 1e-9);
    }

    #[test]
    fn strict_refuses_only_once_exhausted() {
        let buckets = MutationBuckets::new(WINDOW, 10);
        // quota 1/s: burst 11 partitions.
        let record = |permits, strict, now| buckets.record(tags(), 1.0, permits, strict, now);
        assert_eq!(record(10.0, true, 0), Mutation::Recorded { throttle_ms: 0 });
        // 1 token left: this request may take the bucket below zero (-4)...
        assert_eq!(record(5.0, true, 0), Mutation::Recorded { throttle_ms: 0 });
        // ...and the next is refused for the 4 s the refill takes.
        assert_eq!(
            record(1.0, true, 0),
            Mutation::Refused { throttle_ms: 4_000 }
        );
        assert_eq!(
            record(1.0, true, 2_000),
            Mutation::Refused { throttle_ms: 2_000 }
        );
        assert_eq!(
            record(1.0, true, 4_000),
            Mutation::Recorded { throttle_ms: 0 }
        );
        // Permissive: always recorded, throttled by the deficit.
        assert_eq!(
            record(3.0, false, 4_000),
            Mutation::Recorded { throttle_ms: 4_000 }
        );
    }
}
