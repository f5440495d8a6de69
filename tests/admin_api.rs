//! Admin APIs end to end against a real broker: CreateTopics with configs, DescribeConfigs
//! (sources, broker resource), AlterConfigs / IncrementalAlterConfigs (validation, persistence,
//! applied to live logs), CreatePartitions, DeleteTopics (metadata and data dir),
//! DeleteRecords. Driven by librdkafka's AdminClient; what rust-rdkafka 0.39 cannot express
//! (IncrementalAlterConfigs, per-resource DescribeConfigs errors, DeleteTopics by id) goes over
//! the wire with kafka-protocol.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka::{self, admin_opts, CALL_TIMEOUT};
use common::{block_on, list_files, unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::alter_configs_request;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

type Admin = AdminClient<DefaultClientContext>;

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const INVALID_REQUEST: i16 = 42;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const INVALID_CONFIG: i16 = 40;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC: i16 = 17;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// IncrementalAlterConfigs on one topic; returns (error code, message).
fn incremental(
    broker: &Broker,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(*op)
                .with_value(v.map(s))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic))
            .with_configs(configs)]);
    let response: IncrementalAlterConfigsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::IncrementalAlterConfigs,
        1,
        &request,
    );
    assert_eq!(response.responses.len(), 1);
    let r = &response.responses[0];
    assert_eq!(r.resource_name.as_str(), topic);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Legacy AlterConfigs on one resource; returns (error code, message). rust-rdkafka 0.39
/// reports every resource as altered, whatever the broker answered, so errors are read here.
fn alter_raw(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    pairs: &[(&str, Option<&str>)],
) -> (i16, Option<String>) {
    let configs = pairs
        .iter()
        .map(|(k, v)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(s(k))
                .with_value(v.map(s))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let response: AlterConfigsResponse =
        wire::call(broker.socket_addr(), ApiKey::AlterConfigs, 2, &request);
    assert_eq!(response.responses.len(), 1);
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn describe(admin: &Admin, topic: &str) -> rdkafka::admin::ConfigResource {
    let mut results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_opts()))
            .unwrap_or_else(|e| panic!("DescribeConfigs: {e}"));
    assert_eq!(results.len(), 1);
    results
        .remove(0)
        .unwrap_or_else(|e| panic!("describe {topic}: {e:?}"))
}

/// Where a described value comes from (`ConfigSource` is not `Clone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Topic,
    Default,
    Other,
}

fn src(source: &ConfigSource) -> Src {
    match source {
        ConfigSource::DynamicTopic => Src::Topic,
        ConfigSource::Default => Src::Default,
        _ => Src::Other,
    }
}

/// (value, source) of one topic config.
fn config_of(admin: &Admin, topic: &str, key: &str) -> (Option<String>, Src) {
    let described = describe(admin, topic);
    let entry = described
        .get(key)
        .unwrap_or_else(|| panic!("{key} not described for {topic}"));
    (entry.value.clone(), src(&entry.source))
}

