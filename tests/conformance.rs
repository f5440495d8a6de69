//! Kafka conformance over the wire (issue 8): inputs on which Sluice must answer exactly as
//! Apache Kafka 4.0 does. Each test names the Kafka rule it checks: topic-name collisions,
//! CreateTopics' configs in the answer, leader-epoch validation and the leader-epoch cache,
//! and the topic configs Kafka accepts. Requests are built with kafka-protocol and sent raw,
//! so every field of the answer can be checked.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka;
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

/// CreateTopics v7 over the wire.
fn create_topics(broker: &Broker, topics: Vec<CreatableTopic>) -> CreateTopicsResponse {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request)
}

/// Error codes of CreateTopics, in request order.
fn create_codes(broker: &Broker, topics: Vec<CreatableTopic>) -> Vec<i16> {
    create_topics(broker, topics)
        .topics
        .iter()
        .map(|t| t.error_code)
        .collect()
}

/// Metadata v12 for `names`, with auto-creation allowed.
fn metadata(broker: &Broker, names: &[&str]) -> MetadataResponse {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n)))))
                .collect(),
        ));
    wire::call(broker.socket_addr(), ApiKey::Metadata, 12, &request)
}

/// Kafka's `Topic.hasCollision`: '.' and '_' collide, in CreateTopics (against existing topics
/// and earlier topics of the same request) and in auto-creation.
#[test]
fn topic_names_that_collide_on_dot_and_underscore_are_refused() {
    let broker = Broker::start(BrokerOpts::default());
    let base = unique_name("coll").replace('-', "");
    let under = format!("{base}_x_y");
    let dot = format!("{base}.x.y");
    let mixed = format!("{base}_x.y");
    assert_eq!(create_codes(&broker, vec![topic(&under, 1, &[])]), vec![0]);
    assert_eq!(
        create_codes(
            &broker,
            vec![
                topic(&dot, 1, &[]),
                topic(&mixed, 1, &[]),
                topic(&under, 1, &[])
            ]
        ),
        vec![
            INVALID_TOPIC_EXCEPTION,
            INVALID_TOPIC_EXCEPTION,
            TOPIC_ALREADY_EXISTS
        ]
    );
    let answer = create_topics(&broker, vec![topic(&dot, 1, &[])]);
    let message = answer.topics[0].error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("collides with existing topic") && message.contains(&under),
        "{message}"
    );

    // Two new names that collide with each other in one request: the second is refused.
    let a = format!("{base}.p");
    let b = format!("{base}_p");
    assert_eq!(
        create_codes(&broker, vec![topic(&a, 1, &[]), topic(&b, 1, &[])]),
        vec![0, INVALID_TOPIC_EXCEPTION]
    );

    // Auto-creation through Metadata follows the same rule.
    let auto = format!("{base}.x_y");
    let response = metadata(&broker, &[&auto]);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    let all = metadata(&broker, &[&under, &dot]);
    let codes: Vec<i16> = all.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, INVALID_TOPIC_EXCEPTION]);
}

/// KIP-525: CreateTopics v5+ answers the resolved partition count and replication factor and
/// every topic config with its value and source (an override is DYNAMIC_TOPIC_CONFIG, the rest
/// come from the broker: DEFAULT_CONFIG or STATIC_BROKER_CONFIG), for validate_only too.
#[test]
fn create_topics_answers_with_the_topics_configs() {
    let broker = Broker::start(BrokerOpts::default().config("\"num.partitions\" = 3\n"));
    for validate_only in [true, false] {
        let name = unique_name("kip525");
        let mut request = CreateTopicsRequest::default()
            .with_topics(vec![topic(&name, -1, &[("retention.ms", "123456")])])
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        request.topics[0].replication_factor = -1;
        let response: CreateTopicsResponse =
            wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request);
        let t = &response.topics[0];
        assert_eq!(t.error_code, 0);
        assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
        let configs = t.configs.as_deref().unwrap_or_default();
        let find = |key: &str| {
            configs
                .iter()
                .find(|c| c.name.as_str() == key)
                .unwrap_or_else(|| panic!("{key} missing from {configs:?}"))
        };
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("123456"));
        assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
        let cleanup = find("cleanup.policy");
        assert_eq!(cleanup.value.as_deref(), Some("delete"));
        assert_eq!(cleanup.config_source, 5, "DEFAULT_CONFIG");
        for key in [
            "segment.bytes",
            "max.message.bytes",
            "message.timestamp.type",
        ] {
            let c = find(key);
            assert!(!c.read_only && !c.is_sensitive, "{key}");
            assert!(c.value.is_some(), "{key}");
        }
    }
    // Before v5 there is nothing to fill.
    let name = unique_name("kip525-v4");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic(&name, 1, &[])])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::CreateTopics, 4, &request);
    assert_eq!(response.topics[0].error_code, 0);
}

