//! Owner-side partition opening: which partitions of the metadata image this broker hosts (its
//! id is among the partition's replicas) and this shard owns (`router::placement`), and
//! opening their logs, the led ones with the leader epoch of their registration.
//!
//! Invariants: a broker opens only partitions whose replicas include it; a partition it leads
//! opens leading with its registration's leader epoch from the metadata image (`cluster`), a
//! follower's opens without taking an epoch; one that cannot be opened stops the broker (exit
//! 70), it is never advertised without a log behind it.

use std::cell::RefCell;
use std::rc::Rc;

use super::reassign_local::ReassignContext;
use super::replicas::ReplicasContext;
use crate::partition::timestamps::TimestampLimits;
use crate::partition::topic_id_file;
use crate::partition::{Partition, PartitionProxy, PartitionService, TopicPartition};
use crate::producers;
use crate::topics::{self, TopicMeta};

/// What opening partitions uses of a shard (built by the shard, `shard::contexts_cluster`).
pub struct OpenContext<'a> {
    pub shard_id: shards::ShardId,
    pub config: &'a crate::config::BrokerConfig,
    pub default_log: &'a storage::LogConfig,
    pub dynamic_configs: &'a RefCell<topics::dynamic::DynamicConfigs>,
    pub placement: &'a crate::router::placement::PlacementTable,
    pub partitions: &'a PartitionService,
    /// See `Boot::previous_shutdown_clean`: how partition logs are opened.
    pub previous_shutdown_clean: bool,
    /// The replica roles of the opened partitions (`replicas::apply_roles`).
    pub replicas: ReplicasContext<'a>,
    /// Copies reassigned away from this broker (`reassign_local`).
    pub reassign: ReassignContext<'a>,
}

/// Opens every not-yet-open partition of `metas` that this broker hosts and this shard owns,
/// and gives open ones their new configs and leader epochs. A partition that cannot
/// be opened stops the broker (see [`storage_offline`]): it is never left in the registry,
/// advertised in Metadata, without a log behind it.
pub async fn open_owned(shard: &OpenContext<'_>, metas: &[TopicMeta]) {
    use futures_util::stream::{self, StreamExt};
    let mut to_open = Vec::new();
    let mut new_epochs = Vec::new();
    for meta in metas {
        assert_eq!(
            meta.registrations.len(),
            usize::try_from(meta.partitions).unwrap_or(usize::MAX),
            "the image registers every partition of {}",
            meta.name
        );
        let dynamic = shard.dynamic_configs.borrow().clone();
        let resolved = topics::dynamic::resolve_with(shard.default_log, &dynamic, &meta.configs);
        let topic_config = match resolved {
            Ok(config) => config,
            Err(e) => storage_offline(shard, &meta.name, &format!("invalid topic config: {e}")),
        };
        let limits = TimestampLimits {
            before_max_ms: topic_config.message_timestamp_before_max_ms,
            after_max_ms: topic_config.message_timestamp_after_max_ms,
        };
        let config = topic_config.log;
        let compression_type = topic_config.compression_type;
        let compacted = topics::compaction::policy(&meta.configs).compact;
        for (index, registration) in (0..meta.partitions).zip(&meta.registrations) {
            if !hosts(shard, registration)
                || shard.placement.shard_for(&meta.name, index) != shard.shard_id
            {
                continue;
            }
            let tp = TopicPartition::new(meta.name.clone(), index);
            // Only the leader takes the epoch (Kafka's makeLeader); a follower's log is opened
            // for replication and never served to clients (the router refuses it).
            let epoch = leads(shard, registration).then_some(registration.leader_epoch);
            // Already open: a config change (AlterConfigs) applies to the live log, a newer
            // leader epoch in the image becomes the partition's.
            if let Some(open) = shard.partitions.get(&tp) {
                open.storage().set_config(config.clone());
                open.set_timestamp_limits(limits);
                open.set_compression_type(&compression_type);
                open.set_compacted(compacted);
                if let Some(epoch) = epoch.filter(|e| *e > open.leader_epoch()) {
                    new_epochs.push((open, epoch));
                }
                continue;
            }
            // More than one replica: no append until `apply_roles` made it a replicated
            // leader (an append before would be acknowledged by this replica alone).
            let replicated = registration.replicas.len() > 1;
            let settings = (
                limits,
                compression_type.clone(),
                compacted,
                epoch,
                replicated,
            );
            to_open.push((tp, meta.id.0, config.clone(), settings));
        }
    }
    // Kafka removes a partition from its fetcher before `makeLeader`: a fetch round still in
    // flight would otherwise append the old leader's batches after the new epoch started at
    // this log end (`FetcherSession::is_stale_for` drops what comes later).
    let removals = new_epochs
        .iter()
        .filter_map(|(partition, _)| shard.replicas.replica_fetchers.unfollow(&partition.tp))
        .collect();
    super::replicas::settle(removals).await;
    for (partition, epoch) in new_epochs {
        lead(shard, &partition, epoch).await;
    }
    // Several at a time: each open is a chain of small io_uring operations, so start-up and
    // CreateTopics of thousands of partitions are not one long sequence of round trips.
    stream::iter(to_open)
        .for_each_concurrent(OPENS_IN_FLIGHT_MAX, |(tp, topic_id, config, settings)| {
            open_one(shard, tp, topic_id, config, settings)
        })
        .await;
    // Replicated leaders and followers (KRaft clusters; single-replica partitions unchanged).
    super::replicas::apply_roles(&shard.replicas, metas).await;
    // Copies of partitions reassigned away from this broker (KIP-455).
    super::reassign_local::drop_removed_replicas(&shard.reassign, metas).await;
}

