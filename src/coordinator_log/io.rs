//! The coordinator log's work on a shard: which partitions this shard loads (owned here, led
//! by this broker), appends through the partition service, replay, and the internal topic's
//! creation. Kept apart from `coordinator_log` (plain data: placement, the loaded set, batch
//! building) so that the shard's state can hold a `Loaded` without importing the shard back.

use std::cell::RefCell;

use shards::ShardId;
use storage::builder::{decode_batch, Record};

use super::{build_batches, KeyValue, Loaded, LogError, TxnProducer, REPLAY_READ_BYTES};
use crate::cluster::MetadataImage;
use crate::partition::local::ReadBounds;
use crate::partition::{PartitionError, PartitionProxy, PartitionService, TopicPartition};
use crate::router::placement::PlacementTable;

/// What the coordinator log uses of its shard (built by the shard, `shard::contexts`).
#[derive(Clone, Copy)]
pub struct LogContext<'a> {
    pub shard_id: ShardId,
    /// Which shard owns each partition of the coordinator topic.
    pub placement: &'a PlacementTable,
    /// The metadata image (the topic's partitions and their leaders).
    pub image: &'a RefCell<MetadataImage>,
    /// This broker's `node.id` (a partition it leads is one it coordinates).
    pub node_id: i32,
    /// The partitions this shard leads (appends and replay go through them).
    pub partitions: &'a PartitionService,
}

/// The partitions of `topic` this shard owns and has not loaded yet.
pub fn owned_unloaded(shard: &LogContext<'_>, topic: &str, loaded: &Loaded) -> Vec<u32> {
    let partitions = shard.image.borrow().get(topic).map_or(0, |m| m.partitions);
    (0..partitions)
        .filter(|&index| {
            shard.placement.shard_for(topic, index) == shard.shard_id
                && loaded.get(index).is_none()
                && leads_partition(shard, topic, index)
        })
        .collect()
}

/// Whether this broker leads `partition` of the coordinator topic `topic`, and so coordinates
/// its keys (Kafka: the coordinator is the partition's leader). True while the topic does not
/// exist yet: the owner shard then answers COORDINATOR_LOAD_IN_PROGRESS, as before it is
/// created.
pub fn leads_partition(shard: &LogContext<'_>, topic: &str, partition: u32) -> bool {
    let image = shard.image.borrow();
    match image.get(topic) {
        None => true,
        Some(_) => image
            .partition(topic, partition)
            .is_some_and(|r| r.leader == shard.node_id),
    }
}

/// Appends `records` to partition `index` of `topic`; the caller holds that partition's lock.
pub async fn append_locked(
    shard: &LogContext<'_>,
    topic: &str,
    index: u32,
    records: &[KeyValue],
    producer: Option<TxnProducer>,
) -> Result<(), LogError> {
    if records.is_empty() {
        return Ok(());
    }
    let tp = TopicPartition::new(topic, index);
    if !shard.partitions.contains(&tp) {
        return Err(LogError::NotLoaded(index));
    }
    let batches = build_batches(records, crate::clock::system_now_ms(), producer);
    // Through the partition's one write path (I/O errors there stop the process).
    shard
        .partitions
        .append_coordinator(&tp, batches)
        .await
        .map_err(|e| match e {
            PartitionError::UnknownTopicOrPartition => LogError::NotLoaded(index),
            other => LogError::Partition(other),
        })
}

/// Appends under the partition's lock (`loaded` says whether it is loaded here).
pub async fn append(
    shard: &LogContext<'_>,
    topic: &str,
    loaded: &Loaded,
    index: u32,
    records: &[KeyValue],
) -> Result<(), LogError> {
    let log = loaded.get(index).ok_or(LogError::NotLoaded(index))?;
    let _guard = log.lock.lock().await;
    append_locked(shard, topic, index, records, None).await
}

