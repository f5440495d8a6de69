//! The transaction coordinator's requests and answers (plain data: they cross shards in
//! `TxnMsg`), its error codes and its errors.

use super::state::TxnPartition;

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

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("corrupt transaction log record: {0}")]
    Codec(#[from] super::codec::CodecError),
    #[error("transaction log: {0}")]
    Log(#[from] crate::coordinator_log::LogError),
}

/// One transactional id's view for DescribeTransactions.
#[derive(Debug, Clone)]
pub struct DescribedTxn {
    pub state: &'static str,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TxnPartition>,
}

/// One entry of ListTransactions.
#[derive(Debug, Clone)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: &'static str,
}

/// ListTransactions' filters (empty: no filter).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Vec<super::state::TxnState>,
    pub producer_ids: Vec<i64>,
    /// v1+: only transactions running longer than this (ms); -1 none.
    pub duration_ms: i64,
}

/// A request for one transactional id (or, for `List`, for every id of a shard).
#[derive(Debug)]
pub enum TxnOp {
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    },
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TxnPartition>,
        verify_only: bool,
    },
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        /// TV2 (EndTxn v5+): bump the epoch with the end.
        bump_epoch: bool,
    },
    Describe {
        transactional_id: String,
    },
    List(ListFilter),
}

impl TxnOp {
    pub fn transactional_id(&self) -> Option<&str> {
        match self {
            Self::InitProducerId {
                transactional_id, ..
            }
            | Self::AddPartitions {
                transactional_id, ..
            }
            | Self::EndTxn {
                transactional_id, ..
            }
            | Self::Describe { transactional_id } => Some(transactional_id),
            Self::List(_) => None,
        }
    }
}

/// The answer to a `TxnOp`.
#[derive(Debug)]
pub enum TxnAnswer {
    /// InitProducerId / EndTxn: a code with the producer id and epoch to answer.
    Producer {
        code: TxnCode,
        producer_id: i64,
        producer_epoch: i16,
    },
    /// AddPartitions: one code per partition in request order.
    Partitions(Vec<TxnCode>),
    Described(Result<DescribedTxn, TxnCode>),
    Listed(Vec<ListedTxn>),
    /// The op failed as a whole.
    Error(TxnCode),
}

/// The transaction coordinator's message to a transactional id's owner shard.
pub struct TxnMsg {
    pub op: TxnOp,
    pub reply: shards::Reply<TxnAnswer>,
}
