//! Breaker finding B16 (docs/breaker-findings.md): a Produce whose records are larger than the
//! topic's `segment.bytes` is refused with RECORD_LIST_TOO_LARGE and stores nothing, as Kafka's
//! `UnifiedLog.append` does ("Message batch size is N bytes in append to partition P, which
//! exceeds the maximum configured segment size of S": RecordBatchTooLargeException).
//! `max.message.bytes` may be set above `segment.bytes`, so the batch passes the message size
//! check; Sluice stored it as a segment larger than `segment.bytes`. Other partitions of the
//! same request are appended (Kafka appends each partition on its own).
//!
//! B17: a producer may not set the LogAppendTime timestamp type (Kafka's
//! `LogValidator.validateTimestamp`: "Producer should not set timestamp type to
//! LogAppendTime", INVALID_TIMESTAMP on a LogAppendTime topic, and on a CreateTime topic for a
//! batch without a timestamp); a CreateTime topic stores an accepted one as CreateTime
//! (`setMaxTimestamp(CREATE_TIME, ..)` rewrites the attributes). Sluice stored both as sent.
//!
//! B19: on a topic with its own `compression.type`, a batch over `max.message.bytes` as
//! received is refused with MESSAGE_TOO_LARGE even when the topic's codec would shrink it
//! (Kafka's `UnifiedLog.append` checks the size in `analyzeAndValidateRecords` before
//! `LogValidator` recompresses); Sluice checked only the recompressed batch.
//!
//! B20: a client's batch must have base offset 0 (Kafka's `UnifiedLog.analyzeAndValidateRecords`:
//! "The baseOffset of the record batch in the append to ... should be 0", INVALID_RECORD);
//! Sluice overwrote any base offset.

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

const RECORD_LIST_TOO_LARGE: i16 = 18;
const INVALID_TIMESTAMP: i16 = 32;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_RECORD: i16 = 87;
const SEGMENT_BYTES: usize = 4096;

/// One batch of one record whose value is `value_bytes` long.
fn batch(value_bytes: usize) -> Bytes {
    let value = vec![b'x'; value_bytes];
    storage::BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"k"), Some(&value), &[])
        .build()
        .freeze()
}

#[test]
fn an_append_larger_than_segment_bytes_is_refused_and_not_stored() {
    let broker = Broker::start(BrokerOpts::default().cores(2));
    let topic = unique_name("segment-bytes-limit");
    let segment_bytes = SEGMENT_BYTES.to_string();
    kafka::create_topic_with(
        &broker,
        &topic,
        2,
        &[
            ("segment.bytes", segment_bytes.as_str()),
            ("max.message.bytes", "1000000"),
        ],
    );
    kafka::wait_for_topic(&broker, &topic, 2);

    let over = batch(SEGMENT_BYTES + 100);
    let fits = batch(SEGMENT_BYTES - 200);
    assert!(over.len() > SEGMENT_BYTES && fits.len() <= SEGMENT_BYTES);
    // Partition 0 gets a batch no segment can hold, partition 1 one that fits: only the
    // first is refused.
    let answers = wire::produce_partitions(
        broker.socket_addr(),
        &topic,
        1,
        &[(0, over), (1, fits.clone())],
    );
    assert_eq!(answers, vec![(RECORD_LIST_TOO_LARGE, -1), (0, 0)]);
    // Nothing of the refused batch was stored: partition 0's next batch is offset 0.
    let answers = wire::produce_partitions(broker.socket_addr(), &topic, 1, &[(0, fits)]);
    assert_eq!(answers, vec![(0, 0)]);
    assert_eq!(kafka::watermarks(&broker, &topic, 2), vec![(0, 1), (0, 1)]);
}

/// A one-record batch whose producer set the LogAppendTime type, its max timestamp `max_ms`.
fn log_append_time_batch(max_ms: i64) -> Bytes {
    let mut batch = storage::BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"k"), Some(b"v"), &[])
        .build();
    storage::batch::set_log_append_time(&mut batch, max_ms);
    batch.freeze()
}