fn create(admin: &Admin, topic: NewTopic<'_>) -> Option<RDKafkaErrorCode> {
    let results = block_on(admin.create_topics([&topic], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreateTopics: {e}"));
    results
        .into_iter()
        .next()
        .and_then(|r| r.err())
        .map(|(_, c)| c)
}

fn partition_dirs(broker: &Broker, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    let mut dirs: Vec<String> = std::fs::read_dir(broker.data_dir())
        .unwrap_or_else(|e| panic!("read data dir: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    dirs.sort();
    dirs
}

fn segment_count(broker: &Broker, topic: &str, partition: i32) -> usize {
    list_files(&broker.data_dir().join(format!("{topic}-{partition}")))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .count()
}

/// Produces `rounds` separately flushed batches of 10 records (~200 bytes each) to partition 0.
fn produce_rounds(broker: &Broker, topic: &str, rounds: usize) {
    let producer = kafka::producer(broker, &[("linger.ms", "0")]);
    let records = kafka::keyed_records(rounds * 10, 3, 200);
    for chunk in records.chunks(10) {
        kafka::assert_all_acked(&kafka::produce(&producer, topic, chunk, Some(0)));
    }
}

#[test]
fn configs_are_created_described_altered_and_persisted() {
    let mut broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("cfg");
    let new_topic = NewTopic::new(&topic, 2, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "compact");
    assert_eq!(create(&admin, new_topic), None);
    kafka::wait_for_topic(&broker, &topic, 2);

    let (value, source) = config_of(&admin, &topic, "retention.ms");
    assert_eq!((value.as_deref(), source), (Some("3600000"), Src::Topic));
    let (value, source) = config_of(&admin, &topic, "cleanup.policy");
    assert_eq!((value.as_deref(), source), (Some("compact"), Src::Topic));
    let (value, source) = config_of(&admin, &topic, "segment.bytes");
    assert_eq!(
        (value.as_deref(), source),
        (Some("1073741824"), Src::Default)
    );

    // AlterConfigs replaces the set: retention.ms and cleanup.policy return to defaults.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.bytes", "1048576");
    let results = block_on(admin.alter_configs([&alter], &admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let described = describe(&admin, &topic);
    let get = |k: &str| described.get(k).map(|e| (e.value.clone(), src(&e.source)));
    assert_eq!(
        get("segment.bytes"),
        Some((Some("1048576".into()), Src::Topic))
    );
    assert_eq!(
        get("retention.ms"),
        Some((Some("604800000".into()), Src::Default))
    );
    assert_eq!(
        get("cleanup.policy"),
        Some((Some("delete".into()), Src::Default))
    );

    // validate_only changes nothing.
    let dry = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "5");
    let results = block_on(admin.alter_configs([&dry], &admin_opts().validate_only(true)))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        config_of(&admin, &topic, "retention.ms").0.as_deref(),
        Some("604800000")
    );

    // Incremental: SET one key, APPEND to the list, DELETE another; the rest stays.
    let (code, message) = incremental(
        &broker,
        &topic,
        &[
            ("retention.ms", SET, Some("7200000")),
            ("cleanup.policy", APPEND, Some("compact")),
        ],
        false,
    );
    assert_eq!(code, 0, "{message:?}");
    assert_eq!(
        config_of(&admin, &topic, "cleanup.policy").0.as_deref(),
        Some("delete,compact")
    );
    assert_eq!(
        config_of(&admin, &topic, "segment.bytes").0.as_deref(),
        Some("1048576")
    );
    let (code, _) = incremental(&broker, &topic, &[("segment.bytes", DELETE, None)], false);
    assert_eq!(code, 0);
    assert_eq!(
        config_of(&admin, &topic, "segment.bytes"),
        (Some("1073741824".into()), Src::Default)
    );

    // Survives a restart (registry persisted), then still alterable.
    broker.restart();
    let admin = kafka::admin(&broker);
    assert_eq!(
        config_of(&admin, &topic, "retention.ms"),
        (Some("7200000".into()), Src::Topic)
    );
    assert_eq!(
        config_of(&admin, &topic, "cleanup.policy").0.as_deref(),
        Some("delete,compact")
    );
}

#[test]
fn bad_names_values_and_keys_are_refused() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let fixed = |name| NewTopic::new(name, 1, TopicReplication::Fixed(1));
    assert_eq!(
        create(&admin, fixed("bad name!")),
        Some(RDKafkaErrorCode::InvalidTopic)
    );
    let topic = unique_name("refusals");
    assert_eq!(
        create(&admin, fixed(&topic).set("retention.ms", "soon")),
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(&admin, fixed(&topic).set("no.such.config", "1")),
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(&admin, fixed(&topic).set("cleanup.policy", "shred")),
        Some(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(&admin, fixed(&topic)),
        None,
        "the name is still free"
    );
    kafka::wait_for_topic(&broker, &topic, 1);

    for (key, value) in [("retention.ms", "-7"), ("no.such.config", "1")] {
        let (code, message) = alter_raw(&broker, TOPIC_RESOURCE, &topic, &[(key, Some(value))]);
        assert_eq!(code, INVALID_CONFIG, "{key}={value}: {message:?}");
    }
    let (code, _) = alter_raw(&broker, TOPIC_RESOURCE, &topic, &[("retention.ms", None)]);
    assert_eq!(code, INVALID_REQUEST, "null value");
    let missing = unique_name("missing");
    let (code, _) = alter_raw(
        &broker,
        TOPIC_RESOURCE,
        &missing,
        &[("retention.ms", Some("1"))],
    );
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        config_of(&admin, &topic, "retention.ms").1,
        Src::Default,
        "refused changes stored nothing"
    );

    // APPEND is only for list configs; unknown keys and topics are refused per resource.
    let (code, message) = incremental(
        &broker,
        &topic,
        &[("retention.ms", APPEND, Some("1"))],
        false,
    );
    assert_eq!(code, INVALID_CONFIG, "{message:?}");
    assert!(message.is_some());
    let (code, _) = incremental(&broker, &topic, &[("x.y", SET, Some("1"))], false);
    assert_eq!(code, INVALID_CONFIG);
    let (code, _) = incremental(
        &broker,
        &missing,
        &[("retention.ms", SET, Some("1"))],
        false,
    );
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    let (code, _) = incremental(&broker, &topic, &[("retention.ms", SET, Some("1"))], true);
    assert_eq!(code, 0, "validate_only accepts a valid value");
    assert_eq!(
        config_of(&admin, &topic, "retention.ms").1,
        Src::Default,
        "validate_only stored nothing"
    );

    // DescribeConfigs per-resource errors (rust-rdkafka 0.39 drops them, so on the wire).
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(
            [topic.as_str(), missing.as_str(), "bad name!"]
                .iter()
                .map(|name| {
                    DescribeConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(s(name))
                        .with_configuration_keys(Some(vec![s("retention.ms"), s("unknown")]))
                })
                .collect(),
        );
    let response: DescribeConfigsResponse =
        wire::call(broker.socket_addr(), ApiKey::DescribeConfigs, 4, &request);
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC]);
    let entries = &response.results[0].configs;
    assert_eq!(entries.len(), 1, "only the known requested key");
    assert_eq!(entries[0].name.as_str(), "retention.ms");
    assert_eq!(entries[0].config_type, 5, "LONG");
    assert!(entries[0].documentation.is_some());
    assert!(!entries[0].synonyms.is_empty());
}

#[test]
fn broker_configs_are_described_read_only() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let mut results =
        block_on(admin.describe_configs([&ResourceSpecifier::Broker(0)], &admin_opts()))
            .unwrap_or_else(|e| panic!("DescribeConfigs: {e}"));
    let described = results
        .remove(0)
        .unwrap_or_else(|e| panic!("describe broker: {e:?}"));
    let segment = described
        .get("log.segment.bytes")
        .expect("log.segment.bytes described");
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    // Dynamic in Kafka (a topic-config default); broker.id is not.
    assert!(!segment.is_read_only);
    assert!(described.get("broker.id").is_some_and(|e| e.is_read_only));
    let (code, _) = alter_raw(
        &broker,
        BROKER_RESOURCE,
        "0",
        &[("num.partitions", Some("3"))],
    );
    assert_eq!(code, INVALID_REQUEST, "broker settings are read-only");
}

