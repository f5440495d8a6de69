//! Topic metadata: names, ids, partition counts, per-partition registrations and config
//! overrides (`TopicMeta`), the name rules, and the registry file.
//!
//! The `TopicTable` is the topics part of the metadata image (`cluster::image`) and changes
//! only through `MetadataImage::apply`. The controller (shard 0) persists it atomically in
//! `data_dir/__cluster/topics.toml` (temp file, fsync, rename, directory fsync) before any shard
//! adopts a change; every shard loads the same file at start (`cluster::store`), so lookups
//! never lock or cross shards.

pub mod alter;
pub mod catalog;
pub mod compaction;
pub mod config;
pub mod dynamic;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::config::TopicOverrides;

/// Kafka's longest legal topic name.
pub const TOPIC_NAME_LEN_MAX: usize = 249;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic name {0:?}")]
    InvalidName(String),
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    /// Kafka's `Topic.hasCollision`: '.' and '_' map to the same metric name.
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    Collision { name: String, existing: String },
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// Kafka's message (the placer's or the request check's).
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error(transparent)]
    Config(#[from] config::TopicConfigError),
    #[error("topic registry I/O: {0}")]
    Io(String),
    #[error("topic registry file is corrupt: {0}")]
    Corrupt(String),
    /// Kafka's NOT_CONTROLLER (a KRaft node that is not the active controller).
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    /// Kafka's REQUEST_TIMED_OUT: the controller could not finish the change in time (it is
    /// shutting down, or its own shards did not apply the committed change in time).
    #[error("{0}")]
    TimedOut(String),
}

pub use super::records::TopicId;

/// One topic's metadata (what is persisted and broadcast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: TopicId,
    pub partitions: u32,
    #[serde(default)]
    pub configs: TopicOverrides,
    /// One registration per partition (replicas, ISR, leader, epochs), indexed by partition;
    /// `partitions` equals its length. Absent in the registry file when every partition has
    /// one replica on the writing node leading in epoch 0 (what every topic of a single node
    /// has), and in files written before the metadata image existed: loading gives such a
    /// topic's partitions exactly that registration (see `cluster::store`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<crate::cluster::records::PartitionRegistration>,
}

/// Kafka's topic-name rule: 1..=249 of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let legal = !name.is_empty()
        && name.len() <= TOPIC_NAME_LEN_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if legal {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.to_owned()))
    }
}

/// Kafka's `Topic.unifyCollisionChars`: the name with '.' replaced by '_'. Two topics whose
/// unified names are equal would report into the same metrics, so Kafka refuses the second.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// A shard's view of all topics (authoritative on shard 0, a copy elsewhere).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopicTable {
    by_name: BTreeMap<String, TopicMeta>,
    by_id: HashMap<TopicId, String>,
    /// Unified name (see `unify_collision_chars`) -> the topic's real name.
    by_unified: HashMap<String, String>,
}

