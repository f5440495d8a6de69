//! Zero-copy (splice) and copy fetch paths give librdkafka the same messages: the same data is
//! produced to a broker in each mode and consumed with small fetch limits, so responses are
//! cut by `max.partition.fetch.bytes` and `fetch.max.bytes`, one partition's first batch is
//! larger than `max.partition.fetch.bytes` (KIP-74: returned anyway), and one read starts in
//! the middle of a batch (the broker returns the whole batch, the client skips the head).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::BTreeMap;

use common::kafka::{self, Received, TestRecord};
use common::{unique_name, Broker, BrokerOpts};
use rdkafka::consumer::BaseConsumer;

const PARTITIONS: i32 = 3;
/// The consumer's per-partition limit; partition 1's first batch is far above it.
const PARTITION_FETCH_BYTES: usize = 65_536;
/// The consumer's response limit: less than PARTITIONS * PARTITION_FETCH_BYTES.
const FETCH_BYTES: usize = 150_000;
/// Size of the one record that forms partition 1's first batch.
const BIG_RECORD_BYTES: usize = 300_000;
/// Records of the first batch of partition 0 (sent at once with a long linger: one batch).
const FIRST_BATCH_RECORDS: usize = 50;
/// Where the mid-batch read of partition 0 starts.
const MID_BATCH_OFFSET: i64 = 17;

/// What was produced: per partition, the record at each offset (from the delivery reports).
struct Data {
    topic: String,
    per_partition: BTreeMap<i32, BTreeMap<i64, TestRecord>>,
}

fn produce(broker: &Broker) -> Data {
    let topic = unique_name("fetch-paths");
    kafka::create_topic(broker, &topic, PARTITIONS);
    let mut per_partition: BTreeMap<i32, BTreeMap<i64, TestRecord>> = BTreeMap::new();
    // Partition 0: one batch of FIRST_BATCH_RECORDS, then many small batches.
    let producer = kafka::producer(broker, &[("linger.ms", "200"), ("batch.size", "16384")]);
    let first = kafka::keyed_records(FIRST_BATCH_RECORDS, 5, 200);
    send(&producer, &topic, 0, &first, &mut per_partition);
    let rest = kafka::keyed_records(3_000, 20, 150);
    send(&producer, &topic, 0, &rest, &mut per_partition);
    // Partition 1: a batch larger than the consumer's max.partition.fetch.bytes, then more.
    let big = kafka::keyed_records(1, 1, BIG_RECORD_BYTES);
    send(&producer, &topic, 1, &big, &mut per_partition);
    let after_big = kafka::keyed_records(500, 3, 400);
    send(&producer, &topic, 1, &after_big, &mut per_partition);
    // Partition 2: medium records.
    let medium = kafka::keyed_records(400, 4, 2_000);
    send(&producer, &topic, 2, &medium, &mut per_partition);
    Data {
        topic,
        per_partition,
    }
}

/// Sends and flushes `records` to `partition` (flushing keeps the batch boundaries apart).
fn send(
    producer: &kafka::RecordingProducer,
    topic: &str,
    partition: i32,
    records: &[TestRecord],
    out: &mut BTreeMap<i32, BTreeMap<i64, TestRecord>>,
) {
    let deliveries = kafka::produce(producer, topic, records, Some(partition));
    let acked = kafka::assert_all_acked(&deliveries);
    let at = out.entry(partition).or_default();
    for rec in records {
        let (p, offset) = acked[&rec.id];
        assert_eq!(p, partition);
        assert!(
            at.insert(offset, rec.clone()).is_none(),
            "offset {offset} twice"
        );
    }
}

fn small_fetch_consumer(broker: &Broker) -> BaseConsumer {
    let partition_fetch_bytes = PARTITION_FETCH_BYTES.to_string();
    let fetch_bytes = FETCH_BYTES.to_string();
    kafka::consumer_with(
        broker,
        &[
            ("max.partition.fetch.bytes", &partition_fetch_bytes),
            ("fetch.max.bytes", &fetch_bytes),
            ("message.max.bytes", "100000"),
        ],
    )
}

/// Reads `[start, end)` of each `(partition, start, end)` with the small-limit consumer; a
/// skipped or repeated offset shows in `assert_partition_is`, which compares offset by offset.
fn consume(broker: &Broker, topic: &str, ranges: &[(i32, i64, i64)]) -> Vec<Received> {
    kafka::consume_ranges_with(&small_fetch_consumer(broker), topic, ranges)
}

/// Checks `received` (one partition, from `start`) is exactly what was acked from `start` on.
fn assert_partition_is(sent: &BTreeMap<i64, TestRecord>, received: &[&Received], start: i64) {
    let expected: Vec<(&i64, &TestRecord)> = sent.range(start..).collect();
    assert_eq!(received.len(), expected.len());
    for ((&offset, rec), got) in expected.into_iter().zip(received) {
        assert_eq!(got.offset, offset);
        kafka::assert_matches_sent(rec, got);
    }
}

/// Everything, plus the mid-batch read, as consumed from a broker in one mode.
fn run(zero_copy: bool) -> (Vec<Received>, Vec<Received>) {
    let config = format!("\"fetch.zero.copy\" = {zero_copy}\n");
    let broker = Broker::start(BrokerOpts::default().config(&config));
    let data = produce(&broker);
    let ranges: Vec<(i32, i64, i64)> = data
        .per_partition
        .iter()
        .map(|(&p, recs)| (p, 0, i64::try_from(recs.len()).unwrap_or(i64::MAX)))
        .collect();
    let all = consume(&broker, &data.topic, &ranges);
    for (&p, sent) in &data.per_partition {
        let got: Vec<&Received> = all.iter().filter(|r| r.partition == p).collect();
        assert_partition_is(sent, &got, 0);
    }
    let p0 = &data.per_partition[&0];
    let end = i64::try_from(p0.len()).unwrap_or(i64::MAX);
    let mid = consume(&broker, &data.topic, &[(0, MID_BATCH_OFFSET, end)]);
    assert_eq!(mid.first().map(|r| r.offset), Some(MID_BATCH_OFFSET));
    let got: Vec<&Received> = mid.iter().collect();
    assert_partition_is(p0, &got, MID_BATCH_OFFSET);
    (all, mid)
}

/// The messages without offsets, in a canonical order: two brokers may assign different
/// offsets to the same records (the producer pipelines requests), so the modes are compared on
/// content; each mode was already checked offset by offset against its delivery reports.
fn canonical(received: Vec<Received>) -> Vec<Received> {
    let mut out: Vec<Received> = received
        .into_iter()
        .map(|r| Received { offset: 0, ..r })
        .collect();
    out.sort_by(|a, b| (a.partition, &a.value).cmp(&(b.partition, &b.value)));
    out
}

#[test]
fn zero_copy_and_copy_fetch_deliver_identical_messages() {
    let (splice_all, splice_mid) = run(true);
    let (copy_all, copy_mid) = run(false);
    assert_eq!(splice_all.len(), copy_all.len());
    assert!(
        canonical(splice_all) == canonical(copy_all),
        "zero-copy and copy fetch returned different messages"
    );
    assert_eq!(splice_mid.len(), copy_mid.len());
    assert!(
        canonical(splice_mid) == canonical(copy_mid),
        "mid-batch reads differ between modes"
    );
}