#[test]
fn altered_configs_apply_to_live_logs() {
    let broker =
        Broker::start(BrokerOpts::default().config("\"log.retention.check.interval.ms\" = 50\n"));
    let admin = kafka::admin(&broker);

    // segment.bytes set after creation makes the open log roll small segments. 4096: each
    // produced batch (10 records of ~220 bytes) must fit a segment, or Kafka (and Sluice)
    // refuse it with RECORD_LIST_TOO_LARGE (breaker B16).
    let rolling = unique_name("rolling");
    kafka::create_topic_with(&broker, &rolling, 1, &[("retention.ms", "-1")]);
    let (code, _) = incremental(
        &broker,
        &rolling,
        &[("segment.bytes", SET, Some("4096"))],
        false,
    );
    assert_eq!(code, 0);
    produce_rounds(&broker, &rolling, 5);
    assert!(
        segment_count(&broker, &rolling, 0) >= 3,
        "segments: {:?}",
        list_files(&broker.data_dir().join(format!("{rolling}-0")))
    );

    // retention.ms lowered on a live log: its old segments go, the log start advances. The
    // records carry 2020 timestamps, so one day is long past.
    let retained = unique_name("retained");
    kafka::create_topic_with(
        &broker,
        &retained,
        1,
        &[("retention.ms", "-1"), ("segment.bytes", "4096")],
    );
    produce_rounds(&broker, &retained, 5);
    assert_eq!(kafka::watermarks(&broker, &retained, 1), vec![(0, 50)]);
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&retained))
        .set("retention.ms", "86400000")
        .set("segment.bytes", "4096");
    let results = block_on(admin.alter_configs([&alter], &admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    wait_until(CALL_TIMEOUT, "retention advances the log start", || {
        kafka::watermarks(&broker, &retained, 1)[0].0 > 0
    });
    let (low, high) = kafka::watermarks(&broker, &retained, 1)[0];
    assert!(low <= high && high == 50, "({low}, {high})");
    let received = kafka::consume_all(&broker, &retained, 1);
    assert_eq!(received.first().map(|r| r.offset), Some(low));
    assert_eq!(received.len() as i64, high - low);
}

#[test]
fn partitions_grow_and_take_records() {
    let mut broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("grow");
    kafka::create_topic(&broker, &topic, 3);

    let dry = NewPartitions::new(&topic, 6);
    let results = block_on(admin.create_partitions([&dry], &admin_opts().validate_only(true)))
        .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    assert_eq!(partition_dirs(&broker, &topic).len(), 3, "validate_only");

    let results = block_on(admin.create_partitions([&dry], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    kafka::wait_for_topic(&broker, &topic, 6);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(20, 2, 50);
    let acked = kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(5)));
    assert!(acked.values().all(|&(p, _)| p == 5));
    drop(producer);
    assert_eq!(kafka::watermarks(&broker, &topic, 6)[5], (0, 20));

    for count in [6, 4] {
        let same = NewPartitions::new(&topic, count);
        let results = block_on(admin.create_partitions([&same], &admin_opts()))
            .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
        assert_eq!(
            results,
            vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))],
            "to {count}"
        );
    }

    broker.restart();
    kafka::wait_for_topic(&broker, &topic, 6);
    assert_eq!(kafka::watermarks(&broker, &topic, 6)[5], (0, 20));
}

