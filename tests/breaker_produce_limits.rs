//! Breaker finding B16 (docs/breaker-findings.md): a Produce whose records are larger than the
//! topic's `segment.bytes` is refused with RECORD_LIST_TOO_LARGE and stores nothing, as Kafka's
//! `UnifiedLog.append` does ("Message batch size is N bytes in append to partition P, which
//! exceeds the maximum configured segment size of S": RecordBatchTooLargeException).
//! `max.message.bytes` may be set above `segment.bytes`, so the batch passes the message size
//! check; Sluice stored it as a segment larger than `segment.bytes`. Other partitions of the
//! same request are appended (Kafka appends each partition on its own).

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
