//! One replica fetcher (Kafka's `ReplicaFetcherThread`): a connection from this broker to one
//! source broker (a partition leader) for one fetcher id, replicating the partitions this
//! broker follows from it. Each round sends the replica Fetch of the `FetcherSession`
//! (`replication::wire`), appends the leader's batches unchanged
//! (`Partition::append_as_follower`), truncates a divergent tail (the Fetch diverging epoch,
//! then OffsetForLeaderEpoch while a step is incomplete) and learns the high watermark.
//!
//! Invariants: one request in flight per connection; a response frame over `FRAME_BYTES_MAX`
//! closes the connection; a failure of one partition backs that partition off without
//! stopping the others; any connection error drops the connection (re-dialled next round);
//! storage I/O errors stop the process (the partition's rule).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use super::inter_broker::BrokerStream;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, OffsetForLeaderEpochResponse};

use crate::partition::{Partition, PartitionError};
use crate::producers::rebuild::RebuildLimits;
use crate::replication::fetcher::{FetchAction, FetcherConfig, FetcherSession};
use crate::replication::truncation::{follower_high_watermark, truncation_offset, EpochEndOffset};
use crate::replication::wire;

/// The largest response frame read (a fetch answers at most `replica.fetch.response.max.bytes`
/// plus one oversized first batch, KIP-74, bounded by `message.max.bytes`).
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
/// The client id on inter-broker requests.
const CLIENT_ID: &str = "sluice-replica-fetcher";
/// Kafka's `replica.socket.timeout.ms` default: a request not answered within this (plus the
/// fetch's own wait) drops the connection.
pub const REPLICA_SOCKET_TIMEOUT_MS: u64 = 30_000;
/// OffsetForLeaderEpoch version sent (replica id field: v3+).
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;

