//! KIP-890 over the raw protocol (issue 12): the partition leader's verification of
//! transactional produce with the transaction coordinator (`transaction.partition.
//! verification.enable`, on by default) and transaction version 2 (Produce v12 adds the
//! partition itself, EndTxn v5 bumps the epoch with every transaction, markers carry the
//! bumped epoch). Bad input gets Kafka's codes and stores nothing: a transactional produce to a
//! partition not added (INVALID_TXN_STATE below Produce v11, TRANSACTION_ABORTABLE from v11),
//! a fenced epoch (INVALID_PRODUCER_EPOCH), transactional batches without a transactional id.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{kafka, unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const TRANSACTION_ABORTABLE: i16 = 120;

const BROKER_TOML: &str = r#"
"transaction.state.log.num.partitions" = 2
"transaction.max.timeout.ms" = 60000
"#;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn init(broker: &Broker, id: &str) -> (i64, i16) {
    // FindCoordinator creates `__transaction_state`, as clients call it first.
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s(id)]);
    let found: FindCoordinatorResponse =
        wire::call(broker.socket_addr(), ApiKey::FindCoordinator, 4, &find);
    assert_eq!(found.coordinators[0].error_code, 0, "FindCoordinator");
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(30_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut response = InitProducerIdResponse::default();
    // The coordinator may still be loading right after start: retry its retriable codes.
    wait_until(Duration::from_secs(20), "InitProducerId answered", || {
        response = wire::call(broker.socket_addr(), ApiKey::InitProducerId, 4, &request);
        ![14, 15, 51].contains(&response.error_code)
    });
    assert_eq!(response.error_code, 0, "InitProducerId");
    (response.producer_id.0, response.producer_epoch)
}

fn add_partition(broker: &Broker, id: &str, (pid, epoch): (i64, i16), topic: &str) -> i16 {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![0])]);
    let response: AddPartitionsToTxnResponse = wire::call(
        broker.socket_addr(),
        ApiKey::AddPartitionsToTxn,
        3,
        &request,
    );
    response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn end_txn(
    broker: &Broker,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> EndTxnResponse {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    wire::call(broker.socket_addr(), ApiKey::EndTxn, version, &request)
}

fn batch((pid, epoch): (i64, i16), seq: i32, transactional: bool, value: &str) -> Bytes {
    let mut builder = storage::BatchBuilder::new(now_ms()).producer(pid, epoch, seq);
    if transactional {
        builder = builder.transactional();
    }
    builder
        .record(Some(b"k"), Some(value.as_bytes()), &[])
        .build()
        .freeze()
}

/// Produce of one batch to partition 0 at `version`; the partition's error code.
fn produce(broker: &Broker, version: i16, id: Option<&str>, topic: &str, records: Bytes) -> i16 {
    let request = ProduceRequest::default()
        .with_transactional_id(id.map(|id| TransactionalId(s(id))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse =
        wire::call(broker.socket_addr(), ApiKey::Produce, version, &request);
    response.responses[0].partition_responses[0].error_code
}

/// The partition's high watermark (read_uncommitted latest).
fn log_end(broker: &Broker, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListOffsets, 5, &request);
    response.topics[0].partitions[0].offset
}

fn describe_txn(broker: &Broker, id: &str) -> describe_transactions_response::TransactionState {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let response: DescribeTransactionsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::DescribeTransactions,
        0,
        &request,
    );
    response.transaction_states.into_iter().next().unwrap()
}

/// The epoch partition 0 of `topic` last saw from `pid` (DescribeProducers).
fn partition_epoch(broker: &Broker, topic: &str, pid: i64) -> i32 {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0])]);
    let response: DescribeProducersResponse =
        wire::call(broker.socket_addr(), ApiKey::DescribeProducers, 0, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition
        .active_producers
        .iter()
        .find(|p| p.producer_id.0 == pid)
        .map_or(-1, |p| p.producer_epoch)
}

