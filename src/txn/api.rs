//! The transaction coordinator's requests and answers (plain data: they cross shards in
//! `TxnMsg`), its error codes and its errors.

use super::state::TxnPartition;

pub use super::code::TxnCode;

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
