//! Repeated entries in one request cost what the distinct entries cost, as in Kafka: Metadata
//! answers a topic named 200,000 times once; Produce, Fetch and DeleteRecords key their
//! partitions (the last entry wins) and skip topics without partitions; ListOffsets,
//! CreateTopics and DeleteTopics refuse repeated entries with INVALID_REQUEST; DeleteGroups
//! deletes the set of named groups.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use bytes::Bytes;
use common::{kafka, unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, GroupId, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const INVALID_REQUEST: i16 = 42;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

fn records(values: &[&str]) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut builder = storage::BatchBuilder::new(now_ms);
    for value in values {
        builder = builder.record(None, Some(value.as_bytes()), &[]);
    }
    builder.build().freeze()
}

fn produce(broker: &Broker, topics: Vec<TopicProduceData>) -> ProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(topics);
    wire::call(broker.socket_addr(), ApiKey::Produce, 3, &request)
}

#[test]
fn metadata_answers_a_repeated_topic_once() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("rep");
    kafka::create_topic(&broker, &topic, 3);
    let wanted: Vec<_> =
        std::iter::repeat_with(|| MetadataRequestTopic::default().with_name(Some(name(&topic))))
            .take(200_000)
            .collect();
    let response: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(wanted)),
    );
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].partitions.len(), 3);
    // Unknown names collapse too (and with auto-creation, are created once).
    let unknown: Vec<_> = std::iter::repeat_with(|| {
        MetadataRequestTopic::default().with_name(Some(name("bad name!")))
    })
    .take(50_000)
    .collect();
    let response: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(unknown)),
    );
    assert_eq!(response.topics.len(), 1);
    assert_ne!(response.topics[0].error_code, 0);
}

#[test]
fn produce_keys_partitions_and_skips_empty_topics() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("prod");
    kafka::create_topic(&broker, &topic, 1);
    let entry = |values: &[&str]| {
        PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records(values)))
    };
    let mut topics = vec![TopicProduceData::default()
        .with_name(name(&topic))
        .with_partition_data(vec![entry(&["a", "b"]), entry(&["c"])])];
    topics.extend(
        std::iter::repeat_with(|| TopicProduceData::default().with_name(name(&topic))).take(20_000),
    );
    topics.push(
        TopicProduceData::default()
            .with_name(name(&topic))
            .with_partition_data(vec![entry(&["d", "e", "f"])]),
    );
    let response = produce(&broker, topics);
    assert_eq!(response.responses.len(), 1, "one topic entry");
    let partitions = &response.responses[0].partition_responses;
    assert_eq!(partitions.len(), 1, "one partition entry");
    assert_eq!(partitions[0].error_code, 0);
    // Only the last records sent for the partition were appended (Kafka's map semantics).
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(0, 3)]);

    // Fetch: the partition named 5,000 times is read and answered once.
    let fetch_partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(&topic))
            .with_partitions(vec![fetch_partition; 5_000])]);
    let response: FetchResponse = wire::call(broker.socket_addr(), ApiKey::Fetch, 4, &request);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partitions.len(), 1);
    assert_eq!(response.responses[0].partitions[0].high_watermark, 3);

    // DeleteRecords: one answer per distinct partition, the last offset winning.
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(&topic))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(3),
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(1),
            ])]);
    let response: DeleteRecordsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteRecords, 1, &request);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].partitions.len(), 1);
    assert_eq!(response.topics[0].partitions[0].low_watermark, 1);
}

#[test]
fn repeated_entries_are_invalid_where_kafka_says_so() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("dup");
    kafka::create_topic(&broker, &topic, 1);

    // ListOffsets: each mention of the repeated partition is INVALID_REQUEST.
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(&topic))
            .with_partitions(vec![partition.clone(), partition])]);
    let response: ListOffsetsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListOffsets, 1, &request);
    let codes: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST]);

    // CreateTopics: a name given twice is refused on both mentions and not created.
    let fresh = unique_name("twice");
    let creatable = CreatableTopic::default()
        .with_name(name(&fresh))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![creatable.clone(), creatable]);
    let response: CreateTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::CreateTopics, 2, &request);
    let codes: Vec<i16> = response.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST]);

    // DeleteTopics: the same; the topic stays.
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![name(&topic), name(&topic)]);
    let response: DeleteTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteTopics, 3, &request);
    let codes: Vec<i16> = response.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST]);
    let response: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(&fresh))),
            MetadataRequestTopic::default().with_name(Some(name(&topic))),
        ])),
    );
    assert_eq!(response.topics[1].error_code, 0, "{topic} still exists");

    // DeleteGroups: a set of names, one answer each.
    let group = GroupId(StrBytes::from_string(unique_name("g")));
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group.clone(); 1_000]);
    let response: DeleteGroupsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteGroups, 2, &request);
    assert_eq!(response.results.len(), 1);
}