/// TV1: a transactional produce to a partition the transaction does not hold is refused
/// before anything is written, with the code each Produce version knows; a fenced epoch is
/// INVALID_PRODUCER_EPOCH; a transactional batch without a transactional id cannot open a
/// transaction. Once the partition is added, the same produce is accepted.
#[test]
fn tv1_transactional_produce_needs_the_partition_in_the_transaction() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let topic = unique_name("verify");
    kafka::create_topic(&broker, &topic, 1);
    let id = unique_name("tx");
    let producer = init(&broker, &id);

    let first = batch(producer, 0, true, "not-added");
    assert_eq!(
        produce(&broker, 9, Some(&id), &topic, first.clone()),
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce(&broker, 10, Some(&id), &topic, first.clone()),
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce(&broker, 11, Some(&id), &topic, first.clone()),
        TRANSACTION_ABORTABLE
    );
    // No transactional id: Kafka refuses transactional records before anything else
    // (KafkaApis.handleProduceRequest, hasTransactionalRecords with a null id).
    assert_eq!(
        produce(&broker, 9, None, &topic, first.clone()),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(log_end(&broker, &topic), 0, "nothing stored");

    assert_eq!(add_partition(&broker, &id, producer, &topic), 0);
    // A zombie with an older epoch (and a forged newer one) is refused by the coordinator.
    let (pid, epoch) = producer;
    let stale = batch((pid, epoch - 1), 0, true, "stale");
    assert_eq!(
        produce(&broker, 9, Some(&id), &topic, stale),
        INVALID_PRODUCER_EPOCH
    );
    let forged = batch((pid, epoch + 1), 0, true, "forged");
    assert_eq!(
        produce(&broker, 9, Some(&id), &topic, forged),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(log_end(&broker, &topic), 0, "nothing stored");

    assert_eq!(produce(&broker, 9, Some(&id), &topic, first), 0);
    // Later batches of the open transaction need no new verification.
    assert_eq!(
        produce(
            &broker,
            9,
            Some(&id),
            &topic,
            batch(producer, 1, true, "more")
        ),
        0
    );
    assert_eq!(end_txn(&broker, 3, &id, producer, true).error_code, 0);
    // After the commit the partition left the transaction: the next one must add it again.
    let next = batch(producer, 2, true, "after-commit");
    assert_eq!(
        produce(&broker, 9, Some(&id), &topic, next),
        INVALID_TXN_STATE
    );
    // Two committed records and the marker.
    assert_eq!(log_end(&broker, &topic), 3);
}

/// TV2 (Produce v12, EndTxn v5): the leader adds the partition to the transaction itself; each
/// EndTxn bumps the epoch and answers it, the markers carry it, and the producer's previous
/// epoch is fenced afterwards.
#[test]
fn tv2_adds_partitions_implicitly_and_bumps_the_epoch_per_transaction() {
    let broker = Broker::start(BrokerOpts::default().config(BROKER_TOML));
    let topic = unique_name("tv2");
    kafka::create_topic(&broker, &topic, 1);
    let id = unique_name("tx");
    let (pid, epoch0) = init(&broker, &id);

    assert_eq!(
        produce(
            &broker,
            12,
            Some(&id),
            &topic,
            batch((pid, epoch0), 0, true, "a")
        ),
        0
    );
    let described = describe_txn(&broker, &id);
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    assert_eq!(described.topics.len(), 1, "the leader added the partition");
    let ended = end_txn(&broker, 5, &id, (pid, epoch0), true);
    assert_eq!(ended.error_code, 0);
    assert_eq!(
        (ended.producer_id.0, ended.producer_epoch),
        (pid, epoch0 + 1)
    );
    assert_eq!(
        partition_epoch(&broker, &topic, pid),
        i32::from(epoch0 + 1),
        "the marker carries the bumped epoch"
    );

    // The old epoch is fenced; the new one opens the next transaction at sequence 0.
    let zombie = batch((pid, epoch0), 1, true, "zombie");
    assert_eq!(
        produce(&broker, 12, Some(&id), &topic, zombie),
        INVALID_PRODUCER_EPOCH
    );
    let epoch1 = epoch0 + 1;
    assert_eq!(
        produce(
            &broker,
            12,
            Some(&id),
            &topic,
            batch((pid, epoch1), 0, true, "b")
        ),
        0
    );
    let aborted = end_txn(&broker, 5, &id, (pid, epoch1), false);
    assert_eq!(
        (aborted.error_code, aborted.producer_epoch),
        (0, epoch1 + 1)
    );
    // A retried EndTxn (old epoch) gets the same answer, not a fence.
    let retried = end_txn(&broker, 5, &id, (pid, epoch1), false);
    assert_eq!(
        (retried.error_code, retried.producer_epoch),
        (0, epoch1 + 1)
    );
    assert_eq!(describe_txn(&broker, &id).producer_epoch, epoch1 + 1);
    // a, commit marker, b, abort marker.
    assert_eq!(log_end(&broker, &topic), 4);
}