#[derive(Debug, thiserror::Error)]
pub enum FetcherError {
    #[error("connection to broker {broker} at {addr}: {source}")]
    Io {
        broker: i32,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("response frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchRound {
    pub bytes_appended: u64,
    pub truncations: usize,
    pub backed_off: usize,
}

/// See the module documentation.
pub struct ReplicaFetcher {
    source_addr: SocketAddr,
    replica_id: i32,
    broker_epoch: i64,
    fetch_version: i16,
    session: FetcherSession,
    stream: Option<BrokerStream>,
    correlation_id: i32,
    partitions: HashMap<(String, i32), Rc<Partition>>,
    topic_ids: HashMap<String, uuid::Uuid>,
    high_watermarks: HashMap<(String, i32), i64>,
    limits: RebuildLimits,
    /// The follower replication throttle (`replication_quota`), when set.
    throttle: Option<(
        Rc<std::cell::RefCell<super::replication_quota::FollowerThrottle>>,
        std::sync::Arc<crate::config::BrokerConfig>,
    )>,
}

impl ReplicaFetcher {
    pub fn new(
        source_broker: i32,
        source_addr: SocketAddr,
        replica_id: i32,
        broker_epoch: i64,
        fetch_version: i16,
        config: FetcherConfig,
        limits: RebuildLimits,
    ) -> Self {
        Self {
            source_addr,
            replica_id,
            broker_epoch,
            fetch_version,
            session: FetcherSession::new(source_broker, config),
            stream: None,
            correlation_id: 0,
            partitions: HashMap::new(),
            topic_ids: HashMap::new(),
            high_watermarks: HashMap::new(),
            limits,
            throttle: None,
        }
    }

    /// Applies the shard's follower replication throttle (Kafka's `ReplicaFetcherThread`
    /// with its `ReplicationQuotaManager`).
    pub fn set_throttle(
        &mut self,
        view: Rc<std::cell::RefCell<super::replication_quota::FollowerThrottle>>,
        config: std::sync::Arc<crate::config::BrokerConfig>,
    ) {
        self.throttle = Some((view, config));
    }

    /// Kafka's `shouldFollowerThrottle`: throttled, not caught up, and the quota exceeded.
    fn throttled_out(&self, plan: &mut crate::replication::fetcher::FetchPlan, now_ms: i64) {
        use super::replication_quota::{is_exceeded, Side};
        let Some((view, config)) = &self.throttle else {
            return;
        };
        let view = view.borrow();
        let Some(rate) = view.rate else {
            return;
        };
        let session = &self.session;
        let throttled = |p: &crate::replication::fetcher::FetchPartition| {
            let in_sync = session.state(&p.topic, p.partition).and_then(|s| s.lag) == Some(0);
            view.throttles(&p.topic, p.partition) && !in_sync
        };
        if plan.partitions.iter().any(throttled)
            && is_exceeded(Side::Follower, config, rate, now_ms)
        {
            plan.partitions.retain(|p| !throttled(p));
        }
    }

    /// Counts appended bytes of a throttled partition against the follower quota.
    fn record_throttled(&self, topic: &str, partition: i32, bytes: u64) {
        use super::replication_quota::{record, Side};
        if let Some((view, config)) = &self.throttle {
            if view.borrow().throttles(topic, partition) {
                record(Side::Follower, config, bytes, crate::clock::system_now_ms());
            }
        }
    }

    /// Starts following `partition` (already `become_follower`) from its log end.
    pub fn add_partition(
        &mut self,
        partition: Rc<Partition>,
        topic_id: uuid::Uuid,
        current_leader_epoch: i32,
    ) {
        use crate::partition::PartitionProxy;
        let tp = partition.topic_partition().clone();
        let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
        self.session.add_partition(
            &tp.topic,
            index,
            partition.log_end_offset(),
            current_leader_epoch,
            partition.latest_epoch(),
        );
        self.topic_ids.insert(tp.topic.clone(), topic_id);
        self.partitions.insert((tp.topic, index), partition);
    }

    pub fn remove_partition(&mut self, topic: &str, partition: i32) {
        self.session.remove_partition(topic, partition);
        self.partitions.remove(&(topic.to_owned(), partition));
    }

    /// The high watermark learnt for a partition (bounded by its log end), for the
    /// replication-offset checkpoint.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.high_watermarks
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    /// The largest lag (messages: the leader's high watermark minus the fetch offset, as of
    /// the last answer) of the followed partitions (Kafka's fetcher `MaxLag`).
    pub fn max_lag(&self) -> i64 {
        self.partitions
            .keys()
            .filter_map(|(topic, partition)| self.session.state(topic, *partition)?.lag)
            .max()
            .unwrap_or(0)
    }

    /// One round: reconcile partitions that need it, then one Fetch and its answers.
    pub async fn run_once(&mut self, now_ms: i64) -> Result<FetchRound, FetcherError> {
        let mut round = FetchRound::default();
        self.reconcile(now_ms, &mut round).await?;
        let Some(mut plan) = self.session.fetch_plan(now_ms) else {
            return Ok(round);
        };
        self.throttled_out(&mut plan, now_ms);
        if plan.partitions.is_empty() {
            return Ok(round);
        }
        let ids = &self.topic_ids;
        let mut request = wire::fetch_request(
            &plan,
            self.replica_id,
            self.broker_epoch,
            self.fetch_version,
            |t| ids.get(t).copied(),
        );
        self.report_log_starts(&mut request);
        let body = self
            .call(ApiKey::Fetch, self.fetch_version, &request)
            .await?;
        let response: FetchResponse = self.decode(ApiKey::Fetch, self.fetch_version, body)?;
        let names: HashMap<uuid::Uuid, String> = self
            .topic_ids
            .iter()
            .map(|(name, id)| (*id, name.clone()))
            .collect();
        let fetched =
            wire::fetched_partitions(&response, self.fetch_version, |id| names.get(&id).cloned());
        for part in fetched {
            let Some(requested) = plan
                .partitions
                .iter()
                .find(|p| p.topic == part.topic && p.partition == part.partition)
                .map(|p| p.fetch_offset)
            else {
                continue;
            };
            self.apply(part, requested, now_ms, &mut round).await?;
        }
        Ok(round)
    }

    async fn apply(
        &mut self,
        part: wire::FetchedPartition,
        requested: i64,
        now_ms: i64,
        round: &mut FetchRound,
    ) -> Result<(), FetcherError> {
        let key = (part.topic.clone(), part.partition);
        let Some(partition) = self.partitions.get(&key).cloned() else {
            return Ok(());
        };
        if self.session.is_stale_for(&part.topic, part.partition, {
            use crate::partition::PartitionProxy;
            partition.leader_epoch()
        }) {
            tracing::info!(topic = %part.topic, partition = part.partition, requested, "replica fetch answer dropped: the replica moved to a newer leader epoch");
            return Ok(());
        }
        let action =
            self.session
                .on_response(&part.topic, part.partition, requested, &part.answer, now_ms);
        let leader_log_start = part.log_start_offset;
        match action {
            FetchAction::Append { high_watermark } => {
                use crate::partition::PartitionProxy;
                let (log_end, epoch) = (partition.log_end_offset(), partition.latest_epoch());
                if !self.session.log_still_ends_at(
                    &part.topic,
                    part.partition,
                    requested,
                    log_end,
                    epoch,
                ) {
                    tracing::info!(topic = %part.topic, partition = part.partition, requested, log_end, epoch, "the log moved under the replica fetcher; reconciling by leader epoch");
                    round.truncations += 1;
                    return Ok(());
                }
                let records = part.records.unwrap_or_default();
                match partition.append_as_follower(records, now_ms).await {
                    Ok(appended) => {
                        round.bytes_appended += u64::from(appended.bytes);
                        self.record_throttled(
                            &part.topic,
                            part.partition,
                            u64::from(appended.bytes),
                        );
                        self.session.on_appended(
                            &part.topic,
                            part.partition,
                            appended.last_offset + 1,
                            partition.latest_epoch(),
                        );
                        self.learn(&key, &partition, high_watermark);
                        partition.follow_leader_log_start(leader_log_start).await?;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %part.topic, partition = part.partition, error = %e, requested, latest = partition.latest_epoch(), "replica append refused");
                        if matches!(e, PartitionError::OffsetOutOfRange { .. }) {
                            // Not retried as is: the batch does not start at our log end, so
                            // the logs are reconciled by leader epoch first (backed off).
                            self.session.reconcile_from(
                                &part.topic,
                                part.partition,
                                partition.log_end_offset(),
                                partition.latest_epoch(),
                            );
                        }
                        self.session.on_error(&part.topic, part.partition, now_ms);
                        round.backed_off += 1;
                    }
                }
            }
            FetchAction::UpToDate { high_watermark } => {
                self.learn(&key, &partition, high_watermark);
                partition.follow_leader_log_start(leader_log_start).await?;
            }
            FetchAction::Truncate(diverging) => {
                self.truncate(&partition, &key, diverging, requested, now_ms)
                    .await?;
                round.truncations += 1;
            }
            FetchAction::ResolveOutOfRange => {
                if self.resolve_out_of_range(&partition, &key).await? {
                    round.truncations += 1;
                } else {
                    self.session.on_error(&part.topic, part.partition, now_ms);
                    round.backed_off += 1;
                }
            }
            FetchAction::BackedOff => {
                tracing::debug!(topic = %part.topic, partition = part.partition, code = part.answer.error_code, requested, "replica fetch answered an error; backing off");
                round.backed_off += 1;
            }
            FetchAction::Removed => {
                tracing::info!(topic = %part.topic, partition = part.partition, requested, "replica fetch fenced (a newer leader epoch): not fetched until this broker applies it");
                self.partitions.remove(&key);
            }
            FetchAction::Ignore => {}
        }
        Ok(())
    }

    /// Each partition's log start offset in the Fetch (Kafka's follower fetch carries it):
    /// the leader's DeleteRecords waits for every replica's to pass its offset.
    fn report_log_starts(&self, request: &mut kafka_protocol::messages::FetchRequest) {
        use crate::partition::PartitionProxy;
        let names: HashMap<uuid::Uuid, &String> = self
            .topic_ids
            .iter()
            .map(|(name, id)| (*id, name))
            .collect();
        for topic in &mut request.topics {
            let name = match names.get(&topic.topic_id) {
                Some(name) if !topic.topic_id.is_nil() => name.as_str(),
                _ => topic.topic.0.as_str(),
            }
            .to_owned();
            for p in &mut topic.partitions {
                if let Some(partition) = self.partitions.get(&(name.clone(), p.partition)) {
                    p.log_start_offset = partition.log_start_offset();
                }
            }
        }
    }

    fn learn(&mut self, key: &(String, i32), partition: &Partition, high_watermark: i64) {
        use crate::partition::PartitionProxy;
        let hw = follower_high_watermark(high_watermark, partition.log_end_offset());
        self.high_watermarks.insert(key.clone(), hw);
    }

    async fn truncate(
        &mut self,
        partition: &Partition,
        key: &(String, i32),
        leader: EpochEndOffset,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<(), FetcherError> {
        use crate::partition::PartitionProxy;
        let own = |epoch| {
            let (e, o) = partition.own_end_offset_for_epoch(epoch);
            EpochEndOffset::new(e, o)
        };
        let t = truncation_offset(leader, own, partition.log_end_offset(), fetch_offset);
        tracing::debug!(topic = %key.0, partition = key.1, leader_epoch = leader.leader_epoch, leader_end = leader.end_offset, fetch_offset, log_end = partition.log_end_offset(), to = t.offset, completed = t.completed, "replica truncating by leader epoch");
        partition.truncate_to(t.offset, self.limits, now_ms).await?;
        self.session.on_truncated(
            &key.0,
            key.1,
            partition.log_end_offset(),
            partition.latest_epoch(),
            t.completed,
        );
        Ok(())
    }

    /// Kafka's `fetchOffsetAndTruncate`: asks the leader its log end and start (ListOffsets
    /// -1 / -2) and truncates to its end (it is behind us: an unclean election), restarts
    /// empty at its start (we are behind its retention), or keeps our log. False when the
    /// leader did not answer usably (the partition backs off).
    async fn resolve_out_of_range(
        &mut self,
        partition: &Partition,
        key: &(String, i32),
    ) -> Result<bool, FetcherError> {
        use crate::partition::PartitionProxy;
        use crate::replication::fetcher::{out_of_range_decision, OutOfRange};
        let current = self
            .session
            .state(&key.0, key.1)
            .map_or(-1, |s| s.current_leader_epoch);
        let (Some(end), Some(start)) = (
            self.leader_offset(key, current, -1).await?,
            self.leader_offset(key, current, -2).await?,
        ) else {
            return Ok(false);
        };
        let replica_end = partition.log_end_offset();
        let fetch_from = match out_of_range_decision(start, end, replica_end) {
            OutOfRange::TruncateTo(offset) => {
                partition.truncate_to(offset, self.limits, 0).await?;
                partition.log_end_offset()
            }
            OutOfRange::TruncateFullyAndStartAt(offset) => {
                partition
                    .truncate_fully_and_start_at(offset, self.limits)
                    .await?;
                offset
            }
            OutOfRange::FetchFrom(offset) => offset,
        };
        tracing::info!(topic = %key.0, partition = key.1, start, end, replica_end, fetch_from, "replica fetch offset reset");
        self.session
            .on_truncated(&key.0, key.1, fetch_from, partition.latest_epoch(), true);
        Ok(true)
    }

    /// The leader's offset for `timestamp` (-1 log end, -2 log start); None on an error code.
    async fn leader_offset(
        &mut self,
        key: &(String, i32),
        current_leader_epoch: i32,
        timestamp: i64,
    ) -> Result<Option<i64>, FetcherError> {
        const LIST_OFFSETS_VERSION: i16 = 4;
        let request = wire::list_offsets_request(
            self.replica_id,
            &key.0,
            key.1,
            current_leader_epoch,
            timestamp,
        );
        let body = self
            .call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)
            .await?;
        let response: kafka_protocol::messages::ListOffsetsResponse =
            self.decode(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, body)?;
        Ok(wire::listed_offset(&response, &key.0, key.1)
            .and_then(|(code, offset)| (code == 0 && offset >= 0).then_some(offset)))
    }

    /// OffsetForLeaderEpoch for the partitions whose log must be reconciled first.
    async fn reconcile(&mut self, now_ms: i64, round: &mut FetchRound) -> Result<(), FetcherError> {
        let pending = self.session.truncating();
        if pending.is_empty() {
            return Ok(());
        }
        let items: Vec<(String, i32, i32, i32)> = pending
            .iter()
            .filter_map(|(t, p, current)| {
                let partition = self.partitions.get(&(t.clone(), *p))?;
                Some((t.clone(), *p, *current, partition.latest_epoch()))
            })
            .collect();
        let request = wire::offset_for_leader_epoch_request(self.replica_id, &items);
        let version = OFFSET_FOR_LEADER_EPOCH_VERSION;
        let body = self
            .call(ApiKey::OffsetForLeaderEpoch, version, &request)
            .await?;
        let response: OffsetForLeaderEpochResponse =
            self.decode(ApiKey::OffsetForLeaderEpoch, version, body)?;
        for topic in response.topics {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                let key = (name.clone(), p.partition);
                let Some(partition) = self.partitions.get(&key).cloned() else {
                    continue;
                };
                if p.error_code != 0 {
                    tracing::debug!(topic = %name, partition = p.partition, code = p.error_code, "OffsetForLeaderEpoch answered an error; backing off");
                    self.session.on_error(&name, p.partition, now_ms);
                    round.backed_off += 1;
                    continue;
                }
                let leader = EpochEndOffset::new(p.leader_epoch, p.end_offset);
                let fetch_offset = self
                    .session
                    .state(&name, p.partition)
                    .map_or(0, |s| s.fetch_offset);
                self.truncate(&partition, &key, leader, fetch_offset, now_ms)
                    .await?;
                round.truncations += 1;
            }
        }
        Ok(())
    }

