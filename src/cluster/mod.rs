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
//!   it answers. `deletion` removes a deleted topic's data and everything keyed by it.
//! - `topics`: topic names, ids, configs and their validation (Kafka's catalog of configs).
//! - `quorum`: the controller quorum's replicated metadata log on openraft (not yet wired into
//!   start-up; its own `MetadataRecord` codec is to be unified with `records`).
//!
//! Invariants: only the controller produces records; every shard's image is the controller's
//! after the same records, applied in the same order; handlers read brokers, leaders and
//! epochs from the image on their own shard and never from the broker config.

pub mod controller;
pub mod deletion;
pub mod image;
pub mod open;
pub mod placement;
pub mod quorum;
pub mod records;
pub mod store;
pub mod topics;
pub mod view;

pub use image::{MetadataImage, PartitionRegistration};
pub use records::MetadataRecord;

/// Producer ids per block the controller hands a broker (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
