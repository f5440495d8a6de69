//! Transactions on the partition side, over the wire: transactional batches hold the last
//! stable offset at their first offset until WriteTxnMarkers closes them; read_committed
//! fetches stop at the LSO and answer the aborted transactions; librdkafka in read_committed
//! mode sees exactly the committed and non-transactional records (no control records);
//! ListOffsets read_committed answers the LSO; markers with stale epochs are refused;
//! DescribeProducers shows the producers; the LSO and the aborted index survive a clean
//! restart and a kill -9.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka;
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, ProducerId, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;
const FETCH_VERSION: i16 = 11;
const READ_COMMITTED: i8 = 1;
const READ_UNCOMMITTED: i8 = 0;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// These tests drive the partition side alone: transactional batches of producers the
/// coordinator never saw, closed with WriteTxnMarkers. KIP-890's verification (on by default, as in
/// Kafka) would refuse them, so it is off here, as Kafka's own log-level tests run without
/// it (tests/txn_verification.rs covers it).
fn unverified() -> BrokerOpts {
    BrokerOpts::default().config("\"transaction.partition.verification.enable\" = false\n")
}

fn new_producer(broker: &Broker) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        wire::call(broker.socket_addr(), ApiKey::InitProducerId, 4, &request);
    assert_eq!(response.error_code, 0);
    response.producer_id.0
}

/// A batch of `values`, transactional when `transactional`.
fn batch(producer: i64, seq: i32, transactional: bool, values: &[&str]) -> Bytes {
    let mut builder = storage::BatchBuilder::new(now_ms()).producer(producer, 0, seq);
    if transactional {
        builder = builder.transactional();
    }
    for value in values {
        builder = builder.record(Some(b"k"), Some(value.as_bytes()), &[]);
    }
    builder.build().freeze()
}

/// Produces to partition 0 with acks=all; (error code, base offset). The request names a
/// transactional id, as Kafka requires for transactional records (with verification off it is
/// only authorized, not checked against a coordinator).
fn produce(broker: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(s(
            "txn-partition-test",
        ))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = wire::call(broker.socket_addr(), ApiKey::Produce, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

/// WriteTxnMarkers for partition 0 of `topic` (and of `extra_topic` when given); the error
/// codes in request order.
fn markers(
    broker: &Broker,
    topic: &str,
    producer: i64,
    epoch: i16,
    commit: bool,
    extra_topic: Option<&str>,
) -> Vec<i16> {
    let mut topics = vec![WritableTxnMarkerTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0])];
    if let Some(extra) = extra_topic {
        topics.push(
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(extra)))
                .with_partition_indexes(vec![0]),
        );
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(topics)]);
    let response: WriteTxnMarkersResponse =
        wire::call(broker.socket_addr(), ApiKey::WriteTxnMarkers, 1, &request);
    assert_eq!(response.markers.len(), 1);
    assert_eq!(response.markers[0].producer_id.0, producer);
    response.markers[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// What a raw fetch of partition 0 from offset 0 answers.
#[derive(Debug)]
struct Fetched {
    high_watermark: i64,
    last_stable_offset: i64,
    aborted: Vec<(i64, i64)>,
    /// (base offset, last offset, control) of each batch returned.
    batches: Vec<(i64, i64, bool)>,
}

fn fetch(broker: &Broker, topic: &str, isolation_level: i8) -> Fetched {
    fetch_waiting(broker, topic, isolation_level, 0)
}

/// `fetch` as a long-poll: min_bytes 1, up to `max_wait_ms`.
fn fetch_waiting(broker: &Broker, topic: &str, isolation_level: i8, max_wait_ms: i32) -> Fetched {
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(i32::from(max_wait_ms > 0))
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse =
        wire::call(broker.socket_addr(), ApiKey::Fetch, FETCH_VERSION, &request);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    let records = p.records.clone().unwrap_or_default();
    let batches = storage::split_batches(&records)
        .map(|b| {
            let h = storage::BatchHeader::parse(b.unwrap()).unwrap();
            (h.base_offset, h.last_offset(), h.is_control())
        })
        .collect();
    Fetched {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        aborted: p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect(),
        batches,
    }
}

fn list_latest(broker: &Broker, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListOffsets, 5, &request);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// (producer id, current transaction start offset) of every producer of partition 0.
fn describe_producers(broker: &Broker, topic: &str) -> Vec<(i64, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0])]);
    let response: DescribeProducersResponse =
        wire::call(broker.socket_addr(), ApiKey::DescribeProducers, 0, &request);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut out: Vec<(i64, i64)> = p
        .active_producers
        .iter()
        .map(|a| (a.producer_id.0, a.current_txn_start_offset))
        .collect();
    out.sort_unstable();
    out
}

