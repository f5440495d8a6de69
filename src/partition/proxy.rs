//! The seam between the partition's callers (the shard's partition service, the group
//! coordinator) and a partition implementation: what a partition leader offers, after Redpanda's
//! `kafka/data/partition_proxy.h`. Today's one implementation is the single-replica
//! [`Partition`](super::Partition) (`local.rs`); a replicated partition (follower fetch, ISR,
//! high watermark = the ISR's replicated offset) implements the same trait and nothing above it
//! changes.
//!
//! Offsets, in Kafka's terms: log start offset <= last stable offset <= high watermark <= log
//! end offset. Consumers read below the high watermark (read_committed consumers below the LSO,
//! once transactions exist); the log end is where the next append lands.

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;

use super::api::{DeleteRecordsResult, OffsetOk, ProduceOk, ReadOk};
use super::{LeaderEpochError, PartitionError, TopicPartition};

/// Who is appending, which decides the checks a batch gets (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: validation, the topic's codec and timestamp limits, idempotence.
    Client,
    /// The group coordinator's own records (`__consumer_offsets`).
    Coordinator,
}

/// One append: the batches, who sends them and the acks policy they are answered under.
#[derive(Debug)]
pub struct AppendRequest {
    pub records: Bytes,
    pub origin: AppendOrigin,
    /// 0, 1: answered once written; -1: once durable (fsynced), for a single replica.
    pub acks: i16,
    /// Answer acks=-1 only once the append is durable (fsynced, by the shard's group commit,
    /// `storage::sync`); false with `log.flush.on.acks.all = false` (Kafka's semantics).
    pub flush_on_acks_all: bool,
    pub now_ms: i64,
    /// How long an acks=all append may wait for replication to the ISR: the Produce
    /// request's `timeout_ms` (Kafka's `DelayedProduce` delay), REQUEST_TIMED_OUT after it;
    /// `None` (appends that are no client's Produce) waits the leader's default. Unused by a
    /// single replica.
    pub timeout_ms: Option<i64>,
    /// KIP-890: Some(guard) when a transactional batch of this client append must be verified
    /// (`producers::verify`; 0 = none started); None for appends that need no verification.
    pub verification_guard: Option<u64>,
}

/// What an append did, for the answer and the shard's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub ok: ProduceOk,
    /// Records newly written (0 for a producer's retry found in the log).
    pub records_appended: u32,
    /// How long the durability wait took (acks=-1).
    pub durable_wait: Option<std::time::Duration>,
}

/// A partition led on this shard.
#[allow(async_fn_in_trait)] // shard-local (!Send) by design: one partition, one thread
pub trait PartitionProxy {
    fn topic_partition(&self) -> &TopicPartition;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    /// The exclusive end of what consumers may read.
    fn high_watermark(&self) -> i64;
    /// The exclusive end of what read_committed consumers may read (Kafka's LSO).
    fn last_stable_offset(&self) -> i64;
    /// The epoch this node leads the partition with; stamped on every appended batch.
    fn leader_epoch(&self) -> i32;
    /// KIP-320: a client's `current_leader_epoch` must be ours (-1 skips the check).
    fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), LeaderEpochError>;

    /// The one write path: validate, append, answer per `acks`, wake long-polls.
    async fn append(self: Rc<Self>, request: AppendRequest) -> Result<Appended, PartitionError>;
    /// The one read path: batches from `offset`, bounded by the high watermark (by the LSO
    /// when `read_committed`, answering the aborted transactions of the range read).
    async fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<ReadOk, PartitionError>;
    /// ListOffsets: Kafka's special timestamps (-1 latest, -2 earliest, -3 max timestamp, -4
    /// earliest local) or the first offset at or after a timestamp.
    async fn offset_for_timestamp(&self, timestamp: i64) -> Result<OffsetOk, PartitionError>;
    /// OffsetForLeaderEpoch: (epoch, end offset) of `epoch` from the leader-epoch cache.
    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64);
    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark).
    async fn delete_records(&self, offset: i64) -> DeleteRecordsResult;
    /// A receiver completed when the high watermark moves (or dropped at shutdown); `None`
    /// when the partition's waiter list is full.
    fn subscribe(&self) -> Option<oneshot::Receiver<()>>;
}
