//! Transactions on the partition: commit/abort markers (WriteTxnMarkers) appended as control
//! batches through the partition's one write path, the last stable offset, the aborted
//! transactions a read_committed fetch returns, and DescribeProducers' view. Kafka's
//! `UnifiedLog.appendAsLeader(origin = COORDINATOR)` for markers, `firstUnstableOffset` and
//! `collectAbortedTransactions`.
//!
//! Invariants: a marker's check, write, state update and index entry are one step under the
//! partition's producer lock, in a task of its own (a caller going away cannot split them);
//! an abort is answered only once its `.txnindex` entry is written; LSO <= high watermark.

use std::rc::Rc;
use std::time::Instant;

use futures_channel::oneshot;

use super::api::{MarkerItem, MarkerResult};
use super::error::storage_error;
use super::proxy::PartitionProxy;
use super::txn_index::{self, AbortedTxn, TxnIndex, TxnIndexError};
use super::{Partition, PartitionError};
use crate::producers::{EndTxnMarker, MarkerError, ProducerId, ProducerView};

impl PartitionError {
    /// A marker the producer state refused.
    pub fn from_marker(error: MarkerError) -> Self {
        let message = error.to_string();
        match error {
            MarkerError::InvalidEpoch { .. } => Self::InvalidProducerEpoch(message),
            MarkerError::CoordinatorFenced { .. } => Self::TransactionCoordinatorFenced(message),
        }
    }
}

