//! A coordinator over an internal topic: what the group coordinator (`__consumer_offsets`) and
//! the transaction coordinator (`__transaction_state`) share.
//!
//! - Placement: a key (group id, transactional id) belongs to partition
//!   `abs(javaHashCode(key)) % P` of its topic (Kafka's formula), and so to the shard owning
//!   that partition.
//! - Writes: keyed records in the coordinator's schemas, packed into uncompressed v2 batches
//!   and appended through the partition service's write path (`append_coordinator`, origin
//!   `Coordinator`), under the partition's write lock (`Loaded`), answered once written.
//! - Reads: when a shard owns a partition it replays it from log start to the log end (as
//!   Kafka's loaders, records above the high watermark included), batch by batch (`replay`),
//!   and only then serves that partition's keys (`Loaded`).
//! - The topic is created with the coordinator's configs (`io::ensure_topic`).
//! - `io`: everything done on a shard (loading, appends, replay, topic creation).
//!
//! Invariants: I/O errors on the write path stop the process (as for produce); a batch that
//! does not decode during replay is skipped with a warning, never a panic; state is
//! shard-local (`RefCell`, never borrowed across an `.await`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use storage::builder::BatchBuilder;

use crate::partition::PartitionError;

pub mod io;

/// Records are packed into batches of about this size.
const BATCH_BYTES_TARGET: usize = 512 * 1024;
/// Bytes read per step of a replay.
pub(crate) const REPLAY_READ_BYTES: u32 = 1024 * 1024;
/// Attribute bit of a transactional batch (Kafka's `RecordBatch.TRANSACTIONAL_FLAG_MASK`).
const ATTR_TRANSACTIONAL: i16 = 0x10;

/// One record: key and value (None = tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("coordinator partition {0} is not loaded on this shard")]
    NotLoaded(u32),
    #[error("coordinator log: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("coordinator partition: {0}")]
    Partition(PartitionError),
}

/// What a coordinator answers when an append of its own records to its partition failed with
/// a partition error: the rows Kafka 4's group coordinator
/// (`GroupMetadataManager.appendGroupMetadataErrorToResponseError`,
/// `CoordinatorOperationExceptionHelper.handleOperationException`) and transaction coordinator
/// (`TransactionStateManager.appendTransactionToLog`) share. Each coordinator turns it into its
/// own code (`groups::coordinator::store_error_code`, `txn::failures::store_error_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFailure {
    /// UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT.
    CoordinatorNotAvailable,
    /// NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR, a leader epoch that moved.
    NotCoordinator,
    /// MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, and the checks of a client's batch, which
    /// the coordinator's own uncompressed batches cannot fail.
    UnknownServerError,
    /// A transactional batch (TxnOffsetCommit) the partition's producer state refused.
    InvalidProducerEpoch,
    /// The same, INVALID_TXN_STATE.
    InvalidTxnState,
}

/// Classifies a failed coordinator append's partition error: one exhaustive match, so a new
/// partition error cannot go unmapped (decision 0036).
pub fn append_failure(error: &PartitionError) -> AppendFailure {
    use AppendFailure as F;
    use PartitionError as P;
    match error {
        P::UnknownTopicOrPartition
        | P::NotEnoughReplicas { .. }
        // Kafka 4's coordinators append with acks=1 and wait for the high watermark, so they
        // never see this code; Kafka 3's mapped it with NOT_ENOUGH_REPLICAS.
        | P::NotEnoughReplicasAfterAppend { .. }
        | P::RequestTimedOut => F::CoordinatorNotAvailable,
        // NOT_LEADER_OR_FOLLOWER (`Unavailable`: the replicated leader resigned or the broker
        // is shutting down), KAFKA_STORAGE_ERROR, and a leader epoch that moved under the
        // append: this broker no longer coordinates the partition.
        P::NotLeaderOrFollower
        | P::Unavailable
        | P::Storage(_)
        | P::FencedLeaderEpoch { .. }
        | P::UnknownLeaderEpoch { .. } => F::NotCoordinator,
        // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE.
        P::TooLarge { .. } | P::AppendTooLarge { .. } => F::UnknownServerError,
        P::InvalidProducerEpoch(_) => F::InvalidProducerEpoch,
        P::InvalidTxnState(_) => F::InvalidTxnState,
        P::UnknownTopicId
        | P::Corrupt(_)
        | P::InvalidRecord(_)
        | P::UnsupportedCompressionType(_)
        | P::OffsetOutOfRange { .. }
        | P::InvalidRequiredAcks(_)
        | P::InternalTopic(_)
        | P::OutOfOrderSequence(_)
        | P::InvalidTimestamp(_)
        | P::TransactionCoordinatorFenced(_)
        | P::TopicAuthorizationFailed
        | P::TxnVerification { .. } => F::UnknownServerError,
    }
}

