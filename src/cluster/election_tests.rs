use super::*;
use crate::cluster::records::{PartitionRecord, RegisterBrokerRecord, TopicRecord};

/// Brokers 1..=3 (those in `fenced` fenced) and topic "t" with the given partitions as
/// (replicas, isr, leader).
pub(crate) fn image(fenced: &[i32], partitions: &[(&[i32], &[i32], i32)]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=3 {
        image
            .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                incarnation_id: id as u128,
                broker_epoch: 10 + i64::from(id),
                end_points: Vec::new(),
                rack: None,
                fenced: fenced.contains(&id),
            }))
            .unwrap();
    }
    let topic_id = TopicId(7);
    image
        .apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }))
        .unwrap();
    for (index, (replicas, isr, leader)) in partitions.iter().enumerate() {
        image
            .apply(&MetadataRecord::Partition(PartitionRecord {
                partition_id: index as u32,
                topic_id,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                leader: *leader,
                leader_epoch: 4,
                partition_epoch: 9,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            }))
            .unwrap();
    }
    image
}

fn after(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<PartitionRegistration> {
    let mut next = image.clone();
    next.apply_all(records).unwrap();
    next.get("t").unwrap().registrations.clone()
}

/// The fenced leader is replaced by the next ISR member in replica order, with the leader
/// epoch bumped; the fenced broker leaves every ISR; partitions it only followed keep their
/// leader and epoch.
#[test]
fn fenced_leader_is_replaced_from_the_isr() {
    let img = image(
        &[1],
        &[
            (&[1, 2, 3], &[1, 2, 3], 1),
            (&[2, 1, 3], &[2, 1], 2),
            (&[3, 2], &[3, 2], 3),
        ],
    );
    let records = on_broker_fenced(&img, 1, |_| false);
    assert_eq!(records.len(), 2, "partition 2 does not involve broker 1");
    let regs = after(&img, &records);
    assert_eq!((regs[0].leader, regs[0].leader_epoch), (2, 5));
    assert_eq!(regs[0].isr, vec![2, 3]);
    assert_eq!((regs[1].leader, regs[1].leader_epoch), (2, 4));
    assert_eq!(regs[1].isr, vec![2]);
    assert_eq!(regs[1].partition_epoch, 10);
}

/// The ISR never empties: the last member stays in it and the partition has no leader;
/// unclean election (when the topic allows it) takes an out-of-sync active replica, with
/// ISR = [it]. When that broker comes back (unfenced), it leads again cleanly.
#[test]
fn last_isr_member_and_unclean_election() {
    let img = image(&[1], &[(&[1, 2], &[1], 1)]);
    let clean = on_broker_fenced(&img, 1, |_| false);
    let regs = after(&img, &clean);
    assert_eq!(regs[0].leader, NO_LEADER);
    assert_eq!(regs[0].isr, vec![1], "the last member is kept");
    assert_eq!(regs[0].leader_epoch, 5);
    let unclean = on_broker_fenced(&img, 1, |t| t == "t");
    let regs = after(&img, &unclean);
    assert_eq!((regs[0].leader, regs[0].isr.clone()), (2, vec![2]));
    // Broker 1 returns to a leaderless partition whose ISR is [1].
    let mut leaderless = img.clone();
    leaderless.apply_all(&clean).unwrap();
    let back = on_broker_unfenced(&leaderless, 1, |_| false);
    let regs = after(&leaderless, &back);
    assert_eq!((regs[0].leader, regs[0].leader_epoch), (1, 6));
    // Broker 2 (not in the ISR) coming back elects nothing without unclean election.
    assert!(on_broker_unfenced(&leaderless, 2, |_| false).is_empty());
}

/// A new leader must be active: a fenced ISR member is skipped.
#[test]
fn fenced_isr_members_are_not_elected() {
    let img = image(&[1, 2], &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let regs = after(&img, &on_broker_fenced(&img, 1, |_| false));
    assert_eq!(regs[0].leader, 3);
}
