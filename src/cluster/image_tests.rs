//! Unit tests of `MetadataImage::apply` (beside `image.rs`).

use super::*;
use crate::cluster::records::{BrokerEndpoint, RemoveTopicRecord, NO_LEADER, NO_LEADER_CHANGE};

fn id(n: u128) -> TopicId {
    TopicId(n)
}

fn topic(name: &str, n: u128) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: id(n),
    })
}

fn partition(n: u128, index: u32, leader: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: index,
        topic_id: id(n),
        replicas: vec![leader],
        isr: vec![leader],
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

fn config(topic: &str, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: CONFIG_RESOURCE_TOPIC,
        resource_name: topic.into(),
        name: name.into(),
        value: value.map(str::to_owned),
    })
}

fn broker(broker_id: i32, port: u16) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id,
        incarnation_id: 7,
        broker_epoch: 3,
        end_points: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: Some("r1".into()),
        fenced: false,
    })
}

/// A topic with two partitions and a config, on broker 1.
fn orders() -> Vec<MetadataRecord> {
    vec![
        broker(1, 9092),
        topic("orders", 10),
        partition(10, 0, 1),
        partition(10, 1, 1),
        config("orders", "retention.ms", Some("1000")),
    ]
}

fn image_of(records: &[MetadataRecord]) -> MetadataImage {
    let mut image = MetadataImage::default();
    image.apply_all(records).unwrap();
    image
}

#[test]
fn records_build_brokers_topics_partitions_and_configs() {
    let image = image_of(&orders());
    let meta = image.get("orders").unwrap();
    assert_eq!(meta.id, id(10));
    assert_eq!(meta.partitions, 2);
    assert_eq!(meta.registrations.len(), 2);
    assert_eq!(
        meta.configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
    assert_eq!(image.by_id(id(10)).map(|m| m.name.as_str()), Some("orders"));
    assert_eq!(
        image.partition("orders", 1),
        Some(&PartitionRegistration::single(1))
    );
    assert_eq!(image.partition("orders", 2), None);
    assert_eq!(image.broker(1).and_then(|b| b.rack.as_deref()), Some("r1"));
    assert_eq!(image.controller_id(), 1);
}

#[test]
fn replaying_records_changes_nothing() {
    let once = image_of(&orders());
    let mut twice = once.clone();
    twice.apply_all(&orders()).unwrap();
    assert_eq!(twice, once);
    let removal = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id(10) });
    let mut removed = once.clone();
    removed.apply(&removal).unwrap();
    let after_one = removed.clone();
    removed.apply(&removal).unwrap();
    assert_eq!(removed, after_one, "a replayed removal is a no-op");
    let ids = |next: i64| {
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 3,
            next_producer_id: next,
        })
    };
    let mut image = once.clone();
    image.apply(&ids(2000)).unwrap();
    image.apply(&ids(1000)).unwrap();
    image.apply(&ids(2000)).unwrap();
    assert_eq!(image.next_producer_id(), 2000, "blocks never go back");
}

#[test]
fn a_removed_topic_leaves_nothing_behind_for_a_new_one_of_the_same_name() {
    let mut image = image_of(&orders());
    image
        .apply(&MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 0,
            topic_id: id(10),
            isr: None,
            leader: 1,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
        }))
        .unwrap();
    image
        .apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id(10),
        }))
        .unwrap();
    assert!(image.get("orders").is_none());
    assert!(image.by_id(id(10)).is_none());
    assert!(image.collision("orders").is_none());
    image
        .apply_all(&[topic("orders", 11), partition(11, 0, 1)])
        .unwrap();
    let meta = image.get("orders").unwrap();
    assert_eq!(meta.id, id(11));
    assert_eq!(meta.partitions, 1);
    assert!(meta.configs.is_empty(), "the old topic's configs are gone");
    assert_eq!(
        image.partition("orders", 0).map(|r| r.leader_epoch),
        Some(0),
        "the old topic's leader epoch is gone"
    );
}

#[test]
fn partition_changes_bump_epochs_as_kafka_merges_them() {
    let mut image = image_of(&orders());
    let change = |leader: i32, isr: Option<Vec<i32>>| {
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 1,
            topic_id: id(10),
            isr,
            leader,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
        })
    };
    image
        .apply(&change(NO_LEADER_CHANGE, Some(vec![])))
        .unwrap();
    let r = image.partition("orders", 1).unwrap().clone();
    assert_eq!((r.leader, r.leader_epoch, r.partition_epoch), (1, 0, 1));
    assert!(r.isr.is_empty());
    image.apply(&change(NO_LEADER, None)).unwrap();
    let r = image.partition("orders", 1).unwrap().clone();
    assert_eq!((r.leader, r.leader_epoch, r.partition_epoch), (-1, 1, 2));
    assert_eq!(r.replicas, vec![1], "replicas unchanged without a value");
    assert_eq!(
        image.partition("orders", 0),
        Some(&PartitionRegistration::single(1))
    );
}

