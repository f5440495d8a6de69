//! The follower-append path of a partition (Kafka's `Partition.appendRecordsToFollowerOrFutureReplica`
//! and `UnifiedLog.appendAsFollower` / `truncateTo`): the leader's batches are stored
//! unchanged (offsets, leader epochs, CRCs as the leader wrote them; each CRC checked), the
//! leader-epoch cache learns every new epoch from the batches, the producer state follows the
//! replicated batches (so this replica can answer an idempotent producer's retry once it
//! leads), and a divergent tail is truncated with the cache cut back to match.
//!
//! Invariants: a follower append starts at or past the log end (never an overlap; a gap is
//! what a compacted leader's log has, and Kafka's follower keeps it, storage checks it); the
//! leader-epoch cache never names an epoch whose start is at or past the log end after a
//! truncation; storage I/O errors stop the process (`error::storage_error`).

use bytes::Bytes;

use super::epochs::LeaderEpochCache;
use super::error::storage_error;
use super::{Partition, PartitionError};
use crate::producers;

/// What a follower append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerAppended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: u32,
}

impl Partition {
    /// Appends the leader's `records` (whole batches, as a Fetch response carried them) at
    /// the log end or past it (the offset gaps of a compacted leader's log are kept). Errors: a
    /// batch that starts below the log end (OffsetOutOfRange: the fetcher's position is
    /// stale), a corrupt batch (CORRUPT_MESSAGE).
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<FollowerAppended, PartitionError> {
        let placed = replicated_batches(&records);
        let epochs = batch_epochs(&records);
        let opts = storage::AppendOptions {
            leader_epoch: self.leader_epoch.get(),
            now_ms,
        };
        let _serialised = self.producer_lock.lock().await;
        let info = self
            .log
            .append_as_follower(records, opts)
            .await
            .map_err(|e| match e {
                storage::StorageError::Io(_) => storage_error(&self.tp, e),
                other => PartitionError::from_storage(other),
            })?;
        // Markers close their transactions here as on the leader (Kafka's `appendAsFollower`
        // updates producer state and the aborted-transaction index alike): else the open
        // transactions hold this replica's LSO once it leads, and its aborts are not indexed.
        let mut aborted = Vec::new();
        {
            let mut states = self.producers.borrow_mut();
            for batch in placed {
                match batch {
                    Replicated::Data(ident, meta) => states.commit(&ident, meta, now_ms),
                    Replicated::Marker(header, marker) => {
                        let completed = states.complete_marker(
                            crate::producers::ProducerId(header.producer_id),
                            header.producer_epoch,
                            marker.coordinator_epoch,
                            header.base_offset,
                            marker.commit,
                            now_ms,
                        );
                        if let Some(txn) = completed.filter(|t| t.aborted) {
                            let stable = states.last_stable_offset_after(&txn);
                            aborted.push((txn, stable));
                        }
                    }
                }
            }
        }
        for (txn, stable) in &aborted {
            super::txn::index_aborted(self, txn, *stable).await;
        }
        self.learn_epochs(&epochs).await?;
        Ok(FollowerAppended {
            base_offset: info.base_offset.0,
            last_offset: info.last_offset.0,
            bytes: info.bytes,
        })
    }

    /// Kafka's `maybeAssignEpochStartOffset` per appended batch: an epoch above the cache's
    /// latest starts at that batch. Persists the cache when it changed.
    async fn learn_epochs(&self, epochs: &[(i32, i64)]) -> Result<(), PartitionError> {
        let mut changed = false;
        {
            let mut cache = self.epochs.borrow_mut();
            for (epoch, base_offset) in epochs {
                changed |= cache.assign(*epoch, *base_offset);
            }
        }
        if changed {
            let snapshot = self.epochs.borrow().clone();
            if let Err(e) = snapshot.persist(self.log.dir()).await {
                epoch_cache_fatal(self, &e);
            }
        }
        Ok(())
    }

    /// Removes every record at and after `offset` (a divergent tail, decided by
    /// `replication::truncation`), cuts the leader-epoch cache back to match and rebuilds the
    /// producer state from what remains. Never called with the high watermark alone.
    pub async fn truncate_to(
        &self,
        offset: i64,
        // The rebuild's limits are the producer state's own (`Partition::truncated`).
        _limits: producers::rebuild::RebuildLimits,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let serialised = self.producer_lock.lock().await;
        self.log
            .truncate_to(storage::Offset(offset))
            .await
            .map_err(|e| storage_error(&self.tp, e))?;
        let end = self.log.log_end_offset().0;
        let cut = truncate_from_end(&self.epochs.borrow(), end);
        if let Some(cache) = cut {
            if let Err(e) = cache.persist(self.log.dir()).await {
                epoch_cache_fatal(self, &e);
            }
            *self.epochs.borrow_mut() = cache;
        }
        drop(serialised);
        // Aborted-transaction entries past the new end go, producer state (open transactions
        // included) is rebuilt from the newest snapshot below it.
        if let Err(e) = self.truncated(now_ms).await {
            shards::fatal(format!(
                "aborted-transaction index of {} after truncation: {e}",
                self.tp.dir_name()
            ));
        }
        Ok(())
    }

