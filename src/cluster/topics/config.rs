//! Topic-level configs: parses and validates values of every Kafka topic config (the table is
//! `catalog`), applies overrides on top of the broker defaults, and gives the typed result
//! (`TopicConfig`: the storage `LogConfig` plus the configs storage does not use, for the
//! produce path and the log cleaner).
//!
//! Used by CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (the
//! override-set arithmetic of the last two is in `alter`). Invariant: a `TopicOverrides` map
//! only ever holds keys of `catalog::TOPIC_CONFIGS` with values that `resolve` accepts, so a
//! persisted topic always reopens with a valid config.

use std::collections::BTreeMap;

use storage::{LogConfig, TimestampType};

use super::catalog::ConfigType;
use super::catalog::{self, Check, TopicConfigDef, TOPIC_CONFIGS};
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
    /// Values valid alone that Kafka refuses together (or refuses on this broker).
    #[error("{0}")]
    Conflict(String),
}

/// A topic's effective configuration, typed. `log` is what storage applies; the rest are the
/// Kafka topic configs storage does not use (some applied elsewhere, some only stored).
#[derive(Debug, Clone)]
pub struct TopicConfig {
    pub log: LogConfig,
    /// cleanup.policy contains "compact" / "delete".
    pub compact: bool,
    pub delete: bool,
    /// compression.type (one of `catalog::COMPRESSION_TYPES`).
    pub compression_type: String,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    /// Log cleaner: how long tombstones are kept.
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    /// Log cleaner: a record stays uncompacted at least / at most this long.
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// Log cleaner: dirty share of the log that makes it eligible.
    pub min_cleanable_dirty_ratio: f64,
    /// Produce: CreateTime batches more than this behind / ahead of the broker clock are
    /// refused with INVALID_TIMESTAMP.
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    pub segment_jitter_ms: i64,
    pub unclean_leader_election_enable: bool,
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    pub remote_storage_enable: bool,
    pub remote_log_copy_disable: bool,
    pub remote_log_delete_on_disable: bool,
    pub leader_replication_throttled_replicas: Vec<String>,
    pub follower_replication_throttled_replicas: Vec<String>,
}

impl TopicConfig {
    /// Kafka's defaults for everything `defaults` (the broker's log settings) does not cover.
    pub fn from_defaults(defaults: &LogConfig) -> Self {
        Self {
            log: defaults.clone(),
            compact: false,
            delete: true,
            compression_type: "producer".to_owned(),
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            delete_retention_ms: 86_400_000,
            file_delete_delay_ms: 60_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            min_insync_replicas: 1,
            preallocate: false,
            segment_jitter_ms: 0,
            unclean_leader_election_enable: false,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            remote_storage_enable: false,
            remote_log_copy_disable: false,
            remote_log_delete_on_disable: false,
            leader_replication_throttled_replicas: Vec::new(),
            follower_replication_throttled_replicas: Vec::new(),
        }
    }
}

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

/// Applies `overrides` on `defaults`; rejects unknown keys and bad values. The storage part.
pub fn resolve(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Result<LogConfig, TopicConfigError> {
    resolve_topic(defaults, overrides).map(|c| c.log)
}

/// Applies `overrides` on `defaults` and checks the rules between keys (Kafka's
/// `LogConfig.validateValues` and the broker-side checks that apply without tiered storage).
pub fn resolve_topic(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Result<TopicConfig, TopicConfigError> {
    let mut config = TopicConfig::from_defaults(defaults);
    for (key, value) in overrides {
        apply_one(&mut config, key, value)?;
    }
    if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
        return Err(TopicConfigError::Conflict(format!(
            "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
            config.min_compaction_lag_ms, config.max_compaction_lag_ms
        )));
    }
    if config.remote_storage_enable {
        return Err(TopicConfigError::Conflict(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured \
             with remote log storage."
                .to_owned(),
        ));
    }
    // Kafka's `LogConfig.maxSegmentMs` (KIP-354): a compacted topic's active segment also rolls
    // at max.compaction.lag.ms, so that its data can be cleaned within that lag (the cleaner
    // never touches the active segment).
    if config.compact && config.max_compaction_lag_ms > 0 {
        let lag_ms = u64::try_from(config.max_compaction_lag_ms).unwrap_or(u64::MAX);
        config.log.segment_ms = config.log.segment_ms.min(lag_ms);
    }
    Ok(config)
}

/// Validates one (key, value) pair against the defaults (for AlterConfigs-style callers).
pub fn validate_one(key: &str, value: &str) -> Result<(), TopicConfigError> {
    apply_one(
        &mut TopicConfig::from_defaults(&LogConfig::default()),
        key,
        value,
    )
}

/// A parsed value of one config.
enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(String),
    List(Vec<String>),
}

