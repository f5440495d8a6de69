//! Anything keyed by a topic dies with it (issue 9): a topic `t` deleted and created again gets
//! a new topic id and starts clean, with nothing of the old `t` (Kafka's behaviour): no
//! idempotent producer state (a batch the old `t` stored is appended, not answered as a
//! duplicate), no config overrides, no leader-epoch cache or data, no committed group offsets
//! (Kafka's `GroupCoordinator.onPartitionsDeleted`), and a fetch session that held the old
//! topic id answers UNKNOWN_TOPIC_ID instead of serving the new topic. Also: the metadata
//! answers (brokers, leaders, epochs, controller, coordinator) come from the metadata image.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::TcpStream;

use bytes::Bytes;
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const UNKNOWN_TOPIC_ID: i16 = 100;
const RETENTION_MS: &str = "retention.ms";
const OLD_RETENTION_MS: &str = "12345";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// One request over an open connection (fetch sessions live on the connection's shard).
fn call_on<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    const CORRELATION_ID: i32 = 11;
    wire::send(
        stream,
        &wire::encode_request(key, version, CORRELATION_ID, "sluice-tests", request),
    );
    let wire::Outcome::Response(body) = wire::read_outcome(stream) else {
        panic!("no {key:?} v{version} response");
    };
    wire::decode_response(key, version, CORRELATION_ID, body)
}

/// Creates `topic` with one partition and `configs`; returns its topic id.
fn create(broker: &Broker, topic: &str, configs: &[(&str, &str)]) -> uuid::Uuid {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(configs)]);
    let response: CreateTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request);
    let created = &response.topics[0];
    assert_eq!(created.error_code, 0, "{created:?}");
    assert_eq!(created.replication_factor, 1);
    created.topic_id
}

fn delete(broker: &Broker, topic: &str) {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteTopicState::default()
            .with_name(Some(TopicName(s(topic))))
            .with_topic_id(uuid::Uuid::nil())]);
    let response: DeleteTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteTopics, 6, &request);
    assert_eq!(response.responses[0].error_code, 0, "{response:?}");
}

fn new_producer(broker: &Broker) -> i64 {
    let response: InitProducerIdResponse = wire::call(
        broker.socket_addr(),
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(response.error_code, 0, "{response:?}");
    response.producer_id.0
}

fn batch(producer: i64, seq: i32, records: usize) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut builder = storage::BatchBuilder::new(now_ms).producer(producer, 0, seq);
    for i in 0..records {
        let value = format!("p{producer}-s{}", i64::from(seq) + i as i64);
        builder = builder.record(Some(b"k"), Some(value.as_bytes()), &[]);
    }
    builder.build().freeze()
}

/// Produces to partition 0 with acks=all; returns (error code, base offset).
fn produce(broker: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = wire::call(broker.socket_addr(), ApiKey::Produce, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn metadata(broker: &Broker, topic: &str) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))
        ]))
        .with_allow_auto_topic_creation(false);
    wire::call(broker.socket_addr(), ApiKey::Metadata, 12, &request)
}

/// Fetch v13 (topic ids) of partition 0 in session `session_id` at `epoch`; the topic is left
/// out of an incremental fetch (`topic_id` None), which carries what the session holds.
fn fetch(
    stream: &mut TcpStream,
    session_id: i32,
    epoch: i32,
    topic_id: Option<uuid::Uuid>,
) -> FetchResponse {
    let topics = topic_id
        .map(|id| {
            vec![FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]
        })
        .unwrap_or_default();
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics);
    call_on(stream, ApiKey::Fetch, 13, &request)
}

fn commit(broker: &Broker, group: &str, topic: &str, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse =
        wire::call(broker.socket_addr(), ApiKey::OffsetCommit, 2, &request);
    assert_eq!(
        response.topics[0].partitions[0].error_code, 0,
        "{response:?}"
    );
}

