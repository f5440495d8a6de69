//! Idempotent producers end to end: librdkafka with `enable.idempotence=true` delivers exactly
//! once and in order; over the raw protocol, InitProducerId hands out distinct ids (also across
//! a restart), a resent batch is answered with its original offset and stored once, sequence
//! gaps and stale epochs are refused, duplicate detection survives a restart, and a transactional
//! id gets its coordinator and a distinct producer id (tests/transactions.rs covers the rest).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use bytes::Bytes;
use common::kafka;
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCE_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// FindCoordinator's key type of a transaction coordinator lookup.
const KEY_TYPE_TRANSACTION: i8 = 1;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn init_producer_id(broker: &Broker, request: &InitProducerIdRequest) -> InitProducerIdResponse {
    wire::call(
        broker.socket_addr(),
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        request,
    )
}

/// A fresh idempotent producer id (epoch 0).
fn new_producer(broker: &Broker) -> i64 {
    let response = init_producer_id(
        broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(response.error_code, 0, "InitProducerId error");
    assert_eq!(response.producer_epoch, 0);
    assert!(response.producer_id.0 >= 0, "{response:?}");
    response.producer_id.0
}

/// An idempotent batch of `records` records starting at sequence `seq`, stamped now (an old
/// CreateTime would make every append roll a segment by segment.ms).
fn batch(producer: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut builder = storage::BatchBuilder::new(now_ms).producer(producer, epoch, seq);
    for i in 0..records {
        let value = format!("p{producer}-e{epoch}-s{}", i64::from(seq) + i as i64);
        builder = builder.record(Some(b"k"), Some(value.as_bytes()), &[]);
    }
    builder.build().freeze()
}

/// Produces `records` to partition 0 with acks=all; returns (error code, base offset).
fn produce(broker: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Produce,
        PRODUCE_VERSION,
        &request,
    );
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn high_watermark(broker: &Broker, topic: &str) -> i64 {
    kafka::watermarks(broker, topic, 1)[0].1
}

#[test]
fn librdkafka_idempotent_producer_delivers_exactly_once_in_order() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("idem-rdkafka");
    let records = kafka::keyed_records(20_000, 64, 100);
    kafka::round_trip(
        &broker,
        &topic,
        4,
        &records,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    // The producer really was idempotent: its batches carry a producer id and sequences.
    let segment = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let bytes = std::fs::read(&segment).unwrap_or_else(|e| panic!("read {segment:?}: {e}"));
    let header = storage::BatchHeader::parse(&bytes).unwrap_or_else(|e| panic!("header: {e}"));
    assert!(header.producer_id >= 0, "{header:?}");
    assert_eq!(header.base_sequence, 0, "{header:?}");
}

#[test]
fn a_resent_batch_is_stored_once_and_answered_with_its_offset() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("idem-dup");
    kafka::create_topic(&broker, &topic, 1);
    let pid = new_producer(&broker);

    let first = batch(pid, 0, 0, 3);
    assert_eq!(produce(&broker, &topic, first.clone()), (0, 0));
    assert_eq!(produce(&broker, &topic, first.clone()), (0, 0), "duplicate");
    assert_eq!(
        high_watermark(&broker, &topic),
        3,
        "the duplicate was not appended"
    );

    let second = batch(pid, 0, 3, 2);
    assert_eq!(produce(&broker, &topic, second.clone()), (0, 3));
    assert_eq!(
        produce(&broker, &topic, first),
        (0, 0),
        "older retry still known"
    );
    assert_eq!(produce(&broker, &topic, second), (0, 3));
    assert_eq!(high_watermark(&broker, &topic), 5);

    let received = kafka::consume_all(&broker, &topic, 1);
    let values: Vec<_> = received
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let expected: Vec<_> = (0..5).map(|i| format!("p{pid}-e0-s{i}")).collect();
    assert_eq!(values, expected, "each record once, in order");
}

