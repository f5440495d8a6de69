//! The partition service: the partitions this shard leads and every operation on them. It is
//! the one write path (produce, the group coordinator's records; later control batches and
//! follower appends) and the one read path (fetch, ListOffsets, OffsetForLeaderEpoch, the
//! coordinator's replay), and it owns the log end offset, high watermark, last stable offset,
//! leader epoch and leader-epoch cache. Nothing above it touches `storage::Log`.
//!
//! Layout: `proxy` is the seam (the `PartitionProxy` trait a replicated partition will also
//! implement), `local` the single-replica implementation over one `storage::Log`, `service`
//! the shard's partition map and its batched operations, `api` the plain-data requests and
//! answers that cross shards, `error` the errors and the one fatal-I/O rule.
//!
//! Invariants: a partition lives on exactly one shard (its `Placement` owner) and is only touched
//! there (`Rc`, `!Send`); the waiter list of a partition is bounded, and every waiter is woken
//! (and the list emptied) by the next append or by shutdown; the producer state is only read or
//! changed by an append holding `producer_lock` (check, write and record as one step).
//! The partition's leader epoch only grows, and its leader-epoch cache (`epochs`) holds an
//! entry for it from the moment the partition leads with it, before any append in it.

pub mod api;
pub mod epochs;
pub mod error;
pub mod follower;
pub mod handle;
pub mod local;
pub mod log_start;
pub mod proxy;
pub mod replicated;
pub mod service;
pub mod timestamps;
pub mod topic_id_file;
pub mod txn;
pub mod txn_index;

pub use self::error::{storage_error, PartitionError};
pub use self::proxy::{AppendOrigin, AppendRequest, Appended, PartitionProxy};
pub use self::service::{AppendObserver, PartitionService};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;

use self::epochs::{EpochCacheError, LeaderEpochCache};

/// The leader epoch of a partition's first leader (what Kafka's controller gives it). The epoch
/// a partition leads with comes from the metadata image (`cluster`); this is only the epoch a
/// log written before the leader-epoch checkpoint existed was written in.
pub const INITIAL_LEADER_EPOCH: i32 = 0;
/// (topic, partition index): the key of a partition on its shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// The log directory name, Kafka's `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// A client's `current_leader_epoch` disagrees with the partition's (KIP-320).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaderEpochError {
    /// Newer than ours: our metadata is behind (UNKNOWN_LEADER_EPOCH).
    #[error("leader epoch {requested} is newer than the partition's {current}")]
    Unknown { requested: i32, current: i32 },
    /// Older than ours: the client's metadata is stale (FENCED_LEADER_EPOCH).
    #[error("leader epoch {requested} is older than the partition's {current}")]
    Fenced { requested: i32, current: i32 },
}

/// One owned partition.
pub struct Partition {
    pub tp: TopicPartition,
    log: storage::Log,
    /// Idempotent producers' epochs and recent batches (see `producers`).
    pub producers: RefCell<crate::producers::ProducerStates>,
    /// Serialises idempotent appends from their sequence check to their state update.
    producer_lock: futures_util::lock::Mutex<()>,
    /// `cleanup.policy` holds `compact`: produced records must have keys.
    compacted: Cell<bool>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    waiters_max: usize,
    /// The epoch this node leads the partition with (Kafka's `Partition.leaderEpoch`).
    leader_epoch: Cell<i32>,
    /// Kafka's LeaderEpochFileCache, persisted in the partition directory.
    epochs: RefCell<LeaderEpochCache>,
    /// This replica's role (one state for what were separate `following` / `leading` flags):
    /// `Following` from `become_follower` until it leads with its followers
    /// (`ReplicatedPartition::new`) or alone; meanwhile the partition takes no client or
    /// coordinator append, even when the image already names this broker leader (an append
    /// then would carry the old leader epoch and be acknowledged without replication).
    role: Cell<ReplicaRole>,
    /// message.timestamp.before/after.max.ms of the topic (checked on produce).
    timestamp_limits: Cell<timestamps::TimestampLimits>,
    /// The topic's `compression.type` as a codec id; `None` for `producer` (store as sent).
    compression_codec: Cell<Option<i16>>,
    /// Aborted transactions (`.txnindex`), loaded by the first `become_leader`.
    aborted: RefCell<txn_index::TxnIndex>,
    aborted_loaded: Cell<bool>,
    /// Offset of the newest producer-state snapshot on disk (-1: none).
    snapshot_at: Cell<i64>,
    /// The active segment when the last snapshot was written: a roll writes the next one.
    snapshot_segment: Cell<i64>,
}