/// Every value a librdkafka consumer with `isolation.level` hands the application from
/// partition 0, read to the end (partition EOF).
fn consume_values(broker: &Broker, topic: &str, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = kafka::consumer_with(
        broker,
        &[
            ("isolation.level", isolation),
            ("enable.partition.eof", "true"),
        ],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no EOF; got {values:?}");
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return values,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(msg)) => {
                values.push(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap())
            }
        }
    }
}

/// Produces, in order: a transaction of producer A (2 records, to be aborted), one of B (1
/// record, to be committed), a plain record, A's second batch. Returns (A, B).
fn open_two_transactions(broker: &Broker, topic: &str) -> (i64, i64) {
    let (a, b) = (new_producer(broker), new_producer(broker));
    assert_eq!(
        produce(broker, topic, batch(a, 0, true, &["a0", "a1"])),
        (0, 0)
    );
    assert_eq!(produce(broker, topic, batch(b, 0, true, &["b0"])), (0, 2));
    assert_eq!(
        produce(broker, topic, batch(-1, -1, false, &["plain"])),
        (0, 3)
    );
    assert_eq!(produce(broker, topic, batch(a, 2, true, &["a2"])), (0, 4));
    (a, b)
}

/// The whole partition-side lifecycle over the wire.
#[test]
fn markers_close_transactions_and_read_committed_hides_aborts() {
    let mut broker = Broker::start(unverified());
    let topic = unique_name("txn-part");
    kafka::create_topic(&broker, &topic, 1);
    let (a, b) = open_two_transactions(&broker, &topic);

    // Open transactions: the LSO is A's first offset; read_committed reads nothing yet.
    let open = fetch(&broker, &topic, READ_COMMITTED);
    assert_eq!((open.high_watermark, open.last_stable_offset), (5, 0));
    assert!(open.batches.is_empty(), "{open:?}");
    assert_eq!(list_latest(&broker, &topic, READ_COMMITTED), 0);
    assert_eq!(list_latest(&broker, &topic, READ_UNCOMMITTED), 5);
    assert_eq!(fetch(&broker, &topic, READ_UNCOMMITTED).batches.len(), 4);
    assert_eq!(describe_producers(&broker, &topic), vec![(a, 0), (b, 2)]);
    // A client may not write a marker: INVALID_RECORD, nothing stored.
    let forged = storage::BatchBuilder::new(now_ms())
        .producer(a, 0, -1)
        .transactional()
        .control()
        .record(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 0]), &[])
        .build()
        .freeze();
    assert_eq!(produce(&broker, &topic, forged).0, INVALID_RECORD);
    assert_eq!(fetch(&broker, &topic, READ_UNCOMMITTED).high_watermark, 5);
    // A non-transactional batch from a producer inside a transaction: INVALID_TXN_STATE.
    assert_eq!(
        produce(&broker, &topic, batch(a, 3, false, &["x"])).0,
        INVALID_TXN_STATE
    );

    // Abort A (plus an unknown topic in the same marker), commit B.
    let missing = unique_name("txn-missing");
    assert_eq!(
        markers(&broker, &topic, a, 0, false, Some(&missing)),
        vec![0, UNKNOWN_TOPIC_OR_PARTITION]
    );
    let after_abort = fetch(&broker, &topic, READ_COMMITTED);
    assert_eq!(after_abort.last_stable_offset, 2, "B still holds the LSO");
    assert_eq!(markers(&broker, &topic, b, 0, true, None), vec![0]);
    // A stale producer epoch is refused and writes nothing.
    assert_eq!(
        markers(&broker, &topic, b, -1, true, None),
        vec![INVALID_PRODUCER_EPOCH]
    );

    let done = fetch(&broker, &topic, READ_COMMITTED);
    assert_eq!((done.high_watermark, done.last_stable_offset), (7, 7));
    assert_eq!(done.aborted, vec![(a, 0)]);
    assert_eq!(
        done.batches
            .iter()
            .filter(|b| b.2)
            .map(|b| b.0)
            .collect::<Vec<_>>(),
        vec![5, 6],
        "the markers are control batches at 5 and 6"
    );
    assert!(fetch(&broker, &topic, READ_UNCOMMITTED).aborted.is_empty());
    assert_eq!(list_latest(&broker, &topic, READ_COMMITTED), 7);
    assert_eq!(describe_producers(&broker, &topic), vec![(a, -1), (b, -1)]);

    // librdkafka: read_committed drops A's records, nobody sees a control record.
    let committed = ["b0", "plain"];
    let everything = ["a0", "a1", "b0", "plain", "a2"];
    assert_eq!(consume_values(&broker, &topic, "read_committed"), committed);
    assert_eq!(
        consume_values(&broker, &topic, "read_uncommitted"),
        everything
    );

    // A new transaction of B stays open across restarts; the aborted index too.
    assert_eq!(produce(&broker, &topic, batch(b, 1, true, &["b1"])), (0, 7));
    for kill in [false, true] {
        if kill {
            broker.kill9();
            broker.start_again();
        } else {
            broker.restart();
        }
        let reopened = fetch(&broker, &topic, READ_COMMITTED);
        assert_eq!(
            (reopened.high_watermark, reopened.last_stable_offset),
            (8, 7),
            "kill -9: {kill}"
        );
        assert_eq!(reopened.aborted, vec![(a, 0)], "kill -9: {kill}");
        assert_eq!(describe_producers(&broker, &topic), vec![(a, -1), (b, 7)]);
    }
    assert_eq!(markers(&broker, &topic, b, 0, false, None), vec![0]);
    let last = fetch(&broker, &topic, READ_COMMITTED);
    assert_eq!(last.last_stable_offset, 9);
    assert_eq!(last.aborted, vec![(a, 0), (b, 7)]);
    assert_eq!(consume_values(&broker, &topic, "read_committed"), committed);
}

