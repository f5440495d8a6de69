//! DescribeConfigs: a topic's effective configs (override or broker default, with Kafka's
//! config source, synonyms and, from v3, type and documentation), and this broker's settings
//! (read-only: Sluice has no dynamic broker configs).
//!
//! Invariants: answered from this shard's topic table, no cross-shard call; one result per
//! requested resource, in request order; a `configuration_keys` list filters the entries and
//! silently skips keys Sluice does not know (as Kafka does).

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::error::admin_error_code;
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::config::BrokerConfig;
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::topics::alter::ConfigType;
use crate::topics::dynamic::{self, DynamicConfigs, Scope};
use crate::topics::{self, config as topic_config};

/// Kafka's resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeConfigsRequest = request.decode()?;
        let opts = Opts {
            synonyms: body.include_synonyms,
            documentation: version >= 3 && body.include_documentation,
            types: version >= 3,
        };
        let results = body
            .resources
            .iter()
            .map(|r| {
                let keys = r.configuration_keys.as_deref();
                let answer = DescribeConfigsResult::default()
                    .with_error_message(None)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let denied = super::authz::config_refusal(
                    &shard,
                    &request,
                    Operation::DescribeConfigs,
                    r.resource_type,
                    r.resource_name.as_str(),
                );
                let described = match denied {
                    Some(e) => Err((admin_error_code(&e), e.to_string())),
                    None => describe(
                        &shard,
                        r.resource_type,
                        r.resource_name.as_str(),
                        keys,
                        opts,
                    ),
                };
                match described {
                    Ok(entries) => answer.with_configs(entries),
                    Err((code, message)) => answer
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect();
        Outcome::encoded(
            &DescribeConfigsResponse::default().with_results(results),
            version,
        )
    })
}

#[derive(Clone, Copy)]
struct Opts {
    synonyms: bool,
    documentation: bool,
    types: bool,
}

/// One config entry before encoding (also what CreateTopics v5+ answers, KIP-525).
pub struct Entry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub is_sensitive: bool,
    config_type: ConfigType,
    documentation: &'static str,
    /// (name, value, source), most specific first.
    synonyms: Vec<(String, String, i8)>,
}

fn describe(
    shard: &Shard,
    resource_type: i8,
    name: &str,
    keys: Option<&[StrBytes]>,
    opts: Opts,
) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
    let entries = match resource_type {
        RESOURCE_TOPIC => topic_entries(shard, name)?,
        RESOURCE_BROKER => {
            let dynamic = shard.dynamic_configs.borrow().clone();
            let mut entries = broker_resource(&shard.config, &shard.default_log, &dynamic, name)?;
            if !name.is_empty() {
                entries.extend(listener_entries(shard));
            }
            entries
        }
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("Unsupported resource type: {other}"),
            ))
        }
    };
    Ok(entries
        .into_iter()
        // Kafka's ConfigHelper: a null or empty key list means every config.
        .filter(|e| {
            keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == e.name))
        })
        .map(|e| encode_entry(e, opts))
        .collect())
}

fn topic_entries(shard: &Shard, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    if topics::validate_name(name).is_err() {
        return Err((
            ResponseError::InvalidTopicException.code(),
            format!("Topic name {name:?} is illegal"),
        ));
    }
    let meta = shard.topics.borrow().get(name).cloned().ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition.code(),
            format!("Topic {name} does not exist"),
        )
    })?;
    topic_config_entries(shard, &meta.configs)
}

