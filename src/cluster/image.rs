//! The metadata image: what the cluster looks like (Kafka's `MetadataImage`): the registered
//! brokers with their endpoints, the topics with their ids, per-partition registrations
//! (replicas, ISR, leader, leader epoch, partition epoch) and config overrides, the dynamic
//! broker configs, and the producer-id blocks handed out so far.
//!
//! Invariants: the image changes only through [`MetadataImage::apply`], one record at a time,
//! so every holder that applies the same records in the same order holds the same image (the
//! controller on shard 0, the copy on every other shard, and later every broker following the
//! replicated metadata log). A record that does not fit the image (a partition of an unknown
//! topic, a gap in partition ids, a topic id or name already taken by another topic) is refused
//! with the image unchanged. A topic's `partitions` always equals the number of its
//! registrations. Re-applying a `RegisterBroker`, `Topic`, `Partition`, `RemoveTopic`, `Config`
//! or `ProducerIds` record that is already reflected changes nothing (they are idempotent);
//! `PartitionChange` bumps epochs, so a log must apply each of those exactly once (as Raft's
//! last-applied index ensures).

use std::collections::BTreeMap;

pub use super::records::PartitionRegistration;
use super::records::{
    ConfigRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, TopicRecord, CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC,
};
use super::topics::dynamic::DynamicConfigs;
use super::topics::{TopicId, TopicMeta, TopicTable};

/// A registered broker (Kafka's `BrokerRegistration`).
pub type BrokerRegistration = RegisterBrokerRecord;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("unknown topic id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("topic {name:?} already exists with id {existing}")]
    NameTaken { name: String, existing: uuid::Uuid },
    #[error("topic id {id} already names topic {existing:?}")]
    IdTaken { id: uuid::Uuid, existing: String },
    #[error("partition {partition} of topic {topic:?} would leave a gap after {count} partitions")]
    PartitionGap {
        topic: String,
        partition: u32,
        count: u32,
    },
    #[error("unknown partition {partition} of topic {topic:?}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("config of unknown topic {0:?}")]
    UnknownConfigTopic(String),
    #[error("config resource type {0} is not kept in the metadata image")]
    UnsupportedConfigResource(i8),
    #[error("invalid ACL or SCRAM record: {0}")]
    InvalidSecurityRecord(String),
}

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: TopicTable,
    /// The first producer id no block has covered yet (Kafka's `ProducerIdsImage`).
    next_producer_id: i64,
    /// Dynamic broker configs by BROKER resource name: "" is the cluster-wide default, a node
    /// id that node's own values (Kafka's `ConfigurationsImage` for brokers).
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// ACLs and SCRAM credentials (see `security_image`).
    security: super::security_image::SecurityImage,
}

