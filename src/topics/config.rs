//! Topic-level configs: the one place that knows Kafka's topic config names, parses and
//! validates their values, and applies overrides on top of the broker defaults.
//!
//! Used by CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (the
//! override-set arithmetic of the last two is in `alter`). Invariant: a `TopicOverrides` map only ever holds keys in `KNOWN_KEYS` with values
//! that `resolve` accepts, so a persisted topic always reopens with a valid `LogConfig`.

use std::collections::BTreeMap;

use storage::{LogConfig, TimestampType};

/// Per-topic overrides, by Kafka config name (sorted so persistence is deterministic).
pub type TopicOverrides = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error("unknown topic config {0:?}")]
    UnknownKey(String),
    #[error("invalid value {value:?} for topic config {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// Topic config names Sluice understands, with the broker default's source.
pub const KNOWN_KEYS: &[&str] = &[
    "cleanup.policy",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.ms",
];

pub fn parse_timestamp_type(value: &str) -> Option<TimestampType> {
    match value {
        "CreateTime" => Some(TimestampType::CreateTime),
        "LogAppendTime" => Some(TimestampType::LogAppendTime),
        _ => None,
    }
}

fn timestamp_type_name(t: &TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// Applies `overrides` on `defaults`; rejects unknown keys and bad values.
pub fn resolve(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Result<LogConfig, TopicConfigError> {
    let mut config = defaults.clone();
    for (key, value) in overrides {
        apply_one(&mut config, key, value)?;
    }
    Ok(config)
}

/// Validates one (key, value) pair against the defaults (for AlterConfigs-style callers).
pub fn validate_one(key: &str, value: &str) -> Result<(), TopicConfigError> {
    apply_one(&mut LogConfig::default(), key, value)
}

fn apply_one(config: &mut LogConfig, key: &str, value: &str) -> Result<(), TopicConfigError> {
    let invalid = |reason: &'static str| TopicConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let int = || {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid("not an integer"))
    };
    let at_least = |min: i64| -> Result<i64, TopicConfigError> {
        let v = int()?;
        if v < min {
            return Err(invalid("out of range"));
        }
        Ok(v)
    };
    let never_if_max = |v: i64| if v == i64::MAX { u64::MAX } else { v as u64 };
    match key {
        // A list of "delete" / "compact" (the shard's log cleaner compacts, see `compaction`).
        "cleanup.policy" => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            let valid = items.iter().all(|i| *i == "delete" || *i == "compact")
                && (1..=2).contains(&items.len())
                && items.first() != items.get(1);
            if !valid {
                return Err(invalid("a list of \"delete\" and/or \"compact\""));
            }
        }
        "flush.messages" => config.flush_messages = never_if_max(at_least(1)?),
        "flush.ms" => config.flush_ms = never_if_max(at_least(0)?),
        "index.interval.bytes" => {
            config.index_interval_bytes =
                u32::try_from(at_least(0)?).map_err(|_| invalid("too large"))?
        }
        "max.message.bytes" => {
            config.max_message_bytes =
                u32::try_from(at_least(0)?).map_err(|_| invalid("too large"))?
        }
        "message.timestamp.type" => {
            config.timestamp_type =
                parse_timestamp_type(value).ok_or_else(|| invalid("CreateTime or LogAppendTime"))?
        }
        "retention.bytes" => config.retention_bytes = at_least(-1)?,
        "retention.ms" => config.retention_ms = at_least(-1)?,
        // Kafka's minimum segment size (14 bytes is one empty batch header's worth).
        // An INT in Kafka, so at most i32::MAX.
        "segment.bytes" => {
            config.segment_bytes_max = u64::try_from(at_least(14)?)
                .ok()
                .filter(|v| *v <= i32::MAX as u64)
                .ok_or_else(|| invalid("too large"))?
        }
        "segment.index.bytes" => {
            config.segment_index_bytes_max =
                u32::try_from(at_least(8)?).map_err(|_| invalid("too large"))?
        }
        "segment.ms" => config.segment_ms = at_least(1)? as u64,
        // Log compaction's configs (read through `compaction::settings`).
        k if super::compaction::KEYS.contains(&k) => {
            super::compaction::validate(k, value).map_err(invalid)?
        }
        _ => return Err(TopicConfigError::UnknownKey(key.to_owned())),
    }
    Ok(())
}