/// What a replica of a partition is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    /// The only replica, or one served plainly (no replication state): takes appends.
    Single,
    /// Follows a leader, or opened with followers and not yet leading with them: takes no
    /// client or coordinator append.
    Following,
    /// Leads with its followers in `leader_epoch`: appends go through its
    /// `ReplicatedPartition` (`term` tells that leader from any later one of the replica).
    LeaderWithFollowers { leader_epoch: i32, term: u64 },
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        log: storage::Log,
        waiters_max: usize,
        producers: crate::producers::ProducerStates,
    ) -> Self {
        Self {
            tp,
            log,
            producers: RefCell::new(producers),
            producer_lock: futures_util::lock::Mutex::new(()),
            compacted: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            waiters_max,
            leader_epoch: Cell::new(epochs::UNDEFINED_EPOCH),
            epochs: RefCell::new(LeaderEpochCache::default()),
            role: Cell::new(ReplicaRole::Single),
            timestamp_limits: Cell::new(timestamps::TimestampLimits::default()),
            compression_codec: Cell::new(None),
            aborted: RefCell::new(txn_index::TxnIndex::default()),
            aborted_loaded: Cell::new(false),
            snapshot_at: Cell::new(-1),
            snapshot_segment: Cell::new(-1),
        }
    }

    /// The log, for the shard's maintenance of it (close, retention, the cleaner, the
    /// durability watch, config changes). Data goes in and out through [`PartitionProxy`].
    pub fn storage(&self) -> &storage::Log {
        &self.log
    }

    /// Applies the topic's `cleanup.policy` (at open and on AlterConfigs).
    pub fn set_compacted(&self, compacted: bool) {
        self.compacted.set(compacted);
    }

    /// The codec produced batches are stored in; `None`: as the producer sent them.
    pub fn compression_codec(&self) -> Option<i16> {
        self.compression_codec.get()
    }

    /// Applies the topic's `compression.type` (at open and on AlterConfigs).
    pub fn set_compression_type(&self, compression_type: &str) {
        self.compression_codec
            .set(storage::recompress::codec_for_compression_type(
                compression_type,
            ));
    }

    /// `records` (one batch) in the topic's codec: re-encoded when the topic names a codec
    /// other than the batch's (Kafka's LogValidator), else unchanged. Errors: a corrupt batch
    /// (CORRUPT_MESSAGE), records inflating past `log.batch.inflated.max.bytes`.
    pub fn to_topic_codec(
        &self,
        records: bytes::Bytes,
    ) -> Result<bytes::Bytes, storage::StorageError> {
        let Some(codec) = self.compression_codec.get() else {
            return Ok(records);
        };
        let config = self.log.config();
        // Kafka checks the batch as received before recompressing it
        // (`analyzeAndValidateRecords`, then `LogValidator`): too large is refused even when the
        // topic's codec would shrink it.
        let max = config.max_message_bytes;
        if records.len() > usize::try_from(max).unwrap_or(usize::MAX) {
            let size = records.len();
            return Err(storage::StorageError::BatchTooLarge { size, max });
        }
        let inflated_max = usize::try_from(config.inflated_batch_bytes_max).unwrap_or(usize::MAX);
        Ok(
            storage::recompress::recompress_batch(&records, codec, inflated_max)?
                .map_or(records, bytes::Bytes::from),
        )
    }

    pub fn timestamp_limits(&self) -> timestamps::TimestampLimits {
        self.timestamp_limits.get()
    }

    /// Applies the topic's message.timestamp.before/after.max.ms (at open and on AlterConfigs).
    pub fn set_timestamp_limits(&self, limits: timestamps::TimestampLimits) {
        self.timestamp_limits.set(limits);
    }

    /// Kafka's `makeLeader`: loads the leader-epoch checkpoint and makes `epoch` the current
    /// one, starting at the log end (`maybeAssignEpochStartOffset`). A log from before the
    /// checkpoint existed was written entirely in epoch 0 (every batch carries it), so that
    /// epoch starts at the log start. Writes the checkpoint only when it changed.
    pub async fn become_leader(&self, epoch: i32) -> Result<(), EpochCacheError> {
        self.load_aborted_index()
            .await
            .map_err(|e| EpochCacheError::Io {
                path: e.path,
                source: e.source,
            })?;
        let dir = self.log.dir().to_path_buf();
        let loaded = LeaderEpochCache::load(&dir)?;
        let mut changed = loaded.is_none();
        let mut cache = loaded.unwrap_or_default();
        if cache.latest_epoch().is_none() {
            cache.assign(INITIAL_LEADER_EPOCH, self.log.log_start_offset().0);
        }
        changed |= cache.assign(epoch, self.log.log_end_offset().0);
        if changed {
            cache.persist(&dir).await?;
        }
        let current = cache.latest_epoch().unwrap_or(epoch).max(epoch);
        *self.epochs.borrow_mut() = cache;
        self.leader_epoch.set(current);
        Ok(())
    }

    /// Whether this replica follows (or has not yet finished becoming a leader after following).
    pub fn is_following(&self) -> bool {
        self.role.get() == ReplicaRole::Following
    }

    pub fn role(&self) -> ReplicaRole {
        self.role.get()
    }

    /// A replica of a partition with followers, just opened: no client or coordinator
    /// append until it leads with its followers (`lead_with_followers`), as after
    /// `become_follower`.
    pub fn hold_appends(&self) {
        self.role.set(ReplicaRole::Following);
    }

    /// This replica leads alone now (or is served plainly after its replicated leader
    /// resigned): appends are taken again.
    pub fn stop_following(&self) {
        self.role.set(ReplicaRole::Single);
    }

    /// This replica leads with its followers in `leader_epoch` (`ReplicatedPartition`); the
    /// role returned is that leader's own (unique: a later leader of the same epoch differs).
    pub fn lead_with_followers(&self, leader_epoch: i32) -> ReplicaRole {
        static NEXT_TERM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let term = NEXT_TERM.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let role = ReplicaRole::LeaderWithFollowers { leader_epoch, term };
        self.role.set(role);
        role
    }

    /// The replicated leader whose role is `role` resigned: served plainly until the next
    /// role (a newer leader of the same replica keeps its own).
    pub fn resign_leadership(&self, role: ReplicaRole) {
        if self.role.get() == role {
            self.role.set(ReplicaRole::Single);
        }
    }

    /// The leader epoch `offset` was written in (-1 when unknown), for ListOffsets answers.
    pub fn epoch_of_offset(&self, offset: i64) -> i32 {
        if offset < 0 {
            return epochs::UNDEFINED_EPOCH;
        }
        self.epochs
            .borrow()
            .epoch_for_offset(offset)
            .unwrap_or(epochs::UNDEFINED_EPOCH)
    }

    /// Wakes every long-poll waiting on this partition.
    pub fn notify_appended(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waiter in waiters {
            let _gone_is_fine = waiter.send(());
        }
    }
}

