use super::*;
use crate::cluster::records::{PartitionRecord, RegisterBrokerRecord, TopicRecord};
use crate::cluster::topics::TopicId;

/// Brokers 1..=4 (those in `fenced` fenced) and topic "t" with one partition (replicas, isr,
/// leader), leader epoch 4, partition epoch 9.
fn image(fenced: &[i32], replicas: &[i32], isr: &[i32], leader: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=4 {
        image
            .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                incarnation_id: id as u128,
                broker_epoch: 10,
                end_points: Vec::new(),
                rack: None,
                fenced: fenced.contains(&id),
            }))
            .unwrap();
    }
    image
        .apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TopicId(7),
        }))
        .unwrap();
    image
        .apply(&MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: TopicId(7),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }))
        .unwrap();
    image
}

fn reassign(image: &mut MetadataImage, target: Option<&[i32]>) -> Option<ReassignError> {
    let request = vec![("t".to_owned(), vec![(0, target.map(<[i32]>::to_vec))])];
    let (records, mut results) = alter_reassignments(image, &request, true, |_| false);
    image.apply_all(&records).unwrap();
    results.remove(0).1.remove(0).1
}

fn partition(image: &MetadataImage) -> PartitionRegistration {
    image.partition("t", 0).unwrap().clone()
}

/// What an AlterPartition from the leader does: the ISR change, then the reassignment steps.
fn isr_becomes(image: &mut MetadataImage, isr: &[i32]) {
    let current = partition(image);
    let change = PartitionChangeRecord {
        partition_id: 0,
        topic_id: TopicId(7),
        isr: Some(isr.to_vec()),
        leader: NO_LEADER_CHANGE,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    };
    let change = complete_if_done(&current, change, |r| is_active(image, r));
    image
        .apply(&MetadataRecord::PartitionChange(change))
        .unwrap();
}

/// {1,2} led by 1 to {2,3}: the union with adding/removing, same leader and epoch; once 3 is in
/// the ISR the reassignment completes: replicas {2,3}, 1 out of the ISR, leadership to 2 with
/// the epoch bumped.
#[test]
fn reassignment_moves_replicas_and_leader() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    assert_eq!(reassign(&mut img, Some(&[2, 3])), None);
    let p = partition(&img);
    assert_eq!(p.replicas, vec![2, 3, 1]);
    assert_eq!(p.adding_replicas, vec![3]);
    assert_eq!(p.removing_replicas, vec![1]);
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (1, 4, vec![1, 2])
    );
    let listed = list_reassignments(&img, None);
    assert_eq!(
        listed,
        vec![("t".to_owned(), vec![(0, vec![2, 3, 1], vec![3], vec![1])])]
    );
    isr_becomes(&mut img, &[1, 2, 3]);
    let p = partition(&img);
    assert_eq!(p.replicas, vec![2, 3]);
    assert_eq!(p.isr, vec![2, 3]);
    assert!(!p.reassignment_in_progress());
    assert_eq!((p.leader, p.leader_epoch), (2, 5));
    assert!(list_reassignments(&img, None).is_empty());
}

/// A leader that stays keeps leading, but the epoch is bumped because a replica left.
#[test]
fn completion_bumps_the_epoch_when_a_replica_leaves() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    assert_eq!(reassign(&mut img, Some(&[1, 3])), None);
    isr_becomes(&mut img, &[1, 2]);
    assert!(
        partition(&img).reassignment_in_progress(),
        "3 not in the ISR yet"
    );
    isr_becomes(&mut img, &[1, 2, 3]);
    let p = partition(&img);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (vec![1, 3], vec![1, 3])
    );
    assert_eq!((p.leader, p.leader_epoch), (1, 5));
}

/// A target already in the ISR completes at once (shrinking the replication factor).
#[test]
fn target_in_the_isr_completes_at_once() {
    let mut img = image(&[], &[1, 2, 3], &[1, 2, 3], 1);
    assert_eq!(reassign(&mut img, Some(&[2, 3])), None);
    let p = partition(&img);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (vec![2, 3], vec![2, 3])
    );
    assert_eq!((p.leader, p.leader_epoch), (2, 5));
    assert!(!p.reassignment_in_progress());
}

