//! The shard's partition service: the partitions this shard leads, and the batched operations
//! the router hands to the owner (produce, read, wait for the high watermark, offsets,
//! DeleteRecords) plus the group coordinator's appends. Each item runs on its partition through
//! [`PartitionProxy`]; answers come back in the items' order.
//!
//! Invariants: runs only on the owning shard (`Rc`, `!Send`); a long-poll wait always ends by
//! its deadline or at shutdown; metrics are reported through [`AppendObserver`], so this module
//! knows nothing of the metrics module.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{join_all, select_all};
use shards::Shutdown;

use super::api::{
    DeleteRecordsItem, DeleteRecordsResult, MarkerItem, MarkerResult, OffsetOk, OffsetQuery,
    OffsetResult, PartitionMsg, ProduceItem, ProduceResult, ProducersResult, ReadItem, ReadResult,
};
use super::proxy::{AppendOrigin, AppendRequest, PartitionProxy};
use super::{Partition, PartitionError, PartitionMap, TopicPartition};
use crate::clock::Clock;

/// Where the service reports what the shard's metrics count (implemented by the metrics).
pub trait AppendObserver {
    /// Records newly appended by producers.
    fn records_appended(&self, records: u32);
    /// One durability wait (acks=-1) took `elapsed`.
    fn durable_waited(&self, elapsed: Duration);
}

/// The partitions of one shard and the operations on them.
pub struct PartitionService {
    map: PartitionMap,
    shutdown: Shutdown,
    clock: Clock,
    observer: Rc<dyn AppendObserver>,
    /// `log.flush.on.acks.all`: acks=-1 answers wait for the fsync.
    flush_on_acks_all: bool,
}

impl PartitionService {
    pub fn new(
        shutdown: Shutdown,
        clock: Clock,
        observer: Rc<dyn AppendObserver>,
        flush_on_acks_all: bool,
    ) -> Self {
        Self {
            map: PartitionMap::default(),
            shutdown,
            clock,
            observer,
            flush_on_acks_all,
        }
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.get(tp)
    }

    pub fn contains(&self, tp: &TopicPartition) -> bool {
        self.map.contains(tp)
    }

    pub fn insert(&self, partition: Rc<Partition>) {
        self.map.insert(partition);
    }

    pub fn remove(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.remove(tp)
    }