    /// Sends one request and reads its response frame (dialling first if needed).
    async fn call<E: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &E,
    ) -> Result<Bytes, FetcherError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame =
            crate::cli::client::encode_frame(key, version, self.correlation_id, CLIENT_ID, request)
                .map_err(|e| FetcherError::Protocol(e.to_string()))?;
        let timeout = std::time::Duration::from_millis(REPLICA_SOCKET_TIMEOUT_MS);
        let result = match compio::time::timeout(timeout, self.round_trip(frame)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FetcherError::Io {
                broker: self.session.source_broker,
                addr: self.source_addr,
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
            }),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn round_trip(&mut self, frame: Vec<u8>) -> Result<Bytes, FetcherError> {
        let (broker, addr) = (self.session.source_broker, self.source_addr);
        let io = |source| FetcherError::Io {
            broker,
            addr,
            source,
        };
        if self.stream.is_none() {
            // The inter-broker listener's protocol (TLS when it is SSL): `inter_broker`.
            self.stream = Some(BrokerStream::connect(addr).await.map_err(io)?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(FetcherError::Protocol("no connection".into()));
        };
        stream.write_all(frame).await.map_err(io)?;
        let len: [u8; 4] = stream
            .read_exact(4)
            .await
            .map_err(io)?
            .try_into()
            .map_err(|_| FetcherError::Protocol("short frame size".into()))?;
        let len = usize::try_from(i32::from_be_bytes(len))
            .map_err(|_| FetcherError::Protocol("negative frame size".into()))?;
        if len > FRAME_BYTES_MAX {
            return Err(FetcherError::TooLarge(len));
        }
        let body = stream.read_exact(len).await.map_err(io)?;
        Ok(Bytes::from(body))
    }

    fn decode<D: kafka_protocol::protocol::Decodable>(
        &self,
        key: ApiKey,
        version: i16,
        body: Bytes,
    ) -> Result<D, FetcherError> {
        crate::cli::client::decode_frame(key, version, self.correlation_id, body)
            .map_err(|e| FetcherError::Protocol(e.to_string()))
    }
}
