//! The topic configs of log compaction, read from a topic's overrides over the broker's
//! `log.cleaner.*` defaults: `cleanup.policy`, `min.cleanable.dirty.ratio`,
//! `delete.retention.ms`, `min.compaction.lag.ms`, `max.compaction.lag.ms`.
//!
//! Kept apart from `config.rs` so the cleaner reads its settings through one accessor
//! (`settings`); the values were validated when stored (`catalog`, Kafka's validators).

use storage::cleaner::CompactionConfig;

use super::config::TopicOverrides;
use crate::config::LogCleanerSection;

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

/// The compaction settings of a topic: its overrides over the broker defaults.
pub fn settings(broker: &LogCleanerSection, overrides: &TopicOverrides) -> CompactionConfig {
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
        let s = settings(&LogCleanerSection::default(), &o);
        assert_eq!(s.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(s.delete_retention_ms, 100);
        assert_eq!(s.min_compaction_lag_ms, 0);
        assert_eq!(s.max_compaction_lag_ms, i64::MAX);
    }
}
