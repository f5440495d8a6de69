//! Unit tests of the cluster view over a multi-broker image (beside `view.rs`).

use super::*;
use crate::cluster::records::{
    BrokerEndpoint, MetadataRecord, PartitionRecord, RegisterBrokerRecord, TopicId, TopicRecord,
};

fn endpoint(name: &str, port: u16) -> BrokerEndpoint {
    BrokerEndpoint {
        name: name.into(),
        host: format!("host-{port}"),
        port,
        security_protocol: "PLAINTEXT".into(),
    }
}

fn register(id: i32, fenced: bool, end_points: Vec<BrokerEndpoint>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: id,
        incarnation_id: 1,
        broker_epoch: 1,
        end_points,
        rack: Some(format!("rack-{id}")),
        fenced,
    })
}

fn partition(index: u32, replicas: &[i32], leader: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: index,
        topic_id: TopicId(5),
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader,
        leader_epoch: 7,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

/// Brokers 1 (PLAINTEXT, INTERNAL), 2 (PLAINTEXT only) and 3 (fenced); topic "t" with
/// partitions led by 1, 2, 3 (fenced), 4 (never registered) and none.
pub(crate) fn cluster() -> MetadataImage {
    let mut image = MetadataImage::default();
    let records = vec![
        register(
            1,
            false,
            vec![endpoint("PLAINTEXT", 9001), endpoint("INTERNAL", 19001)],
        ),
        register(2, false, vec![endpoint("PLAINTEXT", 9002)]),
        register(3, true, vec![endpoint("PLAINTEXT", 9003)]),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TopicId(5),
        }),
        partition(0, &[1, 2], 1),
        partition(1, &[2, 3], 2),
        partition(2, &[3, 1], 3),
        partition(3, &[4], 4),
        partition(4, &[1], NO_LEADER),
    ];
    image.apply_all(&records).unwrap();
    image
}

#[test]
fn alive_brokers_are_the_unfenced_ones_with_the_listener() {
    let image = cluster();
    let ids = |l: &str| {
        alive_nodes(&image, l)
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("PLAINTEXT"), vec![1, 2]);
    assert_eq!(ids("INTERNAL"), vec![1]);
    let node = alive_node(&image, 1, "INTERNAL").unwrap();
    assert_eq!((node.host.as_str(), node.port), ("host-19001", 19001));
    assert_eq!(node.rack.as_deref(), Some("rack-1"));
    assert!(alive_node(&image, 3, "PLAINTEXT").is_none(), "fenced");
    assert!(alive_node(&image, 9, "PLAINTEXT").is_none(), "absent");
}

#[test]
fn leaders_that_are_fenced_absent_or_none_are_reported_as_minus_one() {
    let image = cluster();
    let meta = image.get("t").unwrap();
    let view = |i: usize, l: &str| partition_view(&image, &meta.registrations[i], l, false);
    let alive = view(0, "PLAINTEXT");
    assert_eq!(
        (alive.leader, alive.error, alive.leader_epoch),
        (1, None, 7)
    );
    assert!(alive.offline.is_empty());
    let fenced = view(2, "PLAINTEXT");
    assert_eq!(fenced.leader, -1);
    assert_eq!(fenced.error, Some(LeaderError::NotAvailable));
    assert_eq!(fenced.replicas, vec![3, 1], "replicas as registered");
    assert_eq!(fenced.offline, vec![3]);
    assert_eq!(
        fenced.leader_epoch, 7,
        "the epoch is reported without a leader too"
    );
    assert_eq!(view(3, "PLAINTEXT").error, Some(LeaderError::NotAvailable));
    assert_eq!(view(3, "PLAINTEXT").offline, vec![4]);
    assert_eq!(view(4, "PLAINTEXT").error, Some(LeaderError::NotAvailable));
    let follower_fenced = view(1, "PLAINTEXT");
    assert_eq!((follower_fenced.leader, follower_fenced.error), (2, None));
    assert_eq!(follower_fenced.offline, vec![3]);
}

#[test]
fn listener_decides_endpoint_and_offline_replicas() {
    let image = cluster();
    let meta = image.get("t").unwrap();
    let on_internal = partition_view(&image, &meta.registrations[1], "INTERNAL", false);
    assert_eq!(on_internal.error, Some(LeaderError::ListenerNotFound));
    assert_eq!(on_internal.leader, -1);
    let v0 = partition_view(&image, &meta.registrations[2], "PLAINTEXT", true);
    assert_eq!(v0.replicas, vec![1], "v0 lists only available replicas");
    assert_eq!(v0.isr, vec![1]);
    assert_eq!(
        v0.error,
        Some(LeaderError::NotAvailable),
        "its leader is fenced"
    );
    let v0 = partition_view(&image, &meta.registrations[1], "PLAINTEXT", true);
    assert_eq!((v0.leader, v0.replicas.clone()), (2, vec![2]));
    assert_eq!(v0.error, Some(LeaderError::ReplicaNotAvailable));
    let v1 = partition_view(&image, &meta.registrations[1], "PLAINTEXT", false);
    assert_eq!(
        (v1.leader, v1.error),
        (2, None),
        "v1+ list every replica, no error"
    );
    let all_up = partition_view(&image, &meta.registrations[0], "PLAINTEXT", true);
    assert_eq!(all_up.error, None);
}

#[test]
fn current_leader_names_the_leader_at_the_listener() {
    let image = cluster();
    let (id, epoch, node) = current_leader(&image, "t", 1, "PLAINTEXT");
    assert_eq!((id, epoch), (2, 7));
    assert_eq!(node.unwrap().port, 9002);
    let (id, _, node) = current_leader(&image, "t", 2, "PLAINTEXT");
    assert_eq!((id, node), (3, None), "a fenced leader has no endpoint");
    assert_eq!(current_leader(&image, "t", 9, "PLAINTEXT"), (-1, -1, None));
}

#[test]
fn only_the_leader_serves_a_partition() {
    let image = cluster();
    assert_eq!(check_leader(&image, "t", 0, 1), Ok(()));
    assert_eq!(check_leader(&image, "t", 0, 2), Err(true), "a follower");
    assert_eq!(
        check_leader(&image, "t", 2, 1),
        Err(true),
        "fenced leader elsewhere"
    );
    assert_eq!(
        check_leader(&image, "t", 4, 1),
        Err(true),
        "no leader at all"
    );
    assert_eq!(check_leader(&image, "t", 5, 1), Err(false));
    assert_eq!(check_leader(&image, "nope", 0, 1), Err(false));
}