/// Kafka's ConfigDef parse + validator for one value.
fn parse(def: &TopicConfigDef, value: &str) -> Result<Value, &'static str> {
    let trimmed = value.trim();
    let parsed = match def.config_type {
        ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("expected value to be either true or false"),
        },
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(|v| Value::Int(i64::from(v)))
            .map_err(|_| "not a 32-bit integer")?,
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| "not a 64-bit integer")?,
        ConfigType::Double => trimmed
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Value::Double)
            .ok_or("not a number")?,
        ConfigType::String => Value::Text(trimmed.to_owned()),
        ConfigType::List => Value::List(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    };
    check(def.check, &parsed)?;
    Ok(parsed)
}

fn check(rule: Check, value: &Value) -> Result<(), &'static str> {
    let ok = match (rule, value) {
        (Check::None, _) => true,
        (Check::AtLeast(min), Value::Int(v)) => *v >= min,
        (Check::Between(lo, hi), Value::Int(v)) => (lo..=hi).contains(v),
        (Check::BetweenF(lo, hi), Value::Double(v)) => (lo..=hi).contains(v),
        (Check::In(allowed), Value::Text(v)) => allowed.contains(&v.as_str()),
        (Check::ListIn(allowed), Value::List(items)) => {
            !items.is_empty()
                && items.iter().all(|i| allowed.contains(&i.as_str()))
                && items
                    .iter()
                    .enumerate()
                    .all(|(n, i)| !items.iter().take(n).any(|earlier| earlier == i))
        }
        (Check::GzipLevel, Value::Int(v)) => *v == -1 || (1..=9).contains(v),
        (Check::ThrottledReplicas, Value::List(items)) => {
            let pair = |i: &String| {
                let mut parts = i.split(':');
                let ok = |p: Option<&str>| p.is_some_and(|p| p.trim().parse::<u32>().is_ok());
                ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
            };
            items.iter().all(|i| i == "*") && items.len() <= 1 || items.iter().all(pair)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match rule {
            Check::AtLeast(_) | Check::Between(..) | Check::BetweenF(..) | Check::GzipLevel => {
                "out of range"
            }
            _ => "not one of the allowed values",
        })
    }
}

fn apply_one(config: &mut TopicConfig, key: &str, value: &str) -> Result<(), TopicConfigError> {
    let def = catalog::find(key).ok_or_else(|| TopicConfigError::UnknownKey(key.to_owned()))?;
    let invalid = |reason: &'static str| TopicConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let parsed = parse(def, value).map_err(invalid)?;
    let never_if_max = |v: i64| if v == i64::MAX { u64::MAX } else { v as u64 };
    let log = &mut config.log;
    match (key, parsed) {
        ("cleanup.policy", Value::List(items)) => {
            config.compact = items.iter().any(|i| i == "compact");
            config.delete = items.iter().any(|i| i == "delete");
        }
        ("compression.type", Value::Text(v)) => config.compression_type = v,
        ("compression.gzip.level", Value::Int(v)) => config.compression_gzip_level = v as i32,
        ("compression.lz4.level", Value::Int(v)) => config.compression_lz4_level = v as i32,
        ("compression.zstd.level", Value::Int(v)) => config.compression_zstd_level = v as i32,
        ("delete.retention.ms", Value::Int(v)) => config.delete_retention_ms = v,
        ("file.delete.delay.ms", Value::Int(v)) => config.file_delete_delay_ms = v,
        ("flush.messages", Value::Int(v)) => log.flush_messages = never_if_max(v),
        ("flush.ms", Value::Int(v)) => log.flush_ms = never_if_max(v),
        ("follower.replication.throttled.replicas", Value::List(v)) => {
            config.follower_replication_throttled_replicas = v
        }
        ("index.interval.bytes", Value::Int(v)) => {
            log.index_interval_bytes = u32::try_from(v).map_err(|_| invalid("too large"))?
        }
        ("leader.replication.throttled.replicas", Value::List(v)) => {
            config.leader_replication_throttled_replicas = v
        }
        ("local.retention.bytes", Value::Int(v)) => config.local_retention_bytes = v,
        ("local.retention.ms", Value::Int(v)) => config.local_retention_ms = v,
        ("max.compaction.lag.ms", Value::Int(v)) => config.max_compaction_lag_ms = v,
        ("max.message.bytes", Value::Int(v)) => {
            log.max_message_bytes = u32::try_from(v).map_err(|_| invalid("too large"))?
        }
        ("message.timestamp.after.max.ms", Value::Int(v)) => {
            config.message_timestamp_after_max_ms = v
        }
        ("message.timestamp.before.max.ms", Value::Int(v)) => {
            config.message_timestamp_before_max_ms = v
        }
        ("message.timestamp.type", Value::Text(v)) => {
            log.timestamp_type =
                parse_timestamp_type(&v).ok_or_else(|| invalid("CreateTime or LogAppendTime"))?
        }
        ("min.cleanable.dirty.ratio", Value::Double(v)) => config.min_cleanable_dirty_ratio = v,
        ("min.compaction.lag.ms", Value::Int(v)) => config.min_compaction_lag_ms = v,
        ("min.insync.replicas", Value::Int(v)) => config.min_insync_replicas = v as i32,
        ("preallocate", Value::Bool(v)) => config.preallocate = v,
        ("remote.log.copy.disable", Value::Bool(v)) => config.remote_log_copy_disable = v,
        ("remote.log.delete.on.disable", Value::Bool(v)) => config.remote_log_delete_on_disable = v,
        ("remote.storage.enable", Value::Bool(v)) => config.remote_storage_enable = v,
        ("retention.bytes", Value::Int(v)) => log.retention_bytes = v,
        ("retention.ms", Value::Int(v)) => log.retention_ms = v,
        // An INT in Kafka, so at most i32::MAX; at least one empty batch header's worth.
        ("segment.bytes", Value::Int(v)) => log.segment_bytes_max = v.unsigned_abs(),
        ("segment.index.bytes", Value::Int(v)) => {
            log.segment_index_bytes_max = u32::try_from(v).map_err(|_| invalid("too large"))?
        }
        ("segment.jitter.ms", Value::Int(v)) => config.segment_jitter_ms = v,
        ("segment.ms", Value::Int(v)) => log.segment_ms = v.unsigned_abs(),
        ("unclean.leader.election.enable", Value::Bool(v)) => {
            config.unclean_leader_election_enable = v
        }
        _ => return Err(invalid("unsupported")),
    }
    Ok(())
}

