//! The topic configs of log compaction, read from a topic's overrides over the broker's
//! `log.cleaner.*` defaults: `cleanup.policy`, `min.cleanable.dirty.ratio`,
//! `delete.retention.ms`, `min.compaction.lag.ms`, `max.compaction.lag.ms`.
//!
//! Kept apart from `config.rs` so the cleaner reads its settings through one accessor
//! (`settings`); `config::apply_one` calls `validate` for these keys.

use storage::cleaner::CompactionConfig;

use super::config::TopicOverrides;
use crate::config::BrokerConfig;

/// Topic configs this module owns (besides `cleanup.policy`).
pub const KEYS: &[&str] = &[
    "delete.retention.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
];

/// `cleanup.policy` of a topic: which of Kafka's two policies apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    pub compact: bool,
    pub delete: bool,
}

/// Parses a `cleanup.policy` value (already validated by `config`); absent means "delete".
pub fn policy(overrides: &TopicOverrides) -> CleanupPolicy {
    match overrides.get("cleanup.policy") {
        None => CleanupPolicy {
            compact: false,
            delete: true,
        },
        Some(v) => {
            let has = |p: &str| v.split(',').any(|i| i.trim() == p);
            CleanupPolicy {
                compact: has("compact"),
                delete: has("delete"),
            }
        }
    }
}

/// Checks one of `KEYS` (Kafka's ranges: ratio in [0, 1], the times >= 0, max lag >= 1).
pub fn validate(key: &str, value: &str) -> Result<(), &'static str> {
    let v = value.trim();
    match key {
        "min.cleanable.dirty.ratio" => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            Ok(_) => Err("out of range [0, 1]"),
            Err(_) => Err("not a number"),
        },
        "max.compaction.lag.ms" => match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(()),
            Ok(_) => Err("out of range"),
            Err(_) => Err("not an integer"),
        },
        _ => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(()),
            Ok(_) => Err("out of range"),
            Err(_) => Err("not an integer"),
        },
    }
}

/// The compaction settings of a topic: its overrides over the broker defaults.
pub fn settings(broker: &BrokerConfig, overrides: &TopicOverrides) -> CompactionConfig {
    let int = |key: &str, default: i64| {
        overrides
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    CompactionConfig {
        min_cleanable_dirty_ratio: overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(broker.log_cleaner_min_cleanable_ratio),
        delete_retention_ms: int(
            "delete.retention.ms",
            broker.log_cleaner_delete_retention_ms,
        ),
        min_compaction_lag_ms: int(
            "min.compaction.lag.ms",
            broker.log_cleaner_min_compaction_lag_ms,
        ),
        max_compaction_lag_ms: int(
            "max.compaction.lag.ms",
            broker.log_cleaner_max_compaction_lag_ms,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_settings_read_overrides_over_defaults() {
        let mut o = TopicOverrides::new();
        assert_eq!(
            policy(&o),
            CleanupPolicy {
                compact: false,
                delete: true
            }
        );
        o.insert("cleanup.policy".into(), "compact, delete".into());
        assert_eq!(
            policy(&o),
            CleanupPolicy {
                compact: true,
                delete: true
            }
        );
        o.insert("min.cleanable.dirty.ratio".into(), "0.01".into());
        o.insert("delete.retention.ms".into(), "100".into());
        let s = settings(&BrokerConfig::default(), &o);
        assert_eq!(s.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(s.delete_retention_ms, 100);
        assert_eq!(s.min_compaction_lag_ms, 0);
        assert_eq!(s.max_compaction_lag_ms, i64::MAX);
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("min.compaction.lag.ms", "-1").is_err());
        assert!(validate("max.compaction.lag.ms", "0").is_err());
        assert!(validate("delete.retention.ms", "x").is_err());
    }
}
