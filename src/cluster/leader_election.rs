//! Leader elections asked for by an operator (Kafka's ElectLeaders, `ReplicationControlManager.
//! electLeaders` / `electLeader` with `PartitionChangeBuilder`'s PREFERRED and UNCLEAN
//! elections) and the controller's automatic preferred-leader rebalance
//! (`auto.leader.rebalance.enable`, Kafka's `KafkaController.checkAndTriggerAutoLeaderRebalance`:
//! a broker whose share of partitions led by another broker, among those it is the preferred
//! replica of, passes `leader.imbalance.per.broker.percentage` gets them back, where it is
//! active and in the ISR). Pure functions from the committed image to `PartitionChangeRecord`s;
//! `run` commits them on the registry shard of the active controller.
//!
//! Invariants: a preferred election only ever picks an active ISR member (no data loss); an
//! unclean election is only done for a partition without a leader and forces ISR = [leader];
//! every requested partition gets exactly one answer, in request order; with a null partition
//! list only the partitions that needed an election are answered (Kafka's choice).

use super::controller::{self, CommitError, ControllerContext};
use super::election::{is_active, partition_change, Election};
use super::image::{MetadataImage, PartitionRegistration};
use super::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};
use super::topics::TopicId;

/// Kafka's ElectionType (0 PREFERRED, 1 UNCLEAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }
}

/// Why a partition got no new leader (Kafka's per-partition error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElectError {
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("The preferred leader was not available.")]
    PreferredLeaderNotAvailable,
    #[error("Eligible topic partition leaders are not available.")]
    EligibleLeadersNotAvailable,
}

impl ElectError {
    /// Kafka's error code.
    pub fn code(self) -> i16 {
        match self {
            Self::UnknownTopicOrPartition => 3,
            Self::ElectionNotNeeded => 84,
            Self::PreferredLeaderNotAvailable => 80,
            Self::EligibleLeadersNotAvailable => 83,
        }
    }
}

/// Per topic, per partition: `None` elected (or will be once committed), else why not.
pub type ElectResults = Vec<(String, Vec<(i32, Option<ElectError>)>)>;

/// Kafka's `PartitionChangeBuilder.electPreferredLeader`: the first replica if it is an active
/// ISR member; else the current leader if it still is one (no change); else the next active
/// ISR member in replica order. `None`: nothing changes.
pub fn preferred_change(
    image: &MetadataImage,
    topic_id: TopicId,
    partition_id: u32,
    current: &PartitionRegistration,
) -> Option<PartitionChangeRecord> {
    let valid = |r: i32| current.isr.contains(&r) && is_active(image, r);
    let preferred = current.replicas.first().copied()?;
    let leader = if valid(preferred) {
        preferred
    } else if valid(current.leader) {
        current.leader
    } else {
        current
            .replicas
            .iter()
            .skip(1)
            .copied()
            .find(|r| valid(*r))
            .unwrap_or(NO_LEADER)
    };
    (leader != current.leader).then_some(PartitionChangeRecord {
        partition_id,
        topic_id,
        isr: None,
        leader,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    })
}

/// Kafka's `ReplicationControlManager.electLeader` for one partition.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    kind: ElectionType,
) -> Result<PartitionChangeRecord, ElectError> {
    let meta = image
        .get(topic)
        .ok_or(ElectError::UnknownTopicOrPartition)?;
    let partition_id = u32::try_from(partition).map_err(|_| ElectError::UnknownTopicOrPartition)?;
    let current = usize::try_from(partition)
        .ok()
        .and_then(|i| meta.registrations.get(i))
        .ok_or(ElectError::UnknownTopicOrPartition)?;
    let has_preferred = current.replicas.first() == Some(&current.leader);
    match kind {
        ElectionType::Preferred if has_preferred => Err(ElectError::ElectionNotNeeded),
        ElectionType::Unclean if current.leader != NO_LEADER => Err(ElectError::ElectionNotNeeded),
        ElectionType::Preferred => preferred_change(image, meta.id, partition_id, current)
            .ok_or(ElectError::PreferredLeaderNotAvailable),
        ElectionType::Unclean => partition_change(
            meta.id,
            partition_id,
            current,
            current.isr.clone(),
            Election::Unclean,
            |r| is_active(image, r),
        )
        .filter(|r| r.leader != NO_LEADER_CHANGE && r.leader != NO_LEADER)
        .ok_or(ElectError::EligibleLeadersNotAvailable),
    }
}