/// Replays partition `index` of `topic` from its log start to its log end, handing each
/// decoded batch to `visit` in log order.
///
/// As Kafka's loaders (`CoordinatorLoaderImpl.doLoad`, `GroupMetadataManager
/// .doLoadGroupsAndOffsets`, `TransactionStateManager.loadTransactionMetadata`): read with
/// `FetchIsolation.LOG_END` while the offset is below the log end, asked again at every step,
/// and stop at a read that brings nothing. Records above the high watermark are replayed like
/// the rest: a new leader's high watermark can lag what it holds (the old leader acknowledged
/// acks=all writes its followers had not yet learnt were committed), and a leader never
/// truncates its own log, so they become committed while it leads; once another broker leads
/// the partition its state is unloaded (`Loaded::remove`).
pub async fn replay(
    shard: &LogContext<'_>,
    topic: &str,
    index: u32,
    mut visit: impl FnMut(&storage::BatchHeader, Vec<Record>),
) -> Result<(), LogError> {
    let partition = shard
        .partitions
        .get(&TopicPartition::new(topic, index))
        .ok_or(LogError::NotLoaded(index))?;
    let mut offset = partition.log_start_offset();
    loop {
        let end = replay_end(shard, topic, index).ok_or(LogError::NotLoaded(index))?;
        if offset >= end {
            break;
        }
        let bounds = ReadBounds {
            high_watermark: end,
            last_stable_offset: end,
            read_committed: false,
        };
        let read = partition
            .read_visible(offset, REPLAY_READ_BYTES, true, bounds)
            .await
            .map_err(LogError::Partition)?;
        let Some(slice) = read.slice else {
            break;
        };
        let bytes = slice.read_bytes().await?;
        let mut next = offset;
        for raw in storage::split_batches(&bytes) {
            let raw = raw?;
            let header = storage::BatchHeader::parse(raw)?;
            next = header.base_offset + i64::from(header.last_offset_delta) + 1;
            match decode_batch(raw) {
                Ok(batch) => visit(&header, batch.records),
                // Not written by a coordinator (e.g. a compressed produce): skipped.
                Err(e) => tracing::warn!(topic, partition = index, error = %e, "skipping batch"),
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

/// Where a replay of partition `index` of `topic` ends: its log end offset (Kafka's
/// `replicaManager.getLogEndOffset`), never the high watermark; `None` once this broker no
/// longer leads it or it is gone from this shard (Kafka's -1, which ends its loop), so a load
/// overtaken by a leadership change is not marked loaded.
fn replay_end(shard: &LogContext<'_>, topic: &str, index: u32) -> Option<i64> {
    if !leads_partition(shard, topic, index) {
        return None;
    }
    shard
        .partitions
        .get(&TopicPartition::new(topic, index))
        .map(|p| p.log_end_offset())
}

/// An internal topic a coordinator needs.
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: u32,
    pub replication_factor: i16,
    pub configs: crate::topics::config::TopicOverrides,
}

/// Creates `topic` if it does not exist (run by shard 0 once every shard serves its inbox);
/// the caller decides whether a failure is fatal.
pub async fn ensure_topic(
    image: &RefCell<MetadataImage>,
    router: crate::router::Router<'_>,
    topic: InternalTopic,
) -> Result<(), String> {
    if image.borrow().get(topic.name).is_some() {
        return Ok(());
    }
    let new = crate::router::NewTopic {
        name: topic.name.to_owned(),
        partitions: i32::try_from(topic.partitions).unwrap_or(i32::MAX),
        replication_factor: topic.replication_factor,
        configs: topic.configs,
        assignments: None,
    };
    let created = router.create_topics(vec![new], false).await;
    match created.into_iter().next() {
        Some(Ok(_)) | Some(Err(crate::topics::TopicError::AlreadyExists(_))) => Ok(()),
        Some(Err(e)) => Err(format!("cannot create {}: {e}", topic.name)),
        None => Err(format!("cannot create {}: no answer", topic.name)),
    }
}
