//! A broker's replica roles from the metadata image (Kafka's `ReplicaManager.applyDelta`:
//! `makeLeaders` / `makeFollowers`), per shard, for the partitions this shard owns: a
//! partition this broker leads with more than one replica is served as a replicated leader
//! (`PartitionService::make_replicated`, later registrations through `on_registration`); one
//! it follows is a follower (`Partition::become_follower`) fed by a replica fetcher task
//! (`cluster::replica_fetcher`), one task per (source broker, fetcher id) on this shard
//! (Kafka's `getFetcherId` over `num.replica.fetchers`). Single-replica partitions are left
//! exactly as they were.
//!
//! Invariants: a partition is fetched by at most one fetcher task, and only while the image
//! names another broker as its leader; leading it (or losing its leader, or its deletion)
//! removes it from its fetcher first; a fetcher task with no partitions left stops; a failing
//! fetcher backs off (doubling from 50 ms up to `replica.fetch.backoff.ms`), never spins.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use crate::partition::replicated::ReplicationConfig;
use crate::partition::{Partition, TopicPartition};
use crate::replication::fetcher::{fetcher_id, FetcherConfig};
use crate::replication::isr::LeaderRegistration;
use crate::topics::{self, TopicMeta};

use super::replica_fetcher::{FetchRound, ReplicaFetcher};
pub use super::replica_fetchers::ReplicaFetchers;
use super::replica_fetchers::{Change, FetcherHandle, Following};
use super::{MetadataImage, PartitionRegistration};

/// What replica roles (and the replication loops) use of a shard (built by the shard,
/// `shard::contexts_cluster`).
#[derive(Clone, Copy)]
pub struct ReplicasContext<'a> {
    pub shard_id: shards::ShardId,
    /// This process as a KRaft node; None for the single node of old (no replicas).
    pub cluster: Option<&'a std::sync::Arc<super::node::ClusterNode>>,
    pub config: &'a std::sync::Arc<crate::config::BrokerConfig>,
    pub default_log: &'a storage::LogConfig,
    pub image: &'a RefCell<MetadataImage>,
    pub dynamic_configs: &'a RefCell<topics::dynamic::DynamicConfigs>,
    pub placement: &'a crate::router::placement::PlacementTable,
    pub partitions: &'a crate::partition::PartitionService,
    pub replica_fetchers: &'a ReplicaFetchers,
    pub hw_checkpoint: &'a crate::replication::checkpoint::HighWatermarkCheckpoint,
    pub shutdown: &'a shards::Shutdown,
}

/// Where `broker_addr` reads brokers' endpoints: a metadata image (a context's, or the
/// shard's: `shard::contexts_cluster`).
pub trait ImageSource {
    fn metadata_image(&self) -> &RefCell<MetadataImage>;
}

impl ImageSource for RefCell<MetadataImage> {
    fn metadata_image(&self) -> &RefCell<MetadataImage> {
        self
    }
}

impl<T: ImageSource + ?Sized> ImageSource for Rc<T> {
    fn metadata_image(&self) -> &RefCell<MetadataImage> {
        T::metadata_image(self)
    }
}

/// The Fetch version replica fetchers send (topic names, `replica_id` in the request; Kafka
/// 2.x brokers' `interBrokerProtocolVersion` fetch without topic ids).
const REPLICA_FETCH_VERSION: i16 = 12;
/// First backoff after a failed round (doubles up to `replica.fetch.backoff.ms`).
const BACKOFF_MIN_MS: u64 = 50;
/// Pause after a round that fetched nothing and had nothing to fetch (every partition
/// delayed) or that the leader answered before the fetch's wait was over, so an idle
/// fetcher never spins (`idle_pause_ms`).
const IDLE_PAUSE_MS: u64 = 10;

/// Waits until the fetchers applied the removals (a fetcher task that ended answers by
/// dropping them), bounded by one fetch round's worst case.
pub(super) async fn settle(removals: Vec<oneshot::Receiver<()>>) {
    if removals.is_empty() {
        return;
    }
    let bound = Duration::from_millis(super::replica_fetcher::REPLICA_SOCKET_TIMEOUT_MS * 2);
    let all = futures_util::future::join_all(removals);
    if compio::time::timeout(bound, all).await.is_err() {
        tracing::warn!("a replica fetcher did not release its partitions in time");
    }
}

