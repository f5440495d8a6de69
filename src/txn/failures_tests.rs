//! The transaction-log write and producer-id tables (`failures::store_error_code`,
//! `producer_id_error_code`), row by row against Kafka's.

use super::*;
use crate::partition::PartitionError as P;
use crate::txn::codec::CodecError;

fn log(error: P) -> TxnError {
    TxnError::Log(LogError::Partition(error))
}

#[test]
fn every_append_error_maps_as_kafkas_append_transaction_to_log() {
    use TxnCode as C;
    let rows: Vec<(TxnError, TxnCode)> = vec![
        // UNKNOWN_TOPIC_OR_PARTITION | NOT_ENOUGH_REPLICAS | NOT_ENOUGH_REPLICAS_AFTER_APPEND |
        // REQUEST_TIMED_OUT -> COORDINATOR_NOT_AVAILABLE.
        (log(P::UnknownTopicOrPartition), C::CoordinatorNotAvailable),
        (
            log(P::NotEnoughReplicas { isr: 1, min_isr: 2 }),
            C::CoordinatorNotAvailable,
        ),
        (
            log(P::NotEnoughReplicasAfterAppend { isr: 1, min_isr: 2 }),
            C::CoordinatorNotAvailable,
        ),
        (log(P::RequestTimedOut), C::CoordinatorNotAvailable),
        // NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR -> NOT_COORDINATOR.
        (log(P::NotLeaderOrFollower), C::NotCoordinator),
        (log(P::Unavailable), C::NotCoordinator),
        (log(P::Storage("disk".into())), C::NotCoordinator),
        (
            TxnError::Log(LogError::Storage(storage::StorageError::CorruptBatch(
                "crc".into(),
            ))),
            C::NotCoordinator,
        ),
        (TxnError::Log(LogError::NotLoaded(3)), C::NotCoordinator),
        (
            log(P::FencedLeaderEpoch {
                requested: 1,
                current: 2,
            }),
            C::NotCoordinator,
        ),
        (
            log(P::UnknownLeaderEpoch {
                requested: 3,
                current: 2,
            }),
            C::NotCoordinator,
        ),
        // MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE -> UNKNOWN_SERVER_ERROR.
        (log(P::TooLarge { size: 2, max: 1 }), C::UnknownServerError),
        (
            log(P::AppendTooLarge {
                size: 2,
                segment_bytes: 1,
            }),
            C::UnknownServerError,
        ),
        // Errors of a client's batch, never of the coordinator's own record.
        (log(P::UnknownTopicId), C::UnknownServerError),
        (log(P::Corrupt("crc".into())), C::UnknownServerError),
        (log(P::InvalidRecord("r".into())), C::UnknownServerError),
        (
            log(P::UnsupportedCompressionType("zstd".into())),
            C::UnknownServerError,
        ),
        (
            log(P::OffsetOutOfRange {
                offset: 9,
                log_start: 0,
                log_end: 1,
            }),
            C::UnknownServerError,
        ),
        (log(P::InvalidRequiredAcks(2)), C::UnknownServerError),
        (log(P::InternalTopic("t".into())), C::UnknownServerError),
        (
            log(P::OutOfOrderSequence("s".into())),
            C::UnknownServerError,
        ),
        (
            log(P::InvalidProducerEpoch("e".into())),
            C::UnknownServerError,
        ),
        (log(P::InvalidTimestamp("t".into())), C::UnknownServerError),
        (
            log(P::TransactionCoordinatorFenced("c".into())),
            C::UnknownServerError,
        ),
        (
            log(P::InvalidTxnState("open".into())),
            C::UnknownServerError,
        ),
        (log(P::TopicAuthorizationFailed), C::UnknownServerError),
        (
            log(P::TxnVerification {
                code: 48,
                message: "m".into(),
            }),
            C::UnknownServerError,
        ),
        // The record could not be encoded.
        (
            TxnError::Codec(CodecError::Invalid("name")),
            C::UnknownServerError,
        ),
    ];
    for (error, code) in &rows {
        assert_eq!(store_error_code(error), *code, "{error}");
    }
    // The wire codes the table answers.
    assert_eq!(C::CoordinatorNotAvailable.code(), 15);
    assert_eq!(C::NotCoordinator.code(), 16);
    assert_eq!(C::UnknownServerError.code(), -1);
}

#[test]
fn a_failed_producer_id_allocation_answers_as_the_idempotent_path() {
    let rows = [
        (IdError::Unavailable, TxnCode::CoordinatorLoadInProgress),
        (
            IdError::Io {
                path: "p".into(),
                reason: "r".into(),
            },
            TxnCode::UnknownServerError,
        ),
        (
            IdError::Corrupt {
                path: "p".into(),
                reason: "r".into(),
            },
            TxnCode::UnknownServerError,
        ),
        (IdError::Exhausted, TxnCode::UnknownServerError),
    ];
    for (error, code) in &rows {
        assert_eq!(producer_id_error_code(error), *code, "{error}");
        // Kafka answers both InitProducerId paths from the one allocator failure.
        assert_eq!(
            code.code(),
            crate::handlers::error::producer_id_error_code(error),
            "{error}"
        );
    }
}
