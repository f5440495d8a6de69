//! Replica reassignment on the controller (KIP-455; Kafka's `ReplicationControlManager.
//! alterPartitionReassignments` / `listPartitionReassignments`, `PartitionReassignmentReplicas`,
//! `PartitionReassignmentRevert` and the reassignment steps of `PartitionChangeBuilder`).
//!
//! A reassignment of a partition to `target` replicas is one `PartitionChangeRecord`: replicas
//! become the target followed by the current replicas not in it (the union), `adding_replicas`
//! the target replicas not yet replicas, `removing_replicas` the replicas not in the target.
//! The new replicas open the partition and follow the leader; once every target replica is in
//! the ISR (an AlterPartition from the leader adds them as they catch up) the change that
//! brought the last one in also completes the reassignment ([`complete_if_done`]): replicas =
//! target, the removing ones leave the ISR, a leader being removed hands over to the first
//! target replica in the ISR, and the leader epoch is bumped whenever a replica left (Kafka's
//! `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`). A cancel (null target) reverts:
//! replicas = current minus adding, ISR likewise. Brokers that are no longer replicas stop
//! fetching and delete their copy when they apply the record (`reassign_local`).
//!
//! Invariants: a reassignment never leaves a partition without an ISR member; the leader is
//! always an ISR member of the resulting registration (or -1 when none is active); every
//! requested partition gets exactly one answer, in request order; records are computed from
//! the committed image and committed before the answer.

use std::collections::BTreeSet;

use super::election::is_active;
use super::image::{MetadataImage, PartitionRegistration};
use super::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};

/// Why a partition's reassignment was refused (Kafka's error codes and messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("{0}")]
    UnknownTopicOrPartition(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("No partition reassignment is in progress for the topic partition.")]
    NoReassignmentInProgress,
}

impl ReassignError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            Self::UnknownTopicOrPartition(_) => 3,
            Self::InvalidReplicationFactor(_) => 38,
            Self::InvalidReplicaAssignment(_) => 39,
            Self::NoReassignmentInProgress => 85,
        }
    }
}

/// Kafka's `PartitionReassignmentReplicas`: the union of the target and the removed replicas
/// (target order first), and what is added and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentReplicas {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl ReassignmentReplicas {
    pub fn new(current: &[i32], target: &[i32]) -> Self {
        let removing: Vec<i32> = current
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        let adding = target
            .iter()
            .copied()
            .filter(|r| !current.contains(r))
            .collect();
        let mut replicas = target.to_vec();
        replicas.extend(&removing);
        Self {
            replicas,
            adding,
            removing,
        }
    }
}

/// What one partition asks: a target (`Some`) or a cancel (`None`).
pub type ReassignRequest = Vec<(String, Vec<(i32, Option<Vec<i32>>)>)>;
/// Per topic, per partition: `None` accepted, else why not.
pub type ReassignResults = Vec<(String, Vec<(i32, Option<ReassignError>)>)>;

/// The registration after `change`, as the image would merge it.
fn merged(
    current: &PartitionRegistration,
    change: &PartitionChangeRecord,
) -> PartitionRegistration {
    let mut next = current.clone();
    if let Some(isr) = &change.isr {
        next.isr.clone_from(isr);
    }
    if let Some(replicas) = &change.replicas {
        next.replicas.clone_from(replicas);
    }
    if let Some(removing) = &change.removing_replicas {
        next.removing_replicas.clone_from(removing);
    }
    if let Some(adding) = &change.adding_replicas {
        next.adding_replicas.clone_from(adding);
    }
    if change.leader != NO_LEADER_CHANGE {
        next.leader = change.leader;
    }
    next
}