/// Applies the replica roles of `metas` (their registrations as the image has them now) to
/// the partitions this shard owns; run after `open::open_owned` opened them. Partitions
/// leave their old fetchers first (and those rounds end) before any becomes a leader or
/// joins another fetcher.
pub async fn apply_roles(shard: &ReplicasContext<'_>, metas: &[TopicMeta]) {
    if shard.cluster.is_none() {
        return;
    }
    refresh_follower_throttle(shard);
    let mut roles = Vec::new();
    let mut removals = Vec::new();
    for meta in metas {
        let min_isr = min_insync_replicas(shard, meta);
        for (index, registration) in (0..meta.partitions).zip(&meta.registrations) {
            if !registration.replicas.contains(&shard.config.server.node_id)
                || shard.placement.shard_for(&meta.name, index) != shard.shard_id
            {
                continue;
            }
            let tp = TopicPartition::new(meta.name.clone(), index);
            let Some(partition) = shard.partitions.get(&tp) else {
                continue;
            };
            let target = fetch_target(shard, &tp, registration);
            let current = shard.replica_fetchers.following.borrow().get(&tp).copied();
            if current.is_some() && current != target {
                removals.extend(shard.replica_fetchers.unfollow(&tp));
            }
            roles.push((partition, meta, registration, min_isr, target, current));
        }
    }
    settle(removals).await;
    for (partition, meta, registration, min_isr, target, current) in roles {
        if registration.leader == shard.config.server.node_id {
            lead(shard, &partition.tp, registration, min_isr);
            continue;
        }
        shard.partitions.stop_replicated(&partition.tp);
        match target {
            Some(target) if current != Some(target) => follow(shard, partition, meta, target),
            _ => {}
        }
    }
}

/// The replication throttle this shard's fetchers apply, from the image and the dynamic
/// broker configs (`replication_quota`).
fn refresh_follower_throttle(shard: &ReplicasContext<'_>) {
    use super::replication_quota::{rate_of, Side};
    let rate = rate_of(&shard.dynamic_configs.borrow(), Side::Follower);
    let image = shard.image.borrow();
    shard
        .replica_fetchers
        .follower_throttle
        .borrow_mut()
        .refresh(&image, rate, shard.config.server.node_id);
}

/// Where this broker should fetch `tp` from: its leader, when that is another broker.
fn fetch_target(
    shard: &ReplicasContext<'_>,
    tp: &TopicPartition,
    registration: &PartitionRegistration,
) -> Option<Following> {
    if registration.leader < 0 || registration.leader == shard.config.server.node_id {
        return None;
    }
    let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
    let fetchers = usize::try_from(shard.config.replication.num_replica_fetchers).unwrap_or(1);
    Some(Following {
        leader: registration.leader,
        leader_epoch: registration.leader_epoch,
        fetcher: fetcher_id(&tp.topic, index, fetchers),
    })
}

/// Stops fetching the partitions of topics being deleted, before their logs close
/// (`deletion::remove_topics`).
pub async fn stop_following_topics(
    fetchers: &ReplicaFetchers,
    names: &std::collections::HashSet<String>,
) {
    let gone: Vec<TopicPartition> = fetchers
        .following
        .borrow()
        .keys()
        .filter(|tp| names.contains(&tp.topic))
        .cloned()
        .collect();
    let removals = gone.iter().filter_map(|tp| fetchers.unfollow(tp)).collect();
    settle(removals).await;
}

pub(crate) fn min_insync_replicas(shard: &ReplicasContext<'_>, meta: &TopicMeta) -> i32 {
    let dynamic = shard.dynamic_configs.borrow().clone();
    topics::dynamic::resolve_with(shard.default_log, &dynamic, &meta.configs)
        .map_or(1, |c| c.min_insync_replicas)
}