#[test]
fn deleted_topics_leave_metadata_and_disk() {
    let mut broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("doomed");
    let kept = unique_name("kept");
    kafka::create_topic(&broker, &topic, 3);
    kafka::create_topic(&broker, &kept, 1);
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(60, 6, 50),
        None,
    ));
    drop(producer);
    assert_eq!(partition_dirs(&broker, &topic).len(), 3);

    let results = block_on(admin.delete_topics(&[&topic], &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    let consumer = kafka::consumer(&broker);
    let listed = |name: &str| {
        consumer
            .fetch_metadata(None, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("metadata: {e}"))
            .topics()
            .iter()
            .any(|t| t.name() == name)
    };
    assert!(!listed(&topic), "deleted topic still in metadata");
    assert!(listed(&kept));
    assert_eq!(partition_dirs(&broker, &topic), Vec::<String>::new());
    assert_eq!(partition_dirs(&broker, &kept).len(), 1);

    let results = block_on(admin.delete_topics(&[&topic], &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(
        results,
        vec![Err((
            topic.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // v6 by topic id: an unknown id is UNKNOWN_TOPIC_ID.
    let request = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(uuid::Uuid::from_u128(42))]);
    let response: DeleteTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::DeleteTopics, 6, &request);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].error_code, 100);

    broker.restart();
    drop(consumer);
    let consumer = kafka::consumer(&broker);
    let md = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    assert!(
        md.topics().iter().all(|t| t.name() != topic),
        "deletion persisted"
    );
}

#[test]
fn delete_records_moves_the_low_watermark() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("trim");
    kafka::create_topic(&broker, &topic, 1);
    produce_rounds(&broker, &topic, 3);
    let delete = |offset: Offset| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, offset)
            .unwrap_or_else(|e| panic!("tpl: {e}"));
        block_on(admin.delete_records(&tpl, &admin_opts())).and_then(|r| {
            let elem = r.find_partition(&topic, 0).expect("partition in result");
            elem.error().map(|()| elem.offset())
        })
    };
    assert_eq!(delete(Offset::Offset(12)).ok(), Some(Offset::Offset(12)));
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(12, 30)]);
    // Below the current start: nothing changes.
    assert_eq!(delete(Offset::Offset(5)).ok(), Some(Offset::Offset(12)));
    let beyond = delete(Offset::Offset(31));
    assert_eq!(
        beyond.err().and_then(|e| e.rdkafka_error_code()),
        Some(RDKafkaErrorCode::OffsetOutOfRange)
    );
    assert_eq!(delete(Offset::End).ok(), Some(Offset::Offset(30)));
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(30, 30)]);
}

