//! What the transaction coordinator answers when a transition's record could not be written to
//! `__transaction_state` (`store_error_code`) or no producer id could be allocated
//! (`producer_id_error_code`): Kafka's tables, each one exhaustive match.

use super::api::TxnError;
use super::code::TxnCode;
use crate::coordinator_log::LogError;
use crate::producers::IdError;

/// The code answered when the transition's record could not be appended to
/// `__transaction_state`: Kafka's `TransactionStateManager.appendTransactionToLog` maps the
/// append's error before the API answers it (InitProducerId, AddPartitionsToTxn,
/// AddOffsetsToTxn, EndTxn alike; only PRODUCER_FENCED is rewritten per version after it):
///
/// | append error | answer |
/// |---|---|
/// | UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT | COORDINATOR_NOT_AVAILABLE |
/// | NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR | NOT_COORDINATOR |
/// | MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE | UNKNOWN_SERVER_ERROR |
/// | any other | itself |
///
/// One exhaustive match, the same rows as the group coordinator's
/// (`groups::coordinator::store_error_code`, decision 0036): the "any other" errors check a
/// client's batch and cannot come from the coordinator's own uncompressed, non-transactional
/// record, so they are UNKNOWN_SERVER_ERROR rather than passed through.
pub fn store_error_code(error: &TxnError) -> TxnCode {
    use crate::coordinator_log::{append_failure, AppendFailure};
    match error {
        // The record could not be encoded: Kafka's `valueToBytes` throws, KafkaApis answers the
        // unexpected exception UNKNOWN_SERVER_ERROR.
        TxnError::Codec(_) => TxnCode::UnknownServerError,
        // Not hosted on this shard (any more): Kafka's pre-append check finds the partition
        // not owned (NOT_COORDINATOR), its append NOT_LEADER_OR_FOLLOWER.
        TxnError::Log(LogError::NotLoaded(_)) => TxnCode::NotCoordinator,
        // KAFKA_STORAGE_ERROR.
        TxnError::Log(LogError::Storage(_)) => TxnCode::NotCoordinator,
        TxnError::Log(LogError::Partition(error)) => match append_failure(error) {
            AppendFailure::CoordinatorNotAvailable => TxnCode::CoordinatorNotAvailable,
            AppendFailure::NotCoordinator => TxnCode::NotCoordinator,
            // The transaction log never holds transactional batches, so the producer-state
            // refusals cannot come from its appends either.
            AppendFailure::UnknownServerError
            | AppendFailure::InvalidProducerEpoch
            | AppendFailure::InvalidTxnState => TxnCode::UnknownServerError,
        },
    }
}

/// The code answered when no producer id could be allocated: Kafka's
/// `TransactionCoordinator.handleInitProducerId` answers `Errors.forException` of the
/// allocator's failure for a transactional id exactly as for an idempotent producer, so this
/// is the table of the idempotent path (`handlers::error::producer_id_error_code`): the id
/// authority unreachable is COORDINATOR_LOAD_IN_PROGRESS (Kafka's `RPCProducerIdManager`
/// while it waits for a block), a broken id store or exhausted ids UNKNOWN_SERVER_ERROR.
pub fn producer_id_error_code(error: &IdError) -> TxnCode {
    match error {
        IdError::Unavailable => TxnCode::CoordinatorLoadInProgress,
        IdError::Io { .. } | IdError::Corrupt { .. } | IdError::Exhausted => {
            TxnCode::UnknownServerError
        }
    }
}

#[cfg(test)]
#[path = "failures_tests.rs"]
mod tests;