/// Kafka's `makeLeader` with followers: the first registration makes the partition a
/// replicated leader, later ones (an ISR or replica change) update it.
fn lead(
    shard: &ReplicasContext<'_>,
    tp: &TopicPartition,
    registration: &PartitionRegistration,
    min_isr: i32,
) {
    if registration.replicas.len() <= 1 {
        shard.partitions.stop_replicated(tp);
        if let Some(partition) = shard.partitions.get(tp) {
            partition.stop_following();
        }
        return;
    }
    let leader_registration = LeaderRegistration {
        replicas: registration.replicas.clone(),
        isr: registration.isr.clone(),
        leader_epoch: registration.leader_epoch,
        partition_epoch: registration.partition_epoch,
    };
    let now_ms = crate::clock::system_now_ms();
    // A leader re-elected with a newer epoch (a reassignment that removed a replica bumps it)
    // keeps the high watermark it had; a former follower starts from the one it learnt.
    let mut kept_high_watermark = 0;
    if let Some(leader) = shard.partitions.replicated(tp) {
        if leader.state().leader_epoch() == registration.leader_epoch {
            leader.on_registration(&leader_registration, now_ms);
            return;
        }
        kept_high_watermark = leader.state().high_watermark();
    }
    let config = ReplicationConfig::from_broker(shard.config, shard.config.server.node_id, min_isr);
    let Some(partition) = shard.partitions.get(tp) else {
        return;
    };
    let high_watermark = follower_high_watermark(shard, &partition).max(kept_high_watermark);
    if let Err(e) =
        shard
            .partitions
            .make_replicated(tp, &leader_registration, high_watermark, config)
    {
        tracing::error!(partition = %tp.dir_name(), error = %e, "cannot lead the partition with its followers");
    }
}

/// The high watermark this broker knows for a partition it does not lead with followers now:
/// the one its fetcher learnt, else the checkpointed one (a restarted broker), else 0; within
/// the log's bounds (Kafka's `UnifiedLog.updateHighWatermark`). What it starts leading with.
fn follower_high_watermark(shard: &ReplicasContext<'_>, partition: &Partition) -> i64 {
    use crate::partition::PartitionProxy;
    let tp = &partition.tp;
    let known = shard
        .replica_fetchers
        .learnt_high_watermark(tp)
        .or_else(|| shard.hw_checkpoint.loaded(&tp.topic, tp.partition))
        .unwrap_or(0);
    let (start, end) = (partition.log_start_offset(), partition.log_end_offset());
    known.clamp(start, end.max(start))
}

/// Whether the image names more than one replica for `tp` (its high watermark is then not
/// simply its log end).
fn has_followers(shard: &ReplicasContext<'_>, tp: &TopicPartition) -> bool {
    let image = shard.image.borrow();
    let index = usize::try_from(tp.partition).unwrap_or(usize::MAX);
    image
        .get(&tp.topic)
        .and_then(|meta| meta.registrations.get(index))
        .is_some_and(|r| r.replicas.len() > 1)
}

/// This shard's high watermarks (every partition it owns) into its slot of the broker's
/// `replication-offset-checkpoint` (`replication::checkpoint::HighWatermarkCheckpoint`).
pub fn publish_high_watermarks(shard: &ReplicasContext<'_>) {
    use crate::partition::PartitionProxy;
    let marks = shard
        .partitions
        .all()
        .into_iter()
        .map(|partition| {
            let tp = &partition.tp;
            let hw = match shard.partitions.replicated(tp) {
                Some(leader) => leader.high_watermark(),
                None if has_followers(shard, tp) => follower_high_watermark(shard, &partition),
                // A single replica: its high watermark is its log end.
                None => partition.high_watermark(),
            };
            ((tp.topic.clone(), tp.partition), hw)
        })
        .collect();
    shard.hw_checkpoint.publish(shard.shard_id.index(), marks);
}

/// Every `replica.high.watermark.checkpoint.interval.ms` (Kafka's `highwatermark-checkpoint`
/// task): each shard publishes its high watermarks, the registry shard writes the file. A
/// file that cannot be written stops the broker (Kafka takes its log directory offline).
pub async fn checkpoint_loop(shard: &ReplicasContext<'_>) {
    let interval = Duration::from_millis(
        shard
            .config
            .replication
            .replica_high_watermark_checkpoint_interval_ms,
    );
    loop {
        let sleep = Box::pin(compio::time::sleep(interval));
        let stop = Box::pin(shard.shutdown.wait());
        if let futures_util::future::Either::Right(_) =
            futures_util::future::select(sleep, stop).await
        {
            return;
        }
        publish_high_watermarks(shard);
        // The registry shard (shard 0) writes the union of the shards' slots.
        if shard.shard_id == shards::ShardId(0) {
            if let Err(e) = shard.hw_checkpoint.persist().await {
                shards::fatal(format!("cannot write the high-watermark checkpoint: {e}"));
            }
        }
    }
}

