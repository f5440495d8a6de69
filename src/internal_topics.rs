//! Names of Kafka's internal topics, known to every layer (the registry creates them, the
//! partition service guards them, the coordinators own them).

/// Kafka's internal offsets topic (`Topic.GROUP_METADATA_TOPIC_NAME`): the group coordinator's
/// log of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's internal transaction log (`Topic.TRANSACTION_STATE_TOPIC_NAME`): the transaction
/// coordinator's log of transactional ids and their transactions.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Whether `topic` is one of Kafka's internal topics (clients cannot produce to it, delete it
/// or add partitions to it; Metadata reports `is_internal`).
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC
}
