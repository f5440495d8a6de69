//! Transactions in a partition's producer state (KIP-98, KIP-890): a transactional batch opens
//! its producer's transaction at its first offset, a commit/abort marker closes it; the oldest
//! open transaction's first offset is the partition's first unstable offset (its LSO). Kafka's
//! `ProducerAppendInfo.appendEndTxnMarker` / `ProducerStateManager` rules. Pure: no I/O.
//!
//! Invariants: `ongoing` holds exactly the producers whose entry has a `txn_first_offset`, keyed
//! by it; `check_marker` never changes state and `complete_marker` never rejects (the caller
//! runs check -> append -> complete under the partition's producer lock).

use super::state::{Entry, ProducerId, ProducerStates};

pub use super::state::CompletedTxn;

/// Why a marker is refused (Kafka's exceptions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// INVALID_PRODUCER_EPOCH.
    #[error("epoch {epoch} of producer {producer} marker is {cmp} the last seen epoch {current} (TV{version})")]
    InvalidEpoch {
        producer: i64,
        epoch: i16,
        current: i16,
        cmp: &'static str,
        version: i16,
    },
    /// TRANSACTION_COORDINATOR_FENCED.
    #[error("invalid coordinator epoch {requested} for producer {producer}: {current} is newer")]
    CoordinatorFenced {
        producer: i64,
        requested: i32,
        current: i32,
    },
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when the producer has no batch remembered (only markers).
    pub last_sequence: i32,
    /// Wall clock (ms) of the producer's last append.
    pub last_timestamp_ms: i64,
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub current_txn_start_offset: i64,
}

/// Kafka's `EndTransactionMarker` control record: key = version i16 (0), type i16 (0 ABORT,
/// 1 COMMIT); value = version i16 (0), coordinator epoch i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

const CONTROL_RECORD_VERSION: i16 = 0;
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
const END_TXN_MARKER_VERSION: i16 = 0;

impl EndTxnMarker {
    /// (key, value) of the control record.
    pub fn encode(&self) -> ([u8; 4], [u8; 6]) {
        let kind = if self.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        };
        let mut key = [0u8; 4];
        key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        key[2..].copy_from_slice(&kind.to_be_bytes());
        let mut value = [0u8; 6];
        value[..2].copy_from_slice(&END_TXN_MARKER_VERSION.to_be_bytes());
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        (key, value)
    }

    /// The marker of a control batch (its first record); `None` when the batch is not an
    /// end-transaction marker or does not parse.
    pub fn parse(batch: &[u8]) -> Option<Self> {
        let record = storage::batch::records(batch).ok()?.next()?.ok()?;
        let key = record.key?;
        let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
        let commit = match kind {
            CONTROL_TYPE_ABORT => false,
            CONTROL_TYPE_COMMIT => true,
            _ => return None,
        };
        let value = record.value?;
        let coordinator_epoch = i32::from_be_bytes(value.get(2..6)?.try_into().ok()?);
        Some(Self {
            commit,
            coordinator_epoch,
        })
    }

    /// The control batch carrying this marker for `producer_id` / `epoch` (attributes:
    /// transactional + control; no sequence), as Kafka's `MemoryRecords.withEndTransactionMarker`.
    pub fn batch(&self, producer_id: i64, epoch: i16, now_ms: i64) -> bytes::BytesMut {
        let (key, value) = self.encode();
        storage::BatchBuilder::new(now_ms)
            .producer(producer_id, epoch, -1)
            .transactional()
            .control()
            .record(Some(&key), Some(&value), &[])
            .build()
    }
}