/// Kafka's `makeFollower`: the partition takes the leader's epoch and joins this shard's
/// fetcher for (leader, fetcher id) (no fetcher holds it now: `apply_roles` removed it).
fn follow(
    shard: &ReplicasContext<'_>,
    partition: Rc<Partition>,
    meta: &TopicMeta,
    want: Following,
) {
    let tp = partition.tp.clone();
    if let Err(e) = partition.become_follower(want.leader_epoch) {
        tracing::error!(partition = %tp.dir_name(), error = %e, "cannot follow the partition");
        return;
    }
    let Some(addr) = broker_addr(shard.image, want.leader) else {
        tracing::warn!(partition = %tp.dir_name(), leader = want.leader, "the leader has no reachable endpoint in the image; not fetching");
        return;
    };
    let fetcher_config = FetcherConfig::from(shard.config.as_ref());
    let topic_id = uuid::Uuid::from_u128(meta.id.0);
    let key = (want.leader, want.fetcher);
    let mut fetchers = shard.replica_fetchers.fetchers.borrow_mut();
    let handle = fetchers
        .entry(key)
        .or_insert_with(|| spawn_fetcher(shard, want.leader, addr, fetcher_config));
    handle.changes.borrow_mut().push(Change::Add {
        partition,
        topic_id,
        leader_epoch: want.leader_epoch,
    });
    handle.partitions += 1;
    drop(fetchers);
    shard
        .replica_fetchers
        .following
        .borrow_mut()
        .insert(tp, want);
}

/// The address a follower fetches from: the leader's endpoint of the inter-broker listener
/// (`inter_broker`), else its first registered endpoint.
pub fn broker_addr(image: &(impl ImageSource + ?Sized), broker: i32) -> Option<SocketAddr> {
    let image = image.metadata_image().borrow();
    let end_points = &image.broker(broker)?.end_points;
    let named = super::inter_broker::listener_name().and_then(|name| {
        end_points
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    });
    let endpoint = named.or_else(|| end_points.first())?.clone();
    let text = format!("{}:{}", endpoint.host, endpoint.port);
    text.parse().ok().or_else(|| {
        use std::net::ToSocketAddrs;
        text.to_socket_addrs().ok()?.next()
    })
}

fn spawn_fetcher(
    shard: &ReplicasContext<'_>,
    source: i32,
    addr: SocketAddr,
    config: FetcherConfig,
) -> FetcherHandle {
    let changes = Rc::new(RefCell::new(Vec::new()));
    let stopped = Rc::new(Cell::new(false));
    let broker_epoch = shard.cluster.map_or(-1, |n| n.broker_epoch());
    let mut fetcher = ReplicaFetcher::new(
        source,
        addr,
        shard.config.server.node_id,
        broker_epoch,
        REPLICA_FETCH_VERSION,
        config,
        shard.config.producer_rebuild_limits(),
    );
    fetcher.set_throttle(
        shard.replica_fetchers.follower_throttle.clone(),
        shard.config.clone(),
    );
    let task = FetcherTask {
        fetcher,
        changes: changes.clone(),
        stopped: stopped.clone(),
        shutdown: shard.shutdown.clone(),
        high_watermarks: shard.replica_fetchers.high_watermarks.clone(),
        followed: Vec::new(),
        backoff_max_ms: u64::try_from(config.replica_fetch_backoff_ms).unwrap_or(1000),
        fetch_wait_max_ms: u64::try_from(config.replica_fetch_wait_max_ms).unwrap_or(0),
        lag: super::replication_metrics::LagSlot::new(),
    };
    compio::runtime::spawn(task.run()).detach();
    FetcherHandle {
        changes,
        stopped,
        partitions: 0,
    }
}