/// The value a topic without an override gets for `def`: the broker's setting where Sluice has
/// one (`defaults`), else Kafka's default.
pub fn broker_value(def: &TopicConfigDef, defaults: &LogConfig) -> String {
    let never = |v: u64| {
        if v == u64::MAX {
            i64::MAX.to_string()
        } else {
            v.to_string()
        }
    };
    match def.name {
        "flush.messages" => never(defaults.flush_messages),
        "flush.ms" => never(defaults.flush_ms),
        "index.interval.bytes" => defaults.index_interval_bytes.to_string(),
        "max.message.bytes" => defaults.max_message_bytes.to_string(),
        "message.timestamp.type" => timestamp_type_name(&defaults.timestamp_type).to_owned(),
        "retention.bytes" => defaults.retention_bytes.to_string(),
        "retention.ms" => defaults.retention_ms.to_string(),
        "segment.bytes" => defaults.segment_bytes_max.to_string(),
        "segment.index.bytes" => defaults.segment_index_bytes_max.to_string(),
        "segment.ms" => defaults.segment_ms.to_string(),
        _ => def.default.to_owned(),
    }
}

/// Every topic config in name order: (name, effective value, whether it is a topic override).
pub fn describe(
    defaults: &LogConfig,
    overrides: &TopicOverrides,
) -> Vec<(&'static str, String, bool)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(value) => (def.name, value.clone(), true),
            None => (def.name, broker_value(def, defaults), false),
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
    fn a_compacted_topic_rolls_by_max_compaction_lag() {
        let defaults = LogConfig::default();
        let lag = [
            ("cleanup.policy", "compact"),
            ("max.compaction.lag.ms", "60000"),
        ];
        let compacted = resolve_topic(&defaults, &overrides(&lag)).expect("valid");
        assert_eq!(compacted.log.segment_ms, 60_000);
        // Not compacted: the lag does not shorten segment.ms; a shorter segment.ms stays.
        let deleted = [
            ("cleanup.policy", "delete"),
            ("max.compaction.lag.ms", "60000"),
        ];
        let plain = resolve_topic(&defaults, &overrides(&deleted)).expect("valid");
        assert_eq!(plain.log.segment_ms, defaults.segment_ms);
        let short = [
            ("cleanup.policy", "compact"),
            ("max.compaction.lag.ms", "60000"),
            ("segment.ms", "1000"),
        ];
        let shorter = resolve_topic(&defaults, &overrides(&short)).expect("valid");
        assert_eq!(shorter.log.segment_ms, 1_000);
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
        let entries = describe(&LogConfig::default(), &o);
        assert_eq!(entries.len(), TOPIC_CONFIGS.len());
        let retention = entries
            .iter()
            .find(|(k, _, _)| *k == "retention.ms")
            .unwrap();
        assert_eq!(retention.1, "5");
        assert!(retention.2);
        let segment_ms = entries.iter().find(|(k, _, _)| *k == "segment.ms").unwrap();
        assert!(!segment_ms.2);
        assert_eq!(segment_ms.1, "604800000");
        let compression = entries
            .iter()
            .find(|(k, _, _)| *k == "compression.type")
            .unwrap();
        assert_eq!(compression.1, "producer");
    }

    /// Every Kafka 4.0 topic config is accepted at Kafka's default value, and the typed config
    /// carries it.
    #[test]
    fn every_kafka_topic_config_is_accepted_at_its_default() {
        for def in TOPIC_CONFIGS {
            let value = broker_value(def, &LogConfig::default());
            assert_eq!(
                value, def.default,
                "{}: Sluice's default is Kafka's",
                def.name
            );
            validate_one(def.name, &value).unwrap_or_else(|e| panic!("{}: {e}", def.name));
        }
        let config = resolve_topic(
            &LogConfig::default(),
            &overrides(&[
                ("compression.type", "zstd"),
                ("delete.retention.ms", "1000"),
                ("min.cleanable.dirty.ratio", "0.25"),
                ("max.compaction.lag.ms", "90000"),
                ("min.compaction.lag.ms", "500"),
                ("file.delete.delay.ms", "0"),
                ("message.timestamp.before.max.ms", "3600000"),
                ("message.timestamp.after.max.ms", "60000"),
                ("cleanup.policy", "compact,delete"),
                ("preallocate", "TRUE"),
                ("leader.replication.throttled.replicas", "0:1, 1:1"),
            ]),
        )
        .unwrap();
        assert_eq!(config.compression_type, "zstd");
        assert_eq!(config.delete_retention_ms, 1000);
        assert_eq!(config.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(config.max_compaction_lag_ms, 90_000);
        assert_eq!(config.min_compaction_lag_ms, 500);
        assert_eq!(config.file_delete_delay_ms, 0);
        assert_eq!(config.message_timestamp_before_max_ms, 3_600_000);
        assert_eq!(config.message_timestamp_after_max_ms, 60_000);
        assert!(config.compact && config.delete && config.preallocate);
        assert_eq!(config.leader_replication_throttled_replicas.len(), 2);
    }

    /// Kafka's ConfigDef validators: types, ranges, enumerations, and the rules between keys.
    #[test]
    fn kafkas_validators_refuse_bad_values() {
        for (key, bad) in [
            ("compression.type", "brotli"),
            ("compression.type", "GZIP"),
            ("compression.gzip.level", "0"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
            ("delete.retention.ms", "-1"),
            ("file.delete.delay.ms", "x"),
            ("max.compaction.lag.ms", "0"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("message.timestamp.after.max.ms", "-1"),
            ("min.insync.replicas", "0"),
            ("preallocate", "yes"),
            ("segment.jitter.ms", "-5"),
            ("local.retention.ms", "-3"),
            ("leader.replication.throttled.replicas", "1:x"),
            ("segment.bytes", "2147483648"),
            ("max.message.bytes", "2147483648"),
        ] {
            assert!(validate_one(key, bad).is_err(), "{key}={bad}");
        }
        for (key, good) in [
            ("compression.zstd.level", "-131072"),
            ("compression.gzip.level", "-1"),
            ("min.cleanable.dirty.ratio", "0"),
            ("leader.replication.throttled.replicas", "*"),
            ("leader.replication.throttled.replicas", ""),
        ] {
            assert!(validate_one(key, good).is_ok(), "{key}={good}");
        }
        let defaults = LogConfig::default();
        assert!(matches!(
            resolve_topic(
                &defaults,
                &overrides(&[
                    ("min.compaction.lag.ms", "10"),
                    ("max.compaction.lag.ms", "5")
                ])
            ),
            Err(TopicConfigError::Conflict(_))
        ));
        assert!(matches!(
            resolve_topic(&defaults, &overrides(&[("remote.storage.enable", "true")])),
            Err(TopicConfigError::Conflict(_))
        ));
        assert!(
            resolve_topic(&defaults, &overrides(&[("remote.storage.enable", "false")])).is_ok()
        );
    }
}
