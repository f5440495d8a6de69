//! APIs that Kafka 4's AdminClient and tools use beyond the classic set, over the wire:
//! DescribeTopicPartitions (paging by cursor, all topics, unknown topics, a bad cursor),
//! ElectLeaders (never needed on one node) and Metadata by topic id with the name field left
//! at the Java client's default "". The Java client itself drives them in compat/java.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, ElectLeadersRequest, ElectLeadersResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const ELECTION_NOT_NEEDED: i16 = 84;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

fn create(broker: &Broker, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

fn describe(
    broker: &Broker,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(p)
        }));
    wire::call(
        broker.socket_addr(),
        ApiKey::DescribeTopicPartitions,
        0,
        &request,
    )
}

/// (topic, [partition indexes]) per answered topic.
type Pages = Vec<(String, Vec<i32>)>;

/// The answered topics and partitions, and the next cursor.
fn summary(r: &DescribeTopicPartitionsResponse) -> (Pages, Option<(String, i32)>) {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let n = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (n, t.partitions.iter().map(|p| p.partition_index).collect())
        })
        .collect();
    let next = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, next)
}

#[test]
fn describe_topic_partitions_pages_by_cursor() {
    let broker = Broker::start(BrokerOpts::default());
    let a = unique_name("dtp-a");
    let b = unique_name("dtp-b");
    create(&broker, &a, 3);
    create(&broker, &b, 2);
    // Asked b then a: answered in name order, 2 partitions per page.
    let page1 = describe(&broker, &[&b, &a], 2, None);
    assert_eq!(
        summary(&page1),
        (vec![(a.clone(), vec![0, 1])], Some((a.clone(), 2)))
    );
    let t = &page1.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(!t.topic_id.is_nil());
    assert_eq!(t.partitions[1].leader_id.0, 0);
    assert_eq!(t.partitions[1].replica_nodes.len(), 1);
    let page2 = describe(&broker, &[&b, &a], 2, Some((&a, 2)));
    assert_eq!(
        summary(&page2),
        (
            vec![(a.clone(), vec![2]), (b.clone(), vec![0])],
            Some((b.clone(), 1))
        )
    );
    let page3 = describe(&broker, &[&b, &a], 2, Some((&b, 1)));
    assert_eq!(summary(&page3), (vec![(b.clone(), vec![1])], None));
    // A page that ends exactly at a topic's end points the cursor at the next topic.
    let exact = describe(&broker, &[&a, &b], 3, None);
    assert_eq!(
        summary(&exact),
        (vec![(a.clone(), vec![0, 1, 2])], Some((b.clone(), 0)))
    );
    // The same topic id as Metadata gives.
    let metadata: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(&a)))
        ])),
    );
    assert_eq!(metadata.topics[0].topic_id, t.topic_id);
}

#[test]
fn describe_topic_partitions_all_unknown_and_bad_cursor() {
    let broker = Broker::start(BrokerOpts::default());
    let a = unique_name("dtp-all");
    create(&broker, &a, 1);
    let all = describe(&broker, &[], 2000, None);
    let (topics, next) = summary(&all);
    assert!(topics.contains(&(a.clone(), vec![0])), "{topics:?}");
    assert_eq!(next, None);
    let missing = unique_name("dtp-missing");
    let r = describe(&broker, &[&missing], 10, None);
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(r.topics[0].partitions.is_empty());
    // A cursor must name one of the listed topics.
    let r = describe(&broker, &[&a], 10, Some(("zzz-not-listed", 0)));
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].error_code, INVALID_REQUEST);
}

