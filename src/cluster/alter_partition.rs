//! AlterPartition (API 56) on the controller (Kafka's `ReplicationControlManager.
//! alterPartition` and `validateAlterPartitionData`): a partition leader asks to change its
//! ISR; the controller validates the request against the metadata image and answers each
//! partition with the committed state or an error, expressing accepted changes as
//! `PartitionChangeRecord`s the controller then commits.
//!
//! Validation order and errors are Kafka's: the requesting broker's epoch
//! (STALE_BROKER_EPOCH, whole request); an unknown topic (UNKNOWN_TOPIC_ID) or partition
//! (UNKNOWN_TOPIC_OR_PARTITION); a leader or partition epoch newer than the image's
//! (NOT_CONTROLLER: this controller is behind); an older leader epoch (FENCED_LEADER_EPOCH);
//! a requester that is not the leader (INVALID_REQUEST); an older partition epoch
//! (INVALID_UPDATE_VERSION); an ISR outside the replicas or without the leader
//! (INVALID_REQUEST); an ISR member fenced, unregistered or of another broker epoch
//! (INELIGIBLE_REPLICA).
//!
//! Invariants: no record is produced for a refused partition; an accepted ISR always holds
//! the leader; the answer for an accepted partition is the registration after the change.

use kafka_protocol::ResponseError as K;

use super::election::{is_active, partition_change, Election};
use super::image::{MetadataImage, PartitionRegistration};
use super::records::MetadataRecord;
use super::topics::TopicId;

/// One ISR member with the broker epoch the leader saw it with (-1: not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// One partition of an AlterPartition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionData {
    pub partition_index: u32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
}

/// An AlterPartition request (topics by id: versions 2+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topics: Vec<(TopicId, Vec<PartitionData>)>,
}

/// The committed state answered for an accepted partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

/// Why a partition's change was refused (each a Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    #[error("stale broker epoch")]
    StaleBrokerEpoch,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the request's epochs are newer than this controller's")]
    NotController,
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    #[error("invalid request")]
    InvalidRequest,
    #[error("invalid update version (partition epoch)")]
    InvalidUpdateVersion,
    #[error("ineligible replica in the new ISR")]
    IneligibleReplica,
}

impl AlterPartitionError {
    pub fn code(self) -> i16 {
        match self {
            Self::StaleBrokerEpoch => K::StaleBrokerEpoch.code(),
            Self::UnknownTopicId => K::UnknownTopicId.code(),
            Self::UnknownTopicOrPartition => K::UnknownTopicOrPartition.code(),
            Self::NotController => K::NotController.code(),
            Self::FencedLeaderEpoch => K::FencedLeaderEpoch.code(),
            Self::InvalidRequest => K::InvalidRequest.code(),
            Self::InvalidUpdateVersion => K::InvalidUpdateVersion.code(),
            Self::IneligibleReplica => K::IneligibleReplica.code(),
        }
    }
}

/// Per topic, per partition: the committed state or the error.
pub type AlterPartitionResponse = Vec<(
    TopicId,
    Vec<(u32, Result<PartitionState, AlterPartitionError>)>,
)>;

/// Validates `request` against `image`; returns the records to commit and the answer.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
    unclean_for_topic: impl Fn(&str) -> bool,
) -> Result<(Vec<MetadataRecord>, AlterPartitionResponse), AlterPartitionError> {
    let registered = image.broker(request.broker_id);
    if registered.is_none_or(|b| b.broker_epoch != request.broker_epoch) {
        return Err(AlterPartitionError::StaleBrokerEpoch);
    }
    let mut records = Vec::new();
    let mut response = Vec::new();
    for (topic_id, partitions) in &request.topics {
        let Some(meta) = image.by_id(*topic_id) else {
            let refused = partitions
                .iter()
                .map(|p| (p.partition_index, Err(AlterPartitionError::UnknownTopicId)))
                .collect();
            response.push((*topic_id, refused));
            continue;
        };
        let election = if unclean_for_topic(&meta.name) {
            Election::Unclean
        } else {
            Election::Online
        };
        let mut answers = Vec::new();
        for data in partitions {
            let current = usize::try_from(data.partition_index)
                .ok()
                .and_then(|i| meta.registrations.get(i));
            let answer = current
                .ok_or(AlterPartitionError::UnknownTopicOrPartition)
                .and_then(|current| {
                    validate(image, request.broker_id, current, data)?;
                    let target = data.new_isr.iter().map(|m| m.broker_id).collect();
                    let change = partition_change(
                        meta.id,
                        data.partition_index,
                        current,
                        target,
                        election,
                        |r| is_active(image, r),
                    );
                    // A reassignment whose target is now all in the ISR completes with this
                    // change (Kafka's PartitionChangeBuilder).
                    let change = change.map(|c| {
                        super::reassign::complete_if_done(current, c, |r| is_active(image, r))
                    });
                    let next = match change {
                        Some(change) => {
                            let next = current.merge(&change);
                            records.push(MetadataRecord::PartitionChange(change));
                            next
                        }
                        None => current.clone(),
                    };
                    Ok(state_of(&next))
                });
            answers.push((data.partition_index, answer));
        }
        response.push((*topic_id, answers));
    }
    Ok((records, response))
}

fn state_of(registration: &PartitionRegistration) -> PartitionState {
    PartitionState {
        leader_id: registration.leader,
        leader_epoch: registration.leader_epoch,
        isr: registration.isr.clone(),
        partition_epoch: registration.partition_epoch,
    }
}