/// Kafka's partition for a coordinator key: `abs(javaStringHashCode(key)) % partitions`, with
/// Kafka's `Utils.abs` (mask the sign bit).
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let hash = key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = hash & 0x7fff_ffff;
    positive.unsigned_abs() % partitions.max(1)
}

/// A loaded partition of a coordinator topic: its write lock (records are decided and
/// appended under it, so the log holds them in the order memory changed).
pub struct PartitionLog {
    pub lock: futures_util::lock::Mutex<()>,
}

/// The partitions of one coordinator topic this shard has replayed (and so may serve).
#[derive(Default)]
pub struct Loaded {
    logs: RefCell<HashMap<u32, Rc<PartitionLog>>>,
}

impl Loaded {
    pub fn get(&self, index: u32) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(&index).cloned()
    }

    pub fn mark_loaded(&self, index: u32) {
        let log = PartitionLog {
            lock: futures_util::lock::Mutex::new(()),
        };
        self.logs.borrow_mut().insert(index, Rc::new(log));
    }

    /// Forgets a partition (another broker leads it now).
    pub fn remove(&self, index: u32) {
        self.logs.borrow_mut().remove(&index);
    }

    pub fn indexes(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.logs.borrow().keys().copied().collect();
        all.sort_unstable();
        all
    }
}

/// A transactional producer writing records (TxnOffsetCommit): the batches carry its id and
/// epoch and the transactional flag, so the partition's markers complete them on replay.
#[derive(Debug, Clone, Copy)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Packs `records` into uncompressed v2 batches of about `BATCH_BYTES_TARGET`.
pub fn build_batches(records: &[KeyValue], now_ms: i64, producer: Option<TxnProducer>) -> Bytes {
    let start = || {
        let builder = BatchBuilder::new(now_ms);
        match producer {
            // Base sequence 0, as Kafka's GroupMetadataManager writes them (sequences of
            // coordinator writes are not checked).
            Some(p) => builder.producer(p.producer_id, p.producer_epoch, 0),
            None => builder,
        }
    };
    let mut buf = BytesMut::new();
    let mut builder = start();
    let mut builder_bytes = 0usize;
    let finish = |builder: &BatchBuilder, buf: &mut BytesMut| {
        let mut batch = builder.build();
        if producer.is_some() {
            mark_transactional(&mut batch);
        }
        buf.extend_from_slice(&batch);
    };
    for (key, value) in records {
        builder = builder.record(Some(key), value.as_deref(), &[]);
        builder_bytes += key.len() + value.as_ref().map_or(0, Vec::len) + 16;
        if builder_bytes >= BATCH_BYTES_TARGET {
            finish(&builder, &mut buf);
            builder = start();
            builder_bytes = 0;
        }
    }
    if !builder.is_empty() {
        finish(&builder, &mut buf);
    }
    buf.freeze()
}

/// Sets the transactional attribute of a built batch and recomputes its CRC (which covers the
/// attributes onward).
fn mark_transactional(batch: &mut BytesMut) {
    // Attributes at byte 21..23, CRC at 17..21 (Kafka's v2 batch header).
    let Some(&[high, low]) = batch.get(21..23) else {
        return;
    };
    let value = i16::from_be_bytes([high, low]) | ATTR_TRANSACTIONAL;
    if let Some(field) = batch.get_mut(21..23) {
        field.copy_from_slice(&value.to_be_bytes());
    }
    let crc = storage::batch::compute_crc(batch);
    if let Some(field) = batch.get_mut(17..21) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_formula() {
        // Java: "group".hashCode() == 98629247; abs % 50 == 47.
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        // A negative Java hash: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert!(partition_for("any", 1) == 0);
    }

    #[test]
    fn transactional_batches_carry_the_producer_and_flag() {
        let records = vec![(b"k".to_vec(), Some(b"v".to_vec()))];
        let producer = TxnProducer {
            producer_id: 7,
            producer_epoch: 3,
        };
        let bytes = build_batches(&records, 1, Some(producer));
        let header = storage::BatchHeader::parse(&bytes).expect("header");
        assert!(header.is_transactional());
        assert!(!header.is_control());
        assert_eq!((header.producer_id, header.producer_epoch), (7, 3));
        storage::batch::validate_batch(&bytes, 1 << 20).expect("crc valid");
        let decoded = storage::builder::decode_batch(&bytes).expect("records decode");
        assert_eq!(decoded.records.len(), 1);
        let plain = build_batches(&records, 1, None);
        assert!(!storage::BatchHeader::parse(&plain)
            .expect("h")
            .is_transactional());
    }
}
