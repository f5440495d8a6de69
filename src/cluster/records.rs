//! Metadata records: every change to the cluster metadata, in the shape of Kafka's KRaft
//! metadata records (`metadata/src/main/resources/common/metadata/*.json`). The controller
//! expresses each change as a list of records and `MetadataImage::apply` is the one function
//! that turns them into state, so a replicated metadata log (openraft) can later carry the same
//! records and every broker (and every shard) rebuild the same image from them.
//!
//! Fields keep Kafka's names and meanings; what Sluice does not use yet (directories, ELR,
//! adding/removing replicas, features, log dirs) is left out until it is. Records are plain
//! data (`Send`, serde), so they cross shards and can be written to a log or a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

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

/// A `RegisterBrokerRecord`'s `broker_epoch` before commit: the applied record carries the
/// metadata offset of its entry instead (see the field).
pub const BROKER_EPOCH_AT_COMMIT: i64 = -1;

/// Kafka's `RegisterBrokerRecord` (the fields Sluice uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    /// Unique per broker process start (Kafka's incarnation id).
    pub incarnation_id: u128,
    /// Grows with each registration of the broker: as Kafka's, the record's offset in the
    /// metadata log. Proposed as [`BROKER_EPOCH_AT_COMMIT`]; the quorum's state machine sets
    /// it to the raft index of the entry when it applies it (the index is assigned at append,
    /// after the record is built), so every node's image holds the same epoch.
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
    /// Replicas being added by a reassignment in progress (KIP-455); empty when none.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas being removed by a reassignment in progress (KIP-455); empty when none.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
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
    /// The reassignment's replicas being removed / added (KIP-455); `None` keeps them.
    #[serde(default)]
    pub removing_replicas: Option<Vec<i32>>,
    #[serde(default)]
    pub adding_replicas: Option<Vec<i32>>,
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

/// Kafka's `UserScramCredentialRecord` (KRaft, 3.5+): one user's credential for one SCRAM
/// mechanism (`ScramMechanism` id: 1 = SHA-256, 2 = SHA-512), salted, never the password.
/// Replaces any credential of the same user and mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Kafka's `RemoveUserScramCredentialRecord`: the user's credential for the mechanism is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
}

/// Kafka's `AccessControlEntryRecord`: one ACL binding with its id (wire codes of
/// `ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`). Ids are UUIDs, kept in
/// the same wrapper as topic ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessControlEntryRecord {
    pub id: TopicId,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

/// Kafka's `RemoveAccessControlEntryRecord`: the ACL with this id is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveAccessControlEntryRecord {
    pub id: TopicId,
}

/// One part of a client quota entity (Kafka's `ClientQuotaRecord.EntityData`): the entity type
/// (`user`, `client-id`, `ip`) and its name, None for the type's default entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuotaEntityData {
    pub entity_type: String,
    pub entity_name: Option<String>,
}

/// Kafka's `ClientQuotaRecord`: one quota key of one entity set to `value`, or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotaRecord {
    pub entity: Vec<ClientQuotaEntityData>,
    pub key: String,
    pub value: f64,
    pub remove: bool,
}

// Values are checked finite and positive before a record is made or applied
// (`quotas::entity::validate_op`), so equality is total on every record that exists.
impl Eq for ClientQuotaRecord {}

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
    UnregisterBroker(UnregisterBrokerRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
    ClientQuota(ClientQuotaRecord),
}

/// Kafka's `UnregisterBrokerRecord`: the broker's registration of this epoch is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// Kafka's `FenceBrokerRecord`: the broker (of this epoch) is fenced: it missed its session
/// (`broker.session.timeout.ms`) or asked to be. A fenced broker leads nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// Kafka's `UnfenceBrokerRecord`: the broker (of this epoch) caught up with the metadata log
/// and heartbeats: it may lead partitions again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

impl MetadataRecord {
    /// Kafka's record type id (`MetadataRecordType`, the schema's `apiKey`): the type field of
    /// the metadata log's codec (`quorum::records`).
    pub fn kafka_type_id(&self) -> i16 {
        match self {
            Self::RegisterBroker(_) => 0,
            Self::Topic(_) => 2,
            Self::Partition(_) => 3,
            Self::Config(_) => 4,
            Self::PartitionChange(_) => 5,
            Self::RemoveTopic(_) => 9,
            Self::ProducerIds(_) => 15,
            Self::UnregisterBroker(_) => 1,
            Self::FenceBroker(_) => 7,
            Self::UnfenceBroker(_) => 8,
            Self::UserScramCredential(_) => 11,
            Self::AccessControlEntry(_) => 18,
            Self::RemoveAccessControlEntry(_) => 19,
            Self::RemoveUserScramCredential(_) => 22,
            Self::ClientQuota(_) => 14,
        }
    }