/// The first stored batch of partition 0 of `topic`.
fn first_stored(broker: &Broker, topic: &str) -> storage::BatchHeader {
    use kafka_protocol::messages::{ApiKey, FetchResponse};
    let fetch = wire::fetch_one(topic, 0, 0, 0, 1 << 20);
    let response: FetchResponse = wire::call(broker.socket_addr(), ApiKey::Fetch, 11, &fetch);
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let header = storage::BatchHeader::parse(&records).expect("a stored batch");
    assert_eq!(
        storage::batch::compute_crc(&records[..header.total_size()]),
        header.crc
    );
    header
}

#[test]
fn a_producers_log_append_time_type_is_refused_or_cleared_as_kafka() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let addr = broker.socket_addr();
    let log_append = unique_name("producer-lat-on-lat");
    let create_time = unique_name("producer-lat-on-ct");
    kafka::create_topic_with(
        &broker,
        &log_append,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    kafka::create_topic(&broker, &create_time, 1);
    kafka::wait_for_topic(&broker, &log_append, 1);
    kafka::wait_for_topic(&broker, &create_time, 1);
    let timestamped = log_append_time_batch(1_700_000_000_000);

    // LogAppendTime topic: refused, nothing stored.
    let answers = wire::produce_partitions(addr, &log_append, 1, &[(0, timestamped.clone())]);
    assert_eq!(answers, vec![(INVALID_TIMESTAMP, -1)]);
    // CreateTime topic without a timestamp: refused too.
    let untimed = log_append_time_batch(-1);
    let answers = wire::produce_partitions(addr, &create_time, 1, &[(0, untimed)]);
    assert_eq!(answers, vec![(INVALID_TIMESTAMP, -1)]);
    // CreateTime topic with one: stored as CreateTime, its CRC valid.
    let answers = wire::produce_partitions(addr, &create_time, 1, &[(0, timestamped)]);
    assert_eq!(answers, vec![(0, 0)]);
    let stored = first_stored(&broker, &create_time);
    assert!(!stored.is_log_append_time(), "{stored:?}");
    assert_eq!(stored.max_timestamp, 1_700_000_000_000);
    // A plain batch to the LogAppendTime topic lands at offset 0 and gets the broker's type.
    let answers = wire::produce_partitions(addr, &log_append, 1, &[(0, batch(10))]);
    assert_eq!(answers, vec![(0, 0)]);
    assert!(first_stored(&broker, &log_append).is_log_append_time());
}

#[test]
fn a_batch_over_max_message_bytes_is_refused_before_the_topic_codec_shrinks_it() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let topic = unique_name("codec-size-limit");
    kafka::create_topic_with(
        &broker,
        &topic,
        1,
        &[("compression.type", "zstd"), ("max.message.bytes", "10000")],
    );
    kafka::wait_for_topic(&broker, &topic, 1);
    // 15 KB of one repeated byte: over the limit as sent, far under it once zstd-compressed.
    let answers = wire::produce_partitions(broker.socket_addr(), &topic, 1, &[(0, batch(15_000))]);
    assert_eq!(answers, vec![(MESSAGE_TOO_LARGE, -1)]);
    let answers = wire::produce_partitions(broker.socket_addr(), &topic, 1, &[(0, batch(9_000))]);
    assert_eq!(answers, vec![(0, 0)]);
    assert_eq!(kafka::watermarks(&broker, &topic, 1), vec![(0, 1)]);
}

#[test]
fn a_client_batch_with_a_base_offset_other_than_zero_is_refused() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let topic = unique_name("base-offset");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let addr = broker.socket_addr();
    for base_offset in [5, -1] {
        let batch = storage::BatchBuilder::new(1_700_000_000_000)
            .base_offset(base_offset)
            .record(Some(b"k"), Some(b"v"), &[])
            .build()
            .freeze();
        let answers = wire::produce_partitions(addr, &topic, 1, &[(0, batch)]);
        assert_eq!(
            answers,
            vec![(INVALID_RECORD, -1)],
            "base offset {base_offset}"
        );
    }
    let answers = wire::produce_partitions(addr, &topic, 1, &[(0, batch(10))]);
    assert_eq!(answers, vec![(0, 0)]);
}