impl MetadataImage {
    /// Applies one record; on error the image is unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.brokers.insert(r.broker_id, r.clone());
                Ok(())
            }
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r),
            MetadataRecord::RemoveTopic(r) => {
                // Already gone: a replay.
                if let Some(name) = self.topics.by_id(r.topic_id).map(|m| m.name.clone()) {
                    self.topics.remove(&name);
                }
                Ok(())
            }
            MetadataRecord::Config(r) => self.apply_config(r),
            MetadataRecord::ProducerIds(r) => {
                // Blocks only move forward; an older record is a replay.
                self.next_producer_id = self.next_producer_id.max(r.next_producer_id);
                Ok(())
            }
            // Kafka's `ClusterControlManager.replay`: each names the registration by epoch; one
            // of another epoch (a newer registration already replaced it) changes nothing.
            MetadataRecord::UnregisterBroker(r) => {
                if self.broker(r.broker_id).map(|b| b.broker_epoch) == Some(r.broker_epoch) {
                    self.brokers.remove(&r.broker_id);
                }
                Ok(())
            }
            MetadataRecord::FenceBroker(r) => {
                self.set_fenced(r.id, r.epoch, true);
                Ok(())
            }
            MetadataRecord::UnfenceBroker(r) => {
                self.set_fenced(r.id, r.epoch, false);
                Ok(())
            }
            MetadataRecord::UserScramCredential(_)
            | MetadataRecord::RemoveUserScramCredential(_)
            | MetadataRecord::AccessControlEntry(_)
            | MetadataRecord::RemoveAccessControlEntry(_)
            | MetadataRecord::ClientQuota(_) => self
                .security
                .apply(record)
                .map_err(|e| ImageError::InvalidSecurityRecord(e.0)),
        }
    }

    fn set_fenced(&mut self, id: i32, epoch: i64, fenced: bool) {
        if let Some(broker) = self
            .brokers
            .get_mut(&id)
            .filter(|b| b.broker_epoch == epoch)
        {
            broker.fenced = fenced;
        }
    }

    /// Applies records in order; stops at the first refused one (earlier ones stay applied).
    pub fn apply_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<(), ImageError> {
        records.into_iter().try_for_each(|r| self.apply(r))
    }

    fn apply_topic(&mut self, record: &TopicRecord) -> Result<(), ImageError> {
        if let Some(existing) = self.topics.get(&record.name) {
            if existing.id == record.topic_id {
                return Ok(());
            }
            return Err(ImageError::NameTaken {
                name: record.name.clone(),
                existing: existing.id.uuid(),
            });
        }
        if let Some(existing) = self.topics.by_id(record.topic_id) {
            return Err(ImageError::IdTaken {
                id: record.topic_id.uuid(),
                existing: existing.name.clone(),
            });
        }
        self.topics.upsert(TopicMeta {
            name: record.name.clone(),
            id: record.topic_id,
            partitions: 0,
            configs: Default::default(),
            registrations: Vec::new(),
        });
        Ok(())
    }

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicMeta, ImageError> {
        self.topics
            .get_mut_by_id(id)
            .ok_or(ImageError::UnknownTopicId(id.uuid()))
    }

    fn apply_partition(&mut self, record: &PartitionRecord) -> Result<(), ImageError> {
        let meta = self.topic_mut(record.topic_id)?;
        let registration = PartitionRegistration::from_record(record);
        let index = usize::try_from(record.partition_id).unwrap_or(usize::MAX);
        match index.cmp(&meta.registrations.len()) {
            std::cmp::Ordering::Less => {
                if let Some(slot) = meta.registrations.get_mut(index) {
                    *slot = registration;
                }
            }
            std::cmp::Ordering::Equal => meta.registrations.push(registration),
            std::cmp::Ordering::Greater => {
                return Err(ImageError::PartitionGap {
                    topic: meta.name.clone(),
                    partition: record.partition_id,
                    count: meta.partitions,
                })
            }
        }
        meta.partitions = u32::try_from(meta.registrations.len()).unwrap_or(u32::MAX);
        Ok(())
    }

    fn apply_partition_change(&mut self, record: &PartitionChangeRecord) -> Result<(), ImageError> {
        let meta = self.topic_mut(record.topic_id)?;
        let index = usize::try_from(record.partition_id).unwrap_or(usize::MAX);
        let Some(slot) = meta.registrations.get_mut(index) else {
            return Err(ImageError::UnknownPartition {
                topic: meta.name.clone(),
                partition: record.partition_id,
            });
        };
        *slot = slot.merge(record);
        Ok(())
    }

    fn apply_config(&mut self, record: &ConfigRecord) -> Result<(), ImageError> {
        if record.resource_type == CONFIG_RESOURCE_BROKER {
            let configs = self
                .broker_configs
                .entry(record.resource_name.clone())
                .or_default();
            match &record.value {
                Some(value) => configs.insert(record.name.clone(), value.clone()),
                None => configs.remove(&record.name),
            };
            if configs.is_empty() {
                self.broker_configs.remove(&record.resource_name);
            }
            return Ok(());
        }
        if record.resource_type != CONFIG_RESOURCE_TOPIC {
            return Err(ImageError::UnsupportedConfigResource(record.resource_type));
        }
        let id = self
            .topics
            .get(&record.resource_name)
            .map(|m| m.id)
            .ok_or_else(|| ImageError::UnknownConfigTopic(record.resource_name.clone()))?;
        let meta = self.topic_mut(id)?;
        match &record.value {
            Some(value) => meta.configs.insert(record.name.clone(), value.clone()),
            None => meta.configs.remove(&record.name),
        };
        Ok(())
    }

    /// The records that rebuild this image from an empty one (brokers, topics with their
    /// partitions and configs, broker configs, the producer-id position): what a snapshot of
    /// the metadata log holds. `apply_all` of them gives an image equal to this one.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        let mut records: Vec<MetadataRecord> = self
            .brokers
            .values()
            .cloned()
            .map(MetadataRecord::RegisterBroker)
            .collect();
        for meta in self.topics.iter() {
            // Every partition has a registration, so the broker argument is never used.
            records.extend(topic_records(meta, super::records::NO_LEADER));
        }
        let none = BTreeMap::new();
        for (resource, configs) in &self.broker_configs {
            records.extend(broker_config_records(resource, &none, configs));
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: super::records::NO_LEADER,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        records.extend(self.security.snapshot_records());
        records
    }

    /// ACLs and SCRAM credentials.
    pub fn security(&self) -> &super::security_image::SecurityImage {
        &self.security
    }

    // --- topic look-ups (what handlers read) ---

    pub fn topics(&self) -> &TopicTable {
        &self.topics
    }

    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn by_id(&self, id: TopicId) -> Option<&TopicMeta> {
        self.topics.by_id(id)
    }

    /// See [`TopicTable::collision`].
    pub fn collision(&self, name: &str) -> Option<&str> {
        self.topics.collision(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.iter()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// A partition's registration.
    pub fn partition(&self, topic: &str, index: u32) -> Option<&PartitionRegistration> {
        let meta = self.topics.get(topic)?;
        meta.registrations.get(usize::try_from(index).ok()?)
    }

    // --- brokers ---

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// The broker clients are told is the controller: the lowest registered unfenced broker.
    /// (KRaft brokers cannot reach the controller quorum from clients, so Kafka answers an alive
    /// broker too; with one node this is that node.) -1 when no broker is registered.
    pub fn controller_id(&self) -> i32 {
        self.brokers
            .values()
            .find(|b| !b.fenced)
            .map_or(-1, |b| b.broker_id)
    }

    // --- broker configs ---

    /// The dynamic broker configs in force on `node`: the cluster-wide ones and its own.
    pub fn dynamic_configs(&self, node: i32) -> DynamicConfigs {
        DynamicConfigs {
            cluster: self.broker_configs.get("").cloned().unwrap_or_default(),
            node: self
                .broker_configs
                .get(&node.to_string())
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Every BROKER resource's dynamic configs ("" is the cluster-wide default).
    pub fn broker_config_resources(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.broker_configs
    }

    // --- producer ids ---

    /// The first producer id of the next block the controller hands out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
}

/// The records that create `meta` as it is (topic, partitions, configs): what a snapshot of
/// one topic replays as, and what adopting a registry file written before the image existed
/// turns into. Partitions without a registration (an old registry file) get one replica on
/// `broker`, leading in epoch 0.
pub fn topic_records(meta: &TopicMeta, broker: i32) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: meta.name.clone(),
        topic_id: meta.id,
    })];
    for index in 0..meta.partitions {
        let registration = usize::try_from(index)
            .ok()
            .and_then(|i| meta.registrations.get(i))
            .cloned()
            .unwrap_or_else(|| PartitionRegistration::single(broker));
        records.push(MetadataRecord::Partition(PartitionRecord {
            partition_id: index,
            topic_id: meta.id,
            replicas: registration.replicas,
            isr: registration.isr,
            leader: registration.leader,
            leader_epoch: registration.leader_epoch,
            partition_epoch: registration.partition_epoch,
            adding_replicas: registration.adding_replicas,
            removing_replicas: registration.removing_replicas,
        }));
    }
    records.extend(meta.configs.iter().map(|(name, value)| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: meta.name.clone(),
            name: name.clone(),
            value: Some(value.clone()),
        })
    }));
    records
}

/// `ConfigRecord`s that turn the BROKER resource `resource_name`'s dynamic configs from `old`
/// into `new` (a removed key gets a null value).
pub fn broker_config_records(
    resource_name: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &String, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_BROKER,
            resource_name: resource_name.to_owned(),
            name: name.clone(),
            value: value.cloned(),
        })
    };
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| record(k, None));
    let set = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// The `ProducerIdsRecord` that hands `broker` the block of `size` ids starting at the image's
/// next producer id; None when the id space is exhausted.
pub fn producer_ids_record(
    image: &MetadataImage,
    broker: i32,
    broker_epoch: i64,
    size: i64,
) -> Option<(ProducerIdsRecord, i64)> {
    let start = image.next_producer_id();
    let next = start.checked_add(size)?;
    Some((
        ProducerIdsRecord {
            broker_id: broker,
            broker_epoch,
            next_producer_id: next,
        },
        start,
    ))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