    /// The topic a topic-scoped record names by id (None for the others).
    pub fn topic_id(&self) -> Option<TopicId> {
        match self {
            Self::Topic(r) => Some(r.topic_id),
            Self::Partition(r) => Some(r.topic_id),
            Self::PartitionChange(r) => Some(r.topic_id),
            Self::RemoveTopic(r) => Some(r.topic_id),
            Self::RegisterBroker(_)
            | Self::Config(_)
            | Self::ProducerIds(_)
            | Self::UnregisterBroker(_)
            | Self::FenceBroker(_)
            | Self::UnfenceBroker(_) => None,
            Self::UserScramCredential(_)
            | Self::RemoveUserScramCredential(_)
            | Self::AccessControlEntry(_)
            | Self::RemoveAccessControlEntry(_)
            | Self::ClientQuota(_) => None,
        }
    }
}

/// A topic id (Kafka's UUID), stored as its 128-bit value; persisted as the UUID string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicId(pub u128);

impl Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.uuid().to_string())
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        uuid::Uuid::parse_str(&text)
            .map(|u| Self(u.as_u128()))
            .map_err(serde::de::Error::custom)
    }
}

impl TopicId {
    pub fn uuid(self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.0)
    }

    /// A fresh id: mixes the wall clock, the process id, a counter and the name, so ids differ
    /// across restarts and topics without a random-number dependency. Never the nil UUID.
    pub fn generate(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let hi = fnv1a(&[&nanos.to_le_bytes(), name.as_bytes()]);
        let lo = fnv1a(&[
            &count.to_le_bytes(),
            &std::process::id().to_le_bytes(),
            &hi.to_le_bytes(),
        ]);
        // Version 4 / variant 1 bits, so tools that validate UUIDs accept it.
        let raw = (u128::from(hi) << 64) | u128::from(lo);
        let raw = (raw & !(0xF << 76)) | (0x4 << 76);
        let raw = (raw & !(0x3 << 62)) | (0x2 << 62);
        Self(raw)
    }
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// A partition's place in the cluster (Kafka's `PartitionRegistration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The broker leading the partition; -1 when none.
    pub leader: i32,
    /// Bumped each time the leader changes (KIP-101/320: what clients and followers fence on).
    pub leader_epoch: i32,
    /// Bumped on every change of the registration.
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): `replicas` is the union of the target and the
    /// replicas being removed; both lists empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    /// A new partition with one replica on `broker`, which leads it in epoch 0 (what Kafka's
    /// controller gives a new partition's first leader).
    pub fn single(broker: i32) -> Self {
        Self {
            replicas: vec![broker],
            isr: vec![broker],
            leader: broker,
            leader_epoch: crate::partition::INITIAL_LEADER_EPOCH,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Kafka's `isReassignmentInProgress`.
    pub fn reassignment_in_progress(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    pub(super) fn from_record(record: &PartitionRecord) -> Self {
        Self {
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            adding_replicas: record.adding_replicas.clone(),
            removing_replicas: record.removing_replicas.clone(),
        }
    }

    /// Kafka's `PartitionRegistration.merge`.
    pub(super) fn merge(&self, change: &PartitionChangeRecord) -> Self {
        let mut next = self.clone();
        if let Some(isr) = &change.isr {
            next.isr = isr.clone();
        }
        if let Some(replicas) = &change.replicas {
            next.replicas = replicas.clone();
        }
        if let Some(removing) = &change.removing_replicas {
            next.removing_replicas = removing.clone();
        }
        if let Some(adding) = &change.adding_replicas {
            next.adding_replicas = adding.clone();
        }
        if change.leader != NO_LEADER_CHANGE {
            next.leader = change.leader;
            next.leader_epoch = self.leader_epoch.saturating_add(1);
        }
        next.partition_epoch = self.partition_epoch.saturating_add(1);
        next
    }
}
