//! Handler errors and the one mapping from Sluice's error types to Kafka error codes.
//!
//! Invariant: every error variant that can reach a client maps to exactly one Kafka code here,
//! by exhaustive matches, so adding a variant fails to compile until it is mapped.

use kafka_protocol::ResponseError as K;

use crate::producers::IdError;
use crate::router::admin::AdminError;
use crate::router::PartitionError;
use crate::topics::config::TopicConfigError;
use crate::topics::TopicError;

/// A request that cannot be answered at all; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot decode request: {0}")]
    Decode(String),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

pub fn partition_error_code(error: &PartitionError) -> i16 {
    match error {
        PartitionError::UnknownTopicOrPartition => K::UnknownTopicOrPartition.code(),
        PartitionError::UnknownTopicId => K::UnknownTopicId.code(),
        PartitionError::Corrupt(_) => K::CorruptMessage.code(),
        PartitionError::TooLarge { .. } => K::MessageTooLarge.code(),
        PartitionError::AppendTooLarge { .. } => K::RecordListTooLarge.code(),
        PartitionError::InvalidRecord(_) => K::InvalidRecord.code(),
        PartitionError::UnsupportedCompressionType(_) => K::UnsupportedCompressionType.code(),
        PartitionError::OffsetOutOfRange { .. } => K::OffsetOutOfRange.code(),
        PartitionError::InvalidRequiredAcks(_) => K::InvalidRequiredAcks.code(),
        PartitionError::InternalTopic(_) => K::InvalidTopicException.code(),
        PartitionError::Storage(_) => K::KafkaStorageError.code(),
        PartitionError::Unavailable => K::NotLeaderOrFollower.code(),
        PartitionError::InvalidTimestamp(_) => K::InvalidTimestamp.code(),
        PartitionError::UnknownLeaderEpoch { .. } => K::UnknownLeaderEpoch.code(),
        PartitionError::FencedLeaderEpoch { .. } => K::FencedLeaderEpoch.code(),
        PartitionError::OutOfOrderSequence(_) => K::OutOfOrderSequenceNumber.code(),
        // Kafka 2.7+ answers a Produce with a stale epoch INVALID_PRODUCER_EPOCH (KIP-588);
        // PRODUCER_FENCED is for the transactional APIs.
        PartitionError::InvalidProducerEpoch(_) => K::InvalidProducerEpoch.code(),
        PartitionError::TopicAuthorizationFailed => K::TopicAuthorizationFailed.code(),
        PartitionError::NotEnoughReplicas { .. } => K::NotEnoughReplicas.code(),
        PartitionError::NotEnoughReplicasAfterAppend { .. } => {
            K::NotEnoughReplicasAfterAppend.code()
        }
        PartitionError::RequestTimedOut => K::RequestTimedOut.code(),
        PartitionError::TxnVerification { code, .. } => *code,
        PartitionError::TransactionCoordinatorFenced(_) => K::TransactionCoordinatorFenced.code(),
        PartitionError::InvalidTxnState(_) => K::InvalidTxnState.code(),
        PartitionError::NotLeaderOrFollower => K::NotLeaderOrFollower.code(),
    }
}

pub fn topic_error_code(error: &TopicError) -> i16 {
    match error {
        TopicError::InvalidName(_) | TopicError::Collision { .. } => {
            K::InvalidTopicException.code()
        }
        TopicError::AlreadyExists(_) => K::TopicAlreadyExists.code(),
        TopicError::InvalidPartitions(_) => K::InvalidPartitions.code(),
        TopicError::InvalidReplicationFactor(_) => K::InvalidReplicationFactor.code(),
        TopicError::InvalidReplicaAssignment(_) => K::InvalidReplicaAssignment.code(),
        TopicError::Config(
            TopicConfigError::UnknownKey(_)
            | TopicConfigError::InvalidValue { .. }
            | TopicConfigError::Conflict(_),
        ) => K::InvalidConfig.code(),
        TopicError::Io(_) | TopicError::Corrupt(_) => K::KafkaStorageError.code(),
        TopicError::NotController => K::NotController.code(),
        TopicError::TimedOut(_) => K::RequestTimedOut.code(),
    }
}

