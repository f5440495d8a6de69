//! Produce/consume round trips through the real broker with librdkafka (rdkafka): keyed
//! messages over many partitions, and every compression codec.
//!
//! Each test owns its broker; consumers `assign` explicit offsets (no group, no commits).

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

#[test]
fn hundred_thousand_keyed_messages_arrive_exactly_once_in_order() {
    let broker = Broker::start(BrokerOpts::default());
    let records = kafka::keyed_records(100_000, 1_000, 100);
    kafka::round_trip(&broker, &unique_name("keyed"), 8, &records, &[]);
}

fn compressed_round_trip(codec: &str) {
    let broker = Broker::start(BrokerOpts::default());
    let records = kafka::keyed_records(20_000, 200, 300);
    let topic = unique_name(&format!("compressed-{codec}"));
    kafka::round_trip(&broker, &topic, 4, &records, &[("compression.type", codec)]);
}

#[test]
fn gzip_batches_round_trip() {
    compressed_round_trip("gzip");
}

#[test]
fn snappy_batches_round_trip() {
    compressed_round_trip("snappy");
}

#[test]
fn lz4_batches_round_trip() {
    compressed_round_trip("lz4");
}

#[test]
fn zstd_batches_round_trip() {
    compressed_round_trip("zstd");
}