    /// Kafka's `truncateFullyAndStartAt`: the log, its leader-epoch cache and producer state
    /// emptied, the log restarting at `offset` (this replica's log ended before the leader's
    /// log start).
    pub async fn truncate_fully_and_start_at(
        &self,
        offset: i64,
        limits: producers::rebuild::RebuildLimits,
    ) -> Result<(), PartitionError> {
        let _serialised = self.producer_lock.lock().await;
        self.log
            .truncate_fully_and_start_at(storage::Offset(offset))
            .await
            .map_err(|e| storage_error(&self.tp, e))?;
        let empty = LeaderEpochCache::default();
        if let Err(e) = empty.persist(self.log.dir()).await {
            epoch_cache_fatal(self, &e);
        }
        *self.epochs.borrow_mut() = empty;
        *self.producers.borrow_mut() = producers::ProducerStates::new(limits.state);
        Ok(())
    }

    /// The follower's (epoch, end offset) for `epoch` from its own cache and log end (what
    /// `replication::truncation::truncation_offset` compares with the leader's answer).
    pub fn own_end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(epoch, self.log.log_end_offset().0)
    }

    /// The latest epoch in the cache (what a follower asks OffsetForLeaderEpoch about and
    /// sends as `last_fetched_epoch`); -1 for an empty cache.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs
            .borrow()
            .latest_epoch()
            .unwrap_or(super::epochs::UNDEFINED_EPOCH)
    }

    /// Kafka's `makeFollower`: truncation and `last_fetched_epoch` see this replica's history
    /// (the in-memory leader-epoch cache, kept in step with the log; the checkpoint is loaded
    /// only when nothing is in memory yet, a partition opened as a follower), and the leader's
    /// epoch is recorded (for KIP-320 checks) without assigning it a start offset: the
    /// batches bring it.
    pub fn become_follower(&self, leader_epoch: i32) -> Result<(), PartitionError> {
        if self.epochs.borrow().latest_epoch().is_none() {
            let loaded = LeaderEpochCache::load(self.log.dir())
                .map_err(|e| PartitionError::Storage(e.to_string()))?;
            if let Some(cache) = loaded {
                *self.epochs.borrow_mut() = cache;
            }
        }
        self.role.set(super::ReplicaRole::Following);
        let current = self.leader_epoch.get().max(leader_epoch);
        self.leader_epoch.set(current);
        Ok(())
    }
}

/// A replicated batch as the producer state sees it.
enum Replicated {
    /// A producer's data batch where the leader placed it.
    Data(producers::BatchIdent, producers::BatchMeta),
    /// A transaction marker (control batch) of a producer.
    Marker(storage::BatchHeader, producers::EndTxnMarker),
}

/// The producer batches and transaction markers of `records`, in log order, where the leader
/// placed them: each batch's own offsets (a compacted leader's log has gaps, so they are not
/// consecutive from the first). An unreadable marker is skipped: its transaction stays open
/// and holds the LSO, the safe side (as the rebuild from the log does).
fn replicated_batches(records: &[u8]) -> Vec<Replicated> {
    storage::split_batches(records)
        .filter_map(|b| b.ok())
        .filter_map(|b| storage::BatchHeader::parse(b).ok().map(|h| (b, h)))
        .filter_map(|(bytes, h)| {
            if h.is_control() {
                let marker = producers::EndTxnMarker::parse(bytes);
                return marker
                    .filter(|_| h.producer_id >= 0)
                    .map(|m| Replicated::Marker(h, m));
            }
            let ident = producers::BatchIdent::from_header(&h)?;
            let meta = producers::BatchMeta {
                first_seq: ident.first_seq,
                last_seq: ident.last_seq(),
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                log_append_time_ms: -1,
            };
            Some(Replicated::Data(ident, meta))
        })
        .collect()
}

/// (leader epoch, base offset) of each batch in `records`, in order.
fn batch_epochs(records: &[u8]) -> Vec<(i32, i64)> {
    storage::split_batches(records)
        .filter_map(|b| b.ok())
        .filter_map(|b| storage::BatchHeader::parse(b).ok())
        .map(|h| (h.partition_leader_epoch, h.base_offset))
        .collect()
}

/// Kafka's `LeaderEpochFileCache.truncateFromEnd`: the cache without the epochs starting at
/// or after `log_end`; `None` when nothing changes.
pub fn truncate_from_end(cache: &LeaderEpochCache, log_end: i64) -> Option<LeaderEpochCache> {
    let entries = cache.entries();
    if entries.iter().all(|e| e.start_offset < log_end) {
        return None;
    }
    let mut kept = LeaderEpochCache::default();
    for e in entries.iter().filter(|e| e.start_offset < log_end) {
        kept.assign(e.epoch, e.start_offset);
    }
    Some(kept)
}

/// A leader-epoch checkpoint that cannot be written is a disk fault: fatal, as for the log.
fn epoch_cache_fatal(partition: &Partition, error: &super::epochs::EpochCacheError) -> ! {
    shards::fatal(format!(
        "cannot write the leader-epoch checkpoint of {}: {error}",
        partition.tp.dir_name()
    ))
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