/// The partitions owned by one shard.
#[derive(Default)]
pub struct PartitionMap {
    map: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
}

impl PartitionMap {
    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.borrow().get(tp).cloned()
    }

    pub fn contains(&self, tp: &TopicPartition) -> bool {
        self.map.borrow().contains_key(tp)
    }

    pub fn insert(&self, partition: Rc<Partition>) {
        self.map
            .borrow_mut()
            .insert(partition.tp.clone(), partition);
    }

    pub fn remove(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.borrow_mut().remove(tp)
    }

    /// A snapshot, so callers can await per partition without holding the borrow.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.map.borrow().values().cloned().collect()
    }

    /// Removes and returns every partition (shutdown).
    pub fn drain(&self) -> Vec<Rc<Partition>> {
        self.map.borrow_mut().drain().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_is_kafkas() {
        assert_eq!(TopicPartition::new("orders", 7).dir_name(), "orders-7");
    }

    async fn open(dir: &std::path::Path) -> Partition {
        let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::ProducerStates::new(limits.state);
        Partition::new(TopicPartition::new("t", 0), log, 8, producers)
    }

    /// A new leadership epoch starts at the log end; the client's epoch is checked against it
    /// (newer: UNKNOWN, older: FENCED); the cache persists and a lower epoch never goes back.
    #[compio::test]
    async fn leadership_epochs_fence_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).await;
        p.become_leader(INITIAL_LEADER_EPOCH).await.unwrap();
        assert_eq!(p.leader_epoch(), 0);
        assert_eq!(p.check_leader_epoch(-1), Ok(()));
        assert_eq!(p.check_leader_epoch(0), Ok(()));
        assert!(matches!(
            p.check_leader_epoch(1),
            Err(LeaderEpochError::Unknown {
                requested: 1,
                current: 0
            })
        ));
        assert_eq!(p.end_offset_for_epoch(0), (0, 0));
        assert_eq!(p.end_offset_for_epoch(1), (-1, -1));
        drop(p);
        let p = open(dir.path()).await;
        p.become_leader(2).await.unwrap();
        assert_eq!(p.leader_epoch(), 2);
        assert!(matches!(
            p.check_leader_epoch(1),
            Err(LeaderEpochError::Fenced {
                requested: 1,
                current: 2
            })
        ));
        assert_eq!(p.end_offset_for_epoch(2), (2, 0));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(epochs::CHECKPOINT_FILE)).unwrap(),
            "0\n2\n0 0\n2 0\n"
        );
        drop(p);
        // Reopened with the old epoch: the cache keeps the newer one (epochs never go back).
        let p = open(dir.path()).await;
        p.become_leader(INITIAL_LEADER_EPOCH).await.unwrap();
        assert_eq!(p.leader_epoch(), 2);
    }
}
