//! AlterPartition between a partition leader and the active controller, over the controller
//! channel (as heartbeats go; Kafka's `AlterPartitionManager`): the leader's ISR proposals
//! (`replication::isr::IsrProposal`, taken by `PartitionService::replication_tick`) become
//! one call per tick ([`AlterPartitionCall`]); the controller validates it with
//! `alter_partition::alter_partition` and commits the `PartitionChangeRecord`s before it
//! answers ([`plan`]); the leader applies each answer (`on_isr_committed`, or
//! `on_isr_rejected` so the proposal is made again later).
//!
//! Invariants: an accepted change is answered only after its records are committed; a
//! refused partition produces no record; a leader that gets no answer treats its proposals
//! as rejected (never as committed).

use serde::{Deserialize, Serialize};

use super::alter_partition::{
    alter_partition, AlterPartitionError, AlterPartitionRequest, IsrMember, PartitionData,
};
use super::image::MetadataImage;
use super::records::MetadataRecord;
use super::topics::TopicId;

/// One partition's proposed ISR: (partition, leader epoch, partition epoch, new ISR).
pub type ProposedPartition = (u32, i32, i32, Vec<i32>);

/// The request on the wire (topic ids as their 128-bit value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionCall {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topics: Vec<(u128, Vec<ProposedPartition>)>,
}

/// A committed registration: (leader, leader epoch, ISR, partition epoch).
pub type CommittedState = (i32, i32, Vec<i32>, i32);

/// One partition's answer: the committed state or a Kafka error code.
pub type PartitionAnswer = (u32, Result<CommittedState, i16>);

/// The answer: per partition the committed state or a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionAnswer {
    pub topics: Vec<(u128, Vec<PartitionAnswer>)>,
}

/// The controller's side: validates `call` against `image`; the records to commit and the
/// answer to send once they are. `Err` only for a stale broker epoch (whole request).
pub fn plan(
    image: &MetadataImage,
    call: &AlterPartitionCall,
) -> Result<(Vec<MetadataRecord>, AlterPartitionAnswer), AlterPartitionError> {
    let request = AlterPartitionRequest {
        broker_id: call.broker_id,
        broker_epoch: call.broker_epoch,
        topics: call
            .topics
            .iter()
            .map(|(id, partitions)| {
                let data = partitions
                    .iter()
                    .map(
                        |(index, leader_epoch, partition_epoch, isr)| PartitionData {
                            partition_index: *index,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                            new_isr: isr
                                .iter()
                                .map(|b| IsrMember {
                                    broker_id: *b,
                                    broker_epoch: -1,
                                })
                                .collect(),
                        },
                    )
                    .collect();
                (TopicId(*id), data)
            })
            .collect(),
    };
    let unclean = |name: &str| unclean_election_enabled(image, name);
    let (records, response) = alter_partition(image, &request, unclean)?;
    let topics = response
        .into_iter()
        .map(|(id, partitions)| {
            let answers = partitions
                .into_iter()
                .map(|(index, result)| {
                    let result = result
                        .map(|s| (s.leader_id, s.leader_epoch, s.isr, s.partition_epoch))
                        .map_err(AlterPartitionError::code);
                    (index, result)
                })
                .collect();
            (id.0, answers)
        })
        .collect();
    Ok((records, AlterPartitionAnswer { topics }))
}

/// Whether topic `name` has `unclean.leader.election.enable`: its own override, else the
/// cluster-wide dynamic broker default (`kafka-configs --entity-type brokers --entity-default`),
/// else Kafka's default, false.
pub fn unclean_election_enabled(image: &MetadataImage, name: &str) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    let topic = image.get(name).and_then(|m| m.configs.get(KEY));
    let cluster = image
        .broker_config_resources()
        .get("")
        .and_then(|c| c.get(KEY));
    topic
        .or(cluster)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{ConfigRecord, RegisterBrokerRecord, CONFIG_RESOURCE_BROKER};

    /// The topic's override wins; without one the cluster-wide broker default applies.
    #[test]
    fn unclean_election_from_the_topic_else_the_cluster_default() {
        let mut img = image();
        assert!(!unclean_election_enabled(&img, "t"));
        img.apply(&MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_BROKER,
            resource_name: String::new(),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        }))
        .unwrap();
        assert!(unclean_election_enabled(&img, "t"));
        img.apply(&MetadataRecord::Config(ConfigRecord {
            resource_type: crate::cluster::records::CONFIG_RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: "unclean.leader.election.enable".into(),
            value: Some("false".into()),
        }))
        .unwrap();
        assert!(!unclean_election_enabled(&img, "t"));
    }
    use crate::cluster::topics::TopicMeta;

    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in [1, 2, 3] {
            image
                .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: id,
                    incarnation_id: 1,
                    broker_epoch: 10,
                    end_points: Vec::new(),
                    rack: None,
                    fenced: false,
                }))
                .unwrap();
        }
        let meta = TopicMeta {
            name: "t".into(),
            id: TopicId(7),
            partitions: 1,
            configs: Default::default(),
            registrations: Vec::new(),
        };
        let mut records = crate::cluster::image::topic_records(&meta, 1);
        for r in &mut records {
            if let MetadataRecord::Partition(p) = r {
                p.replicas = vec![1, 2, 3];
                p.isr = vec![1, 2, 3];
            }
        }
        image.apply_all(&records).unwrap();
        image
    }

    /// A shrink from the leader commits as one PartitionChange and answers the new state; a
    /// stale partition epoch is refused with INVALID_UPDATE_VERSION (no record); a stale
    /// broker epoch refuses the whole call.
    #[test]
    fn plans_kafkas_answers() {
        let mut image = image();
        let reg = image.get("t").unwrap().registrations[0].clone();
        let call = AlterPartitionCall {
            broker_id: 1,
            broker_epoch: 10,
            topics: vec![(
                7,
                vec![(0, reg.leader_epoch, reg.partition_epoch, vec![1, 2])],
            )],
        };
        let (records, answer) = plan(&image, &call).unwrap();
        assert_eq!(records.len(), 1);
        image.apply_all(&records).unwrap();
        let after = image.get("t").unwrap().registrations[0].clone();
        assert_eq!(after.isr, vec![1, 2]);
        assert_eq!(
            answer.topics,
            vec![(
                7,
                vec![(
                    0,
                    Ok((1, after.leader_epoch, vec![1, 2], after.partition_epoch))
                )]
            )]
        );
        let (records, answer) = plan(&image, &call).unwrap();
        assert!(records.is_empty());
        assert_eq!(
            answer.topics[0].1[0].1,
            Err(AlterPartitionError::InvalidUpdateVersion.code())
        );
        let stale = AlterPartitionCall {
            broker_epoch: 9,
            ..call
        };
        assert_eq!(
            plan(&image, &stale).unwrap_err(),
            AlterPartitionError::StaleBrokerEpoch
        );
    }
}