#[test]
fn sequence_gaps_and_stale_epochs_are_refused() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("idem-order");
    kafka::create_topic(&broker, &topic, 1);
    let pid = new_producer(&broker);
    assert_eq!(produce(&broker, &topic, batch(pid, 0, 0, 2)), (0, 0));
    let (code, _) = produce(&broker, &topic, batch(pid, 0, 5, 1));
    assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER, "gap after sequence 1");
    let (code, _) = produce(&broker, &topic, batch(pid, 0, 1, 1));
    assert_eq!(
        code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "overlap with the last batch"
    );
    assert_eq!(
        high_watermark(&broker, &topic),
        2,
        "refused batches not appended"
    );

    // KIP-360 bump: same id, next epoch; the new epoch restarts at sequence 0.
    let bumped = init_producer_id(
        &broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0),
    );
    assert_eq!(
        (
            bumped.error_code,
            bumped.producer_id.0,
            bumped.producer_epoch
        ),
        (0, pid, 1)
    );
    let (code, _) = produce(&broker, &topic, batch(pid, 1, 7, 1));
    assert_eq!(
        code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "new epoch must start at 0"
    );
    assert_eq!(produce(&broker, &topic, batch(pid, 1, 0, 1)), (0, 2));
    let (code, _) = produce(&broker, &topic, batch(pid, 0, 2, 1));
    assert_eq!(code, INVALID_PRODUCER_EPOCH, "the old epoch is fenced");
    assert_eq!(high_watermark(&broker, &topic), 3);
}

#[test]
fn duplicates_are_detected_after_a_restart() {
    let broker_opts = BrokerOpts::default();
    let mut broker = Broker::start(broker_opts);
    let topic = unique_name("idem-restart");
    kafka::create_topic(&broker, &topic, 1);
    let pid = new_producer(&broker);
    for (seq, offset) in [(0, 0), (4, 4), (8, 8)] {
        assert_eq!(produce(&broker, &topic, batch(pid, 0, seq, 4)), (0, offset));
    }
    broker.restart();
    assert_eq!(
        produce(&broker, &topic, batch(pid, 0, 8, 4)),
        (0, 8),
        "duplicate of the last batch after restart"
    );
    assert_eq!(produce(&broker, &topic, batch(pid, 0, 0, 4)), (0, 0));
    let (code, _) = produce(&broker, &topic, batch(pid, 0, 13, 1));
    assert_eq!(
        code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "sequence state restored"
    );
    assert_eq!(produce(&broker, &topic, batch(pid, 0, 12, 1)), (0, 12));
    assert_eq!(high_watermark(&broker, &topic), 13);
}

#[test]
fn producer_ids_are_distinct_across_restarts_and_transactional_ids_get_a_coordinator() {
    let mut broker = Broker::start(BrokerOpts::default());
    let mut ids: Vec<i64> = (0..10).map(|_| new_producer(&broker)).collect();
    broker.restart();
    ids.extend((0..10).map(|_| new_producer(&broker)));
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids repeat: {ids:?}");

    // The transaction coordinator lookup a transactional client makes first finds this broker,
    // in the single-key (v3) and the batched (v4+) form.
    let single: FindCoordinatorResponse = wire::call(
        broker.socket_addr(),
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("tx-1"))
            .with_key_type(KEY_TYPE_TRANSACTION),
    );
    assert_eq!(single.error_code, 0);
    assert_eq!(single.port, i32::from(broker.socket_addr().port()));
    let batched: FindCoordinatorResponse = wire::call(
        broker.socket_addr(),
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![s("tx-1"), s("tx-2")])
            .with_key_type(KEY_TYPE_TRANSACTION),
    );
    let codes: Vec<i16> = batched.coordinators.iter().map(|c| c.error_code).collect();
    assert_eq!(codes, vec![0; 2]);

    // A transactional id gets its producer id from the same allocator (distinct from every
    // idempotent producer's), epoch 0, from its transaction coordinator.
    let transactional = init_producer_id(
        &broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx-1"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(transactional.error_code, 0);
    assert_eq!(transactional.producer_epoch, 0);
    assert!(!ids.contains(&transactional.producer_id.0));
}
