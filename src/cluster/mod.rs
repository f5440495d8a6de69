//! The cluster: the controller and the metadata image.
//!
//! - `records`: the changes, as Kafka's metadata records (`TopicRecord`, `PartitionRecord`,
//!   `PartitionChangeRecord`, `RemoveTopicRecord`, `ConfigRecord`, `ProducerIdsRecord`,
//!   `RegisterBrokerRecord`).
//! - `image`: the state they build (`MetadataImage`: brokers, topics with ids and per-partition
//!   registrations, configs, producer-id blocks) through one function, `MetadataImage::apply`.
//! - `controller`: the single-node controller on shard 0 (the registry shard). It validates an
//!   admin request against its image, expresses the change as records, applies them to a copy,
//!   persists it (`store`), and has every shard apply the same records to its own copy before
//!   it answers (`broadcast`). `deletion` removes a deleted topic's data and everything keyed
//!   by it. Each module takes a narrow context of the shard's state (built by the shard,
//!   `shard::contexts_cluster`), never the shard itself.
//! - `topics`: topic names, ids, configs and their validation (Kafka's catalog of configs).
//! - `quorum`: the controller quorum's replicated metadata log on openraft, and the active
//!   controller's broker lifecycle (registration, heartbeats, fencing, producer-id blocks).
//! - `kraft`, `node`, `quorum::shared_image`, `follow`, `heartbeat`, `duties`, `kraft_metrics`: a KRaft node (`process.roles`
//!   set): its settings, its quorum member and committed image, shard 0 bringing every shard's
//!   image up to it, and the broker's registration and heartbeats. Without `process.roles` the
//!   single-node controller above runs as before (no quorum).
//! - `security_image`, `security_control`, `security_store`: ACLs and SCRAM credentials as
//!   records in the image (Kafka's `AclsImage`/`ScramImage`, `AclControlManager`/
//!   `ScramControlManager`), changed through the controller, persisted beside the topics.
//!
//! Invariants: only the controller produces records; every shard's image is the controller's
//! after the same records, applied in the same order; handlers read brokers, leaders and
//! epochs from the image on their own shard and never from the broker config.

pub mod alter_partition;
pub mod alter_partition_rpc;
pub mod broadcast;
pub mod controller;
pub mod controller_listener;
pub mod deletion;
pub mod duties;
pub mod election;
pub mod follow;
pub mod forwarding;
pub mod heartbeat;
pub mod image;
pub mod inter_broker;
pub mod kraft;
pub mod kraft_metrics;
pub mod leader_election;
pub mod meta_properties;
pub mod node;
pub mod open;
pub mod placement;
pub mod quorum;
pub mod quota_image;
pub mod reassign;
pub mod reassign_local;
pub mod reassign_run;
pub mod records;
pub mod replica_fetcher;
pub mod replica_fetchers;
pub mod replicas;
pub mod replication_metrics;
pub mod replication_quota;
pub mod secure_stream;
pub mod security_control;
pub mod security_image;
pub mod security_store;
pub mod store;
pub mod topics;
pub mod view;

pub use image::{MetadataImage, PartitionRegistration};
pub use records::MetadataRecord;

/// Producer ids per block the controller hands a broker (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