const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// OffsetForLeaderEpoch v4 for partition 0: (error, leader_epoch, end_offset).
fn epoch_end(broker: &Broker, topic: &str, epoch: i32, current: i32) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let response: OffsetForLeaderEpochResponse = wire::call(
        broker.socket_addr(),
        ApiKey::OffsetForLeaderEpoch,
        4,
        &request,
    );
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// ListOffsets v7 "latest" for partition 0: (error, offset, leader_epoch).
fn latest_offset(broker: &Broker, topic: &str, current: i32) -> (i16, i64, i32) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(current)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListOffsets, 7, &request);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

/// Fetch v11 from offset 0 of partition 0, sessionless: the partition's error code.
fn fetch_code(broker: &Broker, topic: &str, current: i32) -> i16 {
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = wire::call(broker.socket_addr(), ApiKey::Fetch, 11, &request);
    response.responses[0].partitions[0].error_code
}

fn produce_three(broker: &Broker, topic: &str) {
    let producer = kafka::producer(broker, &[]);
    let records = kafka::keyed_records(3, 1, 10);
    let deliveries = kafka::produce(&producer, topic, &records, Some(0));
    kafka::assert_all_acked(&deliveries);
}

/// Kafka's LeaderEpochFileCache.endOffsetFor: the current epoch (0) ends at the log end; an
/// epoch the partition never had (future) or -1 is UNDEFINED (-1, -1). The cache is on disk in
/// Kafka's checkpoint format and survives a restart.
#[test]
fn offset_for_leader_epoch_follows_the_epoch_cache() {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("oflep");
    assert_eq!(
        create_codes(&broker, vec![topic_with_rf(&topic, 1)]),
        vec![0]
    );
    produce_three(&broker, &topic);
    assert_eq!(epoch_end(&broker, &topic, 0, -1), (0, 0, 3));
    for unknown in [1, 5, -1] {
        assert_eq!(
            epoch_end(&broker, &topic, unknown, -1),
            (0, -1, -1),
            "{unknown}"
        );
    }
    let checkpoint = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("leader-epoch-checkpoint");
    let text = std::fs::read_to_string(&checkpoint)
        .unwrap_or_else(|e| panic!("{}: {e}", checkpoint.display()));
    assert_eq!(text, "0\n1\n0 0\n");
    broker.restart();
    assert_eq!(epoch_end(&broker, &topic, 0, 0), (0, 0, 3));
    assert_eq!(epoch_end(&broker, &topic, 2, 0), (0, -1, -1));
    // Every batch is stamped with the epoch it was written in; ListOffsets and Metadata say it.
    assert_eq!(latest_offset(&broker, &topic, -1), (0, 3, 0));
    let md = metadata(&broker, &[&topic]);
    assert_eq!(md.topics[0].partitions[0].leader_epoch, 0);
}

/// KIP-320: a `current_leader_epoch` newer than the partition's is UNKNOWN_LEADER_EPOCH, an
/// older one FENCED_LEADER_EPOCH, -1 is not checked: in Fetch (sessionless and in incremental
/// sessions, KAFKA-9338), ListOffsets and OffsetForLeaderEpoch.
#[test]
fn current_leader_epochs_are_validated() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("fence");
    assert_eq!(
        create_codes(&broker, vec![topic_with_rf(&topic, 1)]),
        vec![0]
    );
    produce_three(&broker, &topic);
    for (current, code) in [(-1, 0), (0, 0), (3, UNKNOWN_LEADER_EPOCH)] {
        assert_eq!(
            fetch_code(&broker, &topic, current),
            code,
            "fetch {current}"
        );
        assert_eq!(
            latest_offset(&broker, &topic, current).0,
            code,
            "list {current}"
        );
        assert_eq!(
            epoch_end(&broker, &topic, 0, current).0,
            code,
            "oflep {current}"
        );
    }
    // Older: only possible once the partition's epoch is above 0 (leadership changes); the
    // rule itself is checked by `partition::tests`.
    incremental_session_keeps_checking(&broker, &topic);
}