impl Partition {
    /// Kafka's LSO: the first offset of the oldest open transaction, or the high watermark.
    pub fn stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        self.producers
            .borrow()
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions overlapping [fetch_offset, upper_bound): (producer id, first
    /// offset), for a read_committed fetch: Kafka's `collectAbortedTransactions`, reading the
    /// `.txnindex` files from the segment of `fetch_offset` on until one is complete.
    pub async fn aborted_transactions(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
    ) -> Result<Vec<(i64, i64)>, PartitionError> {
        let segments = {
            let mut index = self.aborted.borrow_mut();
            if index.is_empty() {
                return Ok(Vec::new());
            }
            let first = self.segment_of(self.log.log_start_offset().0);
            index.prune_before(first);
            index.segments_from(self.segment_of(fetch_offset))
        };
        let mut out = Vec::new();
        for base in segments {
            let entries = txn_index::read_entries(self.log.dir(), base)
                .await
                .map_err(|e| PartitionError::Storage(e.to_string()))?;
            if txn_index::collect_into(&entries, fetch_offset, upper_bound, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    /// Every aborted transaction still indexed, by marker offset (the log cleaner's
    /// aborted-batch test; held only while it cleans).
    pub async fn aborted_entries(&self) -> Result<Vec<AbortedTxn>, TxnIndexError> {
        let segments = self.aborted.borrow().segments();
        let mut all = Vec::new();
        for base in segments {
            all.extend(txn_index::read_entries(self.log.dir(), base).await?);
        }
        all.sort_by_key(|t| t.last_offset);
        Ok(all)
    }

    /// An open transaction begins below the active segment: the cleaner must wait (Kafka's
    /// cleanable range ends at the first unstable offset).
    pub fn has_open_transaction_in_sealed_segments(&self) -> bool {
        let first_unstable = self.producers.borrow().first_unstable_offset();
        let active = self.log.segment_bases().last().map_or(0, |b| b.0);
        first_unstable.is_some_and(|first| first < active)
    }

    /// Every producer the partition tracks (DescribeProducers).
    pub fn producer_views(&self) -> Vec<ProducerView> {
        self.producers.borrow().views()
    }

    /// Loads the `.txnindex` files once (at the first leadership) and indexes the aborts the
    /// producer-state rebuild found in the log but not in the files (a crash between the
    /// marker's write and its entry's).
    pub(super) async fn load_aborted_index(&self) -> Result<(), TxnIndexError> {
        if self.aborted_loaded.get() {
            return Ok(());
        }
        let dir = self.log.dir().to_path_buf();
        let mut index = TxnIndex::open(&dir)?;
        let recovered = self.producers.borrow_mut().take_recovered_aborts();
        for (done, last_stable_offset) in recovered {
            let base = self.segment_of(done.last_offset);
            let indexed = txn_index::read_entries(&dir, base)
                .await?
                .iter()
                .any(|t| t.last_offset == done.last_offset);
            if indexed || done.last_offset < self.log_start_offset() {
                continue;
            }
            let txn = AbortedTxn {
                producer_id: done.producer_id,
                first_offset: done.first_offset,
                last_offset: done.last_offset,
                last_stable_offset,
            };
            txn_index::persist(&dir, base, &txn).await?;
            index.appended(base);
        }
        *self.aborted.borrow_mut() = index;
        self.aborted_loaded.set(true);
        let latest = crate::producers::snapshot::list(&dir)
            .ok()
            .and_then(|all| all.last().map(|(offset, _)| *offset));
        self.snapshot_at.set(latest.unwrap_or(-1));
        // Kafka snapshots after recovery too: an unclean restart then replays only what was
        // appended since this open (or the last clean close).
        self.snapshot_producers().await;
        Ok(())
    }

    /// Writes the producer-state snapshot as of the log end (at open and at a clean close),
    /// unless one exists for that offset or there are no producers. A failure is logged: the
    /// state is then rebuilt from the log at the next open.
    pub async fn snapshot_producers(&self) {
        // Under the producer lock no append with a producer id is between its write and its
        // state update, so the state is exactly that of the log up to its end.
        if let Some(active) = self.log.active_segment_base() {
            self.snapshot_segment.set(active.0);
        }
        let (log_end, bytes) = {
            let _serialised = self.producer_lock.lock().await;
            let log_end = self.log.log_end_offset().0;
            if self.snapshot_at.get() == log_end || self.producers.borrow().is_empty() {
                return;
            }
            let bytes = crate::producers::snapshot::encode(&self.producers.borrow());
            (log_end, bytes)
        };
        let dir = self.log.dir().to_path_buf();
        match crate::producers::snapshot::write_bytes(&dir, log_end, bytes).await {
            Ok(()) => self.snapshot_at.set(log_end),
            Err(e) => {
                tracing::warn!(partition = %self.tp.dir_name(), error = %e, "producer snapshot not written")
            }
        }
    }

    /// After the log was truncated (a follower truncating to its leader, Kafka's
    /// `UnifiedLog.truncateTo`): drops the aborted-transaction entries whose marker is gone
    /// and rebuilds the producer state from the newest snapshot at or below the new log end
    /// (newer ones are deleted) plus the log past it, so transactions whose marker was cut off
    /// are open again. Call it after `storage::Log::truncate_to`, before the next append.
    pub async fn truncated(&self, now_ms: i64) -> Result<(), TxnIndexError> {
        let _serialised = self.producer_lock.lock().await;
        let dir = self.log.dir().to_path_buf();
        let end = self.log.log_end_offset().0;
        let segments = self.aborted.borrow().segments();
        for base in segments {
            let entries = txn_index::read_entries(&dir, base).await?;
            let kept: Vec<AbortedTxn> = entries
                .iter()
                .copied()
                .filter(|t| t.last_offset < end)
                .collect();
            if kept.len() == entries.len() {
                continue;
            }
            let path = storage::txn_index_path(&dir, base);
            let bytes: Vec<u8> = kept.iter().flat_map(AbortedTxn::encode).collect();
            crate::atomic_file::write_off_thread(path.clone(), bytes)
                .await
                .map_err(|source| TxnIndexError { path, source })?;
        }
        *self.aborted.borrow_mut() = TxnIndex::open(&dir)?;
        let limits = crate::producers::rebuild::RebuildLimits {
            state: self.producers.borrow().limits(),
            previous_segment_bytes_max: 0,
        };
        let mut states = crate::producers::rebuild::rebuild(&self.log, limits, now_ms).await;
        // Their entries are in the index already (their markers are below the new end).
        drop(states.take_recovered_aborts());
        *self.producers.borrow_mut() = states;
        let latest = crate::producers::snapshot::list(&dir)
            .ok()
            .and_then(|all| all.last().map(|(offset, _)| *offset));
        self.snapshot_at.set(latest.unwrap_or(-1));
        Ok(())
    }

    /// Kafka snapshots the producer state when a segment rolls, so an unclean restart replays
    /// at most about a segment: called after each append, it writes a snapshot when the active
    /// segment changed since the last one.
    pub(super) async fn snapshot_on_roll(&self) {
        let rolled = self
            .log
            .active_segment_base()
            .is_some_and(|active| active.0 != self.snapshot_segment.get());
        if rolled && !self.producers.borrow().is_empty() {
            self.snapshot_producers().await;
        }
    }

    fn segment_of(&self, offset: i64) -> i64 {
        self.log
            .segment_base_of(storage::Offset(offset))
            .map_or(0, |b| b.0)
    }

    /// Writes one marker: check the epochs, append the control batch, close the producer's
    /// transaction, index an abort, wait until durable when `durable` (WriteTxnMarkers appends
    /// with acks=-1), wake long-polls (the LSO moved).
    pub async fn write_marker(
        self: Rc<Self>,
        item: MarkerItem,
        now_ms: i64,
        durable: bool,
    ) -> MarkerResult {
        let (tx, rx) = oneshot::channel();
        let partition = self.clone();
        let task = async move {
            let _serialised = partition.producer_lock.lock().await;
            let result = write_marker_locked(&partition, &item, now_ms).await;
            let _caller_gone_is_fine = tx.send(result);
        };
        compio::runtime::spawn(task).detach();
        let last_offset = rx.await.unwrap_or(Err(PartitionError::Unavailable))?;
        if durable {
            let started = Instant::now();
            storage::sync::wait_durable(&self.log, storage::Offset(last_offset))
                .await
                .map_err(|e| storage_error(&self.tp, e))?;
            tracing::trace!(tp = %self.tp.dir_name(), elapsed = ?started.elapsed(), "marker durable");
        }
        self.notify_appended();
        Ok(())
    }
}

/// The marker's step under the producer lock; answers the marker's offset.
async fn write_marker_locked(
    partition: &Partition,
    item: &MarkerItem,
    now_ms: i64,
) -> Result<i64, PartitionError> {
    let producer = ProducerId(item.producer_id);
    if item.producer_id < 0 {
        return Err(PartitionError::InvalidRecord(format!(
            "transaction marker for producer id {}",
            item.producer_id
        )));
    }
    partition
        .producers
        .borrow()
        .check_marker(
            producer,
            item.producer_epoch,
            item.coordinator_epoch,
            item.transaction_version,
        )
        .map_err(PartitionError::from_marker)?;
    let marker = EndTxnMarker {
        commit: item.commit,
        coordinator_epoch: item.coordinator_epoch,
    };
    let batch = marker.batch(item.producer_id, item.producer_epoch, now_ms);
    let opts = storage::AppendOptions {
        leader_epoch: partition.leader_epoch(),
        now_ms,
    };
    let info = partition
        .log
        .append_control(batch, opts)
        .await
        .map_err(|e| storage_error(&partition.tp, e))?;
    let offset = info.base_offset.0;
    let (completed, stable) = {
        let mut states = partition.producers.borrow_mut();
        let completed = states.complete_marker(
            producer,
            item.producer_epoch,
            item.coordinator_epoch,
            offset,
            item.commit,
            now_ms,
        );
        let stable = completed.map(|txn| states.last_stable_offset_after(&txn));
        (completed, stable)
    };
    if let (Some(txn), Some(last_stable_offset)) = (completed, stable) {
        if txn.aborted {
            index_aborted(partition, &txn, last_stable_offset).await;
        }
    }
    Ok(offset)
}

/// Records an aborted transaction (closed by its marker at `txn.last_offset`) in the
/// aborted-transaction index of the marker's segment, on the leader and on followers alike
/// (Kafka's `UnifiedLog.append` -> `updateTxnIndex` for both).
pub(super) async fn index_aborted(
    partition: &Partition,
    txn: &crate::producers::CompletedTxn,
    last_stable_offset: i64,
) {
    let entry = AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset,
    };
    let base = partition.segment_of(txn.last_offset);
    if let Err(e) = txn_index::persist(partition.log.dir(), base, &entry).await {
        // The marker is in the log but its index entry is not: aborted records could
        // reach read_committed consumers; a disk that fails a write is not trusted.
        shards::fatal(format!(
            "cannot write the aborted-transaction index of {}: {e}",
            partition.tp.dir_name()
        ));
    }
    partition.aborted.borrow_mut().appended(base);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::proxy::{AppendOrigin, AppendRequest};
    use crate::partition::TopicPartition;
    use bytes::Bytes;

    async fn leader(dir: &std::path::Path) -> Rc<Partition> {
        let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::rebuild::rebuild(&log, limits, 1_000).await;
        let partition = Partition::new(TopicPartition::new("t", 0), log, 8, producers);
        partition.become_leader(0).await.unwrap();
        Rc::new(partition)
    }

    fn txn_batch(producer: i64, seq: i32, records: usize) -> Bytes {
        let mut b = storage::BatchBuilder::new(1_000)
            .producer(producer, 0, seq)
            .transactional();
        for _ in 0..records {
            b = b.record(None, Some(b"v"), &[]);
        }
        b.build().freeze()
    }

    fn produce(records: Bytes) -> AppendRequest {
        AppendRequest {
            verification_guard: None,
            records,
            origin: AppendOrigin::Client,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 2_000,
            timeout_ms: None,
        }
    }

    fn marker(producer: i64, epoch: i16, commit: bool) -> MarkerItem {
        MarkerItem {
            tp: TopicPartition::new("t", 0),
            producer_id: producer,
            producer_epoch: epoch,
            coordinator_epoch: 0,
            commit,
            transaction_version: 0,
        }
    }

    /// Transactional batches hold the LSO at their first offset until their marker; an abort
    /// is indexed and answered to read_committed reads of its range; a stale epoch is refused;
    /// all of it survives a reopen (index files, producer-state rebuild).
    #[compio::test]
    async fn markers_close_transactions_and_aborts_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        p.clone().append(produce(txn_batch(1, 0, 2))).await.unwrap(); // 0..=1
        p.clone().append(produce(txn_batch(2, 0, 1))).await.unwrap(); // 2
        assert_eq!((p.stable_offset(), p.high_watermark()), (0, 3));
        p.clone()
            .write_marker(marker(1, 0, false), 3_000, true)
            .await
            .unwrap(); // 3
        assert_eq!(p.stable_offset(), 2);
        assert_eq!(p.aborted_transactions(0, 4).await.unwrap(), vec![(1, 0)]);
        assert_eq!(p.aborted_transactions(4, 5).await.unwrap(), vec![]);
        let stale = p
            .clone()
            .write_marker(marker(2, -1, true), 3_000, true)
            .await;
        assert!(matches!(
            stale,
            Err(PartitionError::InvalidProducerEpoch(_))
        ));
        p.clone()
            .write_marker(marker(2, 0, true), 3_000, true)
            .await
            .unwrap(); // 4
        assert_eq!((p.stable_offset(), p.high_watermark()), (5, 5));
        p.clone().append(produce(txn_batch(2, 1, 1))).await.unwrap(); // 5: open again
        assert_eq!(p.stable_offset(), 5);
        p.storage().close().await.unwrap();
        drop(p);
        let p = leader(dir.path()).await;
        assert_eq!((p.stable_offset(), p.high_watermark()), (5, 6));
        assert_eq!(p.aborted_transactions(0, 6).await.unwrap(), vec![(1, 0)]);
        let views = p.producer_views();
        assert_eq!(views.len(), 2);
        assert_eq!(views[1].current_txn_start_offset, 5);
    }

    /// A segment roll writes a producer snapshot, so a restart after a crash replays only the
    /// log past it (the state, here an open transaction, comes from the snapshot).
    #[compio::test]
    async fn a_segment_roll_writes_a_producer_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let size = txn_batch(1, 0, 1).len() as u64;
        let config = storage::LogConfig {
            segment_bytes_max: 2 * size,
            ..storage::LogConfig::default()
        };
        let log = storage::Log::open(dir.path().to_path_buf(), config)
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::rebuild::rebuild(&log, limits, 1_000).await;
        let p = Rc::new(Partition::new(
            TopicPartition::new("t", 0),
            log,
            8,
            producers,
        ));
        p.become_leader(0).await.unwrap();
        assert!(crate::producers::snapshot::list(dir.path())
            .unwrap()
            .is_empty());
        for seq in 0..5 {
            p.clone()
                .append(produce(txn_batch(1, seq, 1)))
                .await
                .unwrap();
        }
        let snapshots = crate::producers::snapshot::list(dir.path()).unwrap();
        assert!(!snapshots.is_empty(), "rolls wrote snapshots");
        let (offset, path) = snapshots.last().unwrap().clone();
        assert!(offset > 0 && offset <= 5, "{offset}");
        let loaded =
            crate::producers::snapshot::decode(&std::fs::read(path).unwrap(), limits.state)
                .unwrap();
        assert_eq!(loaded.first_unstable_offset(), Some(0));
    }

    /// A truncation below an abort marker removes its index entry and reopens the
    /// transaction (the producer state is rebuilt from the log that is left).
    #[compio::test]
    async fn truncation_below_a_marker_reopens_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        p.clone().append(produce(txn_batch(1, 0, 2))).await.unwrap(); // 0..=1
        p.clone()
            .write_marker(marker(1, 0, false), 3_000, true)
            .await
            .unwrap(); // 2
        p.clone().append(produce(txn_batch(2, 0, 1))).await.unwrap(); // 3
        p.clone()
            .write_marker(marker(2, 0, false), 3_000, true)
            .await
            .unwrap(); // 4
        p.snapshot_producers().await;
        assert_eq!(
            p.aborted_transactions(0, 5).await.unwrap(),
            vec![(1, 0), (2, 3)]
        );
        assert_eq!(p.stable_offset(), 5);
        p.storage().truncate_to(storage::Offset(4)).await.unwrap();
        p.truncated(4_000).await.unwrap();
        assert_eq!(p.aborted_transactions(0, 5).await.unwrap(), vec![(1, 0)]);
        assert_eq!(
            p.stable_offset(),
            3,
            "producer 2's transaction is open again"
        );
        assert!(
            crate::producers::snapshot::list(dir.path())
                .unwrap()
                .iter()
                .all(|(offset, _)| *offset <= 4),
            "snapshots past the new end are deleted"
        );
        p.clone()
            .write_marker(marker(2, 0, true), 3_000, true)
            .await
            .unwrap(); // 4
        assert_eq!(p.stable_offset(), 5);
        assert_eq!(p.aborted_transactions(0, 5).await.unwrap(), vec![(1, 0)]);
    }
}
