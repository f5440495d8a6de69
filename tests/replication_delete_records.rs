//! DeleteRecords on a replicated partition survives a leader change (breaker B6): followers
//! take the leader's log start offset from every fetch answer (Kafka's
//! `ReplicaFetcherThread.processPartitionData` -> `maybeIncrementLogStartOffset`), and the
//! leader answers DeleteRecords only once every alive replica's log start offset passed the
//! requested offset (Kafka's `DelayedDeleteRecords`), so killing the leader right after the
//! answer cannot bring the deleted records back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::cluster::{Cluster, ClusterOpts};
use common::kafka;
use common::wait_until;
use common::wire;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::{Offset, TopicPartitionList};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

#[test]
fn delete_records_survives_a_leader_change() {
    let topic = "trimmed";
    let (mut cluster, old_index) = Cluster::start_replicated(ClusterOpts::default(), topic);
    let leader = Cluster::node_id(old_index);
    let producer = kafka::producer(cluster.broker(old_index), &[("acks", "all")]);
    let records = kafka::keyed_records(200, 5, 50);
    let deliveries = kafka::produce(&producer, topic, &records, Some(0));
    kafka::assert_all_acked(&deliveries);
    drop(producer);

    let admin = kafka::admin(cluster.broker(old_index));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(120))
        .unwrap();
    let answer = common::block_on(admin.delete_records(&tpl, &kafka::admin_opts()))
        .expect("DeleteRecords answered");
    let elem = answer.find_partition(topic, 0).expect("partition answered");
    assert!(elem.error().is_ok(), "{:?}", elem.error());
    assert_eq!(elem.offset(), Offset::Offset(120), "the low watermark");
    drop(admin);

    // At once: the answer came only when every replica had moved its log start.
    cluster.broker_mut(old_index).kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old_index).collect();
    let new_leader = cluster.wait_leader(&survivors, topic, leader);
    let new_index = usize::try_from(new_leader - 1).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the new leader's high watermark",
        || kafka::watermarks(cluster.broker(new_index), topic, 1)[0].1 >= 200,
    );
    assert_eq!(
        kafka::watermarks(cluster.broker(new_index), topic, 1),
        vec![(120, 200)],
        "ListOffsets earliest on the new leader is the deleted-to offset"
    );
    let consumed = kafka::consume_all(cluster.broker(new_index), topic, 1);
    assert_eq!(consumed.first().map(|r| r.offset), Some(120));
    assert_eq!(consumed.len(), 80);

    // Breaker B4: on the follower, the current leader epoch is checked before leadership.
    let follower = survivors.iter().copied().find(|i| *i != new_index).unwrap();
    let epoch = cluster
        .metadata(follower)
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .expect("the topic in the follower's metadata")
        .partitions[0]
        .leader_epoch;
    assert!(epoch >= 1, "the leader change bumped the epoch: {epoch}");
    let addr = cluster.broker(follower).socket_addr();
    let list_offsets = |current: i32| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(current)
                    .with_timestamp(-2)])]);
        let answer: ListOffsetsResponse = wire::call(addr, ApiKey::ListOffsets, 7, &request);
        answer.topics[0].partitions[0].error_code
    };
    assert_eq!(list_offsets(epoch - 1), FENCED_LEADER_EPOCH);
    assert_eq!(list_offsets(epoch + 100), UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_offsets(epoch), NOT_LEADER_OR_FOLLOWER);
    assert_eq!(list_offsets(-1), NOT_LEADER_OR_FOLLOWER);
    let end_of_epoch = |current: i32| {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(0)])]);
        let answer: OffsetForLeaderEpochResponse =
            wire::call(addr, ApiKey::OffsetForLeaderEpoch, 4, &request);
        answer.topics[0].partitions[0].error_code
    };
    assert_eq!(end_of_epoch(epoch - 1), FENCED_LEADER_EPOCH);
    assert_eq!(end_of_epoch(epoch + 100), UNKNOWN_LEADER_EPOCH);
    assert_eq!(end_of_epoch(epoch), NOT_LEADER_OR_FOLLOWER);
    let fetch = |current: i32| {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_fetch_offset(120)
                    .with_partition_max_bytes(1 << 20)])]);
        let answer: FetchResponse = wire::call(addr, ApiKey::Fetch, 12, &request);
        answer.responses[0].partitions[0].error_code
    };
    assert_eq!(fetch(epoch - 1), FENCED_LEADER_EPOCH);
    assert_eq!(fetch(epoch + 100), UNKNOWN_LEADER_EPOCH);
    assert_eq!(fetch(epoch), NOT_LEADER_OR_FOLLOWER);
}
