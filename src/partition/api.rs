//! The partition service's requests and answers: plain owned data, so a batch of them can be
//! sent to the owning shard (`PartitionMsg`, served by `PartitionService::serve`) and the
//! answers sent back.

use std::time::Instant;

use bytes::Bytes;
use shards::Reply;

use super::{PartitionError, TopicPartition};

/// One partition's produce payload: the batches as received.
#[derive(Debug)]
pub struct ProduceItem {
    pub tp: TopicPartition,
    pub records: Bytes,
    /// The Produce request's `timeout_ms`: how long an acks=all append may wait for the ISR
    /// (Kafka's `DelayedProduce` delay) before answering REQUEST_TIMED_OUT.
    pub timeout_ms: i32,
    /// KIP-890: see `AppendRequest::verification_guard`.
    pub verification_guard: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOk {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub type ProduceResult = Result<ProduceOk, PartitionError>;

/// One partition read of a fetch.
#[derive(Debug, Clone)]
pub struct ReadItem {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: u32,
    /// Return the first batch even when it alone exceeds `max_bytes` (KIP-74: only for the
    /// first partition of a response that has data).
    pub min_one_batch: bool,
    /// KIP-320: the leader epoch the client believes current; -1 skips the check.
    pub current_leader_epoch: i32,
    /// isolation_level=1: read up to the LSO and answer the aborted transactions.
    pub read_committed: bool,
}

/// A partition's state plus the batches read (a `ReadSlice`: file ranges, not bytes yet).
#[derive(Debug)]
pub struct ReadOk {
    pub high_watermark: i64,
    /// Kafka's LSO: the end of what read_committed consumers may read.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub slice: Option<storage::ReadSlice>,
    /// read_committed: the aborted transactions (producer id, first offset) overlapping the
    /// range read; `None` for read_uncommitted (Fetch answers null).
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
}

impl ReadOk {
    pub fn bytes(&self) -> u32 {
        self.slice.as_ref().map_or(0, |s| s.total_bytes)
    }
}

pub type ReadResult = Result<ReadOk, PartitionError>;

/// ListOffsets / OffsetForLeaderEpoch query: Kafka's special timestamps (-1 latest, -2
/// earliest, -3 max timestamp, -4 earliest local) or a timestamp in ms.
#[derive(Debug, Clone)]
pub struct OffsetQuery {
    pub tp: TopicPartition,
    pub timestamp: i64,
    /// KIP-320: the leader epoch the client believes current; -1 skips the check.
    pub current_leader_epoch: i32,
    /// OffsetForLeaderEpoch: answer the end offset of this leader epoch (from the partition's
    /// leader-epoch cache) instead of a timestamp lookup.
    pub end_of_epoch: Option<i32>,
    /// isolation_level READ_COMMITTED: latest is the LSO, and no offset at or past it is
    /// answered (Kafka's `lastFetchableOffset`).
    pub read_committed: bool,
    /// ListOffsets from a follower broker (replica id >= 0): latest is the log end, not the
    /// high watermark (Kafka's `fetchOffsetForTimestamp` without an isolation level).
    pub from_replica: bool,
}

/// (offset, timestamp); offset -1 when no batch matches the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetOk {
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch of `offset` (for OffsetForLeaderEpoch: the epoch answered); -1 unknown.
    pub leader_epoch: i32,
}

pub type OffsetResult = Result<OffsetOk, PartitionError>;

/// DeleteRecords for one partition: `offset` -1 means the high watermark.
#[derive(Debug, Clone)]
pub struct DeleteRecordsItem {
    pub tp: TopicPartition,
    pub offset: i64,
    /// The request's `timeout_ms`: how long a replicated partition waits for its followers'
    /// log start offsets (Kafka's `DelayedDeleteRecords`) before REQUEST_TIMED_OUT.
    pub timeout_ms: i32,
}

/// The new low watermark (log start offset).
pub type DeleteRecordsResult = Result<i64, PartitionError>;

/// The partition service's message to a partition's owning shard.
pub enum PartitionMsg {
    Produce {
        items: Vec<ProduceItem>,
        acks: i16,
        reply: Reply<Vec<ProduceResult>>,
    },
    Read {
        items: Vec<ReadItem>,
        reply: Reply<Vec<ReadResult>>,
    },
    /// Answered when any listed partition's high watermark passes its offset, or at `deadline`.
    Wait {
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
        reply: Reply<()>,
    },
    Offsets {
        items: Vec<OffsetQuery>,
        reply: Reply<Vec<OffsetResult>>,
    },
    DeleteRecords {
        items: Vec<DeleteRecordsItem>,
        reply: Reply<Vec<DeleteRecordsResult>>,
    },
    /// Transaction markers (commit/abort control batches) from the transaction coordinator
    /// (WriteTxnMarkers), one per partition item.
    WriteMarkers {
        items: Vec<MarkerItem>,
        reply: Reply<Vec<MarkerResult>>,
    },
    /// `Wait` for read_committed fetches: answered when any listed partition's LSO passes its
    /// offset (markers and appends wake it), or at `deadline`.
    WaitStable {
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
        reply: Reply<()>,
    },
    /// DescribeProducers: each partition's tracked producers.
    DescribeProducers {
        items: Vec<TopicPartition>,
        reply: Reply<Vec<ProducersResult>>,
    },
    /// A follower's Fetch (replica id `replica_id`) of partitions this broker leads with
    /// followers; long-polls until one has records or `deadline`.
    FollowerFetch {
        replica_id: i32,
        items: Vec<FollowerFetchItem>,
        deadline: Instant,
        reply: Reply<Vec<FollowerFetchResult>>,
    },
    /// `Wait` for a follower's Fetch: answered when any listed partition's log end passes
    /// its fetch offset (what the follower's read returns), it stops leading, or `deadline`.
    /// The owner checks the log end when it subscribes, so an append that landed between the
    /// follower's read and this wait (both on the owner, the caller on another shard) answers
    /// at once instead of at the deadline.
    WaitFollower {
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
        reply: Reply<()>,
    },
    /// KIP-890: starts the transaction verification of producers' batches (one guard per item,
    /// 0 when the producer's transaction is already open there).
    StartVerification {
        items: Vec<VerifyItem>,
        reply: Reply<Vec<VerifyResult>>,
    },
}

/// One partition of a follower's Fetch.
#[derive(Debug, Clone)]
pub struct FollowerFetchItem {
    pub tp: TopicPartition,
    /// The follower's log end.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (-1 unknown): the leader checks divergence.
    pub last_fetched_epoch: i32,
    pub current_leader_epoch: i32,
    pub max_bytes: u32,
    /// The follower's log start offset (-1 unknown): DeleteRecords waits for it.
    pub log_start_offset: i64,
}

/// Records up to the leader's log end, or the diverging epoch.
/// A follower fetch's answer for one partition.
#[derive(Debug)]
pub struct FollowerFetchOk {
    pub read: ReadOk,
    /// Set when the follower's log diverges (no records then): it must truncate.
    pub diverging_epoch: Option<crate::replication::truncation::EpochEndOffset>,
}

pub type FollowerFetchResult = Result<FollowerFetchOk, PartitionError>;

/// A partition's producers (DescribeProducers).
pub type ProducersResult = Result<Vec<crate::producers::ProducerView>, PartitionError>;

/// One transaction marker to write: Kafka's `WriteTxnMarkersRequest` entry for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerItem {
    pub tp: TopicPartition,
    pub producer_id: i64,
    /// The epoch the marker is written with (KIP-890 TV2: the epoch bumped by EndTxn).
    pub producer_epoch: i16,
    /// The coordinator's epoch (its `__transaction_state` partition's leader epoch): a marker
    /// from an older coordinator is TRANSACTION_COORDINATOR_FENCED.
    pub coordinator_epoch: i32,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// WriteTxnMarkers v2 `TransactionVersion`: 2 (KIP-890) requires the marker's epoch to be
    /// above the producer's current epoch, 0/1 at least equal (Kafka's `checkProducerEpoch`).
    pub transaction_version: i16,
}

/// Written (once durable) or why not.
pub type MarkerResult = Result<(), PartitionError>;

/// A producer whose transactional batch a partition leader is about to append (KIP-890).
#[derive(Debug, Clone)]
pub struct VerifyItem {
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The verification guard to append with (0: the transaction is open, none needed).
pub type VerifyResult = Result<u64, PartitionError>;