/// A session opened with current_leader_epoch 3 keeps it: the incremental fetch that does not
/// repeat the partition is still answered UNKNOWN_LEADER_EPOCH.
fn incremental_session_keeps_checking(broker: &Broker, topic: &str) {
    let full = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(3)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut stream = wire::connect(broker.socket_addr());
    let frame = wire::encode_request(ApiKey::Fetch, 11, 1, "t", &full);
    wire::send(&mut stream, &frame);
    let wire::Outcome::Response(body) = wire::read_outcome(&mut stream) else {
        panic!("no fetch answer");
    };
    let first: FetchResponse = wire::decode_response(ApiKey::Fetch, 11, 1, body);
    assert_ne!(first.session_id, 0, "a session was opened");
    assert_eq!(
        first.responses[0].partitions[0].error_code,
        UNKNOWN_LEADER_EPOCH
    );
    let incremental = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(first.session_id)
        .with_session_epoch(1);
    let frame = wire::encode_request(ApiKey::Fetch, 11, 2, "t", &incremental);
    wire::send(&mut stream, &frame);
    let wire::Outcome::Response(body) = wire::read_outcome(&mut stream) else {
        panic!("no fetch answer");
    };
    let second: FetchResponse = wire::decode_response(ApiKey::Fetch, 11, 2, body);
    assert_eq!(second.error_code, 0);
    let codes: Vec<i16> = second
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes, vec![UNKNOWN_LEADER_EPOCH]);
}

fn topic_with_rf(name: &str, partitions: i32) -> CreatableTopic {
    topic(name, partitions, &[])
}

const INVALID_CONFIG: i16 = 40;
const INVALID_TIMESTAMP: i16 = 32;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// DescribeConfigs v4 of one topic: (name, value, source) for every config.
fn describe_topic(broker: &Broker, topic: &str) -> Vec<(String, Option<String>, i8)> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))]);
    let response: DescribeConfigsResponse =
        wire::call(broker.socket_addr(), ApiKey::DescribeConfigs, 4, &request);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
            )
        })
        .collect()
}

/// Produce v9 of one uncompressed batch with these timestamps to partition 0: the error code.
fn produce_at(broker: &Broker, topic: &str, timestamps: &[i64]) -> i16 {
    let mut builder = storage::BatchBuilder::new(timestamps[0]);
    for ts in timestamps {
        builder = builder.record_at(*ts, Some(b"k"), Some(b"v"), &[]);
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(builder.build().freeze()))])]);
    let response: ProduceResponse = wire::call(broker.socket_addr(), ApiKey::Produce, 9, &request);
    response.responses[0].partition_responses[0].error_code
}

/// Every Kafka 4.0 topic config is accepted with Kafka's validation and described with its
/// source (librdkafka's and Kafka's admin tools send them, often at their defaults).
#[test]
fn every_kafka_topic_config_is_accepted_validated_and_described() {
    let broker = Broker::start(BrokerOpts::default());
    let accepted = [
        ("compression.type", "zstd"),
        ("delete.retention.ms", "3600000"),
        ("min.cleanable.dirty.ratio", "0.3"),
        ("max.compaction.lag.ms", "7200000"),
        ("min.compaction.lag.ms", "1000"),
        ("file.delete.delay.ms", "60000"),
        ("segment.jitter.ms", "0"),
        ("preallocate", "false"),
        ("min.insync.replicas", "1"),
        ("unclean.leader.election.enable", "false"),
        ("compression.zstd.level", "5"),
        ("local.retention.ms", "-2"),
        ("leader.replication.throttled.replicas", ""),
    ];
    let name = unique_name("allcfg");
    assert_eq!(
        create_codes(&broker, vec![topic(&name, 1, &accepted)]),
        vec![0]
    );
    let described = describe_topic(&broker, &name);
    assert_eq!(described.len(), 33, "Kafka 4.0 describes 33 topic configs");
    for (key, value) in accepted {
        let found = described.iter().find(|(k, _, _)| k == key);
        assert_eq!(
            found.map(|(_, v, src)| (v.as_deref(), *src)),
            Some((Some(value), 1)),
            "{key}"
        );
    }
    let default = |key: &str| {
        described
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, src)| (v.clone(), *src))
    };
    assert_eq!(
        default("remote.storage.enable"),
        Some((Some("false".into()), 5))
    );
    assert_eq!(
        default("message.timestamp.after.max.ms"),
        Some((Some(i64::MAX.to_string()), 5))
    );

    for (key, bad) in [
        ("compression.type", "brotli"),
        ("min.cleanable.dirty.ratio", "2"),
        ("max.compaction.lag.ms", "0"),
        ("delete.retention.ms", "-1"),
        ("no.such.config", "1"),
        ("remote.storage.enable", "true"),
    ] {
        let bad_topic = unique_name("badcfg");
        assert_eq!(
            create_codes(&broker, vec![topic(&bad_topic, 1, &[(key, bad)])]),
            vec![INVALID_CONFIG],
            "{key}={bad}"
        );
    }
    let conflict = unique_name("conflict");
    assert_eq!(
        create_codes(
            &broker,
            vec![topic(
                &conflict,
                1,
                &[
                    ("min.compaction.lag.ms", "10"),
                    ("max.compaction.lag.ms", "5")
                ]
            )]
        ),
        vec![INVALID_CONFIG]
    );
}

