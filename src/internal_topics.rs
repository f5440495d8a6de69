//! Names of Kafka's internal topics, known to every layer (the registry creates them, the
//! partition service guards them, the coordinators own them).

/// Kafka's internal offsets topic (`Topic.GROUP_METADATA_TOPIC_NAME`): the group coordinator's
/// log of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
