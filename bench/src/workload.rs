//! Workload definitions, read from TOML files in the shape of the OpenMessaging Benchmark
//! (topics x partitions, producers per topic, subscriptions x consumers per subscription).
//!
//! Invariants after [`Workload::validate`]: every count is at least 1 (consumers may be 0),
//! the message is large enough to hold the payload header, the rate is either max (0) or a
//! positive target, and every limit lies under the named caps below, so no later stage has to
//! re-check them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::payload::HEADER_BYTES;

/// Caps that keep a typo in a workload file from asking for unbounded resources.
pub const TOPICS_MAX: u32 = 1_000;
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
pub const MESSAGE_BYTES_MAX: u32 = 16 * 1024 * 1024;
pub const CLIENTS_PER_TOPIC_MAX: u32 = 256;
pub const KEY_COUNT_MAX: u32 = 10_000_000;
pub const DURATION_S_MAX: u64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("reading workload {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing workload {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid workload {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// How each message picks its key (and so, with the default partitioner, its partition).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    /// No key: librdkafka's sticky partitioner spreads batches.
    None,
    /// Keys taken in turn from a pool of `key_count` keys.
    RoundRobin,
    /// Keys drawn uniformly from the pool.
    Random,
    /// Keys drawn from the pool with a Zipf law (`zipf_exponent`): a few hot keys.
    Zipf,
}

/// Whether consumers join a consumer group or assign partitions themselves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerMode {
    /// `subscribe` with a group id per subscription; the broker balances partitions.
    Group,
    /// `assign`: consumers of one subscription split partitions round-robin among themselves,
    /// with no group coordinator involved (for brokers without consumer groups yet).
    Assign,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Which client drives the producers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// librdkafka (`ThreadedProducer`), the client most Kafka users run.
    #[default]
    Rdkafka,
    /// The built-in Kafka-protocol producer (`native.rs`): far less CPU per message.
    Native,
}

fn default_one() -> u32 {
    1
}
fn default_key_count() -> u32 {
    1_000
}
fn default_zipf_exponent() -> f64 {
    1.0
}
fn default_acks() -> String {
    "all".to_string()
}
fn default_batch_size_bytes() -> u32 {
    131_072
}
fn default_linger_ms() -> u32 {
    1
}
fn default_group_prefix() -> String {
    "sluice-bench".to_string()
}
fn default_drain_timeout_s() -> u64 {
    30
}
fn default_true() -> bool {
    true
}

/// One workload file. Field names follow OMB's where one exists (snake_case here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_one")]
    pub topics: u32,
    pub partitions_per_topic: u32,
    pub message_size_bytes: u32,
    /// Fraction of each payload (after the header) that is random; the rest is zeros.
    /// 1.0 = incompressible, 0.0 = maximally compressible.
    #[serde(default = "default_payload_random_fraction")]
    pub payload_random_fraction: f64,
    pub key_distribution: KeyDistribution,
    #[serde(default = "default_key_count")]
    pub key_count: u32,
    #[serde(default = "default_zipf_exponent")]
    pub zipf_exponent: f64,
    pub producers_per_topic: u32,
    #[serde(default = "default_one")]
    pub subscriptions_per_topic: u32,
    pub consumers_per_subscription: u32,
    pub consumer_mode: ConsumerMode,
    #[serde(default = "default_group_prefix")]
    pub consumer_group_prefix: String,
    /// `all`/`-1`, `1` or `0`, passed to librdkafka as `acks`.
    #[serde(default = "default_acks")]
    pub acks: String,
    #[serde(default = "default_batch_size_bytes")]
    pub batch_size_bytes: u32,
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    pub compression: Compression,
    pub duration_s: u64,
    #[serde(default)]
    pub warmup_s: u64,
    /// Total target rate in messages per second over all producers; 0 = as fast as possible.
    #[serde(default)]
    pub producer_rate_msgs_per_s: u64,
    /// How long consumers may keep reading after producers stop, to catch up.
    #[serde(default = "default_drain_timeout_s")]
    pub drain_timeout_s: u64,
    #[serde(default = "default_one_i16")]
    pub replication_factor: i16,
    /// Create topics through the admin API before the run (false: rely on auto-creation).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Producer client: `rdkafka` or `native` (uncompressed only; ignores `producer_config`).
    #[serde(default)]
    pub client: Client,
    /// Extra librdkafka producer properties, applied last.
    #[serde(default)]
    pub producer_config: BTreeMap<String, String>,
    /// Extra librdkafka consumer properties, applied last.
    #[serde(default)]
    pub consumer_config: BTreeMap<String, String>,
}

fn default_payload_random_fraction() -> f64 {
    1.0
}
fn default_one_i16() -> i16 {
    1
}

impl Workload {
    pub fn from_file(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Workload::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, origin: &str) -> Result<Workload, WorkloadError> {
        let workload: Workload = toml::from_str(text).map_err(|source| WorkloadError::Parse {
            path: origin.to_string(),
            source: Box::new(source),
        })?;
        workload.validate()?;
        Ok(workload)
    }

