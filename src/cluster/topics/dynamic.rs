//! Dynamic broker configs (Kafka's `DynamicLogConfig`): the broker settings that supply topic
//! config defaults (`log.retention.ms`, `compression.type`, `log.cleaner.delete.retention.ms`,
//! ...) can be changed at run time with AlterConfigs / IncrementalAlterConfigs on the BROKER
//! resource, cluster-wide (resource name "") or for this node (its id). A node value wins over
//! the cluster-wide one, which wins over sluice.toml, which wins over Kafka's default; a topic
//! override wins over all of them.
//!
//! The controller (shard 0) validates a change here and commits it as `ConfigRecord`s of the
//! BROKER resource (`cluster::controller::alter_broker_configs`); the metadata image keeps the
//! values, `cluster::store` persists them (`data_dir/__cluster/broker-configs.toml`, atomic), and
//! every shard keeps a `DynamicConfigs` view of them and re-applies topic configs to its live
//! logs.
//! Invariant: the maps only hold dynamic keys (broker synonyms of topic configs) with values
//! the topic config's validator accepts, so a restart always reloads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::alter::{self, AlterError, IncrementalEntry};
use super::catalog::{TopicConfigDef, TOPIC_CONFIGS};
use super::config::TopicOverrides;
use super::TopicError;

/// Kafka's config sources for dynamic broker values.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;

/// Which BROKER resource a change names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Resource name "": the cluster-wide default.
    Cluster,
    /// This node's id.
    Node,
}

/// How the dynamic configs of one scope change (broker key names).
#[derive(Debug, Clone)]
pub enum BrokerChange {
    Replace(Vec<(String, Option<String>)>),
    IncrementalAlter(Vec<IncrementalEntry>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
    #[serde(default)]
    pub node: BTreeMap<String, String>,
}

/// The topic config whose default a broker key supplies (None: not dynamic in Sluice).
pub fn topic_def_for(broker_key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_key == Some(broker_key))
}

pub fn is_dynamic(broker_key: &str) -> bool {
    topic_def_for(broker_key).is_some() || BROKER_ONLY_KEYS.contains(&broker_key)
}

/// Dynamic broker configs that supply no topic default (Kafka's `DynamicReplicationConfig`
/// / `QuotaConfig`): the replication throttle rates in bytes per second (LONG, at least 0;
/// unset: no throttle), read by `cluster::replication_quota`.
pub const BROKER_ONLY_KEYS: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// Kafka's validation of a broker-only key's value (LONG, at least 0).
fn check_broker_only(key: &str, value: &str) -> Result<(), AlterError> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(()),
        _ => Err(AlterError::InvalidConfig(format!(
            "Invalid value {value} for configuration {key}: Expected a non-negative LONG"
        ))),
    }
}

