//! The one error type of the storage crate.
//!
//! Validation errors (`CorruptBatch`, `InvalidMagic`, `BatchTooLarge`, `InvalidRecord`) mean
//! nothing was written; `Io` means a file operation failed and the caller must treat a failed
//! write or fsync as fatal for the partition (the page cache may no longer match the disk).
//!
//! Callers map it by one exhaustive `match` (the enum is deliberately not `#[non_exhaustive]`,
//! so a new variant fails to compile until every mapping handles it). The Kafka error code
//! each variant stands for (`src/`'s mapping today):
//!
//! | variant | Kafka error |
//! |---|---|
//! | `CorruptBatch`, `DamagedSegment` | CORRUPT_MESSAGE (CorruptRecordException) |
//! | `InvalidMagic` | CORRUPT_MESSAGE |
//! | `BatchTooLarge` | MESSAGE_TOO_LARGE (RecordTooLargeException) |
//! | `AppendTooLarge` | RECORD_LIST_TOO_LARGE (RecordBatchTooLargeException) |
//! | `InvalidRecord` | INVALID_RECORD (InvalidRecordException) |
//! | `OffsetOutOfRange` | OFFSET_OUT_OF_RANGE |
//! | `Io` | KAFKA_STORAGE_ERROR, and the process stops ([`StorageError::is_disk_fault`]) |
//! | `Closed`, `OutOfFiles`, `CorruptState` | KAFKA_STORAGE_ERROR (the process keeps running) |
//!
//! A broken invariant is not an error value: it stops the process (`crate::invariant`).

/// Everything a storage operation can fail with.
#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    /// Bad CRC, bad length, truncated batch, record count mismatch.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// The batch is not magic v2.
    #[error("unsupported record batch magic {0}")]
    InvalidMagic(i8),
    /// One batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: usize, max: u32 },
    /// One append is larger than `segment.bytes`: it could not fit any segment (Kafka's
    /// `UnifiedLog.append`, RecordBatchTooLargeException).
    #[error(
        "message batch size is {size} bytes, which exceeds the maximum configured segment size \
         of {segment_bytes}"
    )]
    AppendTooLarge { size: usize, segment_bytes: u64 },
    /// A structurally valid batch with invalid content (no records, bad offset deltas).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The requested offset lies outside `[log_start, log_end]`.
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The log was closed (or deleted) and can no longer be used.
    #[error("log is closed")]
    Closed,
    /// A stored batch header is unreadable (the segment file was damaged after it was
    /// written): Kafka's CorruptRecordException on read, CORRUPT_MESSAGE to a fetch.
    #[error("damaged segment {file} at position {position}: {reason}")]
    DamagedSegment {
        file: String,
        position: u64,
        reason: String,
    },
    /// The process ran out of file descriptors (EMFILE/ENFILE) creating a segment: nothing
    /// was written, the disk is fine, the operation may be retried (not a fatal I/O error).
    #[error("cannot create a segment: {0}")]
    OutOfFiles(String),
    /// An on-disk structure (index, checkpoint, segment name) is unusable.
    #[error("corrupt log state: {0}")]
    CorruptState(String),
    /// The append was queued behind a write whose caller was dropped (cancelled) before it
    /// committed (`append.rs`): nothing of it was committed, the disk is fine, the producer
    /// may retry (KAFKA_STORAGE_ERROR, not a disk fault).
    #[error("append not written: the write carrying it was cancelled")]
    NotWritten,
}

impl StorageError {
    /// Whether this is a failed file operation, after which the page cache may no longer
    /// match the disk: the broker's one rule is that such an error stops the process
    /// (`shards::fatal`). Every other variant leaves the stored data as it was.
    pub fn is_disk_fault(&self) -> bool {
        matches!(self, StorageError::Io(_))
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        StorageError::CorruptBatch(msg.into())
    }
}