/// Kafka's `ReplicationControlManager.electLeaders`: `wanted` names partitions (each answered),
/// or `None` for every partition (only those not ELECTION_NOT_NEEDED are answered).
pub fn elect_leaders(
    image: &MetadataImage,
    wanted: Option<&[(String, Vec<i32>)]>,
    kind: ElectionType,
) -> (Vec<MetadataRecord>, ElectResults) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut one = |topic: &str, partition: i32| match elect_leader(image, topic, partition, kind) {
        Ok(record) => {
            records.push(MetadataRecord::PartitionChange(record));
            None
        }
        Err(e) => Some(e),
    };
    match wanted {
        Some(wanted) => {
            for (topic, partitions) in wanted {
                let answers = partitions.iter().map(|&p| (p, one(topic, p))).collect();
                results.push((topic.clone(), answers));
            }
        }
        None => {
            for meta in image.iter() {
                let count = i32::try_from(meta.registrations.len()).unwrap_or(i32::MAX);
                let answers: Vec<_> = (0..count)
                    .map(|p| (p, one(&meta.name, p)))
                    .filter(|(_, e)| *e != Some(ElectError::ElectionNotNeeded))
                    .collect();
                if !answers.is_empty() {
                    results.push((meta.name.clone(), answers));
                }
            }
        }
    }
    (records, results)
}

/// Partitions whose preferred replica does not lead them.
type Imbalanced<'a> = Vec<(TopicId, u32, &'a PartitionRegistration)>;

/// The auto leader rebalance (Kafka's `checkAndTriggerAutoLeaderRebalance`): for each active
/// broker whose imbalance ratio (partitions it is the preferred replica of but does not lead,
/// over all partitions it is the preferred replica of) exceeds `imbalance_percentage`%, a
/// preferred election for each of those partitions where it is in the ISR.
pub fn rebalance(image: &MetadataImage, imbalance_percentage: u32) -> Vec<MetadataRecord> {
    use std::collections::BTreeMap;
    // preferred broker -> (preferred count, partitions it should lead but does not)
    let mut by_broker: BTreeMap<i32, (usize, Imbalanced<'_>)> = BTreeMap::new();
    for meta in image.iter() {
        for (index, current) in meta.registrations.iter().enumerate() {
            let (Some(&preferred), Ok(partition_id)) =
                (current.replicas.first(), u32::try_from(index))
            else {
                continue;
            };
            let entry = by_broker.entry(preferred).or_default();
            entry.0 += 1;
            if current.leader != preferred {
                entry.1.push((meta.id, partition_id, current));
            }
        }
    }
    let threshold = f64::from(imbalance_percentage) / 100.0;
    let mut records = Vec::new();
    for (broker, (total, imbalanced)) in by_broker {
        if total == 0 || !is_active(image, broker) {
            continue;
        }
        #[allow(clippy::cast_precision_loss)] // partition counts are far below 2^52
        let ratio = imbalanced.len() as f64 / total as f64;
        if ratio <= threshold {
            continue;
        }
        for (topic_id, partition_id, current) in imbalanced {
            if !current.isr.contains(&broker) {
                continue;
            }
            records.extend(
                preferred_change(image, topic_id, partition_id, current)
                    .filter(|r| r.leader == broker)
                    .map(MetadataRecord::PartitionChange),
            );
        }
    }
    records
}

/// Runs an election on the registry shard of the active controller: computed from the committed
/// image and committed before the answer (the registry lock keeps it from interleaving with
/// other admin changes of this controller). Err(NotController) on any other node.
pub async fn run(
    shard: &ControllerContext<'_>,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    kind: ElectionType,
) -> Result<ElectResults, CommitError> {
    let node = match shard.cluster {
        Some(node) if node.is_active_controller() => node,
        _ => return Err(CommitError::NotController),
    };
    let _guard = shard.registry_lock.lock().await;
    let image = node.image.current().image;
    let (records, results) = elect_leaders(&image, wanted.as_deref(), kind);
    if !records.is_empty() {
        tracing::info!(
            elected = records.len(),
            ?kind,
            "leader election asked by a client"
        );
        controller::commit(shard, records).await?;
    }
    Ok(results)
}

/// One round of the auto leader rebalance (controller duty, `auto.leader.rebalance.enable`).
pub async fn rebalance_once(shard: &ControllerContext<'_>) {
    let Some(node) = shard.cluster.cloned() else {
        return;
    };
    if !node.is_active_controller() {
        return;
    }
    let _guard = shard.registry_lock.lock().await;
    let image = node.image.current().image;
    let records = rebalance(
        &image,
        shard
            .config
            .controller
            .leader_imbalance_per_broker_percentage,
    );
    tracing::debug!(elections = records.len(), "auto leader rebalance check");
    if records.is_empty() {
        return;
    }
    let count = records.len();
    match controller::commit(shard, records).await {
        Ok(()) => tracing::info!(
            partitions = count,
            "auto leader rebalance: preferred leaders elected"
        ),
        Err(e) => tracing::warn!(error = %e, "auto leader rebalance not committed"),
    }
}

#[cfg(test)]
#[path = "leader_election_tests.rs"]
mod tests;