    pub fn validate(&self) -> Result<(), WorkloadError> {
        let check = |ok: bool, reason: &str| -> Result<(), WorkloadError> {
            if ok {
                Ok(())
            } else {
                Err(WorkloadError::Invalid {
                    name: self.name.clone(),
                    reason: reason.to_string(),
                })
            }
        };
        check(!self.name.is_empty(), "name must not be empty")?;
        check(
            (1..=TOPICS_MAX).contains(&self.topics),
            "topics must be in 1..=1000",
        )?;
        check(
            (1..=PARTITIONS_PER_TOPIC_MAX).contains(&self.partitions_per_topic),
            "partitions_per_topic must be in 1..=10000",
        )?;
        check(
            (HEADER_BYTES as u32..=MESSAGE_BYTES_MAX).contains(&self.message_size_bytes),
            "message_size_bytes must hold the 32-byte payload header and be at most 16 MiB",
        )?;
        check(
            (0.0..=1.0).contains(&self.payload_random_fraction),
            "payload_random_fraction must be in 0.0..=1.0",
        )?;
        check(
            (1..=KEY_COUNT_MAX).contains(&self.key_count),
            "key_count must be in 1..=10000000",
        )?;
        check(
            self.zipf_exponent.is_finite() && self.zipf_exponent > 0.0,
            "zipf_exponent must be positive",
        )?;
        check(
            (1..=CLIENTS_PER_TOPIC_MAX).contains(&self.producers_per_topic),
            "producers_per_topic must be in 1..=256",
        )?;
        check(
            (1..=CLIENTS_PER_TOPIC_MAX).contains(&self.subscriptions_per_topic),
            "subscriptions_per_topic must be in 1..=256",
        )?;
        check(
            self.consumers_per_subscription <= CLIENTS_PER_TOPIC_MAX,
            "consumers_per_subscription must be at most 256",
        )?;
        check(
            matches!(self.acks.as_str(), "all" | "-1" | "0" | "1"),
            "acks must be all, -1, 0 or 1",
        )?;
        check(
            self.duration_s >= 1 && self.duration_s <= DURATION_S_MAX,
            "duration_s must be in 1..=86400",
        )?;
        check(
            self.warmup_s <= DURATION_S_MAX,
            "warmup_s must be at most 86400",
        )?;
        check(
            self.drain_timeout_s <= DURATION_S_MAX,
            "drain_timeout_s must be at most 86400",
        )?;
        check(self.replication_factor >= 1, "replication_factor >= 1")?;
        check(
            self.client != Client::Native || self.compression == Compression::None,
            "the native client sends uncompressed batches only (compression = \"none\")",
        )?;
        check(
            !self.consumer_group_prefix.is_empty(),
            "consumer_group_prefix must not be empty",
        )?;
        Ok(())
    }

    /// Producers over all topics.
    pub fn producer_count(&self) -> u32 {
        self.topics * self.producers_per_topic
    }

    /// True when the rate is fixed (latency measured from intended send times).
    pub fn is_fixed_rate(&self) -> bool {
        self.producer_rate_msgs_per_s > 0
    }

    /// True when acks=0: the broker sends no Produce response, so "ack" latency is only the
    /// time until librdkafka wrote the request.
    pub fn acks_zero(&self) -> bool {
        self.acks == "0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        partitions_per_topic = 4
        message_size_bytes = 100
        key_distribution = "zipf"
        producers_per_topic = 1
        consumers_per_subscription = 1
        consumer_mode = "assign"
        compression = "lz4"
        duration_s = 1
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let w = Workload::from_toml(MINIMAL, "inline").unwrap();
        assert_eq!(w.topics, 1);
        assert_eq!(w.subscriptions_per_topic, 1);
        assert_eq!(w.acks, "all");
        assert_eq!(w.key_distribution, KeyDistribution::Zipf);
        assert_eq!(w.compression, Compression::Lz4);
        assert!(!w.is_fixed_rate());
        assert_eq!(w.payload_random_fraction, 1.0);
    }

    #[test]
    fn unknown_field_is_rejected() {
        let text = format!("{MINIMAL}\nbogus = 1\n");
        assert!(matches!(
            Workload::from_toml(&text, "inline"),
            Err(WorkloadError::Parse { .. })
        ));
    }

    #[test]
    fn too_small_message_is_rejected() {
        let text = MINIMAL.replace("message_size_bytes = 100", "message_size_bytes = 8");
        assert!(matches!(
            Workload::from_toml(&text, "inline"),
            Err(WorkloadError::Invalid { .. })
        ));
    }

    #[test]
    fn native_client_needs_no_compression() {
        let w = Workload::from_toml(MINIMAL, "inline").unwrap();
        assert_eq!(w.client, Client::Rdkafka);
        let text = format!("{MINIMAL}\nclient = \"native\"\n");
        assert!(
            Workload::from_toml(&text, "inline").is_err(),
            "lz4 + native"
        );
        let text = text.replace("\"lz4\"", "\"none\"");
        let w = Workload::from_toml(&text, "inline").unwrap();
        assert_eq!(w.client, Client::Native);
    }

    #[test]
    fn bad_acks_is_rejected() {
        let text = format!("{MINIMAL}\nacks = \"2\"\n");
        assert!(Workload::from_toml(&text, "inline").is_err());
    }

    #[test]
    fn every_shipped_workload_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut parsed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let w = Workload::from_file(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    path.file_stem().and_then(|s| s.to_str()),
                    Some(w.name.as_str()),
                    "workload name matches its file name"
                );
                parsed += 1;
            }
        }
        assert!(
            parsed >= 6,
            "expected the shipped workloads, found {parsed}"
        );
    }
}
