//! Kafka 4.0's topic configs (`LogConfig`'s ConfigDef): name, type, Kafka's default, the broker
//! setting it defaults to (Kafka's synonym), the validator, and whether Sluice applies it.
//!
//! One row per config, sorted by name; `topics::config` parses and validates values from it,
//! DescribeConfigs / CreateTopics describe from it, and README's table lists it. Configs that
//! are not applied are still accepted with Kafka's validation, stored and described, because
//! Kafka's tools and clients send them (often at their default values).

/// Kafka's validator of one config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    None,
    /// `Range.atLeast`.
    AtLeast(i64),
    /// `Range.between` (inclusive).
    Between(i64, i64),
    /// `Range.between` on a DOUBLE.
    BetweenF(f64, f64),
    /// `ValidString.in` (exact match).
    In(&'static [&'static str]),
    /// `ValidList.in`: every item in the set, no repeats, at least one.
    ListIn(&'static [&'static str]),
    /// GZIP's level: -1 (the codec default) or 1..=9.
    GzipLevel,
    /// `ThrottledReplicaListValidator`: "" or "*" or "partition:broker" pairs.
    ThrottledReplicas,
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Kafka's default, as DescribeConfigs prints it.
    pub default: &'static str,
    /// The broker setting that supplies the default (Kafka's `ServerTopicConfigSynonyms`).
    pub broker_key: Option<&'static str>,
    pub check: Check,
    /// Whether Sluice implements the behaviour (README lists the others as accepted only).
    pub applied: bool,
    pub documentation: &'static str,
}

/// `Long.MAX_VALUE`, Kafka's "never".
pub const LONG_MAX: &str = "9223372036854775807";

/// Kafka's `BrokerCompressionType` names.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    broker_key: Option<&'static str>,
    check: Check,
    applied: bool,
    documentation: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        default,
        broker_key,
        check,
        applied,
        documentation,
    }
}

use Check::{AtLeast, Between, BetweenF, GzipLevel, In, ListIn, ThrottledReplicas};
use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

