//! The shard's partition service: the partitions this shard leads, and the batched operations
//! the router hands to the owner (produce, read, wait for the high watermark, offsets,
//! DeleteRecords) plus the group coordinator's appends. Each item runs on its partition through
//! [`PartitionProxy`]; answers come back in the items' order.
//!
//! Invariants: runs only on the owning shard (`Rc`, `!Send`); a long-poll wait always ends by
//! its deadline or at shutdown; metrics are reported through [`AppendObserver`], so this module
//! knows nothing of the metrics module.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{join_all, select_all};
use shards::Shutdown;

use super::api::{
    DeleteRecordsItem, DeleteRecordsResult, FollowerFetchItem, FollowerFetchResult, MarkerItem,
    MarkerResult, OffsetOk, OffsetQuery, OffsetResult, PartitionMsg, ProduceItem, ProduceResult,
    ProducersResult, ReadItem, ReadResult, VerifyItem, VerifyResult,
};
use super::handle::PartitionHandle;
use super::proxy::{AppendOrigin, AppendRequest, PartitionProxy};
use super::replicated::{ReplicatedPartition, ReplicationConfig};
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
    /// Partitions this shard leads with followers (replication): served through their
    /// `ReplicatedPartition` instead of the plain `Partition` in `map`.
    replicated: RefCell<HashMap<TopicPartition, Rc<ReplicatedPartition>>>,
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
            replicated: RefCell::new(HashMap::new()),
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
        self.stop_replicated(tp);
        self.map.remove(tp)
    }

    /// Kafka's `makeLeader` with followers: the partition (already in the map, leading with
    /// the registration's epoch) is served as a replicated leader from now on.
    pub fn make_replicated(
        &self,
        tp: &TopicPartition,
        registration: &crate::replication::isr::LeaderRegistration,
        high_watermark: i64,
        config: ReplicationConfig,
    ) -> Result<Rc<ReplicatedPartition>, PartitionError> {
        let local = self.lookup_local(tp)?;
        let leader = ReplicatedPartition::new(
            local,
            registration,
            high_watermark,
            config,
            self.clock.now_ms(),
        );
        if let Some(old) = self
            .replicated
            .borrow_mut()
            .insert(tp.clone(), leader.clone())
        {
            old.resign();
        }
        Ok(leader)
    }

    /// The replicated leader of `tp`, if this shard leads it with followers.
    pub fn replicated(&self, tp: &TopicPartition) -> Option<Rc<ReplicatedPartition>> {
        self.replicated.borrow().get(tp).cloned()
    }

    /// The periodic replication duties of this shard's replicated leaders (Kafka's
    /// `isr-expiration` task, every `replica.lag.time.max.ms / 2`): propose shrinking the ISR
    /// of lagging followers, expire acks=all waiters. Returns the ISR proposals to send to the
    /// controller as AlterPartition, per partition.
    pub fn replication_tick(
        &self,
    ) -> Vec<(TopicPartition, Vec<crate::replication::isr::IsrProposal>)> {
        let now_ms = self.clock.now_ms();
        let leaders: Vec<_> = self
            .replicated
            .borrow()
            .iter()
            .map(|(tp, l)| (tp.clone(), l.clone()))
            .collect();
        let mut proposals = Vec::new();
        for (tp, leader) in leaders {
            leader.maybe_shrink_isr(now_ms);
            leader.expire_waiters(now_ms);
            let out = leader.take_isr_proposals();
            if !out.is_empty() {
                proposals.push((tp, out));
            }
        }
        proposals
    }

    /// The high watermark of every replicated leader (for the replication-offset checkpoint).
    pub fn replicated_high_watermarks(&self) -> crate::replication::checkpoint::HighWatermarks {
        self.replicated
            .borrow()
            .iter()
            .map(|(tp, l)| ((tp.topic.clone(), tp.partition), l.high_watermark()))
            .collect()
    }

    /// Leadership of `tp` moved away (or it closes): waiting acks=all produces are answered
    /// NOT_LEADER_OR_FOLLOWER and the partition is served plainly again until re-registered.
    pub fn stop_replicated(&self, tp: &TopicPartition) -> bool {
        let removed = self.replicated.borrow_mut().remove(tp);
        removed.map(|leader| leader.resign()).is_some()
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
            PartitionMsg::FollowerFetch {
                replica_id,
                items,
                deadline,
                reply,
            } => reply.send(self.follower_fetch(replica_id, items, deadline).await),
            PartitionMsg::WaitFollower {
                items,
                deadline,
                reply,
            } => {
                self.wait_follower(items, deadline).await;
                reply.send(());
            }
            PartitionMsg::StartVerification { items, reply } => {
                reply.send(self.start_verification(&items))
            }
        }
    }

    /// KIP-890: each item's verification guard (see `producers::verify`), on the leader only.
    pub fn start_verification(&self, items: &[VerifyItem]) -> Vec<VerifyResult> {
        let now_ms = self.clock.now_ms();
        items
            .iter()
            .map(|item| {
                let handle = self.lookup(&item.tp)?;
                if matches!(&handle, PartitionHandle::Local(p) if p.is_following()) {
                    return Err(PartitionError::NotLeaderOrFollower);
                }
                let producer = crate::producers::ProducerId(item.producer_id);
                let guard = handle.local().producers.borrow_mut().start_verification(
                    producer,
                    item.producer_epoch,
                    now_ms,
                );
                Ok(guard)
            })
            .collect()
    }

    fn lookup_local(&self, tp: &TopicPartition) -> Result<Rc<Partition>, PartitionError> {
        self.map
            .get(tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)
    }

    /// The partition as it is served: replicated leader, or the single replica.
    fn lookup(&self, tp: &TopicPartition) -> Result<PartitionHandle, PartitionError> {
        if let Some(leader) = self.replicated(tp) {
            return Ok(PartitionHandle::Replicated(leader));
        }
        self.lookup_local(tp).map(PartitionHandle::Local)
    }

    /// Producers' batches, one item per partition.
    pub async fn produce(&self, items: Vec<ProduceItem>, acks: i16) -> Vec<ProduceResult> {
        let mut appends = items.into_iter().map(|item| async move {
            let partition = self.lookup(&item.tp)?;
            let request = AppendRequest {
                verification_guard: item.verification_guard,
                records: item.records,
                origin: AppendOrigin::Client,
                acks,
                flush_on_acks_all: self.flush_on_acks_all,
                now_ms: self.clock.now_ms(),
                timeout_ms: Some(i64::from(item.timeout_ms)),
            };
            let appended = partition.append_request(request).await?;
            self.observer.records_appended(appended.records_appended);
            if let Some(waited) = appended.durable_wait {
                self.observer.durable_waited(waited);
            }
            Ok(appended.ok)
        });
        // One partition (the common case): awaited as it is, without `join_all`'s own list
        // of futures (issue 16).
        if appends.len() == 1 {
            if let Some(append) = appends.next() {
                return vec![append.await];
            }
        }
        join_all(appends).await
    }

    /// The group and transaction coordinators' records (already framed as batches) to their
    /// partition; answered once written, and on a replicated leader once replicated to the ISR
    /// (acks=-1, as Kafka's coordinators append: a record lost with its leader would be a
    /// state the clients were told of and the next coordinator does not load).
    pub async fn append_coordinator(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<(), PartitionError> {
        let request = AppendRequest {
            verification_guard: None,
            records,
            origin: AppendOrigin::Coordinator,
            acks: -1,
            flush_on_acks_all: false,
            now_ms: self.clock.now_ms(),
            timeout_ms: None,
        };
        self.lookup(tp)?.append_request(request).await.map(drop)
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

    /// A follower's Fetch (Kafka's `fetchMessages` with a replica id): each partition from
    /// its replicated leader (NOT_LEADER_OR_FOLLOWER when this shard does not lead it with
    /// followers). When none has records or a diverging epoch, waits once for an append to
    /// one of them (or `deadline`, or shutdown) and reads again, so an idle follower
    /// long-polls instead of spinning.
    pub async fn follower_fetch(
        &self,
        replica_id: i32,
        items: Vec<FollowerFetchItem>,
        deadline: Instant,
    ) -> Vec<FollowerFetchResult> {
        // Subscribed before reading (Kafka's DelayedFetch watches, then checks): an append
        // landing while the read runs wakes the wait instead of being missed until deadline.
        let receivers: Vec<_> = items
            .iter()
            .filter_map(|item| self.replicated(&item.tp)?.local().subscribe())
            .collect();
        let results = self.follower_fetch_once(replica_id, &items).await;
        let has_news = |r: &FollowerFetchResult| match r {
            Ok(ok) => ok.read.slice.is_some() || ok.diverging_epoch.is_some(),
            Err(_) => true,
        };
        if results.iter().any(has_news) || Instant::now() >= deadline {
            return results;
        }
        if receivers.is_empty() {
            return results;
        }
        self.park(receivers, deadline).await;
        self.follower_fetch_once(replica_id, &items).await
    }

    async fn follower_fetch_once(
        &self,
        replica_id: i32,
        items: &[FollowerFetchItem],
    ) -> Vec<FollowerFetchResult> {
        let fetches = items.iter().map(|item| async move {
            let leader = self
                .replicated(&item.tp)
                .ok_or(PartitionError::NotLeaderOrFollower)?;
            leader.record_follower_log_start(replica_id, item.log_start_offset);
            leader
                .follower_fetch(
                    replica_id,
                    item.fetch_offset,
                    item.last_fetched_epoch,
                    item.current_leader_epoch,
                    item.max_bytes,
                    self.clock.now_ms(),
                )
                .await
        });
        join_all(fetches).await
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
            let Ok(partition) = self.lookup(tp) else {
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
        self.park(receivers, deadline).await;
    }

    /// Waits until one of `receivers` fires (an append or a high watermark move), shutdown,
    /// or `deadline`.
    async fn park(
        &self,
        receivers: Vec<futures_channel::oneshot::Receiver<()>>,
        deadline: Instant,
    ) {
        let timer = Box::pin(compio::time::sleep_until(deadline));
        let shutdown = Box::pin(self.shutdown.wait());
        let stop = futures_util::future::select(timer, shutdown);
        if receivers.is_empty() {
            stop.await;
            return;
        }
        futures_util::future::select(stop, select_all(receivers)).await;
    }

    /// Waits until a listed partition's log end is past its follower's fetch offset, the
    /// partition is no longer led here with followers (the follower's next read answers the
    /// error), shutdown, or `deadline`. The condition is checked when the waiter subscribes,
    /// on this (the owning) shard: nothing appended after the follower's read is missed.
    pub async fn wait_follower(&self, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
        let mut receivers = Vec::with_capacity(items.len());
        for (tp, fetch_offset) in &items {
            let Some(leader) = self.replicated(tp) else {
                return;
            };
            if leader.log_end_offset() > *fetch_offset {
                return;
            }
            if let Some(rx) = leader.subscribe() {
                receivers.push(rx);
            }
        }
        self.park(receivers, deadline).await;
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
            if query.from_replica && query.timestamp == -1 {
                let offset = partition.log_end_offset();
                return Ok(OffsetOk {
                    offset,
                    timestamp: -1,
                    leader_epoch: partition.epoch_of_offset(offset),
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
        let deletions = items.into_iter().map(|item| async move {
            let partition = self.lookup(&item.tp)?;
            let low = partition.delete_records(item.offset).await?;
            match partition {
                // Kafka's DelayedDeleteRecords: answered once every replica passed it.
                PartitionHandle::Replicated(leader) => {
                    let wait = Duration::from_millis(item.timeout_ms.max(0).unsigned_abs().into());
                    leader.await_low_watermark(low, Instant::now() + wait).await
                }
                PartitionHandle::Local(_) => Ok(low),
            }
        });
        join_all(deletions).await
    }
}

#[cfg(test)]
mod replicated_service_tests {
    use super::*;
    use crate::replication::isr::LeaderRegistration;

    struct Quiet;
    impl AppendObserver for Quiet {
        fn records_appended(&self, _: u32) {}
        fn durable_waited(&self, _: Duration) {}
    }

    fn batch(value: &str) -> Bytes {
        storage::BatchBuilder::new(1_000)
            .record(Some(b"k"), Some(value.as_bytes()), &[])
            .build()
            .freeze()
    }

    /// A service on a manual clock leading partition `t-0` with follower 2 (replicas and ISR
    /// [1, 2], leader epoch 1), its log in `_dir`.
    struct ReplicatedService {
        _dir: tempfile::TempDir,
        service: Rc<PartitionService>,
        tp: TopicPartition,
        leader: Rc<ReplicatedPartition>,
        clock: crate::clock::ManualClock,
    }

    async fn replicated_service() -> ReplicatedService {
        let dir = tempfile::tempdir().unwrap();
        let log = storage::Log::open(dir.path().to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::ProducerStates::new(limits.state);
        let tp = TopicPartition::new("t", 0);
        let partition = Rc::new(Partition::new(tp.clone(), log, 8, producers));
        partition.become_leader(1).await.unwrap();
        let (clock, manual) = Clock::manual(0);
        let service = Rc::new(PartitionService::new(
            Shutdown::new(),
            clock,
            Rc::new(Quiet),
            false,
        ));
        service.insert(partition);
        let registration = LeaderRegistration {
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader_epoch: 1,
            partition_epoch: 0,
        };
        let leader = service
            .make_replicated(&tp, &registration, 0, ReplicationConfig::default())
            .unwrap();
        ReplicatedService {
            _dir: dir,
            service,
            tp,
            leader,
            clock: manual,
        }
    }

    /// The follower long poll of another shard reads on the owner, then parks there: an
    /// append landing between the two must end the park at once. The consumer wait (high
    /// watermark past the offset) cannot see it (the follower has not fetched it, so the high
    /// watermark did not move); the follower wait (log end past the fetch offset) does.
    #[compio::test]
    async fn a_follower_wait_sees_appends_between_its_read_and_its_park() {
        let ReplicatedService {
            _dir, service, tp, ..
        } = replicated_service().await;
        let fetch = FollowerFetchItem {
            tp: tp.clone(),
            fetch_offset: 0,
            last_fetched_epoch: -1,
            current_leader_epoch: 1,
            max_bytes: 1 << 20,
            log_start_offset: 0,
        };
        let read = service.follower_fetch(2, vec![fetch], Instant::now()).await;
        assert!(
            read[0].as_ref().unwrap().read.slice.is_none(),
            "nothing yet"
        );
        let item = ProduceItem {
            tp: tp.clone(),
            records: batch("between"),
            timeout_ms: 30_000,
            verification_guard: None,
        };
        assert!(service.produce(vec![item], 1).await[0].is_ok());
        let short = Duration::from_millis(200);
        let started = Instant::now();
        service.wait(vec![(tp.clone(), 0)], started + short).await;
        assert!(
            started.elapsed() >= short,
            "the consumer wait does not see it"
        );
        let started = Instant::now();
        service
            .wait_follower(vec![(tp.clone(), 0)], started + Duration::from_secs(10))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the follower wait answers at once: {:?}",
            started.elapsed()
        );
        // Caught up: it parks until the next append wakes it.
        let waiting = {
            let service = service.clone();
            let tp = tp.clone();
            compio::runtime::spawn(async move {
                let started = Instant::now();
                service
                    .wait_follower(vec![(tp, 1)], started + Duration::from_secs(10))
                    .await;
                started.elapsed()
            })
        };
        compio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "nothing past offset 1 yet");
        let item = ProduceItem {
            tp: tp.clone(),
            records: batch("later"),
            timeout_ms: 30_000,
            verification_guard: None,
        };
        assert!(service.produce(vec![item], 1).await[0].is_ok());
        assert!(waiting.await.unwrap() < Duration::from_secs(5));
        // Not led here with followers any more: answered at once.
        service.stop_replicated(&tp);
        let started = Instant::now();
        service
            .wait_follower(vec![(tp, 5)], started + Duration::from_secs(10))
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// Once a partition is made a replicated leader, the service's produce, read, offsets and
    /// long-poll wait go through it: acks=all waits for the follower, reads and ListOffsets
    /// stop at the high watermark, a follower fetch wakes a waiting consumer, and stopping
    /// replication answers a waiting produce NOT_LEADER_OR_FOLLOWER.
    #[compio::test]
    async fn service_serves_replicated_leaders() {
        let ReplicatedService {
            _dir,
            service,
            tp,
            leader,
            clock: manual,
        } = replicated_service().await;
        let item = |v: &str| ProduceItem {
            tp: tp.clone(),
            records: batch(v),
            timeout_ms: 30_000,
            verification_guard: None,
        };
        // acks=1 is answered at once, but not readable until follower 2 has it.
        let one = service.produce(vec![item("a")], 1).await;
        assert_eq!(one[0].as_ref().unwrap().base_offset, 0);
        let read = |offset| ReadItem {
            tp: tp.clone(),
            offset,
            max_bytes: 1 << 20,
            min_one_batch: true,
            current_leader_epoch: -1,
            read_committed: false,
        };
        let r = service.read(vec![read(0)]).await;
        assert_eq!(r[0].as_ref().unwrap().high_watermark, 0);
        assert!(r[0].as_ref().unwrap().slice.is_none());
        let latest = OffsetQuery {
            tp: tp.clone(),
            timestamp: -1,
            current_leader_epoch: -1,
            end_of_epoch: None,
            read_committed: false,
            from_replica: false,
        };
        assert_eq!(
            service.offsets(vec![latest.clone()]).await[0],
            Ok(OffsetOk {
                offset: 0,
                timestamp: -1,
                leader_epoch: 1,
            })
        );
        // A follower's ListOffsets (out-of-range resolution) gets the log end.
        let replica_latest = OffsetQuery {
            from_replica: true,
            ..latest.clone()
        };
        assert_eq!(
            service.offsets(vec![replica_latest]).await[0]
                .as_ref()
                .map(|ok| ok.offset),
            Ok(1)
        );
        // A consumer long-polls at offset 0; the follower's fetches move the HW and wake it.
        let waiting = {
            let service = service.clone();
            let tp = tp.clone();
            compio::runtime::spawn(async move {
                let started = Instant::now();
                let deadline = started + Duration::from_secs(10);
                service.wait(vec![(tp, 0)], deadline).await;
                started.elapsed()
            })
        };
        compio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        leader
            .follower_fetch(2, 0, -1, 1, 1 << 20, 5)
            .await
            .unwrap();
        leader.follower_fetch(2, 1, 1, 1, 1 << 20, 5).await.unwrap();
        let waited = waiting.await.unwrap();
        assert!(
            waited < Duration::from_secs(5),
            "woken by the HW move, not the deadline: {waited:?}"
        );
        assert!(service.read(vec![read(0)]).await[0]
            .as_ref()
            .unwrap()
            .slice
            .is_some());
        assert_eq!(
            service
                .replicated_high_watermarks()
                .get(&("t".to_string(), 0)),
            Some(&1)
        );
        // Follower 2 stops fetching; past replica.lag.time.max.ms behind the log end, the
        // tick proposes the ISR without it.
        service.produce(vec![item("late")], 1).await;
        assert!(
            service.replication_tick().is_empty(),
            "not lagging long enough"
        );
        manual.advance_ms(30_010);
        let proposals = service.replication_tick();
        assert_eq!(proposals.len(), 1);
        assert_eq!(proposals[0].1[0].new_isr, vec![1]);
        leader.on_isr_rejected();
        // acks=all waits; stopping replication answers it NOT_LEADER_OR_FOLLOWER.
        let produce = {
            let service = service.clone();
            let item = item("b");
            compio::runtime::spawn(async move { service.produce(vec![item], -1).await })
        };
        compio::time::sleep(Duration::from_millis(10)).await;
        assert!(!produce.is_finished());
        assert!(service.stop_replicated(&tp));
        let answered = produce.await.unwrap();
        assert_eq!(answered[0], Err(PartitionError::Unavailable));
        assert!(service.replicated(&tp).is_none());
    }

    /// DeleteRecords on a replicated leader is answered by the follower fetch that carries
    /// the follower's moved log start offset (Kafka's DelayedDeleteRecords completed on the
    /// fetch), long before the request's timeout: the wait is woken, not polled.
    #[compio::test]
    async fn a_follower_fetch_answers_a_waiting_delete_records() {
        let ReplicatedService {
            _dir,
            service,
            tp,
            leader,
            ..
        } = replicated_service().await;
        for value in ["a", "b"] {
            let produce = ProduceItem {
                tp: tp.clone(),
                records: batch(value),
                timeout_ms: 30_000,
                verification_guard: None,
            };
            assert!(service.produce(vec![produce], 1).await[0].is_ok());
        }
        let fetch = |fetch_offset: i64, log_start_offset: i64| FollowerFetchItem {
            tp: tp.clone(),
            fetch_offset,
            last_fetched_epoch: if fetch_offset == 0 { -1 } else { 1 },
            current_leader_epoch: 1,
            max_bytes: 1 << 20,
            log_start_offset,
        };
        // Follower 2 takes both records: the high watermark reaches 2.
        let now = Instant::now();
        assert!(service.follower_fetch(2, vec![fetch(0, 0)], now).await[0].is_ok());
        assert!(service.follower_fetch(2, vec![fetch(2, 0)], now).await[0].is_ok());
        assert_eq!(leader.high_watermark(), 2);
        let deleting = {
            let service = service.clone();
            let item = DeleteRecordsItem {
                tp: tp.clone(),
                offset: 1,
                // Far beyond the bound below: only a wake-up answers in time.
                timeout_ms: 600_000,
            };
            compio::runtime::spawn(async move { service.delete_records(vec![item]).await })
        };
        let parked = Instant::now() + Duration::from_secs(30);
        while leader.low_watermark_waiting() == 0 {
            assert!(Instant::now() < parked, "DeleteRecords did not park");
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(leader.log_start_offset(), 1, "deleted on the leader");
        assert_eq!(leader.low_watermark(), 0, "follower 2 still starts at 0");
        // The follower's next fetch reports its log start moved to the leader's.
        assert!(service.follower_fetch(2, vec![fetch(2, 1)], now).await[0].is_ok());
        let answered = compio::time::timeout(Duration::from_secs(30), deleting)
            .await
            .expect("answered by the follower's fetch, not the request timeout")
            .unwrap();
        assert_eq!(answered, vec![Ok(1)]);
    }
}