/// A crash after an abort marker is in the log but before its index entry exists (simulated
/// by deleting the `.txnindex` files and the producer snapshots): the rebuild finds the marker
/// and indexes the abort again.
#[test]
fn a_lost_aborted_index_is_rebuilt_from_the_log() {
    let mut broker = Broker::start(unverified());
    let topic = unique_name("txn-rebuild");
    kafka::create_topic(&broker, &topic, 1);
    let (a, b) = open_two_transactions(&broker, &topic);
    assert_eq!(markers(&broker, &topic, a, 0, false, None), vec![0]);
    broker.kill9();
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".txnindex") || name.ends_with(".snapshot") {
            std::fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 1, "the abort wrote a .txnindex");
    broker.start_again();
    let reopened = fetch(&broker, &topic, READ_COMMITTED);
    assert_eq!(
        reopened.last_stable_offset, 2,
        "B's transaction is still open"
    );
    assert_eq!(reopened.aborted, vec![(a, 0)]);
    assert!(dir.read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "txnindex")));
    assert_eq!(markers(&broker, &topic, b, 0, true, None), vec![0]);
    assert_eq!(
        consume_values(&broker, &topic, "read_committed"),
        ["b0", "plain"]
    );
}

/// The broker process's user + system CPU time, in clock ticks (usually 1/100 s).
fn cpu_ticks(broker: &Broker) -> i64 {
    let pid = broker.pid().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<i64>().unwrap() + fields[12].parse::<i64>().unwrap()
}