/// The reassignment steps of Kafka's `PartitionChangeBuilder.build` applied to a change being
/// built: completes a reassignment whose target replicas are all in the resulting ISR
/// (`completeReassignmentIfNeeded`), elects a leader when the resulting one is not an active
/// ISR member among the replicas, and bumps the leader epoch when a replica leaves.
pub fn complete_if_done(
    current: &PartitionRegistration,
    mut change: PartitionChangeRecord,
    active: impl Fn(i32) -> bool,
) -> PartitionChangeRecord {
    let next = merged(current, &change);
    if next.reassignment_in_progress() {
        let removing = &next.removing_replicas;
        let isr: Vec<i32> = next
            .isr
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        let replicas: Vec<i32> = next
            .replicas
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        if !isr.is_empty() && replicas.iter().all(|r| isr.contains(r)) {
            change.isr = (isr != current.isr).then_some(isr);
            change.replicas = (replicas != current.replicas).then_some(replicas);
            change.removing_replicas = Some(Vec::new());
            change.adding_replicas = Some(Vec::new());
        }
    }
    let next = merged(current, &change);
    let valid = |r: i32| next.isr.contains(&r) && next.replicas.contains(&r) && active(r);
    if next.leader != NO_LEADER && !valid(next.leader) {
        let leader = next
            .replicas
            .iter()
            .copied()
            .find(|r| valid(*r))
            .unwrap_or(NO_LEADER);
        change.leader = leader;
    }
    // Kafka's triggerLeaderEpochBumpForReplicaReassignmentIfNeeded: a replica that leaves must
    // not be able to fetch in the old epoch.
    let lost_replica = current.replicas.iter().any(|r| !next.replicas.contains(r));
    if change.leader == NO_LEADER_CHANGE && lost_replica {
        change.leader = current.leader;
    }
    change
}

/// Kafka's `validateManualPartitionAssignment`.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignError> {
    let bad = ReassignError::InvalidReplicaAssignment;
    if target.is_empty() {
        return Err(bad(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if let [a, b] = pair {
            if a == b {
                return Err(bad(format!(
                    "The manual partition assignment includes the broker {a} more than once."
                )));
            }
        }
    }
    if let Some(unknown) = sorted.iter().find(|b| image.broker(**b).is_none()) {
        return Err(bad(format!(
            "The manual partition assignment includes broker {unknown}, but no such broker is registered."
        )));
    }
    Ok(())
}

/// Kafka's `changePartitionReassignment`: the record that starts (or, when the target is
/// already in the ISR, at once completes) moving `current` to `target`.
pub fn change_reassignment(
    image: &MetadataImage,
    change_base: PartitionChangeRecord,
    current: &PartitionRegistration,
    target: &[i32],
    allow_replication_factor_change: bool,
) -> Result<PartitionChangeRecord, ReassignError> {
    validate_target(image, target)?;
    let current_rf =
        current.replicas.len() - current.removing_replicas.len().min(current.replicas.len());
    if !allow_replication_factor_change && current_rf != target.len() {
        return Err(ReassignError::InvalidReplicationFactor(format!(
            "The replication factor is changed from {current_rf} to {}",
            target.len()
        )));
    }
    let mut reassignment = ReassignmentReplicas::new(&current.replicas, target);
    // During a reassignment the replicas are a union: what is added is counted against the
    // replicas before it began, so repeating a request changes nothing.
    reassignment.adding.extend(
        current
            .adding_replicas
            .iter()
            .filter(|r| target.contains(r)),
    );
    reassignment
        .adding
        .sort_by_key(|r| target.iter().position(|t| t == r));
    let mut change = change_base;
    if reassignment.replicas != current.replicas {
        change.replicas = Some(reassignment.replicas);
    }
    change.removing_replicas = Some(reassignment.removing);
    change.adding_replicas = Some(reassignment.adding);
    Ok(complete_if_done(current, change, |r| is_active(image, r)))
}

/// Kafka's `cancelPartitionReassignment` with `PartitionReassignmentRevert`: back to the
/// replicas before the reassignment (the adding ones leave replicas and ISR).
pub fn cancel_reassignment(
    image: &MetadataImage,
    change_base: PartitionChangeRecord,
    current: &PartitionRegistration,
    unclean_allowed: bool,
    topic: &str,
) -> Result<PartitionChangeRecord, ReassignError> {
    if !current.reassignment_in_progress() {
        return Err(ReassignError::NoReassignmentInProgress);
    }
    let adding = &current.adding_replicas;
    let replicas: Vec<i32> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !adding.contains(r))
        .collect();
    let mut isr: Vec<i32> = current
        .isr
        .iter()
        .copied()
        .filter(|r| !adding.contains(r))
        .collect();
    if isr.is_empty() {
        // Every ISR member was being added: reverting needs an unclean election.
        if !unclean_allowed {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "Unable to revert partition assignment for {topic}:{} because it would require an unclean leader election.",
                change_base.partition_id
            )));
        }
        isr.extend(
            replicas
                .iter()
                .copied()
                .find(|r| is_active(image, *r))
                .or_else(|| replicas.first().copied()),
        );
    }
    let mut change = change_base;
    change.isr = (isr != current.isr).then_some(isr);
    change.replicas = Some(replicas);
    change.removing_replicas = Some(Vec::new());
    change.adding_replicas = Some(Vec::new());
    Ok(complete_if_done(current, change, |r| is_active(image, r)))
}