/// message.timestamp.before.max.ms / after.max.ms refuse a CreateTime batch with a record
/// outside the window (INVALID_TIMESTAMP) and accept the rest; LogAppendTime topics are not
/// checked.
#[test]
fn produce_applies_the_timestamp_bounds() {
    let broker = Broker::start(BrokerOpts::default());
    let name = unique_name("tsbounds");
    let bounds = [
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.after.max.ms", "60000"),
    ];
    assert_eq!(
        create_codes(&broker, vec![topic(&name, 1, &bounds)]),
        vec![0]
    );
    let now = now_ms();
    assert_eq!(produce_at(&broker, &name, &[now, now + 1_000]), 0);
    assert_eq!(
        produce_at(&broker, &name, &[now, now - 7_200_000]),
        INVALID_TIMESTAMP
    );
    assert_eq!(
        produce_at(&broker, &name, &[now + 600_000]),
        INVALID_TIMESTAMP
    );
    let appended = unique_name("tsappend");
    let mut log_append = bounds.to_vec();
    log_append.push(("message.timestamp.type", "LogAppendTime"));
    assert_eq!(
        create_codes(&broker, vec![topic(&appended, 1, &log_append)]),
        vec![0]
    );
    assert_eq!(produce_at(&broker, &appended, &[now - 7_200_000]), 0);
}

const INVALID_REQUEST: i16 = 42;

/// IncrementalAlterConfigs SET on one BROKER resource: the error code.
fn set_broker(broker: &Broker, resource: &str, pairs: &[(&str, &str)]) -> i16 {
    let configs = pairs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(resource))
            .with_configs(configs),
    ]);
    let response: IncrementalAlterConfigsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::IncrementalAlterConfigs,
        1,
        &request,
    );
    response.responses[0].error_code
}

/// Kafka's dynamic broker configs: the broker synonyms of topic configs change at run time,
/// cluster-wide ("") or per node, are described with DYNAMIC_DEFAULT_BROKER_CONFIG (3) /
/// DYNAMIC_BROKER_CONFIG (2), apply to live topics without an override, and survive a restart;
/// settings Kafka cannot change dynamically stay INVALID_REQUEST.
#[test]
fn dynamic_broker_configs_change_topic_defaults() {
    let mut broker = Broker::start(BrokerOpts::default());
    let name = unique_name("dyn");
    assert_eq!(create_codes(&broker, vec![topic(&name, 1, &[])]), vec![0]);
    let now = now_ms();
    assert_eq!(produce_at(&broker, &name, &[now - 7_200_000]), 0);
    assert_eq!(
        set_broker(
            &broker,
            "",
            &[
                ("log.message.timestamp.before.max.ms", "3600000"),
                ("log.retention.ms", "86400000")
            ]
        ),
        0
    );
    assert_eq!(set_broker(&broker, "0", &[("compression.type", "gzip")]), 0);
    assert_eq!(
        set_broker(&broker, "0", &[("num.partitions", "3")]),
        INVALID_REQUEST
    );
    assert_eq!(
        set_broker(&broker, "", &[("log.cleaner.min.cleanable.ratio", "7")]),
        INVALID_CONFIG
    );
    let check = |broker: &Broker| {
        let described = describe_topic(broker, &name);
        let get = |key: &str| {
            described
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, src)| (v.clone().unwrap_or_default(), *src))
        };
        assert_eq!(get("retention.ms"), Some(("86400000".into(), 3)));
        assert_eq!(get("compression.type"), Some(("gzip".into(), 2)));
        assert_eq!(get("segment.ms"), Some(("604800000".into(), 5)));
        // Applied to the live topic, which has no override of its own.
        assert_eq!(
            produce_at(broker, &name, &[now_ms() - 7_200_000]),
            INVALID_TIMESTAMP
        );
    };
    check(&broker);
    broker.restart();
    check(&broker);
}