    /// A snapshot, so callers can await per partition without holding the borrow.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.map.all()
    }

    /// Removes and returns every partition (shutdown).
    pub fn drain(&self) -> Vec<Rc<Partition>> {
        self.map.drain()
    }

    /// Serves a [`PartitionMsg`] from another shard.
    pub async fn serve(&self, msg: PartitionMsg) {
        match msg {
            PartitionMsg::Produce { items, acks, reply } => {
                reply.send(self.produce(items, acks).await)
            }
            PartitionMsg::Read { items, reply } => reply.send(self.read(items).await),
            PartitionMsg::Wait {
                items,
                deadline,
                reply,
            } => {
                self.wait(items, deadline).await;
                reply.send(());
            }
            PartitionMsg::Offsets { items, reply } => reply.send(self.offsets(items).await),
            PartitionMsg::DeleteRecords { items, reply } => {
                reply.send(self.delete_records(items).await)
            }
            PartitionMsg::WriteMarkers { items, reply } => {
                reply.send(self.write_markers(items).await)
            }
            PartitionMsg::WaitStable {
                items,
                deadline,
                reply,
            } => {
                self.wait_bounded(items, deadline, true).await;
                reply.send(());
            }
            PartitionMsg::DescribeProducers { items, reply } => {
                reply.send(self.describe_producers(&items))
            }
        }
    }

    fn lookup(&self, tp: &TopicPartition) -> Result<Rc<Partition>, PartitionError> {
        self.map
            .get(tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)
    }

    /// Producers' batches, one item per partition.
    pub async fn produce(&self, items: Vec<ProduceItem>, acks: i16) -> Vec<ProduceResult> {
        let appends = items.into_iter().map(|item| async move {
            let partition = self.lookup(&item.tp)?;
            let request = AppendRequest {
                records: item.records,
                origin: AppendOrigin::Client,
                acks,
                flush_on_acks_all: self.flush_on_acks_all,
                now_ms: self.clock.now_ms(),
            };
            let appended = partition.append(request).await?;
            self.observer.records_appended(appended.records_appended);
            if let Some(waited) = appended.durable_wait {
                self.observer.durable_waited(waited);
            }
            Ok(appended.ok)
        });
        join_all(appends).await
    }

    /// The group coordinator's records (already framed as batches) to an offsets partition;
    /// answered once written (acks=1, what the coordinator waits for on a single replica).
    pub async fn append_coordinator(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<(), PartitionError> {
        let request = AppendRequest {
            records,
            origin: AppendOrigin::Coordinator,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: self.clock.now_ms(),
        };
        self.lookup(tp)?.append(request).await.map(drop)
    }

    /// Transaction markers (WriteTxnMarkers), one per item, each answered once durable
    /// (Kafka appends markers with acks=-1) under `log.flush.on.acks.all`.
    pub async fn write_markers(&self, items: Vec<MarkerItem>) -> Vec<MarkerResult> {
        let markers = items.into_iter().map(|item| async move {
            let partition = self.lookup(&item.tp)?;
            partition
                .write_marker(item, self.clock.now_ms(), self.flush_on_acks_all)
                .await
        });
        join_all(markers).await
    }

    /// DescribeProducers: the producers each partition tracks.
    pub fn describe_producers(&self, items: &[TopicPartition]) -> Vec<ProducersResult> {
        items
            .iter()
            .map(|tp| Ok(self.lookup(tp)?.producer_views()))
            .collect()
    }

    pub async fn read(&self, items: Vec<ReadItem>) -> Vec<ReadResult> {
        let reads = items.into_iter().map(|item| async move {
            self.lookup(&item.tp)?
                .read(
                    item.offset,
                    item.max_bytes,
                    item.min_one_batch,
                    item.current_leader_epoch,
                    item.read_committed,
                )
                .await
        });
        join_all(reads).await
    }

    /// Waits until a listed partition's high watermark is past its offset, shutdown, or
    /// `deadline`.
    pub async fn wait(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
        self.wait_bounded(items, deadline, false).await;
    }

    /// `wait`, on the LSO instead of the high watermark when `stable` (read_committed: data
    /// past the LSO is not readable, so waking for it would spin until the deadline).
    pub async fn wait_bounded(
        &self,
        items: Vec<(TopicPartition, i64)>,
        deadline: Instant,
        stable: bool,
    ) {
        let mut receivers = Vec::with_capacity(items.len());
        for (tp, offset) in &items {
            let Some(partition) = self.map.get(tp) else {
                continue;
            };
            let end = if stable {
                partition.last_stable_offset()
            } else {
                partition.high_watermark()
            };
            if end > *offset {
                return;
            }
            if let Some(rx) = partition.subscribe() {
                receivers.push(rx);
            }
        }
        let timer = Box::pin(compio::time::sleep_until(deadline));
        let shutdown = Box::pin(self.shutdown.wait());
        let stop = futures_util::future::select(timer, shutdown);
        if receivers.is_empty() {
            stop.await;
            return;
        }
        futures_util::future::select(stop, select_all(receivers)).await;
    }

    /// ListOffsets and OffsetForLeaderEpoch queries.
    pub async fn offsets(&self, items: Vec<OffsetQuery>) -> Vec<OffsetResult> {
        let queries = items.into_iter().map(|query| async move {
            let partition = self.lookup(&query.tp)?;
            partition.check_leader_epoch(query.current_leader_epoch)?;
            if let Some(epoch) = query.end_of_epoch {
                let (leader_epoch, offset) = partition.end_offset_for_epoch(epoch);
                return Ok(OffsetOk {
                    offset,
                    timestamp: -1,
                    leader_epoch,
                });
            }
            let found = partition.offset_for_timestamp(query.timestamp).await?;
            if !query.read_committed {
                return Ok(found);
            }
            // Kafka's `lastFetchableOffset` for READ_COMMITTED: the LSO.
            let stable = partition.last_stable_offset();
            Ok(match query.timestamp {
                -1 => OffsetOk {
                    offset: stable,
                    timestamp: -1,
                    leader_epoch: partition.epoch_of_offset(stable),
                },
                -2 | -4 => found,
                _ if found.offset >= stable => OffsetOk {
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: -1,
                },
                _ => found,
            })
        });
        join_all(queries).await
    }

    pub async fn delete_records(&self, items: Vec<DeleteRecordsItem>) -> Vec<DeleteRecordsResult> {
        let deletions = items
            .into_iter()
            .map(|item| async move { self.lookup(&item.tp)?.delete_records(item.offset).await });
        join_all(deletions).await
    }
}