#[test]
fn elect_leaders_is_never_needed_on_one_node() {
    let broker = Broker::start(BrokerOpts::default());
    let a = unique_name("elect");
    create(&broker, &a, 2);
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(name(&a))
                .with_partitions(vec![1, 5]),
            TopicPartitions::default()
                .with_topic(name("elect-missing"))
                .with_partitions(vec![0]),
        ]));
    let r: ElectLeadersResponse =
        wire::call(broker.socket_addr(), ApiKey::ElectLeaders, 2, &request);
    assert_eq!(r.error_code, 0);
    let codes: Vec<Vec<(i32, i16)>> = r
        .replica_election_results
        .iter()
        .map(|t| {
            t.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
                .collect()
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            vec![(1, ELECTION_NOT_NEEDED), (5, UNKNOWN_TOPIC_OR_PARTITION)],
            vec![(0, UNKNOWN_TOPIC_OR_PARTITION)],
        ]
    );
    // All partitions: only elections that happened are listed.
    let all: ElectLeadersResponse = wire::call(
        broker.socket_addr(),
        ApiKey::ElectLeaders,
        2,
        &ElectLeadersRequest::default().with_topic_partitions(None),
    );
    assert_eq!(all.error_code, 0);
    assert!(all.replica_election_results.is_empty());
    let bad: ElectLeadersResponse = wire::call(
        broker.socket_addr(),
        ApiKey::ElectLeaders,
        2,
        &ElectLeadersRequest::default()
            .with_election_type(7)
            .with_topic_partitions(None),
    );
    assert_eq!(bad.error_code, INVALID_REQUEST);
}

#[test]
fn metadata_by_topic_id_ignores_an_empty_name() {
    let broker = Broker::start(BrokerOpts::default());
    let a = unique_name("by-id");
    create(&broker, &a, 2);
    let by_name: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(&a)))
        ])),
    );
    let id = by_name.topics[0].topic_id;
    assert!(!id.is_nil());
    // What the Java client sends: the id, and the name at its default "".
    let by_id: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(name("")))])),
    );
    assert_eq!(by_id.topics.len(), 1);
    assert_eq!(by_id.topics[0].error_code, 0);
    assert_eq!(by_id.topics[0].topic_id, id);
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.0.to_string()),
        Some(a)
    );
    assert_eq!(by_id.topics[0].partitions.len(), 2);
}

#[test]
fn list_config_resources_names_topics_and_the_broker() {
    use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const CLIENT_METRICS: i8 = 16;
    const UNSUPPORTED_VERSION: i16 = 35;
    let broker = Broker::start(BrokerOpts::default());
    let a = unique_name("lcr");
    create(&broker, &a, 1);
    let list = |version: i16, types: Vec<i8>| -> ListConfigResourcesResponse {
        wire::call(
            broker.socket_addr(),
            ApiKey::ListConfigResources,
            version,
            &ListConfigResourcesRequest::default().with_resource_types(types),
        )
    };
    let names = |r: &ListConfigResourcesResponse| -> Vec<(String, i8)> {
        r.config_resources
            .iter()
            .map(|c| (c.resource_name.to_string(), c.resource_type))
            .collect()
    };
    let topics = list(1, vec![TOPIC]);
    assert_eq!(topics.error_code, 0);
    assert!(names(&topics).contains(&(a.clone(), TOPIC)));
    assert!(names(&topics).iter().all(|(_, t)| *t == TOPIC));
    let brokers = list(1, vec![BROKER]);
    assert_eq!(names(&brokers), vec![("0".to_owned(), BROKER)]);
    // Every supported type: topics and the broker; no client-metrics subscriptions exist.
    let all = list(1, vec![]);
    assert!(names(&all).contains(&(a.clone(), TOPIC)));
    assert!(names(&all).contains(&("0".to_owned(), BROKER)));
    assert!(list(1, vec![CLIENT_METRICS]).config_resources.is_empty());
    assert_eq!(list(1, vec![TOPIC, 99]).error_code, UNSUPPORTED_VERSION);
    // v0 (ListClientMetricsResources) lists client metrics only.
    let v0 = list(0, vec![]);
    assert_eq!(v0.error_code, 0);
    assert!(v0.config_resources.is_empty());
}
