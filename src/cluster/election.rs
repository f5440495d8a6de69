//! Partition leader election and ISR maintenance on broker state changes, on the controller
//! (Kafka's `PartitionChangeBuilder` election and `ReplicationControlManager.
//! generateLeaderAndIsrUpdates`, without ELR, KIP-966): pure functions from the metadata image
//! to `PartitionChangeRecord`s, which the controller commits like any other records.
//!
//! - A broker fenced (or shut down): it leaves every ISR it is in (unless it is the last
//!   member: the ISR never becomes empty, it keeps the last replica known to have everything);
//!   a partition it led gets a new leader from the remaining ISR, in replica order, among
//!   active (registered, unfenced) brokers; none: no leader (-1), or, with
//!   `unclean.leader.election.enable`, the first active replica with ISR = [it] (data loss).
//! - A broker unfenced: partitions without a leader whose ISR holds it get it as leader.
//!
//! Invariants: a clean election only ever picks an ISR member (so it has every record below
//! the high watermark); a leader change bumps the leader epoch (in `PartitionRegistration::
//! merge`); a record is produced only for a partition that changes.

use super::image::{MetadataImage, PartitionRegistration};
use super::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};
use super::topics::TopicId;

/// How a partition's leader is chosen (Kafka's `PartitionChangeBuilder.Election`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// From the ISR only.
    Online,
    /// From the ISR, else any active replica (`unclean.leader.election.enable=true`).
    Unclean,
}

/// Registered and not fenced: may lead and be in an ISR.
pub fn is_active(image: &MetadataImage, broker_id: i32) -> bool {
    image.broker(broker_id).is_some_and(|b| !b.fenced)
}

/// The change of one partition towards `target_isr`, electing a leader if the current one is
/// not acceptable (`acceptable`: active and not being removed). `None`: nothing changes.
pub fn partition_change(
    topic_id: TopicId,
    partition_id: u32,
    current: &PartitionRegistration,
    target_isr: Vec<i32>,
    election: Election,
    acceptable: impl Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    let valid = |r: i32| target_isr.contains(&r) && acceptable(r);
    let (leader, unclean) = if valid(current.leader) {
        (current.leader, false)
    } else if let Some(r) = current.replicas.iter().copied().find(|r| valid(*r)) {
        (r, false)
    } else if election == Election::Unclean {
        match current.replicas.iter().copied().find(|r| acceptable(*r)) {
            Some(r) => (r, true),
            None => (NO_LEADER, false),
        }
    } else {
        (NO_LEADER, false)
    };
    let mut record = PartitionChangeRecord {
        partition_id,
        topic_id,
        isr: None,
        leader: NO_LEADER_CHANGE,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    };
    if leader != current.leader {
        record.leader = leader;
        if unclean {
            // Forced: the new leader alone, possibly missing acknowledged records.
            record.isr = Some(vec![leader]);
        }
    }
    // Without ELR the ISR never empties: the last member stays (it has everything).
    if record.isr.is_none() && !target_isr.is_empty() && target_isr != current.isr {
        record.isr = Some(target_isr);
    }
    let changed = record.leader != NO_LEADER_CHANGE || record.isr.is_some();
    changed.then_some(record)
}

/// Kafka's `handleBrokerFenced` / `handleBrokerShutdown`: `broker_id` leaves every ISR and
/// leadership. `unclean_for_topic` says whether a topic allows unclean election.
pub fn on_broker_fenced(
    image: &MetadataImage,
    broker_id: i32,
    unclean_for_topic: impl Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != broker_id && is_active(image, r);
    let mut records = Vec::new();
    for meta in image.iter() {
        let election = election_for(unclean_for_topic(&meta.name));
        for (index, current) in meta.registrations.iter().enumerate() {
            if !current.isr.contains(&broker_id) && current.leader != broker_id {
                continue;
            }
            let target: Vec<i32> = current
                .isr
                .iter()
                .copied()
                .filter(|r| *r != broker_id)
                .collect();
            let Ok(partition_id) = u32::try_from(index) else {
                continue;
            };
            records.extend(
                partition_change(meta.id, partition_id, current, target, election, acceptable)
                    .map(MetadataRecord::PartitionChange),
            );
        }
    }
    records
}

/// Kafka's `handleBrokerUnfenced`: leaderless partitions that `broker_id` can lead (it is in
/// their ISR, or any replica with unclean election) get a leader. Call with the image in
/// which the broker is still fenced; it counts as active here.
pub fn on_broker_unfenced(
    image: &MetadataImage,
    broker_id: i32,
    unclean_for_topic: impl Fn(&str) -> bool,
) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r == broker_id || is_active(image, r);
    let mut records = Vec::new();
    for meta in image.iter() {
        let election = election_for(unclean_for_topic(&meta.name));
        for (index, current) in meta.registrations.iter().enumerate() {
            if current.leader != NO_LEADER || !current.replicas.contains(&broker_id) {
                continue;
            }
            let Ok(partition_id) = u32::try_from(index) else {
                continue;
            };
            records.extend(
                partition_change(
                    meta.id,
                    partition_id,
                    current,
                    current.isr.clone(),
                    election,
                    acceptable,
                )
                .map(MetadataRecord::PartitionChange),
            );
        }
    }
    records
}

fn election_for(unclean: bool) -> Election {
    if unclean {
        Election::Unclean
    } else {
        Election::Online
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
pub(crate) mod tests;