/// Kafka's config value types (DescribeConfigs v3+ `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Every Kafka 4.0 topic config, sorted by name.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", List, "delete", Some("log.cleanup.policy"), ListIn(&["compact", "delete"]), true,
        "\"delete\" discards old segments by retention. \"compact\" is accepted and stored; until \
         the log cleaner runs, such a topic is only retained by time/size."),
    def("compression.gzip.level", Int, "-1", Some("compression.gzip.level"), GzipLevel, false,
        "Compression level for gzip when compression.type is gzip (not applied: batches are stored as sent)."),
    def("compression.lz4.level", Int, "9", Some("compression.lz4.level"), Between(1, 17), false,
        "Compression level for lz4 when compression.type is lz4 (not applied)."),
    def("compression.type", Str, "producer", Some("compression.type"), In(COMPRESSION_TYPES), true,
        "Final codec of the topic's batches: a batch produced in another codec is re-encoded in \
         this one (default level); \"producer\" stores batches as sent."),
    def("compression.zstd.level", Int, "3", Some("compression.zstd.level"), Between(-131_072, 22), false,
        "Compression level for zstd when compression.type is zstd (not applied)."),
    def("delete.retention.ms", Long, "86400000", Some("log.cleaner.delete.retention.ms"), AtLeast(0), true,
        "How long delete tombstones are kept in a compacted topic (read by the log cleaner)."),
    def("file.delete.delay.ms", Long, "60000", Some("log.segment.delete.delay.ms"), AtLeast(0), false,
        "Delay before a deleted segment's files are removed (Sluice removes them at once)."),
    def("flush.messages", Long, LONG_MAX, Some("log.flush.interval.messages"), AtLeast(1), true,
        "fsync the log after this many messages."),
    def("flush.ms", Long, LONG_MAX, Some("log.flush.interval.ms"), AtLeast(0), true,
        "fsync the log when the oldest unflushed message is this old."),
    def("follower.replication.throttled.replicas", List, "", None, ThrottledReplicas, false,
        "Replicas whose follower replication is throttled (no replication in Sluice)."),
    def("index.interval.bytes", Int, "4096", Some("log.index.interval.bytes"), AtLeast(0), true,
        "Bytes of log between two offset index entries."),
    def("leader.replication.throttled.replicas", List, "", None, ThrottledReplicas, false,
        "Replicas whose leader replication is throttled (no replication in Sluice)."),
    def("local.retention.bytes", Long, "-2", Some("log.local.retention.bytes"), AtLeast(-2), false,
        "Local retention with tiered storage (no tiered storage in Sluice)."),
    def("local.retention.ms", Long, "-2", Some("log.local.retention.ms"), AtLeast(-2), false,
        "Local retention with tiered storage (no tiered storage in Sluice)."),
    def("max.compaction.lag.ms", Long, LONG_MAX, Some("log.cleaner.max.compaction.lag.ms"), AtLeast(1), true,
        "Longest time a record stays uncompacted (read by the log cleaner)."),
    def("max.message.bytes", Int, "1048588", Some("message.max.bytes"), AtLeast(0), true,
        "Largest record batch the topic accepts."),
    def("message.timestamp.after.max.ms", Long, LONG_MAX, Some("log.message.timestamp.after.max.ms"), AtLeast(0), true,
        "Largest amount a CreateTime batch's timestamp may be ahead of the broker's clock; \
         produce answers INVALID_TIMESTAMP beyond it."),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, Some("log.message.timestamp.before.max.ms"), AtLeast(0), true,
        "Largest amount a CreateTime batch's timestamp may be behind the broker's clock; \
         produce answers INVALID_TIMESTAMP beyond it."),
    def("message.timestamp.type", Str, "CreateTime", Some("log.message.timestamp.type"), In(&["CreateTime", "LogAppendTime"]), true,
        "CreateTime keeps the producer's timestamps, LogAppendTime stamps the broker's time."),
    def("min.cleanable.dirty.ratio", Double, "0.5", Some("log.cleaner.min.cleanable.ratio"), BetweenF(0.0, 1.0), true,
        "Dirty share of a log at which it is compacted (read by the log cleaner)."),
    def("min.compaction.lag.ms", Long, "0", Some("log.cleaner.min.compaction.lag.ms"), AtLeast(0), true,
        "Shortest time a record stays uncompacted (read by the log cleaner)."),
    def("min.insync.replicas", Int, "1", Some("min.insync.replicas"), AtLeast(1), false,
        "Replicas that must acknowledge an acks=-1 write (one replica in Sluice)."),
    def("preallocate", Boolean, "false", Some("log.preallocate"), Check::None, false,
        "Preallocate segment files (not done by Sluice)."),
    def("remote.log.copy.disable", Boolean, "false", None, Check::None, false,
        "Tiered storage: stop copying segments (no tiered storage in Sluice)."),
    def("remote.log.delete.on.disable", Boolean, "false", None, Check::None, false,
        "Tiered storage: delete remote data when disabled (no tiered storage in Sluice)."),
    def("remote.storage.enable", Boolean, "false", None, Check::None, false,
        "Tiered storage; refused when true, as by a Kafka broker without tiered storage."),
    def("retention.bytes", Long, "-1", Some("log.retention.bytes"), Check::None, true,
        "Largest size a partition may grow to before old segments are deleted; -1: no limit."),
    def("retention.ms", Long, "604800000", Some("log.retention.ms"), AtLeast(-1), true,
        "How long a segment is kept after its newest record; -1: no limit."),
    def("segment.bytes", Int, "1073741824", Some("log.segment.bytes"), AtLeast(14), true,
        "Size at which the active segment is rolled."),
    def("segment.index.bytes", Int, "10485760", Some("log.index.size.max.bytes"), AtLeast(8), true,
        "Largest size of a segment's offset index."),
    def("segment.jitter.ms", Long, "0", Some("log.roll.jitter.ms"), AtLeast(0), false,
        "Random jitter subtracted from segment.ms (not applied)."),
    def("segment.ms", Long, "604800000", Some("log.roll.ms"), AtLeast(1), true,
        "Age at which the active segment is rolled even if not full."),
    def("unclean.leader.election.enable", Boolean, "false", Some("unclean.leader.election.enable"), Check::None, false,
        "Elect an out-of-sync replica as leader when no ISR member can lead (data loss)."),
];

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .and_then(|i| TOPIC_CONFIGS.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_kafkas_sorted_and_complete() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        // Kafka 4.0 describes 33 topic configs.
        assert_eq!(TOPIC_CONFIGS.len(), 33);
        for d in TOPIC_CONFIGS {
            assert_eq!(find(d.name).map(|f| f.name), Some(d.name));
        }
        assert!(find("no.such").is_none());
        assert!(
            find("message.format.version").is_none(),
            "removed in Kafka 4.0"
        );
    }
}