impl ProducerStates {
    /// Kafka's `checkProducerEpoch` (markers) and `checkCoordinatorEpoch`: TV2 markers carry
    /// the epoch bumped by EndTxn, so they must be above the producer's epoch (a retry of a
    /// marker already written, equal epoch with no open transaction, is allowed); TV0/1
    /// markers at least equal. An unknown producer accepts any marker.
    pub fn check_marker(
        &self,
        producer: ProducerId,
        epoch: i16,
        coordinator_epoch: i32,
        transaction_version: i16,
    ) -> Result<(), MarkerError> {
        let Some(entry) = self.entries.get(&producer) else {
            return Ok(());
        };
        let current = entry.epoch;
        let invalid = if transaction_version >= 2 {
            epoch <= current
        } else {
            epoch < current
        };
        let retry =
            transaction_version >= 2 && epoch == current && entry.txn_first_offset.is_none();
        if invalid && !retry {
            return Err(MarkerError::InvalidEpoch {
                producer: producer.0,
                epoch,
                current,
                cmp: if transaction_version >= 2 { "<=" } else { "<" },
                version: transaction_version,
            });
        }
        if entry.coordinator_epoch > coordinator_epoch {
            return Err(MarkerError::CoordinatorFenced {
                producer: producer.0,
                requested: coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker appended at `offset` (also used to replay the log, unchecked): closes
    /// the producer's transaction, takes the marker's epochs. Answers the closed transaction,
    /// `None` when none was open (such a marker moves no LSO and indexes nothing).
    pub fn complete_marker(
        &mut self,
        producer: ProducerId,
        epoch: i16,
        coordinator_epoch: i32,
        offset: i64,
        commit: bool,
        now_ms: i64,
    ) -> Option<CompletedTxn> {
        // KIP-890: an append verified before this marker must not open a new transaction.
        self.clear_verification(producer);
        if !self.entries.contains_key(&producer) {
            self.make_room();
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        let entry = self
            .entries
            .entry(producer)
            .or_insert_with(|| Entry::new(epoch, now_ms, tick));
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_ms = entry.last_ms.max(now_ms);
        let old_tick = std::mem::replace(&mut entry.tick, tick);
        let first = entry.txn_first_offset.take();
        self.lru.remove(&old_tick);
        self.lru.insert(tick, producer);
        let first = first?;
        self.ongoing.remove(&first);
        Some(CompletedTxn {
            producer_id: producer.0,
            first_offset: first,
            last_offset: offset,
            aborted: !commit,
        })
    }

    /// The first offset of the oldest open transaction (Kafka's `firstUnstableOffset`).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Kafka's `lastStableOffset(completedTxn)`: where the LSO stands once `txn` is closed (the
    /// next open transaction of another producer, else just past the marker); recorded in the
    /// aborted-transaction index entry.
    pub fn last_stable_offset_after(&self, txn: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, p)| p.0 != txn.producer_id)
            .map_or(txn.last_offset + 1, |(first, _)| *first)
    }

    /// Open transactions, (producer, first offset), oldest first (DescribeTransactions, tests).
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(o, p)| (p.0, *o)).collect()
    }

    /// Puts back one producer from a snapshot.
    pub(super) fn restore(
        &mut self,
        producer: ProducerId,
        epoch: i16,
        batch: Option<super::state::BatchMeta>,
        last_ms: i64,
        coordinator_epoch: i32,
        txn_first_offset: Option<i64>,
    ) {
        // A later entry of the same producer and epoch adds its batch (Sluice writes one entry
        // per remembered batch, oldest first; Kafka keeps the last entry of a producer).
        if let Some(entry) = self.entries.get_mut(&producer) {
            if entry.epoch == epoch {
                if entry.batches.len() == super::state::BATCHES_RETAINED {
                    entry.batches.pop_front();
                }
                entry.batches.extend(batch);
                return;
            }
        }
        self.remove(producer);
        self.make_room();
        let tick = self.next_tick;
        self.next_tick += 1;
        let mut entry = Entry::new(epoch, last_ms, tick);
        entry.batches.extend(batch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.txn_first_offset = txn_first_offset;
        if let Some(first) = txn_first_offset {
            self.ongoing.insert(first, producer);
        }
        self.entries.insert(producer, entry);
        self.lru.insert(tick, producer);
    }

    /// Replays a marker found in the log at open (unchecked, as Kafka's log recovery does),
    /// remembering the transaction it closed for the aborted-transaction index.
    pub fn replay_marker(
        &mut self,
        producer: ProducerId,
        epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
        now_ms: i64,
    ) {
        let completed = self.complete_marker(
            producer,
            epoch,
            marker.coordinator_epoch,
            offset,
            marker.commit,
            now_ms,
        );
        if let Some(txn) = completed.filter(|t| t.aborted) {
            let stable = self.last_stable_offset_after(&txn);
            self.recovered.push((txn, stable));
        }
    }

    /// The aborted transactions `replay_marker` saw, with the LSO after each (once).
    pub fn take_recovered_aborts(&mut self) -> Vec<(CompletedTxn, i64)> {
        std::mem::take(&mut self.recovered)
    }

    /// Every tracked producer (DescribeProducers).
    pub fn views(&self) -> Vec<ProducerView> {
        let mut out: Vec<ProducerView> = self
            .entries
            .iter()
            .map(|(p, e)| ProducerView {
                producer_id: p.0,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: e.last_ms,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|v| v.producer_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producers::state::{BatchIdent, BatchMeta, SequenceError, StateLimits};

    const LIMITS: StateLimits = StateLimits {
        max_producers: 3,
        expiration_ms: 1000,
    };

    fn txn_batch(producer: i64, epoch: i16, seq: i32, records: i32) -> BatchIdent {
        BatchIdent {
            producer: ProducerId(producer),
            epoch,
            first_seq: seq,
            offset_delta: records - 1,
            transactional: true,
        }
    }

    fn append(s: &mut ProducerStates, b: BatchIdent, offset: i64, now: i64) {
        assert!(s.plan(&[b], now).is_ok());
        let meta = BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq(),
            base_offset: offset,
            last_offset: offset + i64::from(b.offset_delta),
            log_append_time_ms: -1,
        };
        s.commit(&b, meta, now);
    }

    /// Two transactions interleave; the LSO is the oldest open one's first offset; an abort
    /// records where the LSO then stands; a commit moves it on; markers without a transaction
    /// complete nothing.
    #[test]
    fn control_batches_carry_kafkas_end_txn_marker() {
        let marker = EndTxnMarker {
            commit: false,
            coordinator_epoch: 9,
        };
        let batch = marker.batch(42, 3, 1_000);
        let header = storage::BatchHeader::parse(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
        assert_eq!(header.base_sequence, -1);
        assert_eq!(EndTxnMarker::parse(&batch), Some(marker));
        let (key, value) = marker.encode();
        assert_eq!(key, [0, 0, 0, 0]);
        assert_eq!(value, [0, 0, 0, 0, 0, 9]);
        let commit = EndTxnMarker {
            commit: true,
            coordinator_epoch: 0,
        };
        assert_eq!(commit.encode().0, [0, 0, 0, 1]);
    }

    #[test]
    fn transactions_open_close_and_bound_the_lso() {
        let mut s = ProducerStates::new(LIMITS);
        assert_eq!(s.first_unstable_offset(), None);
        append(&mut s, txn_batch(1, 0, 0, 2), 0, 0); // 0..=1
        append(&mut s, txn_batch(2, 0, 0, 1), 2, 0); // 2
        append(&mut s, txn_batch(1, 0, 2, 1), 3, 0); // 3: same transaction
        assert_eq!(s.first_unstable_offset(), Some(0));
        assert_eq!(s.ongoing_transactions(), vec![(1, 0), (2, 2)]);
        assert_eq!(s.check_marker(ProducerId(1), 0, 0, 0), Ok(()));
        let done = s.complete_marker(ProducerId(1), 0, 0, 4, false, 0).unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 4,
                aborted: true
            }
        );
        assert_eq!(s.last_stable_offset_after(&done), 2);
        assert_eq!(s.first_unstable_offset(), Some(2));
        let done = s.complete_marker(ProducerId(2), 0, 0, 5, true, 0).unwrap();
        assert!(!done.aborted);
        assert_eq!(s.last_stable_offset_after(&done), 6);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.complete_marker(ProducerId(2), 0, 0, 6, true, 0), None);
    }

    /// Kafka's epoch rules for markers: TV0/1 need >= the producer's epoch, TV2 > (except a
    /// retry of a marker already written); an older coordinator is fenced.
    #[test]
    fn markers_are_fenced_by_producer_and_coordinator_epochs() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, txn_batch(1, 3, 0, 1), 0, 0);
        assert!(matches!(
            s.check_marker(ProducerId(1), 2, 0, 0),
            Err(MarkerError::InvalidEpoch { current: 3, .. })
        ));
        assert_eq!(s.check_marker(ProducerId(1), 3, 0, 1), Ok(()));
        assert!(matches!(
            s.check_marker(ProducerId(1), 3, 0, 2),
            Err(MarkerError::InvalidEpoch { .. })
        ));
        assert_eq!(s.check_marker(ProducerId(1), 4, 0, 2), Ok(()));
        s.complete_marker(ProducerId(1), 4, 7, 1, true, 0);
        // TV2 retry of the marker just written: same epoch, no open transaction.
        assert_eq!(s.check_marker(ProducerId(1), 4, 7, 2), Ok(()));
        assert!(matches!(
            s.check_marker(ProducerId(1), 5, 6, 2),
            Err(MarkerError::CoordinatorFenced {
                requested: 6,
                current: 7,
                ..
            })
        ));
        // The marker's epoch is the producer's now: old-epoch data is fenced.
        assert!(matches!(
            s.plan(&[txn_batch(1, 3, 1, 1)], 0),
            Err(SequenceError::InvalidEpoch { current: 4, .. })
        ));
        assert_eq!(s.check_marker(ProducerId(9), 0, 0, 2), Ok(()), "unknown");
    }

    /// A non-transactional batch while the producer's transaction is open is
    /// INVALID_TXN_STATE; a producer with an open transaction never expires nor is evicted.
    #[test]
    fn open_transactions_pin_their_producer() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, txn_batch(1, 0, 0, 1), 0, 0);
        let mut plain = txn_batch(1, 0, 1, 1);
        plain.transactional = false;
        assert!(matches!(
            s.plan(&[plain], 0),
            Err(SequenceError::InvalidTxnState { producer: 1 })
        ));
        for p in 2..6 {
            let mut b = txn_batch(p, 0, 0, 1);
            b.transactional = false;
            append(&mut s, b, p, 5_000);
        }
        assert_eq!(s.first_unstable_offset(), Some(0));
        assert!(s.views().iter().any(|v| v.producer_id == 1
            && v.current_txn_start_offset == 0
            && v.last_sequence == 0));
    }
}