pub fn admin_error_code(error: &AdminError) -> i16 {
    match error {
        AdminError::UnknownTopic(_) => K::UnknownTopicOrPartition.code(),
        AdminError::UnknownTopicId => K::UnknownTopicId.code(),
        AdminError::InvalidTopic(_) => K::InvalidTopicException.code(),
        AdminError::InvalidPartitions(_) => K::InvalidPartitions.code(),
        AdminError::InvalidReplicaAssignment(_) => K::InvalidReplicaAssignment.code(),
        AdminError::InvalidReplicationFactor(_) => K::InvalidReplicationFactor.code(),
        AdminError::InvalidRequest(_) => K::InvalidRequest.code(),
        AdminError::InvalidConfig(_) => K::InvalidConfig.code(),
        AdminError::Storage(_) => K::KafkaStorageError.code(),
        AdminError::TopicAuthorizationFailed => K::TopicAuthorizationFailed.code(),
        AdminError::ClusterAuthorizationFailed => K::ClusterAuthorizationFailed.code(),
        AdminError::NotController => K::NotController.code(),
        AdminError::ThrottlingQuotaExceeded => K::ThrottlingQuotaExceeded.code(),
        AdminError::TimedOut(_) => K::RequestTimedOut.code(),
    }
}

/// InitProducerId when no id could be allocated: shard 0 unreachable is retriable (Kafka answers
/// COORDINATOR_LOAD_IN_PROGRESS while its id block is not ready); a broken id file is not.
pub fn producer_id_error_code(error: &IdError) -> i16 {
    match error {
        IdError::Unavailable => K::CoordinatorLoadInProgress.code(),
        IdError::Io { .. } | IdError::Corrupt { .. } | IdError::Exhausted => {
            K::UnknownServerError.code()
        }
    }
}

pub fn code_of<T>(result: &Result<T, PartitionError>) -> i16 {
    result.as_ref().err().map_or(0, partition_error_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_errors_map_to_kafka_codes() {
        assert_eq!(
            partition_error_code(&PartitionError::UnknownTopicOrPartition),
            3
        );
        assert_eq!(
            partition_error_code(&PartitionError::Corrupt("crc".into())),
            2
        );
        assert_eq!(
            partition_error_code(&PartitionError::TooLarge { size: 2, max: 1 }),
            10
        );
        assert_eq!(
            partition_error_code(&PartitionError::InvalidRecord("x".into())),
            87
        );
        assert_eq!(
            partition_error_code(&PartitionError::OffsetOutOfRange {
                offset: 9,
                log_start: 0,
                log_end: 1
            }),
            1
        );
        assert_eq!(
            partition_error_code(&PartitionError::InvalidRequiredAcks(2)),
            21
        );
        assert_eq!(
            partition_error_code(&PartitionError::OutOfOrderSequence("s".into())),
            45
        );
        assert_eq!(
            partition_error_code(&PartitionError::InvalidProducerEpoch("e".into())),
            47
        );
        assert_eq!(code_of::<()>(&Ok(())), 0);
    }

    #[test]
    fn admin_errors_map_to_kafka_codes() {
        let m = || "m".to_owned();
        assert_eq!(admin_error_code(&AdminError::UnknownTopic(m())), 3);
        assert_eq!(admin_error_code(&AdminError::UnknownTopicId), 100);
        assert_eq!(admin_error_code(&AdminError::InvalidTopic(m())), 17);
        assert_eq!(admin_error_code(&AdminError::InvalidPartitions(m())), 37);
        assert_eq!(
            admin_error_code(&AdminError::InvalidReplicaAssignment(m())),
            39
        );
        assert_eq!(admin_error_code(&AdminError::InvalidConfig(m())), 40);
        assert_eq!(admin_error_code(&AdminError::InvalidRequest(m())), 42);
        assert_eq!(admin_error_code(&AdminError::Storage(m())), 56);
    }

    #[test]
    fn topic_errors_map_to_kafka_codes() {
        assert_eq!(topic_error_code(&TopicError::InvalidName("a b".into())), 17);
        assert_eq!(topic_error_code(&TopicError::AlreadyExists("t".into())), 36);
        assert_eq!(topic_error_code(&TopicError::InvalidPartitions(0)), 37);
        assert_eq!(
            topic_error_code(&TopicError::InvalidReplicationFactor("3".into())),
            38
        );
        assert_eq!(
            topic_error_code(&TopicError::Config(TopicConfigError::UnknownKey(
                "k".into()
            ))),
            40
        );
    }
}