/// Whether this broker holds a replica of the partition (only those are opened here).
fn hosts(shard: &OpenContext<'_>, registration: &crate::cluster::PartitionRegistration) -> bool {
    registration.replicas.contains(&shard.config.server.node_id)
}

/// Whether this broker leads the partition in the image.
fn leads(shard: &OpenContext<'_>, registration: &crate::cluster::PartitionRegistration) -> bool {
    registration.leader == shard.config.server.node_id
}

/// Partitions of one shard opened at the same time.
const OPENS_IN_FLIGHT_MAX: usize = 64;

async fn open_one(
    shard: &OpenContext<'_>,
    tp: TopicPartition,
    topic_id: u128,
    config: storage::LogConfig,
    (limits, compression_type, compacted, leader_epoch, replicated): (
        TimestampLimits,
        String,
        bool,
        Option<i32>,
        bool,
    ),
) {
    let dir = shard.config.server.data_dir.join(tp.dir_name());
    if let Err(e) = claim_dir(&dir, &tp, topic_id).await {
        storage_offline(
            shard,
            &tp.dir_name(),
            &format!("{}: {e}", topic_id_file::FILE),
        );
    }
    let options = storage::OpenOptions {
        previous_shutdown_clean: shard.previous_shutdown_clean,
        // The data directory's clean-shutdown marker is gone while the broker runs.
        mark_unclean_on_open: false,
    };
    match storage::Log::open_with(dir, config, options).await {
        Ok(log) => {
            let waiters_max = shard.config.fetch.fetch_waiters_per_partition_max;
            let producers = producer_states(shard, &tp, &log).await;
            let partition = Partition::new(tp, log, waiters_max, producers);
            partition.set_timestamp_limits(limits);
            partition.set_compression_type(&compression_type);
            partition.set_compacted(compacted);
            if replicated {
                partition.hold_appends();
            }
            if let Some(epoch) = leader_epoch {
                lead(shard, &partition, epoch).await;
            }
            shard.partitions.insert(Rc::new(partition));
        }
        Err(e) => storage_offline(shard, &tp.dir_name(), &e.to_string()),
    }
}

/// Marks the directory with its topic's id (Kafka's `partition.metadata`), first moving aside a
/// directory another topic of the same name left (a lost registry, an unfinished deletion), so
/// a new topic never starts with an old topic's records.
async fn claim_dir(
    dir: &std::path::Path,
    tp: &TopicPartition,
    topic_id: u128,
) -> std::io::Result<()> {
    let stray = topic_id_file::stray_dir_name(&tp.topic, tp.partition, topic_id);
    let owned = dir.to_path_buf();
    let claimed =
        compio::runtime::spawn_blocking(move || topic_id_file::claim(&owned, topic_id, &stray))
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("claim thread failed")))?;
    if let topic_id_file::Claimed::MovedAside(aside) = claimed {
        tracing::warn!(partition = %tp.dir_name(), moved_to = %aside.display(), "the directory belonged to another topic of the same name (stray log): moved aside, the partition starts empty");
    }
    Ok(())
}

/// Kafka's makeLeader: the partition leads with the image's leader epoch, which its epoch
/// cache gets first.
async fn lead(shard: &OpenContext<'_>, partition: &Partition, leader_epoch: i32) {
    if let Err(e) = partition.become_leader(leader_epoch).await {
        let reason = format!("cannot open the leader-epoch cache: {e}");
        storage_offline(shard, &partition.tp.dir_name(), &reason);
    }
}

/// A partition of the registry cannot be opened (permission denied, disk full, a file where its
/// directory should be...). Kafka takes the log directory offline on such an I/O error and,
/// with no other directory, stops; Sluice has one data directory, so it stops too (exit 70),
/// naming the partition, instead of advertising a partition it cannot serve.
fn storage_offline(shard: &OpenContext<'_>, what: &str, why: &str) -> ! {
    shards::fatal(format!(
        "cannot open partition {what} in {}: {why}; the data directory is offline (Kafka stops \
         when its only log directory fails); fix it and restart",
        shard.config.server.data_dir.display()
    ))
}

/// The producer state of a partition being opened, rebuilt from its newest batch headers
/// (clients cannot write the offsets topic, so it has none to rebuild).
async fn producer_states(
    shard: &OpenContext<'_>,
    tp: &TopicPartition,
    log: &storage::Log,
) -> producers::ProducerStates {
    let limits = shard.config.producer_rebuild_limits();
    if tp.topic == crate::internal_topics::OFFSETS_TOPIC {
        return producers::ProducerStates::new(limits.state);
    }
    producers::rebuild::rebuild(log, limits, crate::clock::system_now_ms()).await
}
