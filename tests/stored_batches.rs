//! Batches as stored and served, end to end (issue 8 items 1, 7, 9): compressed batches are
//! walked on produce (inconsistent or undecodable ones refused) and searched record by record
//! by ListOffsets; a torn sealed segment leaves everything else readable by librdkafka.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use bytes::{Bytes, BytesMut};
use common::kafka;
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use storage::batch::compute_crc;
use storage::BatchBuilder;

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_RECORD: i16 = 87;
const T: i64 = 1_700_000_000_000;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Produces `records` to partition 0 (acks=all); returns (error code, base offset).
fn produce(broker: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = wire::call(broker.socket_addr(), ApiKey::Produce, 9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets v7 for `timestamp` on partition 0: (error, offset, timestamp).
fn list_offset(broker: &Broker, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListOffsets, 7, &request);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// Five records stamped `start`, `start` + 1 s, ... in one batch of `codec`.
fn five(codec: i16, start: i64) -> BytesMut {
    let mut b = BatchBuilder::new(start).compression(codec);
    for i in 0..5 {
        let value = format!("codec {codec} record {i}");
        b = b.record_at(start + i * 1000, Some(b"k"), Some(value.as_bytes()), &[]);
    }
    b.build()
}

fn with_crc(mut b: BytesMut) -> Bytes {
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

#[test]
fn compressed_batches_are_validated_on_produce_and_searched_by_record() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("compressed");
    kafka::create_topic(&broker, &topic, 1);
    // gzip, snappy, lz4, zstd: offsets 5k..5k+4 at T + 10k s + 0..4 s.
    for codec in 1..=4i16 {
        let start = T + i64::from(codec - 1) * 10_000;
        let (error, base) = produce(&broker, &topic, five(codec, start).freeze());
        assert_eq!(
            (error, base),
            (0, i64::from(codec - 1) * 5),
            "codec {codec}"
        );
    }
    for codec in 1..=4i64 {
        let start = T + (codec - 1) * 10_000;
        let got = list_offset(&broker, &topic, start + 1_500);
        assert_eq!(
            got,
            (0, (codec - 1) * 5 + 2, start + 2_000),
            "codec {codec}"
        );
    }
    assert_eq!(list_offset(&broker, &topic, -3), (0, 19, T + 34_000));
    assert_eq!(list_offset(&broker, &topic, T + 34_001), (0, -1, -1));
    // A one-record gzip batch claiming 2^31 - 1 offsets (rel-01).
    let mut gap = five(1, T);
    gap[23..27].copy_from_slice(&2_147_483_646i32.to_be_bytes());
    gap[57..61].copy_from_slice(&1i32.to_be_bytes());
    assert_eq!(produce(&broker, &topic, with_crc(gap)).0, INVALID_RECORD);
    // gzip codec, payload not a gzip stream (rel-09).
    let mut junk = five(1, T);
    for byte in junk.iter_mut().skip(63) {
        *byte = 0x33;
    }
    assert_eq!(produce(&broker, &topic, with_crc(junk)).0, CORRUPT_MESSAGE);
    // Two valid batches for one partition in one request: Kafka's "exactly one record batch
    // per partition" (Produce v3+), nothing of either stored.
    let mut two = five(0, T).freeze().to_vec();
    two.extend_from_slice(&five(0, T));
    assert_eq!(produce(&broker, &topic, Bytes::from(two)).0, INVALID_RECORD);
    assert_eq!(produce(&broker, &topic, Bytes::new()).0, INVALID_RECORD);
    assert_eq!(kafka::watermarks(&broker, &topic, 1)[0], (0, 20));
    // librdkafka decodes every stored batch (our encoders produce what clients expect).
    let got = kafka::consume_all(&broker, &topic, 1);
    assert_eq!(got.len(), 20);
    assert_eq!(got[12].value.as_deref(), Some(&b"codec 3 record 2"[..]));
}

#[test]
fn a_torn_sealed_segment_leaves_the_rest_readable() {
    let mut broker = Broker::start(BrokerOpts::default().config("\"log.segment.bytes\" = 4096\n"));
    let topic = unique_name("torn");
    kafka::create_topic(&broker, &topic, 1);
    for i in 0..40 {
        let mut b = BatchBuilder::new(T + i);
        for r in 0..5 {
            b = b.record(
                None,
                Some(format!("{i:04}-{r}-{}", "x".repeat(150)).as_bytes()),
                &[],
            );
        }
        assert_eq!(produce(&broker, &topic, b.build().freeze()).0, 0);
    }
    broker.stop();
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 4, "{logs:?}");
    let victim = &logs[1];
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    broker.start_again();
    let got = kafka::consume_ranges(&broker, &topic, &[(0, 0, 200)]);
    // Every record but the five of the torn batch, in order.
    assert_eq!(
        got.len(),
        195,
        "{:?}",
        got.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    assert_eq!(got[0].offset, 0);
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!(
        broker
            .log_text()
            .contains("sealed segment does not end where its index says"),
        "the damage is logged"
    );
}

/// The codec bits of every batch in partition 0's first segment, read from disk.
fn stored_codecs(broker: &Broker, topic: &str) -> Vec<i16> {
    let log = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let bytes = std::fs::read(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    storage::split_batches(&bytes)
        .map(|b| {
            let header = storage::BatchHeader::parse(b.expect("whole batch")).expect("header");
            header.compression()
        })
        .collect()
}

#[test]
fn a_topic_compression_type_reencodes_produced_batches() {
    let broker = Broker::start(BrokerOpts::default());
    let zstd = unique_name("zstd-topic");
    kafka::create_topic_with(&broker, &zstd, 1, &[("compression.type", "zstd")]);
    let producer_codec = unique_name("producer-topic");
    kafka::create_topic(&broker, &producer_codec, 1);
    for codec in [0i16, 1, 4] {
        assert_eq!(
            produce(&broker, &zstd, five(codec, T).freeze()).0,
            0,
            "codec {codec}"
        );
        let sent = five(codec, T).freeze();
        assert_eq!(
            produce(&broker, &producer_codec, sent).0,
            0,
            "codec {codec}"
        );
    }
    // Stored in the topic's codec whatever the producer sent; `producer` keeps each as sent.
    assert_eq!(stored_codecs(&broker, &zstd), vec![4, 4, 4]);
    assert_eq!(stored_codecs(&broker, &producer_codec), vec![0, 1, 4]);
    // A corrupt batch is refused, not re-encoded with a fresh CRC.
    let mut corrupt = five(0, T);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(produce(&broker, &zstd, corrupt.freeze()).0, CORRUPT_MESSAGE);
    // Every record is intact and searchable by time after re-encoding.
    assert_eq!(list_offset(&broker, &zstd, T + 1_500), (0, 2, T + 2_000));
    let got = kafka::consume_all(&broker, &zstd, 1);
    assert_eq!(got.len(), 15);
    assert_eq!(got[14].value.as_deref(), Some(&b"codec 4 record 4"[..]));
}