/// Applies the broker-only keys of `change` to `map` and answers the change without them.
fn split_broker_only(
    map: &mut BTreeMap<String, String>,
    change: &BrokerChange,
) -> Result<BrokerChange, AlterError> {
    let only = |k: &str| BROKER_ONLY_KEYS.contains(&k);
    match change {
        BrokerChange::Replace(pairs) => {
            map.retain(|k, _| !only(k));
            for (key, value) in pairs.iter().filter(|(k, _)| only(k)) {
                if let Some(value) = value {
                    check_broker_only(key, value)?;
                    map.insert(key.clone(), value.trim().to_owned());
                }
            }
            Ok(BrokerChange::Replace(
                pairs.iter().filter(|(k, _)| !only(k)).cloned().collect(),
            ))
        }
        BrokerChange::IncrementalAlter(entries) => {
            for e in entries.iter().filter(|e| only(&e.key)) {
                match (alter::AlterOp::from_code(e.op), &e.value) {
                    (Some(alter::AlterOp::Set), Some(value)) => {
                        check_broker_only(&e.key, value)?;
                        map.insert(e.key.clone(), value.trim().to_owned());
                    }
                    (Some(alter::AlterOp::Delete), _) => {
                        map.remove(&e.key);
                    }
                    (Some(alter::AlterOp::Set), None) => {
                        return Err(AlterError::InvalidRequest(format!(
                            "Null value not supported for : {}",
                            e.key
                        )))
                    }
                    _ => {
                        return Err(AlterError::InvalidConfig(format!(
                            "Config value append is not allowed for config key: {}",
                            e.key
                        )))
                    }
                }
            }
            Ok(BrokerChange::IncrementalAlter(
                entries.iter().filter(|e| !only(&e.key)).cloned().collect(),
            ))
        }
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join("broker-configs.toml")
}

impl DynamicConfigs {
    pub fn scope(&self, scope: Scope) -> &BTreeMap<String, String> {
        match scope {
            Scope::Cluster => &self.cluster,
            Scope::Node => &self.node,
        }
    }

    /// A broker key's dynamic value and its source (node first), if set.
    pub fn get(&self, broker_key: &str) -> Option<(&str, i8)> {
        self.node
            .get(broker_key)
            .map(|v| (v.as_str(), SOURCE_DYNAMIC_BROKER))
            .or_else(|| {
                self.cluster
                    .get(broker_key)
                    .map(|v| (v.as_str(), SOURCE_DYNAMIC_DEFAULT_BROKER))
            })
    }

    /// The dynamic values as topic config overrides: the layer under a topic's own overrides.
    pub fn topic_layer(&self) -> TopicOverrides {
        TOPIC_CONFIGS
            .iter()
            .filter_map(|def| {
                let (value, _) = self.get(def.broker_key?)?;
                Some((def.name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// This set after `change` on `scope`; refuses non-dynamic keys (INVALID_REQUEST, as Kafka
    /// answers "Cannot update these configs dynamically") and bad values (INVALID_CONFIG).
    pub fn changed(&self, scope: Scope, change: &BrokerChange) -> Result<Self, AlterError> {
        let mut broker_only: BTreeMap<String, String> = self
            .scope(scope)
            .iter()
            .filter(|(k, _)| BROKER_ONLY_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let change = &split_broker_only(&mut broker_only, change)?;
        let to_topic = |key: &str| {
            topic_def_for(key).map(|d| d.name).ok_or_else(|| {
                AlterError::InvalidRequest(format!(
                    "Cannot update these configs dynamically: Set({key})"
                ))
            })
        };
        let current: TopicOverrides = self
            .scope(scope)
            .iter()
            .filter_map(|(k, v)| Some((topic_def_for(k)?.name.to_owned(), v.clone())))
            .collect();
        let altered = match change {
            BrokerChange::Replace(pairs) => {
                let mut topic_pairs = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    topic_pairs.push((to_topic(key)?.to_owned(), value.clone()));
                }
                alter::replace_all(&topic_pairs)?
            }
            BrokerChange::IncrementalAlter(entries) => {
                let mut topic_entries = Vec::with_capacity(entries.len());
                for e in entries {
                    topic_entries.push(IncrementalEntry {
                        key: to_topic(&e.key)?.to_owned(),
                        ..e.clone()
                    });
                }
                alter::apply_incremental(&current, &topic_entries, |key| {
                    super::catalog::find(key).map(|d| d.default.to_owned())
                })?
            }
        };
        let mut broker_keyed: BTreeMap<String, String> = altered
            .into_iter()
            .filter_map(|(k, v)| Some((super::catalog::find(&k)?.broker_key?.to_owned(), v)))
            .collect();
        broker_keyed.extend(broker_only);
        let mut out = self.clone();
        match scope {
            Scope::Cluster => out.cluster = broker_keyed,
            Scope::Node => out.node = broker_keyed,
        }
        Ok(out)
    }
}

/// Loads the persisted dynamic configs (absent file: none). Blocking: once per shard at start.
pub fn load(data_dir: &Path) -> Result<DynamicConfigs, TopicError> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DynamicConfigs::default()),
        Err(e) => return Err(TopicError::Io(format!("{}: {e}", path.display()))),
    };
    let configs: DynamicConfigs =
        toml::from_str(&text).map_err(|e| TopicError::Corrupt(e.to_string()))?;
    for (key, value) in configs.cluster.iter().chain(configs.node.iter()) {
        if BROKER_ONLY_KEYS.contains(&key.as_str()) {
            check_broker_only(key, value).map_err(|e| TopicError::Corrupt(e.to_string()))?;
            continue;
        }
        let def = topic_def_for(key)
            .ok_or_else(|| TopicError::Corrupt(format!("{key} is not a dynamic broker config")))?;
        super::config::validate_one(def.name, value)
            .map_err(|e| TopicError::Corrupt(e.to_string()))?;
    }
    Ok(configs)
}

pub async fn persist(data_dir: &Path, configs: &DynamicConfigs) -> Result<(), TopicError> {
    let text = toml::to_string(configs).map_err(|e| TopicError::Io(e.to_string()))?;
    crate::atomic_file::write_off_thread(path(data_dir), text.into_bytes())
        .await
        .map_err(|e| TopicError::Io(e.to_string()))
}

/// The effective config of a topic: `defaults` (sluice.toml), then the dynamic broker configs,
/// then the topic's own overrides.
pub fn resolve_with(
    defaults: &storage::LogConfig,
    dynamic: &DynamicConfigs,
    overrides: &TopicOverrides,
) -> Result<super::config::TopicConfig, super::config::TopicConfigError> {
    let mut layered = dynamic.topic_layer();
    layered.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    super::config::resolve_topic(defaults, &layered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> IncrementalEntry {
        IncrementalEntry {
            key: key.into(),
            op: 0,
            value: Some(value.into()),
        }
    }

    #[test]
    fn dynamic_keys_change_validate_and_layer() {
        let none = DynamicConfigs::default();
        let change = BrokerChange::IncrementalAlter(vec![
            set("log.retention.ms", "1000"),
            set("compression.type", "lz4"),
        ]);
        let cluster = none.changed(Scope::Cluster, &change).unwrap();
        let node = cluster
            .changed(
                Scope::Node,
                &BrokerChange::IncrementalAlter(vec![set("log.retention.ms", "5")]),
            )
            .unwrap();
        assert_eq!(
            node.get("log.retention.ms"),
            Some(("5", SOURCE_DYNAMIC_BROKER))
        );
        assert_eq!(
            node.get("compression.type"),
            Some(("lz4", SOURCE_DYNAMIC_DEFAULT_BROKER))
        );
        let layer = node.topic_layer();
        assert_eq!(layer.get("retention.ms").map(String::as_str), Some("5"));
        assert_eq!(
            layer.get("compression.type").map(String::as_str),
            Some("lz4")
        );
        // Not dynamic: INVALID_REQUEST; a bad value: INVALID_CONFIG.
        let not_dynamic = BrokerChange::IncrementalAlter(vec![set("num.partitions", "3")]);
        assert!(matches!(
            none.changed(Scope::Node, &not_dynamic),
            Err(AlterError::InvalidRequest(_))
        ));
        let bad = BrokerChange::IncrementalAlter(vec![set("log.cleaner.min.cleanable.ratio", "3")]);
        assert!(matches!(
            none.changed(Scope::Node, &bad),
            Err(AlterError::InvalidConfig(_))
        ));
        // DELETE removes the dynamic value.
        let deleted = node
            .changed(
                Scope::Node,
                &BrokerChange::IncrementalAlter(vec![IncrementalEntry {
                    key: "log.retention.ms".into(),
                    op: 1,
                    value: None,
                }]),
            )
            .unwrap();
        assert_eq!(
            deleted.get("log.retention.ms"),
            Some(("1000", SOURCE_DYNAMIC_DEFAULT_BROKER))
        );
    }

    #[compio::test]
    async fn persisted_configs_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("__cluster")).unwrap();
        assert_eq!(load(dir.path()).unwrap(), DynamicConfigs::default());
        let configs = DynamicConfigs::default()
            .changed(
                Scope::Cluster,
                &BrokerChange::Replace(vec![("log.retention.bytes".into(), Some("10".into()))]),
            )
            .unwrap();
        persist(dir.path(), &configs).await.unwrap();
        assert_eq!(load(dir.path()).unwrap(), configs);
    }
}