fn committed(broker: &Broker, group: &str, topic: &str) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse =
        wire::call(broker.socket_addr(), ApiKey::OffsetFetch, 1, &request);
    response.topics[0].partitions[0].committed_offset
}

fn retention_ms(broker: &Broker, topic: &str) -> (String, i8) {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s(RETENTION_MS)]))]);
    let response: DescribeConfigsResponse =
        wire::call(broker.socket_addr(), ApiKey::DescribeConfigs, 1, &request);
    let entry = &response.results[0].configs[0];
    (
        entry
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        entry.config_source,
    )
}

#[test]
fn a_recreated_topic_inherits_nothing_from_the_deleted_one() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("recreated");
    let group = unique_name("recreated-group");
    let old_id = create(&broker, &topic, &[(RETENTION_MS, OLD_RETENTION_MS)]);
    assert_eq!(
        retention_ms(&broker, &topic).0,
        OLD_RETENTION_MS,
        "the override is in place before the deletion"
    );

    // Old topic: an idempotent producer's two batches at offsets 0 and 5.
    let pid = new_producer(&broker);
    let second = batch(pid, 5, 5);
    assert_eq!(produce(&broker, &topic, batch(pid, 0, 5)), (0, 0));
    assert_eq!(produce(&broker, &topic, second.clone()), (0, 5));
    assert_eq!(
        produce(&broker, &topic, second.clone()),
        (0, 5),
        "a resend is a duplicate on the old topic"
    );
    // A fetch session holding the old topic id, and a group's committed offset.
    let mut session_conn = wire::connect(broker.socket_addr());
    let opened = fetch(&mut session_conn, 0, 0, Some(old_id));
    assert_eq!(opened.error_code, 0, "{opened:?}");
    assert!(opened.session_id > 0, "a session was opened: {opened:?}");
    commit(&broker, &group, &topic, 7);
    assert_eq!(committed(&broker, &group, &topic), 7);

    delete(&broker, &topic);
    let new_id = create(&broker, &topic, &[]);
    assert_ne!(new_id, old_id, "a new topic id");

    // Producer state: the old topic's last batch is new data on the new topic.
    assert_eq!(
        produce(&broker, &topic, second),
        (0, 0),
        "appended at offset 0, not answered as the old topic's duplicate at 5"
    );
    // Data, leader epoch and epoch cache: the new partition starts empty at epoch 0.
    let md = metadata(&broker, &topic);
    let t = &md.topics[0];
    assert_eq!(t.topic_id, new_id);
    assert_eq!(t.partitions[0].leader_epoch, 0);
    let checkpoint = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("leader-epoch-checkpoint");
    let text =
        std::fs::read_to_string(&checkpoint).unwrap_or_else(|e| panic!("read {checkpoint:?}: {e}"));
    assert_eq!(text, "0\n1\n0 0\n", "one epoch, from offset 0");
    // Configs: the old override is gone (the value is the broker default again).
    let (value, source) = retention_ms(&broker, &topic);
    assert_ne!(value, OLD_RETENTION_MS);
    assert_ne!(source, 1, "not a topic override (DYNAMIC_TOPIC_CONFIG)");
    // Group offsets: removed with the old topic, at once.
    assert_eq!(committed(&broker, &group, &topic), -1);
    // Fetch session: the old topic id is unknown; the new topic's data is not served to it.
    let incremental = fetch(&mut session_conn, opened.session_id, 1, None);
    assert_eq!(incremental.error_code, 0, "{incremental:?}");
    let partition = incremental
        .responses
        .iter()
        .find(|t| t.topic_id == old_id)
        .and_then(|t| t.partitions.first())
        .unwrap_or_else(|| panic!("the session's partition is answered: {incremental:?}"));
    assert_eq!(partition.error_code, UNKNOWN_TOPIC_ID, "{partition:?}");
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
}