#[test]
fn records_that_do_not_fit_are_refused_and_change_nothing() {
    let image = image_of(&orders());
    let refused = |record: MetadataRecord| {
        let mut copy = image.clone();
        let error = copy.apply(&record).unwrap_err();
        assert_eq!(copy, image, "{error}");
        error
    };
    assert!(matches!(
        refused(topic("orders", 12)),
        ImageError::NameTaken { .. }
    ));
    assert!(matches!(
        refused(topic("other", 10)),
        ImageError::IdTaken { .. }
    ));
    assert!(matches!(
        refused(partition(99, 0, 1)),
        ImageError::UnknownTopicId(_)
    ));
    assert!(matches!(
        refused(partition(10, 5, 1)),
        ImageError::PartitionGap { .. }
    ));
    assert!(matches!(
        refused(MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 2,
            topic_id: id(10),
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
        })),
        ImageError::UnknownPartition { .. }
    ));
    assert!(matches!(
        refused(config("nope", "retention.ms", Some("1"))),
        ImageError::UnknownConfigTopic(_)
    ));
    assert!(matches!(
        refused(MetadataRecord::Config(ConfigRecord {
            resource_type: 8,
            resource_name: "x".into(),
            name: "y".into(),
            value: Some("1".into()),
        })),
        ImageError::UnsupportedConfigResource(8)
    ));
}

#[test]
fn a_null_config_value_removes_the_override() {
    let mut image = image_of(&orders());
    image
        .apply(&config("orders", "retention.ms", None))
        .unwrap();
    assert!(image.get("orders").unwrap().configs.is_empty());
}

#[test]
fn an_image_replays_from_its_topic_records() {
    let mut image = image_of(&orders());
    image
        .apply(&MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 1,
            topic_id: id(10),
            isr: None,
            leader: 1,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
        }))
        .unwrap();
    let meta = image.get("orders").unwrap().clone();
    let rebuilt = image_of(
        &std::iter::once(broker(1, 9092))
            .chain(topic_records(&meta, 1))
            .collect::<Vec<_>>(),
    );
    assert_eq!(rebuilt, image);
    assert_eq!(
        rebuilt.partition("orders", 1).map(|r| r.leader_epoch),
        Some(1)
    );
}

#[test]
fn records_round_trip_through_serde() {
    let records = orders();
    let text = serde_json::to_string(&records).unwrap();
    let back: Vec<MetadataRecord> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, records);
}

#[test]
fn producer_id_blocks_follow_each_other() {
    let mut image = image_of(&orders());
    let (first, start) = producer_ids_record(&image, 1, 3, 1000).unwrap();
    assert_eq!((start, first.next_producer_id), (0, 1000));
    image.apply(&MetadataRecord::ProducerIds(first)).unwrap();
    let (second, start) = producer_ids_record(&image, 1, 3, 1000).unwrap();
    assert_eq!((start, second.next_producer_id), (1000, 2000));
    image
        .apply(&MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 3,
            next_producer_id: i64::MAX - 10,
        }))
        .unwrap();
    assert!(
        producer_ids_record(&image, 1, 3, 1000).is_none(),
        "exhausted"
    );
}

#[test]
fn broker_config_records_set_and_remove_dynamic_broker_configs() {
    let mut image = image_of(&orders());
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cluster = map(&[("log.retention.ms", "10"), ("compression.type", "lz4")]);
    image
        .apply_all(&broker_config_records("", &BTreeMap::new(), &cluster))
        .unwrap();
    let node = map(&[("log.retention.ms", "20")]);
    image
        .apply_all(&broker_config_records("1", &BTreeMap::new(), &node))
        .unwrap();
    let seen = image.dynamic_configs(1);
    assert_eq!(
        (seen.cluster.clone(), seen.node.clone()),
        (cluster.clone(), node)
    );
    assert!(
        image.dynamic_configs(2).node.is_empty(),
        "another node's values are its own"
    );
    let fewer = map(&[("compression.type", "lz4")]);
    let records = broker_config_records("", &cluster, &fewer);
    assert_eq!(records.len(), 1, "only the removed key");
    image.apply_all(&records).unwrap();
    assert_eq!(image.dynamic_configs(1).cluster, fewer);
    let mut again = image.clone();
    again.apply_all(&records).unwrap();
    assert_eq!(again, image, "a replay changes nothing");
}

#[test]
fn an_image_rebuilds_from_its_snapshot_records() {
    let mut image = image_of(&orders());
    image
        .apply_all(&[
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: 0,
                topic_id: id(10),
                isr: Some(vec![]),
                leader: NO_LEADER,
                replicas: None,
                removing_replicas: None,
                adding_replicas: None,
            }),
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: 3,
                next_producer_id: 3000,
            }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: crate::cluster::records::CONFIG_RESOURCE_BROKER,
                resource_name: String::new(),
                name: "log.retention.ms".into(),
                value: Some("5".into()),
            }),
            topic("empty-configs", 20),
            partition(20, 0, 1),
        ])
        .unwrap();
    let rebuilt = image_of(&image.snapshot_records());
    assert_eq!(rebuilt, image);
    assert_eq!(
        rebuilt.partition("orders", 0).map(|r| r.leader_epoch),
        Some(1)
    );
}