/// Every config of a topic with these overrides: its effective value, source and synonyms.
pub fn topic_config_entries(
    shard: &Shard,
    overrides: &topic_config::TopicOverrides,
) -> Result<Vec<Entry>, (i16, String)> {
    let dynamic = shard.dynamic_configs.borrow().clone();
    crate::topics::dynamic::resolve_with(&shard.default_log, &dynamic, overrides)
        .map_err(|e| (ResponseError::InvalidConfig.code(), e.to_string()))?;
    let builtin = storage::LogConfig::default();
    let entries = topic_config::describe(&shard.default_log, overrides)
        .into_iter()
        .filter_map(|(key, value, overridden)| {
            let def = topics::catalog::find(key)?;
            let broker_value = topic_config::broker_value(def, &shard.default_log);
            let default = topic_config::broker_value(def, &builtin);
            // Kafka's ConfigHelper: the topic override first, then the broker setting it
            // defaults to (dynamic per node, dynamic cluster-wide, static when set, then its
            // default); no broker key, no synonyms.
            let mut synonyms = Vec::new();
            if overridden {
                synonyms.push((key.to_owned(), value.clone(), SOURCE_TOPIC));
            }
            if let Some(broker_key) = def.broker_key {
                for scope in [Scope::Node, Scope::Cluster] {
                    if let Some(v) = dynamic.scope(scope).get(broker_key) {
                        let source = match scope {
                            Scope::Node => dynamic::SOURCE_DYNAMIC_BROKER,
                            Scope::Cluster => dynamic::SOURCE_DYNAMIC_DEFAULT_BROKER,
                        };
                        synonyms.push((broker_key.to_owned(), v.clone(), source));
                    }
                }
                if broker_value != default {
                    synonyms.push((broker_key.to_owned(), broker_value, SOURCE_STATIC_BROKER));
                }
                synonyms.push((broker_key.to_owned(), default, SOURCE_DEFAULT));
            }
            let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
            let value = synonyms.first().map_or(value, |s| s.1.clone());
            Some(Entry {
                name: key.to_owned(),
                value,
                source,
                read_only: false,
                is_sensitive: false,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms,
            })
        })
        .collect();
    Ok(entries)
}