/// A cancel reverts to the replicas before: the adding ones leave replicas and ISR.
#[test]
fn cancel_reverts() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    assert_eq!(reassign(&mut img, Some(&[3, 4])), None);
    isr_becomes(&mut img, &[1, 2, 3]);
    assert_eq!(partition(&img).replicas, vec![3, 4, 1, 2]);
    assert_eq!(reassign(&mut img, None), None);
    let p = partition(&img);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (vec![1, 2], vec![1, 2])
    );
    assert!(!p.reassignment_in_progress());
    assert_eq!((p.leader, p.leader_epoch), (1, 5));
    assert_eq!(
        reassign(&mut img, None),
        Some(ReassignError::NoReassignmentInProgress)
    );
}

/// Kafka's validation errors, nothing committed for a refused partition.
#[test]
fn refusals() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    let code = |e: Option<ReassignError>| e.map(|e| e.code());
    assert_eq!(code(reassign(&mut img, Some(&[]))), Some(39));
    assert_eq!(code(reassign(&mut img, Some(&[2, 2]))), Some(39));
    assert_eq!(code(reassign(&mut img, Some(&[2, 9]))), Some(39));
    assert_eq!(code(reassign(&mut img, None)), Some(85));
    let request = vec![
        ("nope".to_owned(), vec![(0, Some(vec![1]))]),
        (
            "t".to_owned(),
            vec![(1, Some(vec![1])), (-1, Some(vec![1]))],
        ),
    ];
    let (records, results) = alter_reassignments(&img, &request, true, |_| false);
    assert!(records.is_empty());
    let codes: Vec<_> = results
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, e)| e.as_ref().map(ReassignError::code)))
        .collect();
    assert_eq!(codes, vec![Some(3), Some(3), Some(3)]);
    let request = vec![("t".to_owned(), vec![(0, Some(vec![1, 2, 3]))])];
    let (records, results) = alter_reassignments(&img, &request, false, |_| false);
    assert!(records.is_empty());
    assert_eq!(
        results[0].1[0].1.as_ref().map(ReassignError::code),
        Some(38)
    );
    assert!(!partition(&img).reassignment_in_progress());
}

/// A leader being removed whose successor is fenced: no inactive broker is elected.
#[test]
fn completion_never_elects_a_fenced_broker() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    assert_eq!(reassign(&mut img, Some(&[2, 3])), None);
    let current = partition(&img);
    let change = PartitionChangeRecord {
        partition_id: 0,
        topic_id: TopicId(7),
        isr: Some(vec![1, 2, 3]),
        leader: NO_LEADER_CHANGE,
        replicas: None,
        removing_replicas: None,
        adding_replicas: None,
    };
    let change = complete_if_done(&current, change, |r| r != 2);
    assert_eq!(change.leader, 3);
}

/// Repeating a reassignment in progress changes nothing; a new target while one is in
/// progress removes the replicas no longer wanted, the half-added ones included.
#[test]
fn a_repeated_or_changed_target_during_a_reassignment() {
    let mut img = image(&[], &[1, 2], &[1, 2], 1);
    assert_eq!(reassign(&mut img, Some(&[2, 3])), None);
    let before = partition(&img);
    assert_eq!(reassign(&mut img, Some(&[2, 3])), None);
    let p = partition(&img);
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone()
        ),
        (
            before.replicas,
            before.adding_replicas,
            before.removing_replicas
        )
    );
    assert_eq!(reassign(&mut img, Some(&[2, 4])), None);
    let p = partition(&img);
    assert_eq!(p.replicas, vec![2, 4, 3, 1]);
    assert_eq!(p.adding_replicas, vec![4]);
    assert_eq!(p.removing_replicas, vec![3, 1]);
}