/// Kafka's `validateAlterPartitionData`, in Kafka's order.
fn validate(
    image: &MetadataImage,
    broker_id: i32,
    current: &PartitionRegistration,
    data: &PartitionData,
) -> Result<(), AlterPartitionError> {
    use AlterPartitionError as E;
    if data.leader_epoch > current.leader_epoch || data.partition_epoch > current.partition_epoch {
        return Err(E::NotController);
    }
    if data.leader_epoch < current.leader_epoch {
        return Err(E::FencedLeaderEpoch);
    }
    if broker_id != current.leader {
        return Err(E::InvalidRequest);
    }
    if data.partition_epoch < current.partition_epoch {
        return Err(E::InvalidUpdateVersion);
    }
    let new_isr: Vec<i32> = data.new_isr.iter().map(|m| m.broker_id).collect();
    let mut unique = new_isr.clone();
    unique.sort_unstable();
    unique.dedup();
    let valid = unique.len() == new_isr.len()
        && !new_isr.is_empty()
        && new_isr.iter().all(|r| current.replicas.contains(r));
    if !valid || !new_isr.contains(&current.leader) {
        return Err(E::InvalidRequest);
    }
    let ineligible = data
        .new_isr
        .iter()
        .any(|m| match image.broker(m.broker_id) {
            None => true,
            Some(b) => b.fenced || (m.broker_epoch != -1 && m.broker_epoch != b.broker_epoch),
        });
    if ineligible {
        return Err(E::IneligibleReplica);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::election::tests::image;

    fn member(broker_id: i32) -> IsrMember {
        IsrMember {
            broker_id,
            broker_epoch: -1,
        }
    }

    fn request(leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> AlterPartitionRequest {
        AlterPartitionRequest {
            broker_id: 1,
            broker_epoch: 11,
            topics: vec![(
                TopicId(7),
                vec![PartitionData {
                    partition_index: 0,
                    leader_epoch,
                    partition_epoch,
                    new_isr: isr.iter().map(|b| member(*b)).collect(),
                }],
            )],
        }
    }

    fn answer(
        img: &MetadataImage,
        req: &AlterPartitionRequest,
    ) -> (
        Vec<MetadataRecord>,
        Result<PartitionState, AlterPartitionError>,
    ) {
        let (records, response) = alter_partition(img, req, |_| false).unwrap();
        let one = response[0].1[0].1.clone();
        (records, one)
    }

    /// A shrink is committed as a PartitionChange (partition epoch bumped, leader epoch not),
    /// answered with the new state; an unchanged ISR produces no record.
    #[test]
    fn shrink_and_expand_commit() {
        let img = image(&[], &[(&[1, 2, 3], &[1, 2, 3], 1)]);
        let (records, state) = answer(&img, &request(4, 9, &[1, 2]));
        assert_eq!(records.len(), 1);
        let state = state.unwrap();
        assert_eq!(
            state,
            PartitionState {
                leader_id: 1,
                leader_epoch: 4,
                isr: vec![1, 2],
                partition_epoch: 10
            }
        );
        let mut next = img.clone();
        next.apply_all(&records).unwrap();
        assert_eq!(next.partition("t", 0).unwrap().isr, vec![1, 2]);
        let (records, state) = answer(&next, &request(4, 10, &[1, 2, 3]));
        assert_eq!(records.len(), 1);
        assert_eq!(state.unwrap().isr, vec![1, 2, 3]);
        let (records, state) = answer(&img, &request(4, 9, &[1, 2, 3]));
        assert!(records.is_empty());
        assert_eq!(state.unwrap().partition_epoch, 9);
    }

    /// Kafka's validation errors, in its order.
    #[test]
    fn refusals() {
        use AlterPartitionError as E;
        let img = image(&[3], &[(&[1, 2, 3], &[1, 2], 1)]);
        let cases: &[(AlterPartitionRequest, E)] = &[
            (request(5, 9, &[1, 2]), E::NotController),
            (request(4, 10, &[1, 2]), E::NotController),
            (request(3, 9, &[1, 2]), E::FencedLeaderEpoch),
            (request(4, 8, &[1, 2]), E::InvalidUpdateVersion),
            (request(4, 9, &[1, 4]), E::InvalidRequest),
            (request(4, 9, &[2]), E::InvalidRequest),
            (request(4, 9, &[1, 1]), E::InvalidRequest),
            (request(4, 9, &[1, 2, 3]), E::IneligibleReplica),
        ];
        for (req, expected) in cases {
            let (records, state) = answer(&img, req);
            assert_eq!(state, Err(*expected), "{req:?}");
            assert!(records.is_empty());
        }
        let mut other = request(4, 9, &[1]);
        other.broker_id = 2;
        other.broker_epoch = 12;
        assert_eq!(
            answer(&img, &other).1,
            Err(E::InvalidRequest),
            "not the leader"
        );
        let mut stale = request(4, 9, &[1]);
        stale.broker_epoch = 3;
        assert_eq!(
            alter_partition(&img, &stale, |_| false).err(),
            Some(E::StaleBrokerEpoch)
        );
        let mut epoch = request(4, 9, &[1, 2]);
        epoch.topics[0].1[0].new_isr[1].broker_epoch = 99;
        assert_eq!(answer(&img, &epoch).1, Err(E::IneligibleReplica));
        let mut unknown = request(4, 9, &[1]);
        unknown.topics[0].0 = TopicId(8);
        assert_eq!(answer(&img, &unknown).1, Err(E::UnknownTopicId));
        let mut missing = request(4, 9, &[1]);
        missing.topics[0].1[0].partition_index = 5;
        assert_eq!(answer(&img, &missing).1, Err(E::UnknownTopicOrPartition));
        assert_eq!(E::IneligibleReplica.code(), 107);
        assert_eq!(E::InvalidUpdateVersion.code(), 95);
    }
}
