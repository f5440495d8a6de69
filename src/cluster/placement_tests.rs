//! Unit tests of the replica placer and manual assignment checks (beside `placement.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::cluster::records::{BrokerEndpoint, MetadataRecord, RegisterBrokerRecord};

fn broker(id: i32, rack: Option<&str>, fenced: bool) -> UsableBroker {
    UsableBroker {
        id,
        rack: rack.map(str::to_owned),
        fenced,
    }
}

fn image_of(brokers: &[UsableBroker]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for b in brokers {
        image
            .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.id,
                incarnation_id: 1,
                broker_epoch: 1,
                end_points: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9000 + u16::try_from(b.id).unwrap(),
                    security_protocol: "PLAINTEXT".into(),
                }],
                rack: b.rack.clone(),
                fenced: b.fenced,
            }))
            .unwrap();
    }
    image
}

fn count_by<F: Fn(&Vec<i32>) -> Vec<i32>>(placed: &[Vec<i32>], pick: F) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for replicas in placed {
        for b in pick(replicas) {
            *counts.entry(b).or_default() += 1;
        }
    }
    counts
}

#[test]
fn leaders_and_replicas_spread_evenly_over_three_brokers() {
    let brokers = [
        broker(1, None, false),
        broker(2, None, false),
        broker(3, None, false),
    ];
    for seed in [0, 1, 42, u64::MAX] {
        let placed = place(&brokers, &[], 6, 1, seed).unwrap();
        let leaders = count_by(&placed, |r| vec![r[0]]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let placed = place(&brokers, &[], 9, 3, seed).unwrap();
        let leaders = count_by(&placed, |r| vec![r[0]]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![3, 3, 3]);
        for replicas in &placed {
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(distinct.len(), 3, "no broker twice in {replicas:?}");
        }
    }
}

#[test]
fn fenced_brokers_never_lead_but_may_follow() {
    let brokers = [
        broker(1, None, false),
        broker(2, None, true),
        broker(3, None, false),
    ];
    let placed = place(&brokers, &[], 10, 2, 7).unwrap();
    assert!(placed.iter().all(|r| r[0] != 2), "{placed:?}");
    let placed = place(&brokers, &[], 10, 3, 7).unwrap();
    assert!(placed.iter().all(|r| r[0] != 2 && r.contains(&2)));
    let image = image_of(&brokers);
    let registration = new_registration(&image, vec![2, 3, 1]).unwrap();
    assert_eq!(registration.leader, 3, "the first unfenced replica leads");
    assert_eq!(
        registration.isr,
        vec![3, 1],
        "fenced replicas are not in sync"
    );
    assert_eq!(registration.replicas, vec![2, 3, 1]);
    assert!(new_registration(&image, vec![2]).is_none());
}

#[test]
fn racks_get_one_replica_each_before_any_gets_two() {
    let brokers = [
        broker(1, Some("a"), false),
        broker(2, Some("a"), false),
        broker(3, Some("b"), false),
        broker(4, Some("b"), false),
        broker(5, Some("c"), false),
        broker(6, Some("c"), false),
    ];
    let rack = |b: i32| ((b + 1) / 2) as u8;
    let placed = place(&brokers, &[], 12, 3, 3).unwrap();
    for replicas in &placed {
        let racks: BTreeSet<u8> = replicas.iter().map(|b| rack(*b)).collect();
        assert_eq!(racks.len(), 3, "one replica per rack: {replicas:?}");
    }
    let leaders = count_by(&placed, |r| vec![r[0]]);
    assert_eq!(leaders.len(), 6, "every broker leads some: {leaders:?}");
    assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
}

#[test]
fn replication_factor_is_checked_as_kafka_does() {
    let brokers = [broker(1, None, false), broker(2, None, true)];
    let err = place(&brokers, &[], 1, 3, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot \
         be reached because only 2 broker(s) are registered."
    );
    assert!(matches!(err, PlacementError::ReplicationFactor(_)));
    assert!(
        place(&brokers, &[], 1, 2, 0).is_ok(),
        "a fenced broker may follow"
    );
    assert!(place(&brokers, &[], 1, 0, 0).is_err());
    let all_fenced = [broker(1, None, true)];
    assert_eq!(
        place(&all_fenced, &[], 1, 1, 0).unwrap_err().to_string(),
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced."
    );
}

#[test]
fn added_partitions_continue_the_stripe() {
    let brokers = [
        broker(1, None, false),
        broker(2, None, false),
        broker(3, None, false),
    ];
    let first = place(&brokers, &[], 3, 1, 11).unwrap();
    let more = place(&brokers, &first, 3, 1, 99).unwrap();
    let all: Vec<Vec<i32>> = first.iter().chain(&more).cloned().collect();
    let leaders = count_by(&all, |r| vec![r[0]]);
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn a_single_broker_gets_everything() {
    let placed = place(&[broker(0, None, false)], &[], 50, 1, 5).unwrap();
    assert!(placed.iter().all(|r| r == &vec![0]));
}

#[test]
fn manual_assignments_are_checked_with_kafkas_messages() {
    let image = image_of(&[broker(1, None, false), broker(2, None, false)]);
    assert!(check_manual(&image, &[1, 2], Some(2)).is_ok());
    let message = |r: Result<(), PlacementError>| r.unwrap_err().to_string();
    assert_eq!(
        message(check_manual(&image, &[], None)),
        "The manual partition assignment includes an empty replica list."
    );
    assert_eq!(
        message(check_manual(&image, &[1, 7], None)),
        "The manual partition assignment includes broker 7, but no such broker is registered."
    );
    assert_eq!(
        message(check_manual(&image, &[2, 1, 2], None)),
        "The manual partition assignment includes the broker 2 more than once."
    );
    assert_eq!(
        message(check_manual(&image, &[1], Some(2))),
        "The manual partition assignment includes a partition with 1 replica(s), but this is \
         not consistent with previous partitions, which have 2 replica(s)."
    );
}
