//! A Produce request carrying transactional records but no transactional id is refused as a
//! whole, as Kafka's `KafkaApis.handleProduceRequest` does (`hasTransactionalRecords` with a
//! null `transactionalId`: TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition), and
//! stores nothing (breaker finding B11, docs/breaker-findings.md).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{unique_name, wire, Broker, BrokerOpts};

const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

fn batch(transactional: bool) -> Bytes {
    let builder = storage::BatchBuilder::new(1_700_000_000_000).record(Some(b"k"), Some(b"v"), &[]);
    let builder = if transactional {
        builder.transactional()
    } else {
        builder
    };
    builder.build().freeze()
}

/// Produce v8 without a transactional id, acks=1: (error code, base offset) per partition.
fn produce(addr: SocketAddr, topic: &str, batches: &[(i32, Bytes)]) -> Vec<(i16, i64)> {
    wire::produce_partitions(addr, topic, 1, batches)
}

#[test]
fn transactional_records_without_a_transactional_id_refuse_the_whole_request() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let addr = broker.socket_addr();
    let topic = unique_name("txn-no-id");
    common::kafka::create_topic(&broker, &topic, 2);
    common::kafka::wait_for_topic(&broker, &topic, 2);

    // Partition 0 gets a transactional batch (producer id -1), partition 1 a plain one: Kafka
    // refuses both, not only the transactional one.
    let answers = produce(addr, &topic, &[(0, batch(true)), (1, batch(false))]);
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (code, _) in &answers {
        assert_eq!(*code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "{answers:?}");
    }

    // Nothing was stored: the next plain batch of each partition lands at offset 0.
    let answers = produce(addr, &topic, &[(0, batch(false)), (1, batch(false))]);
    assert_eq!(answers, vec![(0, 0), (0, 0)]);
}