struct FetcherTask {
    fetcher: ReplicaFetcher,
    changes: Rc<RefCell<Vec<Change>>>,
    stopped: Rc<Cell<bool>>,
    shutdown: shards::Shutdown,
    high_watermarks: Rc<RefCell<HashMap<TopicPartition, i64>>>,
    followed: Vec<TopicPartition>,
    backoff_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long the leader may hold a Fetch with nothing new.
    fetch_wait_max_ms: u64,
    /// This fetcher's max lag on /metrics (`replication_metrics`).
    lag: super::replication_metrics::LagSlot,
}

impl FetcherTask {
    async fn run(mut self) {
        let mut backoff_ms = BACKOFF_MIN_MS;
        while !self.stopped.get() && !self.shutdown.is_triggered() {
            self.apply_changes();
            let started = std::time::Instant::now();
            let pause = match self.fetcher.run_once(crate::clock::system_now_ms()).await {
                Ok(round) => {
                    backoff_ms = BACKOFF_MIN_MS;
                    self.publish_high_watermarks();
                    super::replication_metrics::add_bytes_in(round.bytes_appended);
                    self.lag.set(self.fetcher.max_lag());
                    idle_pause_ms(&round, started.elapsed(), self.fetch_wait_max_ms)
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms, "replica fetch failed");
                    let pause = backoff_ms;
                    backoff_ms = backoff_ms.saturating_mul(2).min(self.backoff_max_ms);
                    Some(pause)
                }
            };
            if let Some(ms) = pause {
                compio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        // Answer the removals that stopped it.
        self.apply_changes();
    }

    fn apply_changes(&mut self) {
        let changes = std::mem::take(&mut *self.changes.borrow_mut());
        for change in changes {
            match change {
                Change::Add {
                    partition,
                    topic_id,
                    leader_epoch,
                } => {
                    let tp = partition.tp.clone();
                    self.fetcher
                        .add_partition(partition, topic_id, leader_epoch);
                    self.followed.retain(|t| *t != tp);
                    self.followed.push(tp);
                }
                Change::Remove(tp, done) => {
                    let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
                    self.fetcher.remove_partition(&tp.topic, index);
                    self.followed.retain(|t| *t != tp);
                    let _ = done.send(());
                }
            }
        }
    }

    fn publish_high_watermarks(&self) {
        let mut shared = self.high_watermarks.borrow_mut();
        for tp in &self.followed {
            let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
            if let Some(hw) = self.fetcher.high_watermark(&tp.topic, index) {
                shared.insert(tp.clone(), hw);
            }
        }
    }
}

/// The pause before the next round after a successful one: none after records or a
/// truncation (Kafka's fetcher fetches again at once, and that next Fetch is what moves the
/// leader's high watermark and answers its acks=all produces), none after an empty answer
/// the leader held for the whole `replica.fetch.wait.max.ms` (a long-poll: the next one
/// starts at once), `IDLE_PAUSE_MS` after an empty round that came back sooner (nothing to
/// fetch, every partition backed off, or a leader that does not long-poll).
fn idle_pause_ms(round: &FetchRound, elapsed: Duration, fetch_wait_max_ms: u64) -> Option<u64> {
    let idle = round.bytes_appended == 0 && round.truncations == 0;
    let long_polled = elapsed >= Duration::from_millis(fetch_wait_max_ms);
    (idle && !long_polled).then_some(IDLE_PAUSE_MS)
}

/// Every `replica.lag.time.max.ms / 2` (Kafka's `isr-expiration`), at most
/// `ISR_TICK_MAX_MS` apart so an expansion (a follower caught up) reaches the controller
/// soon: the shard's replicated leaders shrink lagging followers out of the ISR, expire
/// acks=all waiters, and send their ISR proposals to the active controller (AlterPartition).
pub async fn tick_loop(shard: &ReplicasContext<'_>) {
    let Some(node) = shard.cluster.cloned() else {
        return;
    };
    let period_ms =
        (shard.config.replication.replica_lag_time_max_ms / 2).clamp(10, ISR_TICK_MAX_MS);
    let mut channel = super::heartbeat::ControllerChannel::new(node.clone());
    loop {
        let sleep = Box::pin(compio::time::sleep(Duration::from_millis(period_ms)));
        let stop = Box::pin(shard.shutdown.wait());
        if let futures_util::future::Either::Right(_) =
            futures_util::future::select(sleep, stop).await
        {
            return;
        }
        let proposals = shard.partitions.replication_tick();
        if !proposals.is_empty() {
            alter_partition(shard, &node, &mut channel, proposals).await;
        }
    }
}

/// The longest wait between two replication ticks.
const ISR_TICK_MAX_MS: u64 = 250;

/// Sends the proposals as one AlterPartition and applies the answers; a call that fails
/// (controller unreachable, moved, stale broker epoch) rejects them all, so the leaders
/// propose again at a later tick.
async fn alter_partition(
    shard: &ReplicasContext<'_>,
    node: &crate::cluster::node::ClusterNode,
    channel: &mut super::heartbeat::ControllerChannel,
    proposals: Vec<(TopicPartition, Vec<crate::replication::isr::IsrProposal>)>,
) {
    use super::alter_partition_rpc::{AlterPartitionAnswer, AlterPartitionCall};
    let mut by_topic: HashMap<u128, Vec<super::alter_partition_rpc::ProposedPartition>> =
        HashMap::new();
    let mut ids: HashMap<u128, String> = HashMap::new();
    // The committed ISR sizes before, to count shrinks and expands (replication_metrics).
    let mut isr_before: HashMap<TopicPartition, usize> = HashMap::new();
    {
        let image = shard.image.borrow();
        for (tp, list) in &proposals {
            let (Some(meta), Some(last)) = (image.get(&tp.topic), list.last()) else {
                continue;
            };
            if let Some(r) = image.partition(&tp.topic, tp.partition) {
                isr_before.insert(tp.clone(), r.isr.len());
            }
            ids.insert(meta.id.0, tp.topic.clone());
            by_topic.entry(meta.id.0).or_default().push((
                tp.partition,
                last.leader_epoch,
                last.partition_epoch,
                last.new_isr.clone(),
            ));
        }
    }
    let call = AlterPartitionCall {
        broker_id: shard.config.server.node_id,
        broker_epoch: node.broker_epoch(),
        topics: by_topic.into_iter().collect(),
    };
    let kind = super::quorum::network::KIND_ALTER_PARTITION;
    match channel.call::<_, AlterPartitionAnswer>(kind, &call).await {
        Ok(answer) => {
            for (id, partitions) in answer.topics {
                let Some(topic) = ids.get(&id) else { continue };
                for (index, result) in partitions {
                    let tp = TopicPartition::new(topic.clone(), index);
                    let Some(leader) = shard.partitions.replicated(&tp) else {
                        continue;
                    };
                    match result {
                        Ok((_, leader_epoch, isr, partition_epoch)) => {
                            tracing::info!(partition = %tp.dir_name(), ?isr, "ISR changed");
                            if let Some(before) = isr_before.get(&tp) {
                                super::replication_metrics::isr_changed(*before, isr.len());
                            }
                            leader.on_isr_committed(leader_epoch, partition_epoch, isr);
                        }
                        Err(code) => {
                            tracing::info!(partition = %tp.dir_name(), code, "AlterPartition refused");
                            leader.on_isr_rejected();
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "AlterPartition not answered; proposing again later");
            for (tp, _) in &proposals {
                if let Some(leader) = shard.partitions.replicated(tp) {
                    leader.on_isr_rejected();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After records the fetcher fetches again at once (that Fetch moves the leader's high
    /// watermark), as it does after an empty long-poll; only an empty answer that came back
    /// before the wait was over pauses (no spinning).
    #[test]
    fn refetches_at_once_after_records_or_a_long_poll() {
        let data = FetchRound {
            bytes_appended: 1024,
            ..FetchRound::default()
        };
        let truncated = FetchRound {
            truncations: 1,
            ..FetchRound::default()
        };
        let empty = FetchRound::default();
        let quick = Duration::from_millis(1);
        let held = Duration::from_millis(500);
        assert_eq!(idle_pause_ms(&data, quick, 500), None);
        assert_eq!(idle_pause_ms(&truncated, quick, 500), None);
        assert_eq!(idle_pause_ms(&empty, held, 500), None);
        assert_eq!(idle_pause_ms(&empty, quick, 500), Some(IDLE_PAUSE_MS));
    }
}
