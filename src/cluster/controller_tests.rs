//! Unit tests of `controller`: config records and partition placement.

use super::*;

fn meta(configs: &[(&str, &str)]) -> TopicMeta {
    TopicMeta {
        name: "t".into(),
        id: TopicId(9),
        partitions: 1,
        configs: configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        registrations: vec![PartitionRegistration::single(1)],
    }
}

#[test]
fn config_records_turn_the_old_overrides_into_the_new_ones() {
    let old = meta(&[("a", "1"), ("b", "2"), ("c", "3")]);
    let next: topics::config::TopicOverrides = [("b", "2"), ("c", "30"), ("d", "4")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let records = config_records(&old, &next);
    let mut image = MetadataImage::default();
    image.apply_all(&image::topic_records(&old, 1)).unwrap();
    image.apply_all(&records).unwrap();
    assert_eq!(image.get("t").unwrap().configs, next);
    assert_eq!(
        records.len(),
        3,
        "a removed, c changed, d added; b untouched"
    );
}

fn cluster(fenced: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=3 {
        image
            .apply(&MetadataRecord::RegisterBroker(
                super::super::records::RegisterBrokerRecord {
                    broker_id: id,
                    incarnation_id: 1,
                    broker_epoch: 1,
                    end_points: Vec::new(),
                    rack: None,
                    fenced: fenced.contains(&id),
                },
            ))
            .unwrap();
    }
    image
}

#[test]
fn new_partitions_spread_over_the_brokers_with_isr_and_leader() {
    let image = cluster(&[]);
    let placed = place_partitions(&image, &[], 6, 3, None, 5).unwrap();
    let mut leaders: Vec<i32> = placed.iter().map(|r| r.leader).collect();
    leaders.sort_unstable();
    assert_eq!(leaders, vec![1, 1, 2, 2, 3, 3]);
    for r in &placed {
        assert_eq!(r.replicas.len(), 3);
        assert_eq!(r.isr, r.replicas, "ISR = replicas at creation");
        assert_eq!(r.leader, r.replicas[0], "the first replica leads");
        assert_eq!((r.leader_epoch, r.partition_epoch), (0, 0));
    }
    let err = place_partitions(&image, &[], 1, 4, None, 5).unwrap_err();
    assert!(matches!(err, PlacementError::ReplicationFactor(_)));
}

#[test]
fn manual_assignments_follow_kafkas_rules() {
    let image = cluster(&[2]);
    let placed = place_partitions(&image, &[], 2, -1, Some(&[vec![2, 1], vec![3]]), 0);
    assert!(
        matches!(&placed, Err(PlacementError::Assignment(m)) if m.contains("1 replica(s)")),
        "{placed:?}"
    );
    let placed = place_partitions(&image, &[], 2, -1, Some(&[vec![2, 1], vec![3, 2]]), 0);
    let placed = placed.unwrap();
    assert_eq!((placed[0].leader, placed[0].isr.clone()), (1, vec![1]));
    assert_eq!((placed[1].leader, placed[1].isr.clone()), (3, vec![3]));
    let all_fenced = place_partitions(&image, &[vec![1]], 1, 1, Some(&[vec![2]]), 0);
    assert_eq!(
        all_fenced.unwrap_err().to_string(),
        "All brokers specified in the manual partition assignment for partition 1 are fenced \
         or in controlled shutdown."
    );
    let wrong_factor = place_partitions(&image, &[vec![1]], 1, 1, Some(&[vec![1, 3]]), 0);
    assert!(matches!(wrong_factor, Err(PlacementError::Assignment(_))));
}

/// A proposal that fails because the controller's quorum stopped (it is shutting down) is a
/// timeout, as Kafka's controller answers a closed event queue; a lost leadership stays
/// NOT_CONTROLLER (the forwarding broker retries it); anything else a failure.
#[test]
fn a_stopping_quorum_times_out_and_a_lost_leadership_is_not_controller() {
    use super::super::quorum::QuorumError;
    assert!(matches!(
        commit_error(QuorumError::Stopped),
        CommitError::TimedOut(_)
    ));
    for lost in [
        QuorumError::NotController { leader_id: Some(2) },
        QuorumError::OutcomeUnknown { leader_id: None },
    ] {
        assert_eq!(commit_error(lost), CommitError::NotController);
    }
    assert!(matches!(
        commit_error(QuorumError::Rejected("no".into())),
        CommitError::Failed(_)
    ));
    // What the client sees per topic: REQUEST_TIMED_OUT (7), not KAFKA_STORAGE_ERROR (56).
    let timed_out = CommitError::TimedOut("t".into());
    assert_eq!(
        crate::handlers::error::admin_error_code(&AdminError::from(timed_out.clone())),
        7
    );
    assert_eq!(
        crate::handlers::error::topic_error_code(&TopicError::from(timed_out)),
        7
    );
}
