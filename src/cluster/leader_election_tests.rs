use super::*;
use crate::cluster::election::tests::image;

fn after(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<PartitionRegistration> {
    let mut next = image.clone();
    next.apply_all(records).unwrap();
    next.get("t").unwrap().registrations.clone()
}

fn wanted(partitions: &[i32]) -> Vec<(String, Vec<i32>)> {
    vec![("t".to_owned(), partitions.to_vec())]
}

/// Kafka's `electLeader` answers per partition: the preferred replica back as leader when it
/// is an active ISR member (epoch bumped); ELECTION_NOT_NEEDED when it already leads;
/// PREFERRED_LEADER_NOT_AVAILABLE when it is out of the ISR or fenced; unknown partitions and
/// topics UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn preferred_election_answers_as_kafka() {
    let img = image(
        &[3],
        &[
            (&[1, 2, 3], &[1, 2, 3], 2), // 1 is preferred, in the ISR, active: elected
            (&[2, 1, 3], &[2, 1], 2),    // already the preferred leader
            (&[1, 2, 3], &[2, 3], 2),    // preferred out of the ISR
            (&[3, 1, 2], &[3, 1, 2], 1), // preferred fenced
        ],
    );
    let ask = wanted(&[0, 1, 2, 3, 9]);
    let (records, results) = elect_leaders(&img, Some(&ask), ElectionType::Preferred);
    assert_eq!(
        results,
        vec![(
            "t".to_owned(),
            vec![
                (0, None),
                (1, Some(ElectError::ElectionNotNeeded)),
                (2, Some(ElectError::PreferredLeaderNotAvailable)),
                (3, Some(ElectError::PreferredLeaderNotAvailable)),
                (9, Some(ElectError::UnknownTopicOrPartition)),
            ]
        )]
    );
    let regs = after(&img, &records);
    assert_eq!((regs[0].leader, regs[0].leader_epoch), (1, 5));
    assert_eq!(
        regs[0].isr,
        vec![1, 2, 3],
        "a preferred election keeps the ISR"
    );
    assert_eq!((regs[3].leader, regs[3].leader_epoch), (1, 4), "unchanged");
    let (_, unknown) = elect_leaders(
        &img,
        Some(&[("nope".to_owned(), vec![0])]),
        ElectionType::Preferred,
    );
    assert_eq!(
        unknown[0].1,
        vec![(0, Some(ElectError::UnknownTopicOrPartition))]
    );
}

/// A null partition list elects everywhere and answers only the partitions that needed an
/// election (Kafka leaves ELECTION_NOT_NEEDED out).
#[test]
fn all_partitions_answers_only_those_that_needed_an_election() {
    let img = image(
        &[],
        &[(&[1, 2, 3], &[1, 2, 3], 2), (&[2, 1, 3], &[2, 1, 3], 2)],
    );
    let (records, results) = elect_leaders(&img, None, ElectionType::Preferred);
    assert_eq!(results, vec![("t".to_owned(), vec![(0, None)])]);
    assert_eq!(records.len(), 1);
    let (records, results) =
        elect_leaders(&after_image(&img, &records), None, ElectionType::Preferred);
    assert!(records.is_empty() && results.is_empty(), "{results:?}");
}

fn after_image(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut next = image.clone();
    next.apply_all(records).unwrap();
    next
}

/// UNCLEAN: only a partition without a leader gets one, the first active replica even out of
/// the ISR (ISR forced to it); a led partition is ELECTION_NOT_NEEDED; none active:
/// ELIGIBLE_LEADERS_NOT_AVAILABLE.
#[test]
fn unclean_election_only_for_leaderless_partitions() {
    let img = image(
        &[1],
        &[
            (&[1, 2], &[1], NO_LEADER),
            (&[1, 2], &[1, 2], 2),
            (&[1], &[1], NO_LEADER),
        ],
    );
    let (records, results) = elect_leaders(&img, Some(&wanted(&[0, 1, 2])), ElectionType::Unclean);
    assert_eq!(
        results[0].1,
        vec![
            (0, None),
            (1, Some(ElectError::ElectionNotNeeded)),
            (2, Some(ElectError::EligibleLeadersNotAvailable)),
        ]
    );
    let regs = after(&img, &records);
    assert_eq!((regs[0].leader, regs[0].isr.clone()), (2, vec![2]));
}

/// The auto rebalance moves leadership back to a preferred replica only when its broker's
/// imbalance ratio passes the percentage, and only where it is an active ISR member.
#[test]
fn rebalance_follows_the_imbalance_percentage() {
    // Broker 1 is preferred for 4 partitions and leads 2: ratio 0.5.
    let parts: &[(&[i32], &[i32], i32)] = &[
        (&[1, 2, 3], &[1, 2, 3], 1),
        (&[1, 2, 3], &[1, 2, 3], 1),
        (&[1, 2, 3], &[1, 2, 3], 2),
        (&[1, 3, 2], &[3, 2], 3), // 1 not in the ISR: left alone
    ];
    let img = image(&[], parts);
    assert!(rebalance(&img, 50).is_empty(), "0.5 is not above 50%");
    let records = rebalance(&img, 10);
    assert_eq!(records.len(), 1);
    let regs = after(&img, &records);
    assert_eq!(regs[2].leader, 1);
    assert_eq!(regs[3].leader, 3);
    // A fenced preferred broker is never chosen.
    let fenced = image(&[1], parts);
    assert!(rebalance(&fenced, 0).is_empty());
}
