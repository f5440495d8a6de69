//! Admin APIs through librdkafka's AdminClient: CreateTopics (incl. invalid names, duplicates,
//! validate_only), DescribeConfigs, AlterConfigs, DeleteTopics, CreatePartitions,
//! DeleteRecords. Kafka's own behaviour (error codes, AlterConfigs resetting unspecified
//! keys) is the expected behaviour.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka::{self, admin_opts, CALL_TIMEOUT};
use common::{block_on, unique_name, wait_until, Broker, BrokerOpts};
use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

type Admin = AdminClient<DefaultClientContext>;

/// Creates topics and returns each result's error code (None = created).
fn create(
    admin: &Admin,
    topics: &[NewTopic<'_>],
    validate_only: bool,
) -> Vec<Option<RDKafkaErrorCode>> {
    let opts = admin_opts().validate_only(validate_only);
    block_on(admin.create_topics(topics, &opts))
        .unwrap_or_else(|e| panic!("CreateTopics: {e}"))
        .into_iter()
        .map(|r| r.err().map(|(_, code)| code))
        .collect()
}

fn topic_listed(broker: &Broker, topic: &str) -> Option<usize> {
    let consumer = kafka::consumer(broker);
    let md = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

fn fixed(name: &str, partitions: i32) -> NewTopic<'_> {
    NewTopic::new(name, partitions, TopicReplication::Fixed(1))
}

#[test]
fn create_topics_validates_and_rejects_duplicates() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let good = unique_name("created");
    let long_name = "x".repeat(250);
    let results = create(
        &admin,
        &[
            fixed(&good, 3),
            fixed("bad name!", 1),
            fixed("..", 1),
            fixed(&long_name, 1),
        ],
        false,
    );
    assert_eq!(
        results,
        vec![
            None,
            Some(RDKafkaErrorCode::InvalidTopic),
            Some(RDKafkaErrorCode::InvalidTopic),
            Some(RDKafkaErrorCode::InvalidTopic),
        ]
    );
    kafka::wait_for_topic(&broker, &good, 3);
    assert_eq!(topic_listed(&broker, "bad name!"), None);

    let again = create(&admin, &[fixed(&good, 5)], false);
    assert_eq!(again, vec![Some(RDKafkaErrorCode::TopicAlreadyExists)]);
    assert_eq!(
        topic_listed(&broker, &good),
        Some(3),
        "duplicate create changed nothing"
    );

    // One broker cannot hold three replicas.
    let rf3 = unique_name("rf3");
    let results = create(
        &admin,
        &[NewTopic::new(&rf3, 1, TopicReplication::Fixed(3))],
        false,
    );
    assert_eq!(
        results,
        vec![Some(RDKafkaErrorCode::InvalidReplicationFactor)]
    );
}

#[test]
fn create_topics_validate_only_creates_nothing() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let name = unique_name("validate-only");
    assert_eq!(create(&admin, &[fixed(&name, 2)], true), vec![None]);
    assert_eq!(
        create(&admin, &[fixed("no/slashes", 2)], true),
        vec![Some(RDKafkaErrorCode::InvalidTopic)]
    );
    assert_eq!(topic_listed(&broker, &name), None);
    // The name is still free.
    assert_eq!(create(&admin, &[fixed(&name, 2)], false), vec![None]);
    kafka::wait_for_topic(&broker, &name, 2);
}

