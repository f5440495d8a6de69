//! The Kafka error codes the transaction coordinator answers, and the version rule for
//! PRODUCER_FENCED.

/// The Kafka error codes the transaction coordinator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCode {
    None,
    UnknownServerError,
    CoordinatorNotAvailable,
    CoordinatorLoadInProgress,
    NotCoordinator,
    InvalidRequest,
    InvalidProducerEpoch,
    InvalidTxnState,
    InvalidProducerIdMapping,
    InvalidTransactionTimeout,
    ConcurrentTransactions,
    ProducerFenced,
    TransactionalIdNotFound,
    UnknownTopicOrPartition,
    OperationNotAttempted,
    /// KIP-890: the partition is not in the transaction (AddPartitionsToTxn verify_only).
    TransactionAbortable,
}

impl TxnCode {
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::UnknownServerError => -1,
            Self::UnknownTopicOrPartition => 3,
            Self::CoordinatorLoadInProgress => 14,
            Self::CoordinatorNotAvailable => 15,
            Self::NotCoordinator => 16,
            Self::InvalidRequest => 42,
            Self::InvalidProducerEpoch => 47,
            Self::InvalidTxnState => 48,
            Self::InvalidProducerIdMapping => 49,
            Self::InvalidTransactionTimeout => 50,
            Self::ConcurrentTransactions => 51,
            Self::OperationNotAttempted => 55,
            Self::ProducerFenced => 90,
            Self::TransactionalIdNotFound => 105,
            Self::TransactionAbortable => 120,
        }
    }

    /// PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to clients older than the API
    /// version that introduced it (Kafka's KafkaApis does the same per API).
    pub fn for_version(self, version: i16, fenced_since: i16) -> i16 {
        if self == Self::ProducerFenced && version < fenced_since {
            Self::InvalidProducerEpoch.code()
        } else {
            self.code()
        }
    }
}
