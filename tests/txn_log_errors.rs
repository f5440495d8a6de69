//! A transition whose `__transaction_state` record the log refuses answers Kafka's mapped code
//! (`TransactionStateManager.appendTransactionToLog`): with `message.max.bytes` below the
//! record of an AddPartitionsToTxn naming many long topics, the append fails with
//! MESSAGE_TOO_LARGE and every partition answers UNKNOWN_SERVER_ERROR (-1), not
//! COORDINATOR_NOT_AVAILABLE (15, which a client retries forever); the transition is dropped
//! and the id stays usable: a small AddPartitionsToTxn then an EndTxn commit succeed.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka;
use common::{unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// A record limit the InitProducerId record fits in and the big AddPartitionsToTxn's does not.
const BROKER_TOML: &str = r#"
"message.max.bytes" = 1024
"transaction.state.log.num.partitions" = 2
"offsets.topic.num.partitions" = 2
"#;
/// Long topic names, so that a few of them exceed `message.max.bytes` in one record.
const LONG_TOPICS: usize = 8;
const LONG_NAME_CHARS: usize = 200;
const UNKNOWN_SERVER_ERROR: i16 = -1;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Kafka creates `__transaction_state` on the first FindCoordinator for a transactional id.
fn find_coordinator(broker: &Broker, id: &str) {
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![str_bytes(id)]);
    wait_until(Duration::from_secs(20), "the coordinator found", || {
        let found: FindCoordinatorResponse =
            wire::call(broker.socket_addr(), ApiKey::FindCoordinator, 4, &find);
        found.coordinators[0].error_code == 0
    });
}

fn init(broker: &Broker, id: &str) -> InitProducerIdResponse {
    find_coordinator(broker, id);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(30_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // The coordinator may still be loading right after start: retry its retriable codes.
    let mut response = InitProducerIdResponse::default();
    wait_until(Duration::from_secs(20), "InitProducerId answered", || {
        response = wire::call(broker.socket_addr(), ApiKey::InitProducerId, 4, &request);
        ![14, 15, 51].contains(&response.error_code)
    });
    response
}

fn add_partitions(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    topics: &[String],
) -> BTreeMap<String, i16> {
    let topics: Vec<AddPartitionsToTxnTopic> = topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(vec![0])
        })
        .collect();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(topics);
    let response: AddPartitionsToTxnResponse = wire::call(
        broker.socket_addr(),
        ApiKey::AddPartitionsToTxn,
        3,
        &request,
    );
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_error_code))
        })
        .collect()
}

fn describe(broker: &Broker, id: &str) -> describe_transactions_response::TransactionState {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str_bytes(id))]);
    let response: DescribeTransactionsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::DescribeTransactions,
        0,
        &request,
    );
    response
        .transaction_states
        .into_iter()
        .next()
        .expect("one state")
}

#[test]
fn a_transaction_record_over_message_max_bytes_answers_unknown_server_error() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let prefix = unique_name("long");
    let long: Vec<String> = (0..LONG_TOPICS)
        .map(|i| {
            let name = format!("{prefix}{i}");
            format!("{name}{}", "x".repeat(LONG_NAME_CHARS - name.len()))
        })
        .collect();
    for topic in &long {
        kafka::create_topic(&broker, topic, 1);
    }
    let short = unique_name("short");
    kafka::create_topic(&broker, &short, 1);
    let id = unique_name("tx");
    let first = init(&broker, &id);
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let producer = (first.producer_id.0, 0);

    let codes = add_partitions(&broker, &id, producer, &long);
    assert_eq!(codes.len(), LONG_TOPICS, "{codes:?}");
    assert!(
        codes.values().all(|c| *c == UNKNOWN_SERVER_ERROR),
        "MESSAGE_TOO_LARGE is answered UNKNOWN_SERVER_ERROR: {codes:?}"
    );
    assert!(
        broker
            .log_text()
            .contains("cannot persist transaction state"),
        "the refused append is logged"
    );

    // Nothing of the refused transition was installed, and it is not pending any more.
    assert_eq!(describe(&broker, &id).transaction_state.as_str(), "Empty");
    let codes = add_partitions(&broker, &id, producer, std::slice::from_ref(&short));
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![0]);
    let state = describe(&broker, &id);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    let topics: Vec<String> = state.topics.iter().map(|t| t.topic.0.to_string()).collect();
    assert_eq!(topics, vec![short.clone()]);
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(&id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(true);
    let ended: EndTxnResponse = wire::call(broker.socket_addr(), ApiKey::EndTxn, 3, &end);
    assert_eq!(ended.error_code, 0);
}
