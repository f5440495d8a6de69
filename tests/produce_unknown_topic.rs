//! Produce never creates a topic (Kafka's `KafkaApis.handleProduceRequest`: a partition the
//! metadata cache does not know answers UNKNOWN_TOPIC_OR_PARTITION), even with
//! `auto.create.topics.enable` on: auto-creation happens only through Metadata
//! (`allow_auto_topic_creation`) and FindCoordinator (internal topics). So a topic deleted
//! while a producer still sends to it stays deleted.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn one_record() -> Bytes {
    storage::BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"k"), Some(b"v"), &[])
        .build()
        .freeze()
}

/// Produce v9, acks=1, one record to partition 0: the partition's error code.
fn produce(addr: SocketAddr, topic: &str) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(one_record()))])]);
    let response: ProduceResponse = wire::call(addr, ApiKey::Produce, 9, &request);
    response.responses[0].partition_responses[0].error_code
}

/// Metadata v9 for `topic` without auto-creation: its error code.
fn topic_error(addr: SocketAddr, topic: &str) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = wire::call(addr, ApiKey::Metadata, 9, &request);
    response.topics[0].error_code
}

fn delete(addr: SocketAddr, topic: &str) {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteTopicState::default()
            .with_name(Some(name(topic)))
            .with_topic_id(uuid::Uuid::nil())]);
    let response: DeleteTopicsResponse = wire::call(addr, ApiKey::DeleteTopics, 6, &request);
    assert_eq!(response.responses[0].error_code, 0, "{response:?}");
}

#[test]
fn produce_to_an_unknown_topic_answers_unknown_and_creates_nothing() {
    // auto.create.topics.enable is on by default: Produce must still not create.
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let addr = broker.socket_addr();
    let topic = unique_name("never-created");
    assert_eq!(topic_error(addr, &topic), UNKNOWN_TOPIC_OR_PARTITION);
    for _ in 0..3 {
        assert_eq!(produce(addr, &topic), UNKNOWN_TOPIC_OR_PARTITION);
    }
    assert_eq!(
        topic_error(addr, &topic),
        UNKNOWN_TOPIC_OR_PARTITION,
        "the produce created the topic"
    );
    assert!(
        !common::list_files(&broker.data_dir())
            .iter()
            .any(|p| p.to_string_lossy().contains(&topic)),
        "the produce left files of the topic"
    );
}

#[test]
fn a_topic_deleted_while_producing_is_not_resurrected() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let addr = broker.socket_addr();
    let topic = unique_name("deleted");
    common::kafka::create_topic(&broker, &topic, 1);
    common::kafka::wait_for_topic(&broker, &topic, 1);
    assert_eq!(produce(addr, &topic), 0);
    // A producer keeps sending while the topic is deleted, and for a while after.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (stop, sent, topic) = (stop.clone(), sent.clone(), topic.clone());
        std::thread::spawn(move || {
            let mut codes = Vec::new();
            while !stop.load(Ordering::Acquire) {
                codes.push(produce(addr, &topic));
                sent.fetch_add(1, Ordering::AcqRel);
            }
            codes
        })
    };
    delete(addr, &topic);
    wait_until(Duration::from_secs(20), "the topic gone", || {
        topic_error(addr, &topic) == UNKNOWN_TOPIC_OR_PARTITION
    });
    // Produce requests after the deletion: each answers unknown, none recreates it.
    let gone_at = sent.load(Ordering::Acquire);
    wait_until(Duration::from_secs(20), "20 produce requests after", || {
        assert_eq!(
            topic_error(addr, &topic),
            UNKNOWN_TOPIC_OR_PARTITION,
            "the topic came back"
        );
        sent.load(Ordering::Acquire) >= gone_at + 20
    });
    stop.store(true, Ordering::Release);
    let codes = producer.join().expect("producer thread");
    assert!(!codes.is_empty());
    assert!(
        codes
            .iter()
            .all(|c| [0, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER].contains(c)),
        "{codes:?}"
    );
    assert_eq!(
        codes.last(),
        Some(&UNKNOWN_TOPIC_OR_PARTITION),
        "the last produce, well after the deletion, answers unknown"
    );
    for _ in 0..3 {
        assert_eq!(produce(addr, &topic), UNKNOWN_TOPIC_OR_PARTITION);
    }
    assert_eq!(topic_error(addr, &topic), UNKNOWN_TOPIC_OR_PARTITION);
}
