//! The broker side of a reassignment (KIP-455): a broker that the metadata image no longer
//! names among a partition's replicas stops fetching it, resigns its leadership and deletes
//! its copy (Kafka's `ReplicaManager.applyDelta` for partitions "deleted" from the broker:
//! `stopPartitions` with `deleteLocalLog`, the KRaft form of StopReplica with delete).
//! Brokers newly named open the partition and follow through the usual path
//! (`open::open_owned`, `replicas::apply_roles`).
//!
//! Invariants: a partition's fetcher has released it before its log closes; only partitions
//! of topics still in the image are handled here (a deleted topic goes through `deletion`);
//! the directory is renamed away (`deletion::delete_partition`) before its files go, so a
//! crash midway never leaves a half-deleted log under the partition's own name.

use std::path::Path;

use shards::ShardId;

use crate::partition::{PartitionService, TopicPartition};
use crate::router::placement::PlacementTable;
use crate::topics::TopicMeta;

/// What dropping reassigned-away copies uses of the shard (built by the shard,
/// `shard::contexts`).
pub struct ReassignContext<'a> {
    /// A KRaft node (a single node is every partition's only replica: nothing to drop).
    pub is_cluster: bool,
    pub node_id: i32,
    pub shard_id: ShardId,
    pub placement: &'a PlacementTable,
    pub partitions: &'a PartitionService,
    pub replica_fetchers: &'a super::replica_fetchers::ReplicaFetchers,
    /// Where the partitions' directories are (`data_dir`).
    pub data_dir: &'a Path,
}

/// Drops this shard's copies of partitions of `metas` whose replicas no longer include this
/// broker. KRaft brokers only (a single node is every partition's only replica).
pub async fn drop_removed_replicas(shard: &ReassignContext<'_>, metas: &[TopicMeta]) {
    if !shard.is_cluster {
        return;
    }
    let node_id = shard.node_id;
    let mut gone = Vec::new();
    for meta in metas {
        for (index, registration) in (0..meta.partitions).zip(&meta.registrations) {
            if registration.replicas.contains(&node_id)
                || shard.placement.shard_for(&meta.name, index) != shard.shard_id
            {
                continue;
            }
            let tp = TopicPartition::new(meta.name.clone(), index);
            if shard.partitions.get(&tp).is_some() {
                gone.push((tp, meta.id));
            }
        }
    }
    if gone.is_empty() {
        return;
    }
    let removals = gone
        .iter()
        .filter_map(|(tp, _)| shard.replica_fetchers.unfollow(tp))
        .collect();
    super::replicas::settle(removals).await;
    for (tp, id) in gone {
        // Acks=all waiters and long polls answer NOT_LEADER_OR_FOLLOWER / at once.
        shard.partitions.stop_replicated(&tp);
        let Some(partition) = shard.partitions.remove(&tp) else {
            continue;
        };
        tracing::info!(partition = %tp.dir_name(), "no longer a replica (reassigned): deleting the local copy");
        let (_, outcome) = super::deletion::delete_partition(shard.data_dir, partition, id).await;
        if let Err(why) = outcome {
            tracing::error!(partition = %tp.dir_name(), %why, "the reassigned-away copy was not deleted");
        }
    }
}