#[test]
fn the_offsets_topic_is_protected_from_clients() {
    let broker =
        Broker::start(BrokerOpts::default().config("\"offsets.topic.num.partitions\" = 3\n"));
    let admin = kafka::admin(&broker);
    let internal = "__consumer_offsets";

    // Produce: Kafka's "Cannot append to internal topic" (INVALID_TOPIC_EXCEPTION).
    let producer = kafka::producer(
        &broker,
        &[
            ("message.send.max.retries", "0"),
            ("message.timeout.ms", "10000"),
        ],
    );
    let records = kafka::keyed_records(1, 1, 10);
    let deliveries = kafka::produce(&producer, internal, &records, Some(0));
    assert_eq!(deliveries.len(), 1);
    assert!(
        deliveries[0].result.is_err(),
        "a client produced to {internal}: {:?}",
        deliveries[0].result
    );

    // DeleteTopics and CreatePartitions are refused; the topic and its partitions stay.
    let results = block_on(admin.delete_topics(&[internal], &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(
        results,
        vec![Err((internal.to_owned(), RDKafkaErrorCode::InvalidTopic))]
    );
    let grow = NewPartitions::new(internal, 6);
    let results = block_on(admin.create_partitions([&grow], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(
        results,
        vec![Err((internal.to_owned(), RDKafkaErrorCode::InvalidTopic))]
    );
    assert_eq!(partition_dirs(&broker, internal).len(), 3);
}

#[test]
fn half_deleted_partitions_are_swept_at_start_up() {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("kept");
    kafka::create_topic(&broker, &topic, 1);
    broker.stop();
    // What a crash between DeleteTopics' rename and its removal leaves behind.
    let leftover = broker.data_dir().join("gone-0.0123456789abcdef-delete");
    std::fs::create_dir_all(&leftover).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(leftover.join("00000000000000000000.log"), b"old")
        .unwrap_or_else(|e| panic!("write: {e}"));
    broker.start_again();
    assert!(!leftover.exists(), "leftover delete dir survived start-up");
    assert_eq!(partition_dirs(&broker, &topic).len(), 1);
}

/// `__consumer_offsets` is created with Kafka's configs for it (cleanup.policy=compact,
/// compression.type=producer, segment.bytes = offsets.topic.segment.bytes), and an offsets
/// topic without the compact policy (as an older Sluice created it) is switched back to it at
/// start, so the log cleaner bounds it.
#[test]
fn the_offsets_topic_is_compacted_with_kafkas_configs() {
    let mut broker = Broker::start(BrokerOpts::default().config(
        "\"offsets.topic.num.partitions\" = 2\n\"offsets.topic.segment.bytes\" = 1048576\n",
    ));
    let internal = "__consumer_offsets";
    {
        let admin = kafka::admin(&broker);
        assert_eq!(
            config_of(&admin, internal, "cleanup.policy"),
            (Some("compact".into()), Src::Topic)
        );
        assert_eq!(
            config_of(&admin, internal, "compression.type"),
            (Some("producer".into()), Src::Topic)
        );
        assert_eq!(
            config_of(&admin, internal, "segment.bytes"),
            (Some("1048576".into()), Src::Topic)
        );
    }
    let (code, msg) = incremental(
        &broker,
        internal,
        &[("cleanup.policy", SET, Some("delete"))],
        false,
    );
    assert_eq!(code, 0, "{msg:?}");
    {
        let admin = kafka::admin(&broker);
        assert_eq!(
            config_of(&admin, internal, "cleanup.policy").0.as_deref(),
            Some("delete")
        );
    }
    broker.restart();
    let admin = kafka::admin(&broker);
    assert_eq!(
        config_of(&admin, internal, "cleanup.policy").0.as_deref(),
        Some("compact")
    );
}
