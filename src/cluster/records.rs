//! Metadata records: every change to the cluster metadata, in the shape of Kafka's KRaft
//! metadata records (`metadata/src/main/resources/common/metadata/*.json`). The controller
//! expresses each change as a list of records and `MetadataImage::apply` is the one function
//! that turns them into state, so a replicated metadata log (openraft) can later carry the same
//! records and every broker (and every shard) rebuild the same image from them.
//!
//! Fields keep Kafka's names and meanings; what Sluice does not use yet (directories, ELR,
//! adding/removing replicas, features, log dirs) is left out until it is. Records are plain
//! data (`Send`, serde), so they cross shards and can be written to a log or a snapshot.

use serde::{Deserialize, Serialize};

use super::topics::TopicId;

/// `PartitionChangeRecord.leader` when the leader does not change (Kafka's
/// `LeaderConstants.NO_LEADER_CHANGE`).
pub const NO_LEADER_CHANGE: i32 = -2;
/// A partition without a leader (Kafka's `LeaderConstants.NO_LEADER`).
pub const NO_LEADER: i32 = -1;
/// `ConfigRecord.resource_type` of a topic (Kafka's `ConfigResource.Type.TOPIC`).
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// `ConfigRecord.resource_type` of a broker (Kafka's `ConfigResource.Type.BROKER`).
pub const CONFIG_RESOURCE_BROKER: i8 = 4;

/// One listener of a broker, as clients reach it (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, or a custom name).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The listener's security protocol name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub security_protocol: String,
}

/// Kafka's `RegisterBrokerRecord` (the fields Sluice uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    /// Unique per broker process start (Kafka's incarnation id).
    pub incarnation_id: u128,
    /// Grows with each registration of the broker (Kafka: the record's offset in the log).
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Kafka's `TopicRecord`: a topic exists with this name and id (its partitions follow as
/// `PartitionRecord`s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: TopicId,
}

/// Kafka's `PartitionRecord`: a partition's full registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub partition_id: u32,
    pub topic_id: TopicId,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// Kafka's `PartitionChangeRecord`: only what changed. `None` (or `NO_LEADER_CHANGE` for the
/// leader) keeps the current value. As in Kafka's `PartitionRegistration.merge`, a leader
/// change bumps the leader epoch, and every change bumps the partition epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub partition_id: u32,
    pub topic_id: TopicId,
    pub isr: Option<Vec<i32>>,
    pub leader: i32,
    pub replicas: Option<Vec<i32>>,
}

/// Kafka's `RemoveTopicRecord`: the topic, its partitions and its configs are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    pub topic_id: TopicId,
}

/// Kafka's `ConfigRecord`: one dynamic config of one resource; a `None` value removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// Kafka's `ProducerIdsRecord`: the controller gave `broker_id` the block of producer ids
/// ending just before `next_producer_id` (blocks are handed out in order, so the block is
/// `[previous next_producer_id, next_producer_id)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// Every record the metadata image understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    ProducerIds(ProducerIdsRecord),
}

impl MetadataRecord {
    /// Kafka's record type id (`MetadataRecordType`), for logs and a future wire encoding.
    pub fn kafka_type_id(&self) -> i16 {
        match self {
            Self::RegisterBroker(_) => 0,
            Self::Topic(_) => 2,
            Self::Partition(_) => 3,
            Self::Config(_) => 4,
            Self::PartitionChange(_) => 5,
            Self::RemoveTopic(_) => 9,
            Self::ProducerIds(_) => 15,
        }
    }

    /// The topic a topic-scoped record names by id (None for the others).
    pub fn topic_id(&self) -> Option<TopicId> {
        match self {
            Self::Topic(r) => Some(r.topic_id),
            Self::Partition(r) => Some(r.topic_id),
            Self::PartitionChange(r) => Some(r.topic_id),
            Self::RemoveTopic(r) => Some(r.topic_id),
            Self::RegisterBroker(_) | Self::Config(_) | Self::ProducerIds(_) => None,
        }
    }
}