impl TopicTable {
    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.by_name.get(name)
    }

    pub fn by_id(&self, id: TopicId) -> Option<&TopicMeta> {
        self.by_id.get(&id).and_then(|name| self.by_name.get(name))
    }

    /// The existing topic whose name collides with `name` ('.' vs '_'), other than `name`.
    pub fn collision(&self, name: &str) -> Option<&str> {
        self.by_unified
            .get(&unify_collision_chars(name))
            .map(String::as_str)
            .filter(|existing| *existing != name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicMeta> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A topic to change in place: its registrations, partition count or configs, never its
    /// name or id (the indexes key on those). Only the metadata image uses it.
    pub(in crate::cluster) fn get_mut_by_id(&mut self, id: TopicId) -> Option<&mut TopicMeta> {
        let name = self.by_id.get(&id)?;
        self.by_name.get_mut(name)
    }

    /// Only the metadata image changes the table (`MetadataImage::apply`).
    pub(in crate::cluster) fn upsert(&mut self, meta: TopicMeta) {
        if let Some(old) = self.by_name.get(&meta.name) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(meta.id, meta.name.clone());
        self.by_unified
            .insert(unify_collision_chars(&meta.name), meta.name.clone());
        self.by_name.insert(meta.name.clone(), meta);
    }

    pub(in crate::cluster) fn remove(&mut self, name: &str) -> Option<TopicMeta> {
        let meta = self.by_name.remove(name)?;
        self.by_id.remove(&meta.id);
        let unified = unify_collision_chars(name);
        if self.by_unified.get(&unified).map(String::as_str) == Some(name) {
            self.by_unified.remove(&unified);
        }
        Some(meta)
    }

    fn to_file(&self) -> RegistryFile {
        RegistryFile {
            topic: self.by_name.values().cloned().collect(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    #[serde(default)]
    topic: Vec<TopicMeta>,
}

pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join("topics.toml")
}

/// Loads the persisted registry (an absent file is an empty registry). Blocking: called once per
/// shard at start, before serving.
pub fn load(data_dir: &Path) -> Result<TopicTable, TopicError> {
    let path = registry_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TopicTable::default()),
        Err(e) => return Err(TopicError::Io(format!("{}: {e}", path.display()))),
    };
    let file: RegistryFile =
        toml::from_str(&text).map_err(|e| TopicError::Corrupt(e.to_string()))?;
    let mut table = TopicTable::default();
    for meta in file.topic {
        validate_name(&meta.name).map_err(|e| TopicError::Corrupt(e.to_string()))?;
        table.upsert(meta);
    }
    Ok(table)
}

/// Persists `table` atomically. Runs on a blocking thread so shard 0 keeps serving meanwhile.
pub async fn persist(data_dir: &Path, table: &TopicTable) -> Result<(), TopicError> {
    persist_metas(data_dir, table.to_file().topic).await
}

/// Persists these topics as the whole registry (see `persist`).
pub async fn persist_metas(data_dir: &Path, topic: Vec<TopicMeta>) -> Result<(), TopicError> {
    let text =
        toml::to_string(&RegistryFile { topic }).map_err(|e| TopicError::Io(e.to_string()))?;
    crate::atomic_file::write_off_thread(registry_path(data_dir), text.into_bytes())
        .await
        .map_err(|e| TopicError::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for good in ["a", "t1", "my.topic_x-1", &"a".repeat(249)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"a".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_and_underscore_names_collide() {
        let mut table = TopicTable::default();
        let meta = |name: &str| TopicMeta {
            name: name.into(),
            id: TopicId::generate(name),
            partitions: 1,
            configs: TopicOverrides::new(),
            registrations: vec![crate::cluster::PartitionRegistration::single(0)],
        };
        table.upsert(meta("x_y"));
        assert_eq!(table.collision("x.y"), Some("x_y"));
        assert_eq!(
            table.collision("x_y"),
            None,
            "the same name is not a collision"
        );
        assert_eq!(table.collision("x-y"), None);
        table.remove("x_y");
        assert_eq!(table.collision("x.y"), None);
        table.upsert(meta("a.b.c"));
        assert_eq!(table.collision("a_b.c"), Some("a.b.c"));
    }

    #[test]
    fn generated_ids_are_distinct_v4() {
        let a = TopicId::generate("t");
        let b = TopicId::generate("t");
        assert_ne!(a, b);
        assert_eq!(a.uuid().get_version_num(), 4);
        assert!(!a.uuid().is_nil());
    }

    #[test]
    fn registry_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = TopicTable::default();
        let mut configs = TopicOverrides::new();
        configs.insert("retention.ms".into(), "10".into());
        let meta = TopicMeta {
            name: "t".into(),
            id: TopicId::generate("t"),
            partitions: 3,
            configs,
            registrations: vec![crate::cluster::PartitionRegistration::single(0); 3],
        };
        table.upsert(meta.clone());
        crate::atomic_file::write(
            &registry_path(dir.path()),
            toml::to_string(&table.to_file()).unwrap().as_bytes(),
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.get("t"), Some(&meta));
        assert_eq!(loaded.by_id(meta.id).map(|m| m.name.as_str()), Some("t"));
        assert!(load(&dir.path().join("absent")).unwrap().is_empty());
    }
}