/// BROKER resources: this node's id lists its settings; "" (cluster-wide dynamic defaults)
/// lists nothing, because Sluice has none; another id is Kafka's INVALID_REQUEST.
fn broker_resource(
    config: &BrokerConfig,
    default_log: &storage::LogConfig,
    dynamic: &DynamicConfigs,
    name: &str,
) -> Result<Vec<Entry>, (i16, String)> {
    if name.is_empty() {
        // Kafka describes only the cluster-wide dynamic configs for "".
        return Ok(dynamic
            .cluster
            .iter()
            .filter_map(|(key, value)| {
                let def = dynamic::topic_def_for(key)?;
                let source = dynamic::SOURCE_DYNAMIC_DEFAULT_BROKER;
                Some(Entry {
                    name: key.clone(),
                    value: value.clone(),
                    source,
                    read_only: false,
                    is_sensitive: false,
                    config_type: def.config_type,
                    documentation: "",
                    synonyms: vec![(key.clone(), value.clone(), source)],
                })
            })
            .collect());
    }
    if name.parse::<i32>().ok() != Some(config.server.node_id) {
        return Err((
            ResponseError::InvalidRequest.code(),
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                config.server.node_id
            ),
        ));
    }
    // (key, static value, built-in default, type): sluice.toml's settings, then the dynamic
    // keys (broker synonyms of topic configs) it has no setting for.
    let builtin_log = storage::LogConfig::default();
    let mut settings: Vec<(String, String, String, ConfigType)> = broker_settings(config)
        .into_iter()
        .zip(broker_settings(&BrokerConfig::default()))
        .map(|((key, value, t), (_, default, _))| (key.to_owned(), value, default, t))
        .collect();
    for def in topics::catalog::TOPIC_CONFIGS {
        let Some(key) = def.broker_key else { continue };
        if settings.iter().any(|(k, ..)| k == key) {
            continue;
        }
        let value = topic_config::broker_value(def, default_log);
        let default = topic_config::broker_value(def, &builtin_log);
        settings.push((key.to_owned(), value, default, def.config_type));
    }
    settings.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(settings
        .into_iter()
        .map(|(key, value, default, config_type)| {
            let mut synonyms = Vec::new();
            for scope in [Scope::Node, Scope::Cluster] {
                if let Some(v) = dynamic.scope(scope).get(&key) {
                    let source = match scope {
                        Scope::Node => dynamic::SOURCE_DYNAMIC_BROKER,
                        Scope::Cluster => dynamic::SOURCE_DYNAMIC_DEFAULT_BROKER,
                    };
                    synonyms.push((key.clone(), v.clone(), source));
                }
            }
            if value != default {
                synonyms.push((key.clone(), value.clone(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((key.clone(), default, SOURCE_DEFAULT));
            let (value, source) = synonyms
                .first()
                .map_or((value, SOURCE_DEFAULT), |s| (s.1.clone(), s.2));
            Entry {
                read_only: !dynamic::is_dynamic(&key),
                name: key,
                synonyms,
                value,
                source,
                is_sensitive: false,
                config_type,
                documentation: "",
            }
        })
        .collect())
}

/// This node's `listener.name.<l>.*` settings: dynamic ones (AlterConfigs, certificate
/// reload) over static ones (sluice.toml). PEM contents and passwords (Kafka's PASSWORD type)
/// are not listed.
fn listener_entries(shard: &Shard) -> Vec<Entry> {
    const SECRET: [&str; 5] = [
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.truststore.certificates",
        "ssl.key.password",
        "sasl.jaas.config",
    ];
    let dynamic = shard.listener_configs.snapshot();
    let mut keys: Vec<&String> = shard
        .config
        .listener
        .listener_overrides
        .keys()
        .chain(dynamic.keys())
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !SECRET.iter().any(|secret| k.ends_with(secret)))
        .filter_map(|key| {
            let mut synonyms = Vec::new();
            if let Some(v) = dynamic.get(key) {
                synonyms.push((key.clone(), v.clone(), dynamic::SOURCE_DYNAMIC_BROKER));
            }
            if let Some(v) = shard.config.listener.listener_overrides.get(key) {
                synonyms.push((key.clone(), v.clone(), SOURCE_STATIC_BROKER));
            }
            let (value, source) = synonyms.first().map(|s| (s.1.clone(), s.2))?;
            let dynamic_key = crate::security::config::split_listener_key(key)
                .is_some_and(|(_, k)| crate::security::listener_configs::DYNAMIC_KEYS.contains(&k));
            Some(Entry {
                name: key.clone(),
                value,
                source,
                read_only: !dynamic_key,
                is_sensitive: false,
                config_type: ConfigType::String,
                documentation: "",
                synonyms,
            })
        })
        .collect()
}

/// The broker settings Kafka also has, under Kafka's names.
fn broker_settings(c: &BrokerConfig) -> Vec<(&'static str, String, ConfigType)> {
    use ConfigType::{Boolean, Int, List, Long, String as Str};
    let long_or_never = |v: i64| v.to_string();
    vec![
        (
            "auto.create.topics.enable",
            c.topics.auto_create_topics_enable.to_string(),
            Boolean,
        ),
        ("broker.id", c.server.node_id.to_string(), Int),
        ("default.replication.factor", "1".to_owned(), Int),
        ("fetch.max.bytes", c.fetch.fetch_max_bytes.to_string(), Int),
        ("log.cleanup.policy", "delete".to_owned(), List),
        ("log.dirs", c.server.data_dir.display().to_string(), Str),
        (
            "log.flush.interval.messages",
            long_or_never(c.log.log_flush_interval_messages),
            Long,
        ),
        (
            "log.flush.interval.ms",
            long_or_never(c.log.log_flush_interval_ms),
            Long,
        ),
        (
            "log.index.interval.bytes",
            c.log.log_index_interval_bytes.to_string(),
            Int,
        ),
        (
            "log.index.size.max.bytes",
            c.log.log_index_size_max_bytes.to_string(),
            Int,
        ),
        (
            "log.message.timestamp.type",
            c.log.log_message_timestamp_type.clone(),
            Str,
        ),
        (
            "log.retention.bytes",
            c.log.log_retention_bytes.to_string(),
            Long,
        ),
        (
            "log.retention.check.interval.ms",
            c.log.retention_check_interval_ms.to_string(),
            Long,
        ),
        ("log.retention.ms", c.log.log_retention_ms.to_string(), Long),
        ("log.roll.ms", c.log.log_roll_ms.to_string(), Long),
        (
            "log.segment.bytes",
            c.log.log_segment_bytes.to_string(),
            Int,
        ),
        (
            "max.incremental.fetch.session.cache.slots",
            c.fetch.fetch_session_cache_slots.to_string(),
            Int,
        ),
        (
            "message.max.bytes",
            c.log.message_max_bytes.to_string(),
            Int,
        ),
        ("node.id", c.server.node_id.to_string(), Int),
        ("num.partitions", c.topics.num_partitions.to_string(), Int),
        (
            "queued.max.requests",
            c.socket.queued_max_requests.to_string(),
            Int,
        ),
        (
            "socket.request.max.bytes",
            c.socket.socket_request_max_bytes.to_string(),
            Int,
        ),
    ]
}

fn encode_entry(e: Entry, opts: Opts) -> DescribeConfigsResourceResult {
    let synonyms = if opts.synonyms {
        e.synonyms
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(value)))
                    .with_source(*source)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&e.name))
        .with_value(Some(str_bytes(&e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(e.is_sensitive)
        .with_synonyms(synonyms);
    if opts.types {
        entry.config_type = e.config_type as i8;
    }
    // Null unless asked for (kafka-protocol's default is an empty string).
    entry.documentation =
        (opts.documentation && !e.documentation.is_empty()).then(|| str_bytes(e.documentation));
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_resource_names() {
        let config = BrokerConfig::default();
        let log = storage::LogConfig::default();
        let none = DynamicConfigs::default();
        let broker_resource = |c: &BrokerConfig, name: &str| broker_resource(c, &log, &none, name);
        assert!(broker_resource(&config, "").unwrap().is_empty());
        assert_eq!(
            broker_resource(&config, "7").err().map(|e| e.0),
            Some(ResponseError::InvalidRequest.code())
        );
        let entries = broker_resource(&config, "0").unwrap();
        assert!(entries.iter().all(|e| e.source == SOURCE_DEFAULT));
        let segment = entries
            .iter()
            .find(|e| e.name == "log.segment.bytes")
            .unwrap();
        assert_eq!(segment.value, config.log.log_segment_bytes.to_string());
        assert!(!segment.read_only, "dynamic in Kafka");
        let id = entries.iter().find(|e| e.name == "broker.id").unwrap();
        assert!(id.read_only);
        let cleaner = entries
            .iter()
            .find(|e| e.name == "log.cleaner.min.cleanable.ratio")
            .unwrap();
        assert_eq!((cleaner.value.as_str(), cleaner.read_only), ("0.5", false));
    }

    #[test]
    fn dynamic_broker_configs_are_described_with_their_source() {
        use crate::topics::alter::IncrementalEntry;
        use crate::topics::dynamic::BrokerChange;
        let config = BrokerConfig::default();
        let log = storage::LogConfig::default();
        let set = |k: &str, v: &str| IncrementalEntry {
            key: k.into(),
            op: 0,
            value: Some(v.into()),
        };
        let dynamic = DynamicConfigs::default()
            .changed(
                Scope::Cluster,
                &BrokerChange::IncrementalAlter(vec![set("log.retention.ms", "1000")]),
            )
            .unwrap()
            .changed(
                Scope::Node,
                &BrokerChange::IncrementalAlter(vec![set("compression.type", "gzip")]),
            )
            .unwrap();
        let cluster = broker_resource(&config, &log, &dynamic, "").unwrap();
        assert_eq!(cluster.len(), 1);
        assert_eq!(cluster[0].source, dynamic::SOURCE_DYNAMIC_DEFAULT_BROKER);
        let node = broker_resource(&config, &log, &dynamic, "0").unwrap();
        let find = |k: &str| node.iter().find(|e| e.name == k).unwrap();
        let retention = find("log.retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", dynamic::SOURCE_DYNAMIC_DEFAULT_BROKER)
        );
        assert_eq!(retention.synonyms.len(), 2, "dynamic default, then default");
        let compression = find("compression.type");
        assert_eq!(
            (compression.value.as_str(), compression.source),
            ("gzip", dynamic::SOURCE_DYNAMIC_BROKER)
        );
    }

    #[test]
    fn changed_broker_settings_are_static_broker_config() {
        let mut config = BrokerConfig::default();
        config.topics.num_partitions = 3;
        let log = storage::LogConfig::default();
        let entries = broker_resource(&config, &log, &DynamicConfigs::default(), "0").unwrap();
        let np = entries.iter().find(|e| e.name == "num.partitions").unwrap();
        assert_eq!((np.value.as_str(), np.source), ("3", SOURCE_STATIC_BROKER));
    }

    #[test]
    fn types_and_documentation_only_when_asked() {
        let entry = || Entry {
            name: "retention.ms".into(),
            value: "5".into(),
            source: SOURCE_TOPIC,
            read_only: false,
            is_sensitive: false,
            config_type: ConfigType::Long,
            documentation: "doc",
            synonyms: vec![("retention.ms".into(), "5".into(), SOURCE_TOPIC)],
        };
        let all = Opts {
            synonyms: true,
            documentation: true,
            types: true,
        };
        let encoded = encode_entry(entry(), all);
        assert_eq!(encoded.config_type, 5);
        assert_eq!(encoded.documentation.as_deref(), Some("doc"));
        assert_eq!(encoded.synonyms.len(), 1);
        let none = Opts {
            synonyms: false,
            documentation: false,
            types: false,
        };
        let encoded = encode_entry(entry(), none);
        assert_eq!(encoded.config_type, 0);
        assert!(encoded.documentation.is_none());
        assert!(encoded.synonyms.is_empty());
    }
}