#[test]
fn metadata_answers_come_from_the_image() {
    let broker = Broker::start(BrokerOpts::default().config("\"broker.rack\" = \"rack-7\"\n"));
    let topic = unique_name("image");
    create(&broker, &topic, &[]);
    let md = metadata(&broker, &topic);
    assert_eq!(md.brokers.len(), 1);
    let node = md.brokers[0].node_id;
    assert_eq!(md.brokers[0].port, i32::from(broker.socket_addr().port()));
    assert_eq!(md.brokers[0].rack.as_deref(), Some("rack-7"));
    assert_eq!(md.controller_id, node);
    let p = &md.topics[0].partitions[0];
    assert_eq!(
        (
            p.leader_id,
            p.leader_epoch,
            p.replica_nodes.clone(),
            p.isr_nodes.clone()
        ),
        (node, 0, vec![node], vec![node])
    );

    let cluster: DescribeClusterResponse = wire::call(
        broker.socket_addr(),
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(cluster.controller_id, node);
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].broker_id, node);
    assert_eq!(cluster.brokers[0].rack.as_deref(), Some("rack-7"));

    // The coordinator is the leader of the group's __consumer_offsets partition.
    let coordinator: FindCoordinatorResponse = wire::call(
        broker.socket_addr(),
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("some-group")]),
    );
    let c = &coordinator.coordinators[0];
    assert_eq!((c.error_code, c.node_id), (0, node), "{c:?}");
    assert_eq!(c.port, i32::from(broker.socket_addr().port()));
}

#[test]
fn producer_ids_continue_after_a_restart_in_blocks() {
    let mut broker = Broker::start(BrokerOpts::default().cores(1));
    let first = new_producer(&broker);
    let second = new_producer(&broker);
    assert_eq!(second, first + 1, "ids of one block");
    let file = broker.data_dir().join("__cluster").join("producer_ids");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    assert_eq!(text.trim(), format!("next_block_start={}", first + 1000));
    broker.restart();
    let after = new_producer(&broker);
    assert_eq!(
        after,
        first + 1000,
        "the next block, never an id handed out before"
    );
}

/// A data directory written before the metadata image: a registry without registrations and
/// a shard-0 producer id counter. The broker adopts both: the topic keeps its id, each
/// partition one replica on this node leading in epoch 0, and producer ids go on from the
/// persisted block.
#[test]
fn an_old_data_dir_is_adopted() {
    let mut broker = Broker::start(BrokerOpts::default());
    broker.stop();
    let cluster = broker.data_dir().join("__cluster");
    let registry = std::fs::read_to_string(cluster.join("topics.toml"))
        .unwrap_or_else(|e| panic!("read the registry: {e}"));
    let old_id = "6ba7b810-9dad-41d1-80b4-00c04fd430c8";
    let legacy = format!(
        "{registry}\n[[topic]]\nname = \"legacy\"\nid = \"{old_id}\"\npartitions = 2\n\n\
         [topic.configs]\n\"retention.ms\" = \"{OLD_RETENTION_MS}\"\n"
    );
    std::fs::write(cluster.join("topics.toml"), legacy).unwrap();
    std::fs::write(cluster.join("producer_ids"), "next_block_start=50000\n").unwrap();
    broker.start_again();

    let md = metadata(&broker, "legacy");
    let t = &md.topics[0];
    assert_eq!(t.error_code, 0, "{t:?}");
    assert_eq!(t.topic_id.to_string(), old_id);
    assert_eq!(t.partitions.len(), 2);
    let node = md.brokers[0].node_id;
    for p in &t.partitions {
        assert_eq!((p.leader_id, p.leader_epoch), (node, 0), "{p:?}");
    }
    assert_eq!(retention_ms(&broker, "legacy").0, OLD_RETENTION_MS);
    assert_eq!(new_producer(&broker), 50_000, "ids never go back");
    assert_eq!(produce(&broker, "legacy", batch(50_000, 0, 1)), (0, 0));
}
