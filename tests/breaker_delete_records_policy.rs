//! Breaker finding B14: DeleteRecords on a topic whose `cleanup.policy` lacks `delete`
//! (`compact` alone: `__consumer_offsets`, Kafka Streams changelogs) is refused with
//! POLICY_VIOLATION and deletes nothing, as Kafka's `Partition.deleteRecordsOnLeader`
//! ("Records of partition ... can not be deleted due to the configured policy"). Sluice
//! advanced the log start offset of any topic, so an admin's `kafka-delete-records` erased a
//! compacted topic's only copy of its keys (and, on `__consumer_offsets`, committed offsets
//! after the next restart). `compact,delete` and `delete` topics still take it.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::{kafka, unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

const POLICY_VIOLATION: i16 = 44;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const RECORDS: usize = 10;
const DELETE_BEFORE: i64 = 5;

/// DeleteRecords of partitions 0 and 7 (which does not exist) of `topic` before
/// `DELETE_BEFORE`: (error code, low watermark) of each.
fn delete_records(broker: &Broker, topic: &str) -> Vec<(i16, i64)> {
    let partitions = [0, 7]
        .into_iter()
        .map(|index| {
            DeleteRecordsPartition::default()
                .with_partition_index(index)
                .with_offset(DELETE_BEFORE)
        })
        .collect();
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(wire::topic_name(topic))
            .with_partitions(partitions)]);
    let response: DeleteRecordsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteRecords, 2, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.low_watermark))
        .collect()
}

#[test]
fn delete_records_is_refused_where_the_cleanup_policy_keeps_records() {
    let broker = Broker::start(BrokerOpts::default().cores(2));
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(RECORDS, RECORDS, 16);
    for (policy, refused) in [
        ("compact", true),
        ("compact,delete", false),
        ("delete", false),
    ] {
        let topic = unique_name("delete-records-policy");
        kafka::create_topic_with(&broker, &topic, 1, &[("cleanup.policy", policy)]);
        kafka::wait_for_topic(&broker, &topic, 1);
        kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(0)));

        let answers = delete_records(&broker, &topic);
        let expected_low_watermark = if refused { 0 } else { DELETE_BEFORE };
        let (code, low) = answers[0];
        if refused {
            assert_eq!(
                (code, low),
                (POLICY_VIOLATION, -1),
                "cleanup.policy={policy}"
            );
        } else {
            assert_eq!((code, low), (0, DELETE_BEFORE), "cleanup.policy={policy}");
        }
        assert_eq!(
            answers[1].0, UNKNOWN_TOPIC_OR_PARTITION,
            "cleanup.policy={policy}: a partition the topic lacks"
        );
        let (log_start, high_watermark) = kafka::watermarks(&broker, &topic, 1)[0];
        assert_eq!(
            (log_start, high_watermark),
            (expected_low_watermark, RECORDS as i64),
            "cleanup.policy={policy}: log start offset after DeleteRecords"
        );
    }
}

/// Kafka checks the policy on the leader's log (`Partition.deleteRecordsOnLeader` throws
/// NotLeaderOrFollowerException before it looks at the config), so a broker that does not
/// lead the compacted partition answers NOT_LEADER_OR_FOLLOWER (the client then asks the
/// leader), and only the leader answers POLICY_VIOLATION.
#[test]
fn a_broker_not_leading_a_compacted_partition_answers_not_leader_first() {
    use common::cluster::{leaders, Cluster, ClusterOpts, CLUSTER_READY_TIMEOUT};
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let cluster = Cluster::start(ClusterOpts::default());
    let topic = unique_name("delete-records-compacted");
    kafka::create_topic_with(
        cluster.broker(0),
        &topic,
        1,
        &[("cleanup.policy", "compact")],
    );
    let leader = cluster.wait_leader_serving(0, &topic, 0);
    let other = (leader + 1) % 3;
    common::wait_until(
        CLUSTER_READY_TIMEOUT,
        "the other broker to know the topic and its leader",
        || leaders(&cluster.metadata(other), &topic) == [Cluster::node_id(leader)],
    );
    assert_eq!(
        delete_records(cluster.broker(other), &topic)[0],
        (NOT_LEADER_OR_FOLLOWER, -1),
        "a broker not leading the partition"
    );
    assert_eq!(
        delete_records(cluster.broker(leader), &topic)[0],
        (POLICY_VIOLATION, -1),
        "the leader"
    );
}
