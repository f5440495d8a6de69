//! Transactions end to end, coordinator side: librdkafka (rdkafka, the library confluent-kafka
//! wraps) transactional producers committing and aborting across partitions, zombie fencing,
//! consume-transform-produce with `send_offsets_to_transaction`, the coordinator's state
//! recovered after kill -9 (and an in-flight transaction aborted by its timeout); plus
//! raw-protocol checks of the coordinator's error codes, also when its transaction log refuses
//! a record. Each test owns its broker.

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

use common::kafka::{self, CALL_TIMEOUT};
use common::txn::{send, sorted, TxnProducer};
use common::{unique_name, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

/// Few coordinator partitions and fast timers, so tests do not wait on production defaults.
const BROKER_TOML: &str = r#"
"group.initial.rebalance.delay.ms" = 0
"offsets.topic.num.partitions" = 4
"transaction.state.log.num.partitions" = 4
"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 200
"transaction.max.timeout.ms" = 60000
"#;

fn broker() -> Broker {
    Broker::start(BrokerOpts::default().config(BROKER_TOML))
}

fn transactional(broker: &Broker, id: &str, timeout_ms: u32) -> TxnProducer {
    common::txn::transactional(
        kafka::client_config(broker)
            .set("transactional.id", id)
            .set("transaction.timeout.ms", timeout_ms.to_string())
            // librdkafka requires socket.timeout.ms <= transaction.timeout.ms + 100.
            .set("socket.timeout.ms", timeout_ms.min(30_000).to_string())
            .set("linger.ms", "5"),
    )
}

/// Every value of `topic` read from the start with `isolation`, waiting until at least
/// `expected` arrived and then for a quiet second (so extra records would be seen).
fn read_values(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> Vec<String> {
    let consumer = kafka::consumer_with(broker, &[("isolation.level", isolation)]);
    common::txn::read_values(
        &consumer,
        topic,
        partitions,
        common::txn::Until::Quiet(expected),
    )
}

#[test]
fn commit_and_abort_across_partitions() {
    let broker = broker();
    let topic = unique_name("txn");
    kafka::create_topic(&broker, &topic, 3);
    let producer = transactional(&broker, &unique_name("tx"), 30_000);
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, &topic, i % 3, &format!("c1-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, &topic, i % 3, &format!("ab-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    producer.abort_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..9 {
        send(&producer, &topic, i % 3, &format!("c2-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();

    let committed = sorted(
        (0..30)
            .map(|i| format!("c1-{i}"))
            .chain((0..9).map(|i| format!("c2-{i}"))),
    );
    assert_eq!(
        read_values(&broker, &topic, 3, "read_committed", 39),
        committed
    );
    let all = read_values(&broker, &topic, 3, "read_uncommitted", 69);
    assert_eq!(
        all.len(),
        69,
        "read_uncommitted sees the aborted records too"
    );
    assert_eq!(all.iter().filter(|v| v.starts_with("ab-")).count(), 30);
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first() {
    let broker = broker();
    let topic = unique_name("txn");
    kafka::create_topic(&broker, &topic, 1);
    let id = unique_name("tx");
    let old = transactional(&broker, &id, 30_000);
    old.begin_transaction().unwrap();
    send(&old, &topic, 0, "zombie");
    old.flush(CALL_TIMEOUT).unwrap();
    // The new instance bumps the epoch, aborting the old one's open transaction.
    let new = transactional(&broker, &id, 30_000);
    send(&old, &topic, 0, "zombie-2");
    let _ = old.flush(CALL_TIMEOUT);
    let err = old
        .commit_transaction(CALL_TIMEOUT)
        .expect_err("the zombie cannot commit");
    let fenced = match &err {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    };
    assert!(fenced, "expected a fatal fencing error, got {err:?}");
    new.begin_transaction().unwrap();
    send(&new, &topic, 0, "live");
    new.commit_transaction(CALL_TIMEOUT).unwrap();
    assert_eq!(
        read_values(&broker, &topic, 1, "read_committed", 1),
        vec!["live"]
    );
}

/// The group's committed offsets as a read_uncommitted consumer fetches them (OffsetFetch
/// without require_stable).
fn committed_offsets(broker: &Broker, group: &str, topic: &str) -> Vec<i64> {
    committed_with(broker, group, topic, "read_uncommitted", CALL_TIMEOUT).unwrap()
}

fn committed_with(
    broker: &Broker,
    group: &str,
    topic: &str,
    isolation: &str,
    timeout: Duration,
) -> Result<Vec<i64>, KafkaError> {
    let consumer = kafka::consumer_with(
        broker,
        &[("group.id", group), ("isolation.level", isolation)],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    tpl.add_partition(topic, 1);
    let committed = consumer.committed_offsets(tpl, timeout)?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect())
}

#[test]
fn send_offsets_to_transaction_commits_the_offsets_with_the_transaction() {
    let broker = broker();
    let (input, output) = (unique_name("in"), unique_name("out"));
    kafka::create_topic(&broker, &input, 2);
    kafka::create_topic(&broker, &output, 2);
    let plain: TxnProducer = kafka::client_config(&broker).create().expect("producer");
    for i in 0..20 {
        send(&plain, &input, i % 2, &format!("in-{i}"));
    }
    plain.flush(CALL_TIMEOUT).unwrap();
    let group = unique_name("g");
    let consumer: BaseConsumer = kafka::consumer_with(
        &broker,
        &[("group.id", &group), ("isolation.level", "read_committed")],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&input, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(&input, 1, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    wait_until(kafka::CONSUME_TIMEOUT, "20 input records", || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            seen.push((m.partition(), m.payload().unwrap().to_vec()));
        }
        seen.len() == 20
    });

    let producer = transactional(&broker, &unique_name("tx"), 30_000);
    producer.begin_transaction().unwrap();
    for (partition, value) in &seen {
        let value = String::from_utf8(value.clone())
            .unwrap()
            .replace("in", "out");
        send(&producer, &output, *partition, &value);
    }
    let position = consumer.position().unwrap();
    let metadata = consumer.group_metadata().expect("group metadata");
    producer
        .send_offsets_to_transaction(&position, &metadata, CALL_TIMEOUT)
        .unwrap();
    producer.flush(CALL_TIMEOUT).unwrap();
    assert_eq!(
        committed_offsets(&broker, &group, &input),
        vec![-1, -1],
        "offsets of an open transaction are invisible"
    );
    // A read_committed consumer asks for stable offsets (KIP-447): UNSTABLE_OFFSET_COMMIT,
    // which librdkafka retries until the transaction ends (here: until its timeout).
    let stable = committed_with(
        &broker,
        &group,
        &input,
        "read_committed",
        Duration::from_secs(3),
    );
    assert!(
        stable.is_err(),
        "pending offsets are unstable, got {stable:?}"
    );
    producer.commit_transaction(CALL_TIMEOUT).unwrap();
    assert_eq!(committed_offsets(&broker, &group, &input), vec![10, 10]);

    // An aborted transaction's offsets are dropped.
    producer.begin_transaction().unwrap();
    send(&producer, &output, 0, "aborted");
    let mut later = TopicPartitionList::new();
    later
        .add_partition_offset(&input, 0, Offset::Offset(15))
        .unwrap();
    later
        .add_partition_offset(&input, 1, Offset::Offset(15))
        .unwrap();
    producer
        .send_offsets_to_transaction(&later, &metadata, CALL_TIMEOUT)
        .unwrap();
    producer.abort_transaction(CALL_TIMEOUT).unwrap();
    assert_eq!(committed_offsets(&broker, &group, &input), vec![10, 10]);
    let expected = sorted((0..20).map(|i| format!("out-{i}")));
    assert_eq!(
        read_values(&broker, &output, 2, "read_committed", 20),
        expected
    );

    // The committed offsets survive a restart (replayed with their markers).
    drop(producer);
    // Known client-side hang (issue 12, investigated in session 6): destroying this
    // rust-rdkafka group consumer blocks in rd_kafka_destroy. The close itself completes
    // (rd_kafka_consumer_closed turns true); then librdkafka's main thread joins the
    // consumer's broker thread, which never exits: its refcount stays at 3, with no partitions
    // and its connection state INIT (gdb). The same flow from confluent-kafka (rd_kafka_
    // consumer_close, scripts/compat/transactions.py and a replay of this test) closes at once,
    // and the
    // same steps in isolation (assign, poll, send_offsets_to_transaction, commit, abort,
    // OffsetFetch from other consumers of the group) drop at once, so it is left leaked
    // rather than dropped (librdkafka#4674 is the known refcount leak of that kind).
    std::mem::forget(consumer);
    let mut broker = broker;
    broker.kill9();
    broker.start_again();
    assert_eq!(committed_offsets(&broker, &group, &input), vec![10, 10]);
}

fn describe(broker: &Broker, id: &str) -> describe_transactions_response::TransactionState {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_owned()))]);
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

/// kill -9 with one transaction committed and one open: after the restart the coordinator
/// knows both ids (same producer ids), and the open one is aborted by its timeout, after which
/// read_committed consumers get past it.
#[test]
fn coordinator_state_survives_kill9_and_open_transactions_time_out() {
    let mut broker = broker();
    let topic = unique_name("txn");
    kafka::create_topic(&broker, &topic, 1);
    let (done_id, open_id) = (unique_name("done"), unique_name("open"));
    let done = transactional(&broker, &done_id, 30_000);
    done.begin_transaction().unwrap();
    send(&done, &topic, 0, "committed");
    done.commit_transaction(CALL_TIMEOUT).unwrap();
    let open = transactional(&broker, &open_id, 3_000);
    open.begin_transaction().unwrap();
    send(&open, &topic, 0, "never-committed");
    open.flush(CALL_TIMEOUT).unwrap();
    let before = (describe(&broker, &done_id), describe(&broker, &open_id));
    assert_eq!(before.0.transaction_state.as_str(), "CompleteCommit");
    assert_eq!(before.1.transaction_state.as_str(), "Ongoing");
    std::mem::forget(open); // its client must not abort it on drop
    drop(done);

    broker.kill9();
    broker.start_again();
    let after = describe(&broker, &done_id);
    assert_eq!(after.error_code, 0);
    assert_eq!(after.transaction_state.as_str(), "CompleteCommit");
    assert_eq!(after.producer_id, before.0.producer_id);
    assert_eq!(after.producer_epoch, before.0.producer_epoch);
    wait_until(
        Duration::from_secs(30),
        "the open transaction aborted by its timeout",
        || describe(&broker, &open_id).transaction_state.as_str() == "CompleteAbort",
    );
    let aborted = describe(&broker, &open_id);
    assert_eq!(aborted.producer_id, before.1.producer_id);
    assert_eq!(
        aborted.producer_epoch,
        before.1.producer_epoch + 1,
        "the zombie is fenced"
    );
    assert_eq!(
        read_values(&broker, &topic, 1, "read_committed", 1),
        vec!["committed"]
    );
    // The id goes on: a new producer instance gets the next epoch and commits.
    let again = transactional(&broker, &open_id, 30_000);
    again.begin_transaction().unwrap();
    send(&again, &topic, 0, "after-restart");
    again.commit_transaction(CALL_TIMEOUT).unwrap();
    assert_eq!(
        read_values(&broker, &topic, 1, "read_committed", 2),
        vec!["after-restart", "committed"]
    );
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn init(broker: &Broker, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(timeout_ms)
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
    version: i16,
    id: &str,
    producer: (i64, i16),
    topics: &[(&str, Vec<i32>)],
) -> BTreeMap<(String, i32), i16> {
    let topics: Vec<AddPartitionsToTxnTopic> = topics
        .iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(ps.clone())
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
        version,
        &request,
    );
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

fn end_txn(
    broker: &Broker,
    version: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> EndTxnResponse {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    wire::call(broker.socket_addr(), ApiKey::EndTxn, version, &request)
}

/// `id`'s transaction coordinator as FindCoordinator v4 answers it.
fn find_coordinator(broker: &Broker, id: &str) -> find_coordinator_response::Coordinator {
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![str_bytes(id)]);
    let found: FindCoordinatorResponse =
        wire::call(broker.socket_addr(), ApiKey::FindCoordinator, 4, &find);
    found
        .coordinators
        .into_iter()
        .next()
        .expect("one coordinator")
}

/// The coordinator's error codes, as Kafka answers them.
#[test]
fn coordinator_error_codes() {
    let broker = broker();
    let topic = unique_name("txn");
    kafka::create_topic(&broker, &topic, 2);
    let id = unique_name("tx");

    let found = find_coordinator(&broker, &id);
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, i32::from(broker.socket_addr().port()));

    assert_eq!(
        init(&broker, &id, 60_001).error_code,
        50,
        "INVALID_TRANSACTION_TIMEOUT"
    );
    assert_eq!(
        init(&broker, &id, 0).error_code,
        50,
        "INVALID_TRANSACTION_TIMEOUT"
    );
    let first = init(&broker, &id, 10_000);
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let pid = first.producer_id.0;
    assert!(pid >= 0);
    let second = init(&broker, &id, 10_000);
    assert_eq!((second.producer_id.0, second.producer_epoch), (pid, 1));

    // Unknown id, wrong producer id, old epoch (PRODUCER_FENCED; INVALID_PRODUCER_EPOCH < v2).
    let p0 = vec![0];
    let codes = add_partitions(
        &broker,
        3,
        &unique_name("nope"),
        (pid, 1),
        &[(&topic, p0.clone())],
    );
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![49]);
    let codes = add_partitions(&broker, 3, &id, (pid + 1, 1), &[(&topic, p0.clone())]);
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![49]);
    let codes = add_partitions(&broker, 3, &id, (pid, 0), &[(&topic, p0.clone())]);
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![90]);
    let codes = add_partitions(&broker, 1, &id, (pid, 0), &[(&topic, p0.clone())]);
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![47]);
    // An unknown partition fails the request: UNKNOWN_TOPIC_OR_PARTITION, the rest not attempted.
    let codes = add_partitions(&broker, 3, &id, (pid, 1), &[(&topic, vec![0, 7])]);
    assert_eq!(codes[&(topic.clone(), 0)], 55);
    assert_eq!(codes[&(topic.clone(), 7)], 3);
    // EndTxn without a transaction: INVALID_TXN_STATE.
    assert_eq!(end_txn(&broker, 3, &id, (pid, 1), true).error_code, 48);

    let codes = add_partitions(&broker, 3, &id, (pid, 1), &[(&topic, vec![0, 1])]);
    assert!(codes.values().all(|c| *c == 0), "{codes:?}");
    let state = describe(&broker, &id);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(state.topics[0].partitions, vec![0, 1]);
    // verify_only (v4, broker to broker): a partition outside the transaction is INVALID_TXN_STATE.
    let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(str_bytes(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(1)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes(&topic)))
                .with_partitions(vec![1, 0])]),
    ]);
    let verified: AddPartitionsToTxnResponse =
        wire::call(broker.socket_addr(), ApiKey::AddPartitionsToTxn, 4, &verify);
    let results = &verified.results_by_transaction[0].topic_results[0].results_by_partition;
    assert!(
        results.iter().all(|r| r.partition_error_code == 0),
        "{results:?}"
    );

    // ListTransactions filters by state.
    let list = ListTransactionsRequest::default()
        .with_state_filters(vec![str_bytes("Ongoing"), str_bytes("Nope")]);
    let listed: ListTransactionsResponse =
        wire::call(broker.socket_addr(), ApiKey::ListTransactions, 1, &list);
    assert!(listed
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.0.as_str() == id));
    assert_eq!(listed.unknown_state_filters, vec![str_bytes("Nope")]);

    // EndTxn v5 (TV2) bumps the epoch; its retry with the old epoch is answered the same.
    let ended = end_txn(&broker, 5, &id, (pid, 1), false);
    assert_eq!(
        (ended.error_code, ended.producer_id.0, ended.producer_epoch),
        (0, pid, 2)
    );
    assert_eq!(
        describe(&broker, &id).transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(end_txn(&broker, 5, &id, (pid, 1), false).error_code, 0);
    assert_eq!(end_txn(&broker, 5, &id, (pid, 1), true).error_code, 48);

    let unknown = describe(&broker, &unique_name("nope"));
    assert_eq!(unknown.error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
}

/// A transition whose `__transaction_state` record the log refuses answers Kafka's mapped code
/// (`TransactionStateManager.appendTransactionToLog`): with `message.max.bytes` below the
/// record of an AddPartitionsToTxn naming many long topics, the append fails with
/// MESSAGE_TOO_LARGE and every partition answers UNKNOWN_SERVER_ERROR (-1), not
/// COORDINATOR_NOT_AVAILABLE (15, which a client retries forever); the transition is dropped
/// and the id stays usable: a small AddPartitionsToTxn, then an EndTxn commit, succeed.
#[test]
fn a_transaction_record_over_message_max_bytes_answers_unknown_server_error() {
    /// Long topic names, so that a few of them exceed `message.max.bytes` in one record.
    const LONG_TOPICS: usize = 8;
    const LONG_NAME_CHARS: usize = 200;
    // A record limit the InitProducerId record fits in and the big AddPartitionsToTxn's not.
    let config = format!("{BROKER_TOML}\n\"message.max.bytes\" = 1024\n");
    let broker = Broker::start(BrokerOpts::default().config(&config));
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
    // Kafka creates `__transaction_state` on the first FindCoordinator for a transactional id.
    assert_eq!(find_coordinator(&broker, &id).error_code, 0);
    let first = init(&broker, &id, 30_000);
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let producer = (first.producer_id.0, 0);

    let all_long: Vec<(&str, Vec<i32>)> = long.iter().map(|t| (t.as_str(), vec![0])).collect();
    let codes = add_partitions(&broker, 3, &id, producer, &all_long);
    assert_eq!(codes.len(), LONG_TOPICS, "{codes:?}");
    assert!(
        codes.values().all(|c| *c == -1),
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
    let codes = add_partitions(&broker, 3, &id, producer, &[(&short, vec![0])]);
    assert_eq!(codes.values().copied().collect::<Vec<_>>(), vec![0]);
    let state = describe(&broker, &id);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    let topics: Vec<String> = state.topics.iter().map(|t| t.topic.0.to_string()).collect();
    assert_eq!(topics, vec![short.clone()]);
    assert_eq!(end_txn(&broker, 3, &id, producer, true).error_code, 0);
}