/// A read_committed long-poll parked on an open transaction is woken by its commit marker
/// (the LSO moving), well before its max wait; one without a marker waits out its max wait.
#[test]
fn read_committed_long_poll_wakes_on_the_marker() {
    let broker = Broker::start(unverified());
    let topic = unique_name("txn-poll");
    kafka::create_topic(&broker, &topic, 1);
    let producer = new_producer(&broker);
    assert_eq!(
        produce(&broker, &topic, batch(producer, 0, true, &["t0"])),
        (0, 0)
    );
    let started = Instant::now();
    let cpu_before = cpu_ticks(&broker);
    let idle = fetch_waiting(&broker, &topic, READ_COMMITTED, 1_000);
    let cpu_spent = cpu_ticks(&broker) - cpu_before;
    assert!(idle.batches.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited its max wait"
    );
    // Parked, not re-reading in a loop: a spinning wait burns about a second of CPU.
    assert!(
        cpu_spent < 40,
        "the broker spent {cpu_spent} ticks in a parked long-poll"
    );
    let started = Instant::now();
    let committed = std::thread::scope(|scope| {
        let poll = scope.spawn(|| fetch_waiting(&broker, &topic, READ_COMMITTED, 20_000));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(markers(&broker, &topic, producer, 0, true, None), vec![0]);
        poll.join().unwrap()
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the marker"
    );
    assert_eq!(committed.last_stable_offset, 2);
    assert_eq!(committed.batches.len(), 2, "{committed:?}");
}

/// WriteTxnMarkers over the wire to a `__consumer_offsets` partition completes the producer's
/// pending TxnOffsetCommit offsets there (Kafka's `onTransactionCompleted`): invisible before
/// the commit marker, the committed offset after it.
#[test]
fn an_offsets_marker_over_the_wire_completes_transactional_offsets() {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, GroupId, OffsetFetchRequest,
        OffsetFetchResponse, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    };
    let broker = Broker::start(unverified());
    let topic = unique_name("txn-offsets");
    kafka::create_topic(&broker, &topic, 1);
    let group = unique_name("txn-group");
    let txn_id = TransactionalId(s(&unique_name("txn-id")));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id.clone()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // As a client does first: the coordinator lookup (which creates __transaction_state).
    let _: kafka_protocol::messages::FindCoordinatorResponse = wire::call(
        broker.socket_addr(),
        ApiKey::FindCoordinator,
        3,
        &kafka_protocol::messages::FindCoordinatorRequest::default()
            .with_key(txn_id.0.clone())
            .with_key_type(1),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let (producer, epoch) = loop {
        let r: InitProducerIdResponse =
            wire::call(broker.socket_addr(), ApiKey::InitProducerId, 4, &init);
        if r.error_code == 0 {
            break (r.producer_id.0, r.producer_epoch);
        }
        assert!(
            Instant::now() < deadline,
            "InitProducerId: {}",
            r.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id.clone())
        .with_producer_id(ProducerId(producer))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(&group)));
    let added: AddOffsetsToTxnResponse =
        wire::call(broker.socket_addr(), ApiKey::AddOffsetsToTxn, 3, &add);
    assert_eq!(added.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id)
        .with_group_id(GroupId(s(&group)))
        .with_producer_id(ProducerId(producer))
        .with_producer_epoch(epoch)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s(&topic)))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)])]);
    let committed: TxnOffsetCommitResponse =
        wire::call(broker.socket_addr(), ApiKey::TxnOffsetCommit, 2, &commit);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let fetch_offset = || {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partition_indexes(vec![0])]));
        let r: OffsetFetchResponse =
            wire::call(broker.socket_addr(), ApiKey::OffsetFetch, 5, &request);
        r.topics[0].partitions[0].committed_offset
    };
    assert_eq!(fetch_offset(), -1, "pending until the marker");
    let offsets_partition = sluice::coordinator_log::partition_for(&group, 50);
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer))
            .with_producer_epoch(epoch)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s("__consumer_offsets")))
                .with_partition_indexes(vec![offsets_partition as i32])])]);
    let response: WriteTxnMarkersResponse =
        wire::call(broker.socket_addr(), ApiKey::WriteTxnMarkers, 1, &request);
    assert_eq!(response.markers[0].topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(), 42, "committed by the marker");
}
