//! Why a partition operation failed, and the one rule for storage errors on the data path:
//! an I/O error means the disk can no longer be trusted and stops the process
//! ([`storage_error`]); every other storage error becomes the client's Kafka error.
//!
//! Invariants: a `PartitionError` is plain data (it crosses shards); no I/O error of a write,
//! fsync or delete is ever reported to a client as if the data might be there.

use super::TopicPartition;

/// Why one partition's operation failed (crosses shards, so plain data).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartitionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The topic id a fetch session holds is no longer in the metadata image (the topic was
    /// deleted, maybe re-created under a new id).
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    #[error(
        "message batch size is {size} bytes, which exceeds the maximum configured segment size \
         of {segment_bytes}"
    )]
    AppendTooLarge { size: usize, segment_bytes: u64 },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("unsupported compression type: {0}")]
    UnsupportedCompressionType(String),
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("cannot append to internal topic {0}")]
    InternalTopic(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("broker is shutting down or shard unavailable")]
    Unavailable,
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// message.timestamp.before/after.max.ms refused a record's timestamp.
    #[error("{0}")]
    InvalidTimestamp(String),
    #[error("leader epoch {requested} is newer than the partition's {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is older than the partition's {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// A transaction marker from a coordinator older than the last one seen for the producer.
    #[error("{0}")]
    TransactionCoordinatorFenced(String),
    /// A producer's batch that does not fit its transaction state (a non-transactional batch
    /// while its transaction is open).
    #[error("{0}")]
    InvalidTxnState(String),
    /// The authorizer refused the operation on the topic (handlers::authz).
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    /// The metadata image names another broker (or none) as the partition's leader.
    #[error("This server is not the leader for that topic-partition.")]
    NotLeaderOrFollower,
    /// acks=all with the ISR below min.insync.replicas: nothing was written (replication).
    #[error("the ISR has {isr} replicas, below min.insync.replicas {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    /// acks=all: written, but the ISR shrank below min.insync.replicas before it replicated.
    #[error("the ISR has {isr} replicas after the append, below min.insync.replicas {min_isr}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_isr: usize },
    /// acks=all: not replicated to the ISR within the request timeout.
    #[error("not replicated within the request timeout")]
    RequestTimedOut,
    /// KIP-890: the transaction coordinator did not verify a transactional append (or the
    /// transactional id is not authorized): the Kafka code the leader answers, with its message.
    #[error("{message}")]
    TxnVerification { code: i16, message: String },
}

impl From<super::LeaderEpochError> for PartitionError {
    fn from(error: super::LeaderEpochError) -> Self {
        use super::LeaderEpochError as E;
        match error {
            E::Unknown { requested, current } => Self::UnknownLeaderEpoch { requested, current },
            E::Fenced { requested, current } => Self::FencedLeaderEpoch { requested, current },
        }
    }
}

impl PartitionError {
    /// Storage's typed errors to partition errors. I/O errors on the write path are fatal and
    /// never reach here (see [`storage_error`]).
    pub fn from_storage(error: storage::StorageError) -> Self {
        use storage::StorageError as S;
        match error {
            S::CorruptBatch(msg) => Self::Corrupt(msg),
            // Damaged stored data: Kafka answers a fetch CORRUPT_MESSAGE (CorruptRecordException).
            e @ S::DamagedSegment { .. } => Self::Corrupt(e.to_string()),
            S::InvalidMagic(magic) => Self::Corrupt(format!("unsupported magic {magic}")),
            S::BatchTooLarge { size, max } => Self::TooLarge { size, max },
            S::AppendTooLarge {
                size,
                segment_bytes,
            } => Self::AppendTooLarge {
                size,
                segment_bytes,
            },
            S::InvalidRecord(msg) => Self::InvalidRecord(msg),
            S::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => Self::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            },
            other => Self::Storage(other.to_string()),
        }
    }

    /// An idempotent batch the producer state refused.
    pub fn from_sequence(error: crate::producers::SequenceError) -> Self {
        use crate::producers::SequenceError as S;
        let message = error.to_string();
        match error {
            S::OutOfOrder { .. } => Self::OutOfOrderSequence(message),
            S::InvalidEpoch { .. } => Self::InvalidProducerEpoch(message),
            S::InvalidSequence { .. } => Self::InvalidRecord(message),
            S::InvalidTxnState { .. } | S::NotVerified { .. } => Self::InvalidTxnState(message),
        }
    }
}

/// The fatal-error rule, in one place: an I/O error of a partition's log (a failed write,
/// fsync or delete) stops the whole process (`shards::fatal`, exit 70), since a broker that
/// cannot trust its disk must not keep serving; any other storage error is the client's.
pub fn storage_error(tp: &TopicPartition, error: storage::StorageError) -> PartitionError {
    if let storage::StorageError::Io(e) = &error {
        shards::fatal(format!("storage I/O error on {}: {e}", tp.dir_name()));
    }
    PartitionError::from_storage(error)
}