/// The effective value of every known key for `config`, in `KNOWN_KEYS` order, with whether it
/// comes from an override (for DescribeConfigs).
pub fn describe(
    config: &LogConfig,
    overrides: &TopicOverrides,
) -> Vec<(&'static str, String, bool)> {
    let never = |v: u64| {
        if v == u64::MAX {
            i64::MAX.to_string()
        } else {
            v.to_string()
        }
    };
    KNOWN_KEYS
        .iter()
        .map(|&key| {
            let value = match key {
                "cleanup.policy" => overrides
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| "delete".to_owned()),
                "flush.messages" => never(config.flush_messages),
                "flush.ms" => never(config.flush_ms),
                "index.interval.bytes" => config.index_interval_bytes.to_string(),
                "max.message.bytes" => config.max_message_bytes.to_string(),
                "message.timestamp.type" => timestamp_type_name(&config.timestamp_type).to_owned(),
                "retention.bytes" => config.retention_bytes.to_string(),
                "retention.ms" => config.retention_ms.to_string(),
                "segment.bytes" => config.segment_bytes_max.to_string(),
                "segment.index.bytes" => config.segment_index_bytes_max.to_string(),
                _ => config.segment_ms.to_string(),
            };
            (key, value, overrides.contains_key(key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> TopicOverrides {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn overrides_apply_on_defaults() {
        let defaults = LogConfig::default();
        let config = resolve(
            &defaults,
            &overrides(&[
                ("retention.ms", "1000"),
                ("message.timestamp.type", "LogAppendTime"),
            ]),
        )
        .unwrap();
        assert_eq!(config.retention_ms, 1000);
        assert!(matches!(
            config.timestamp_type,
            TimestampType::LogAppendTime
        ));
        assert_eq!(config.segment_bytes_max, defaults.segment_bytes_max);
    }

    #[test]
    fn bad_keys_and_values_are_rejected() {
        let defaults = LogConfig::default();
        assert_eq!(
            resolve(&defaults, &overrides(&[("no.such", "1")])).err(),
            Some(TopicConfigError::UnknownKey("no.such".into()))
        );
        assert!(resolve(&defaults, &overrides(&[("retention.ms", "abc")])).is_err());
        assert!(resolve(&defaults, &overrides(&[("retention.ms", "-2")])).is_err());
        assert!(resolve(&defaults, &overrides(&[("cleanup.policy", "compact")])).is_ok());
        assert!(validate_one("cleanup.policy", "compact,delete").is_ok());
        for bad in ["", "none", "delete,delete", "compact,delete,compact"] {
            assert!(validate_one("cleanup.policy", bad).is_err(), "{bad}");
        }
        assert!(validate_one("segment.bytes", "2147483648").is_err());
        assert!(validate_one("segment.bytes", "13").is_err());
        assert!(validate_one("segment.bytes", "14").is_ok());
    }

    #[test]
    fn describe_marks_overrides() {
        let o = overrides(&[("retention.ms", "5")]);
        let config = resolve(&LogConfig::default(), &o).unwrap();
        let entries = describe(&config, &o);
        assert_eq!(entries.len(), KNOWN_KEYS.len());
        let retention = entries
            .iter()
            .find(|(k, _, _)| *k == "retention.ms")
            .unwrap();
        assert_eq!(retention.1, "5");
        assert!(retention.2);
        assert!(
            !entries
                .iter()
                .find(|(k, _, _)| *k == "segment.ms")
                .unwrap()
                .2
        );
    }
}
