//! `log.flush.on.acks.all`: by default an acks=all produce is answered only after an fsync of
//! the data (the shard-wide sync batch, `storage::sync`); `false` gives Kafka's semantics, an
//! answer once the data is written, with no fsync on the produce path. Checked on a real
//! broker with librdkafka, counting fsyncs and fsync waits on `/metrics`.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka;
use common::{unique_name, Broker, BrokerOpts};

/// Produces `MESSAGES` records with acks=all to a fresh topic; returns (data fsyncs, acks=all
/// fsync waits) from the broker's metrics, after checking every record was acknowledged and
/// can be read back.
fn produce_acks_all(flush_on_acks_all: bool) -> (f64, f64) {
    const MESSAGES: usize = 300;
    const PARTITIONS: i32 = 3;
    let broker = Broker::start(BrokerOpts::default().config(&format!(
        "\"log.flush.on.acks.all\" = {flush_on_acks_all}\n\"offsets.topic.num.partitions\" = 1\n"
    )));
    let topic = unique_name("acks-all-flush");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    let before = broker.scrape();
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(MESSAGES, 30, 100);
    let deliveries = kafka::produce(&producer, &topic, &records, None);
    let acked = kafka::assert_all_acked(&deliveries);
    let after = broker.scrape();
    let received = kafka::consume_all(&broker, &topic, PARTITIONS);
    kafka::assert_exactly_once(&records, &acked, &received);
    let delta = |name: &str| after.sum(name, &[]) - before.sum(name, &[]);
    (
        delta("sluice_log_fsyncs_total"),
        delta("sluice_fsync_wait_seconds_count"),
    )
}

#[test]
fn acks_all_is_answered_after_an_fsync_by_default() {
    let (fsyncs, waits) = produce_acks_all(true);
    assert!(fsyncs >= 1.0, "{fsyncs} data fsyncs");
    assert!(waits >= 1.0, "{waits} acks=all answers waited for an fsync");
}

#[test]
fn without_flush_on_acks_all_it_is_answered_once_written_as_in_kafka() {
    let (fsyncs, waits) = produce_acks_all(false);
    assert_eq!(fsyncs, 0.0, "no fsync on the produce path");
    assert_eq!(waits, 0.0);
}