fn describe_topic(admin: &Admin, topic: &str) -> rdkafka::admin::ConfigResourceResult {
    let mut results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_opts()))
            .unwrap_or_else(|e| panic!("DescribeConfigs: {e}"));
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[test]
fn describe_and_alter_topic_configs() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("configs");
    kafka::create_topic_with(
        &broker,
        &topic,
        1,
        &[("retention.ms", "3600000"), ("segment.bytes", "1048576")],
    );

    let described = describe_topic(&admin, &topic).unwrap_or_else(|e| panic!("describe: {e:?}"));
    let retention = described
        .get("retention.ms")
        .expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let cleanup = described
        .get("cleanup.policy")
        .expect("defaults are described too");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert!(cleanup.is_default);

    // rust-rdkafka 0.39 reports every DescribeConfigs/AlterConfigs resource as Ok whatever error
    // code the broker sent, so the error answers (unknown topic, invalid value) are checked on
    // the wire in tests/admin_api.rs; here only their effect is visible.

    // AlterConfigs replaces the whole set: segment.bytes, not named, returns to its default.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "12345");
    let results = block_on(admin.alter_configs([&alter], &admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let described = describe_topic(&admin, &topic).unwrap_or_else(|e| panic!("describe: {e:?}"));
    assert_eq!(
        described
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("12345")
    );
    let segment = described
        .get("segment.bytes")
        .expect("segment.bytes described");
    assert!(
        segment.is_default,
        "segment.bytes reset by AlterConfigs: {segment:?}"
    );
    assert_ne!(segment.value.as_deref(), Some("1048576"));

    let bad = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "soon");
    block_on(admin.alter_configs([&bad], &admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    let described = describe_topic(&admin, &topic).unwrap_or_else(|e| panic!("describe: {e:?}"));
    assert_eq!(
        described
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("12345")
    );
}

#[test]
fn delete_topics_removes_data_and_frees_the_name() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("doomed");
    kafka::create_topic(&broker, &topic, 2);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(100, 10, 50);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, None));
    drop(producer);

    let results = block_on(admin.delete_topics(&[&topic], &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    wait_until(CALL_TIMEOUT, "deleted topic leaves metadata", || {
        topic_listed(&broker, &topic).is_none()
    });
    let missing = unique_name("never-existed");
    let results = block_on(admin.delete_topics(&[&missing], &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(
        results,
        vec![Err((missing, RDKafkaErrorCode::UnknownTopicOrPartition))]
    );

    // Re-created under the same name, the topic starts empty.
    kafka::create_topic(&broker, &topic, 1);
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(0, 0)]);
}

#[test]
fn create_partitions_grows_a_topic() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("growing");
    kafka::create_topic(&broker, &topic, 2);

    let grow = NewPartitions::new(&topic, 5);
    let results = block_on(admin.create_partitions([&grow], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    kafka::wait_for_topic(&broker, &topic, 5);

    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(10, 1, 50);
    let acked = kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(4)));
    assert!(acked.values().all(|&(p, _)| p == 4));
    assert_eq!(kafka::watermarks(&broker, &topic, 5)[4], (0, 10));

    let shrink = NewPartitions::new(&topic, 3);
    let results = block_on(admin.create_partitions([&shrink], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(
        results,
        vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );
    let missing = unique_name("no-such-topic");
    let results =
        block_on(admin.create_partitions([&NewPartitions::new(&missing, 3)], &admin_opts()))
            .unwrap_or_else(|e| panic!("CreatePartitions: {e}"));
    assert_eq!(
        results,
        vec![Err((missing, RDKafkaErrorCode::UnknownTopicOrPartition))]
    );
}

fn delete_records_before(
    admin: &Admin,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset)
        .unwrap_or_else(|e| panic!("tpl: {e}"));
    block_on(admin.delete_records(&tpl, &admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteRecords: {e}"))
}

#[test]
fn delete_records_advances_the_log_start() {
    let broker = Broker::start(BrokerOpts::default());
    let admin = kafka::admin(&broker);
    let topic = unique_name("trimmed");
    kafka::create_topic(&broker, &topic, 2);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(100, 5, 50);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(0)));
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records[..10], Some(1)));

    let result = delete_records_before(&admin, &topic, 0, Offset::Offset(40));
    let elem = result
        .find_partition(&topic, 0)
        .expect("partition 0 in result");
    assert!(elem.error().is_ok(), "{:?}", elem.error());
    assert_eq!(elem.offset(), Offset::Offset(40), "new low watermark");
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(40, 100)]);
    let received = kafka::consume_all(&broker, &topic, 1);
    assert_eq!(received.len(), 60);
    assert_eq!(received.first().map(|r| r.offset), Some(40));
    for r in &received {
        kafka::assert_matches_sent(kafka::record_of(&records, r), r);
    }

    let result = delete_records_before(&admin, &topic, 1, Offset::End);
    let elem = result
        .find_partition(&topic, 1)
        .expect("partition 1 in result");
    assert_eq!(elem.offset(), Offset::Offset(10));
    assert_eq!(kafka::watermarks(&broker, &topic, 2)[1], (10, 10));

    // Beyond the high watermark: OFFSET_OUT_OF_RANGE, for the partition or the whole call.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(1_000))
        .unwrap_or_else(|e| panic!("tpl: {e}"));
    let outcome = block_on(admin.delete_records(&tpl, &admin_opts())).and_then(|result| {
        let elem = result
            .find_partition(&topic, 0)
            .expect("partition 0 in result");
        elem.error()
    });
    let code = outcome.err().and_then(|e| e.rdkafka_error_code());
    assert_eq!(code, Some(RDKafkaErrorCode::OffsetOutOfRange));
    assert_eq!(
        kafka::watermarks(&broker, &topic, 1),
        vec![(40, 100)],
        "nothing deleted"
    );
}