/// Kafka's `alterPartitionReassignments`: one record per accepted partition.
pub fn alter_reassignments(
    image: &MetadataImage,
    request: &ReassignRequest,
    allow_replication_factor_change: bool,
    unclean_for_topic: impl Fn(&str) -> bool,
) -> (Vec<MetadataRecord>, ReassignResults) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (topic, partitions) in request {
        let mut answers = Vec::new();
        for (index, target) in partitions {
            let answer = one_partition(
                image,
                topic,
                *index,
                target.as_deref(),
                allow_replication_factor_change,
                &unclean_for_topic,
            );
            match answer {
                Ok(record) => {
                    records.push(MetadataRecord::PartitionChange(record));
                    answers.push((*index, None));
                }
                Err(e) => answers.push((*index, Some(e))),
            }
        }
        results.push((topic.clone(), answers));
    }
    (records, results)
}

fn one_partition(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
    unclean_for_topic: &impl Fn(&str) -> bool,
) -> Result<PartitionChangeRecord, ReassignError> {
    let meta = image.get(topic).ok_or_else(|| {
        ReassignError::UnknownTopicOrPartition(format!("Unable to find a topic named {topic}."))
    })?;
    let missing = || {
        ReassignError::UnknownTopicOrPartition(format!("Unable to find partition {topic}:{index}."))
    };
    let partition_id = u32::try_from(index).map_err(|_| missing())?;
    let current = usize::try_from(index)
        .ok()
        .and_then(|i| meta.registrations.get(i))
        .ok_or_else(missing)?;
    let base = PartitionChangeRecord {
        partition_id,
        topic_id: meta.id,
        isr: None,
        leader: NO_LEADER_CHANGE,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    };
    match target {
        Some(target) => change_reassignment(
            image,
            base,
            current,
            target,
            allow_replication_factor_change,
        ),
        None => cancel_reassignment(image, base, current, unclean_for_topic(topic), topic),
    }
}

/// One partition being reassigned: (index, replicas, adding, removing).
pub type Ongoing = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Kafka's `listPartitionReassignments`: the reassignments in progress among `wanted` (every
/// partition when `None`); unknown topics and partitions are left out.
pub fn list_reassignments(
    image: &MetadataImage,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<Ongoing>)> {
    let ongoing = |r: &PartitionRegistration, index: i32| {
        r.reassignment_in_progress().then(|| {
            (
                index,
                r.replicas.clone(),
                r.adding_replicas.clone(),
                r.removing_replicas.clone(),
            )
        })
    };
    let mut topics = Vec::new();
    match wanted {
        None => {
            for meta in image.iter() {
                let list: Vec<Ongoing> = (0i32..)
                    .zip(&meta.registrations)
                    .filter_map(|(i, r)| ongoing(r, i))
                    .collect();
                if !list.is_empty() {
                    topics.push((meta.name.clone(), list));
                }
            }
        }
        Some(wanted) => {
            for (topic, indexes) in wanted {
                let Some(meta) = image.get(topic) else {
                    continue;
                };
                let unique: BTreeSet<i32> = indexes.iter().copied().collect();
                let list: Vec<Ongoing> = unique
                    .into_iter()
                    .filter_map(|i| {
                        let r = meta.registrations.get(usize::try_from(i).ok()?)?;
                        ongoing(r, i)
                    })
                    .collect();
                if !list.is_empty() {
                    topics.push((topic.clone(), list));
                }
            }
        }
    }
    topics
}

#[cfg(test)]
#[path = "reassign_tests.rs"]
mod tests;
