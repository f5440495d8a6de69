//! Transactions in a three-broker KRaft cluster (issue 12): a librdkafka transactional producer
//! writes to partitions led by every broker; the coordinator (the leader of the id's
//! `__transaction_state` partition) writes the markers of partitions led elsewhere with
//! WriteTxnMarkers to their leaders, and completes the transaction only once all are written,
//! so a read_committed consumer sees exactly the committed records (and is not blocked by an
//! aborted transaction). With RF=3 the markers replicate like any batch and the LSO a leader
//! answers never passes its high watermark.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{leaders, Cluster};
use common::faults::segment_bytes;
use common::kafka::{self, CALL_TIMEOUT};
use common::txn::{read_values as read_from, send, sorted, TxnProducer, Until};
use common::wait_until;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::Producer;

/// Few coordinator partitions and fast timers.
fn cluster(extra: &str) -> Cluster {
    common::txn::txn_cluster(&format!(
        "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n{extra}"
    ))
}

/// Creates `topic` and waits until every broker knows a leader for each partition; answers
/// the leaders.
fn create_spread_topic(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<i32> {
    assert_eq!(
        cluster.create_topic(topic, partitions, Duration::from_secs(30)),
        0
    );
    let view = cluster.wait_topic(topic, usize::try_from(partitions).unwrap());
    view.2.iter().map(|p| p.1).collect()
}

fn transactional(cluster: &Cluster, id: &str) -> TxnProducer {
    common::txn::transactional(
        kafka::client_config(cluster.broker(0))
            .set("bootstrap.servers", cluster.bootstrap())
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "30000")
            .set("linger.ms", "5"),
    )
}

fn consumer(cluster: &Cluster, isolation: &str) -> BaseConsumer {
    kafka::consumer_with(
        cluster.broker(0),
        &[
            ("bootstrap.servers", &cluster.bootstrap()),
            ("isolation.level", isolation),
        ],
    )
}

/// Every value of `topic` read from the start with `isolation`, waiting until at least
/// `expected` arrived and then for a quiet second (so extra records would be seen).
fn read_values(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> Vec<String> {
    read_from(
        &consumer(cluster, isolation),
        topic,
        partitions,
        Until::Quiet(expected),
    )
}

/// Commit, abort, commit over partitions led by all three brokers: whichever broker
/// coordinates the id, the other two leaders get their markers over WriteTxnMarkers, and
/// read_committed sees exactly the committed records (the aborted ones are indexed on each
/// leader, the LSO moves past them).
#[test]
fn commit_and_abort_over_partitions_led_by_every_broker() {
    let cluster = cluster("");
    let topic = "spread";
    let partitions = 6;
    let leaders = create_spread_topic(&cluster, topic, partitions);
    assert_eq!(
        leaders.iter().copied().collect::<BTreeSet<i32>>(),
        BTreeSet::from([1, 2, 3]),
        "the topic's leaders are spread over every broker: {leaders:?}"
    );
    let producer = transactional(&cluster, "spread-tx");
    producer.begin_transaction().unwrap();
    for i in 0..60 {
        send(&producer, topic, i % partitions, &format!("c1-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..60 {
        send(&producer, topic, i % partitions, &format!("ab-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    producer.abort_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..12 {
        send(&producer, topic, i % partitions, &format!("c2-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();

    let committed = sorted(
        (0..60)
            .map(|i| format!("c1-{i}"))
            .chain((0..12).map(|i| format!("c2-{i}"))),
    );
    assert_eq!(
        read_values(&cluster, topic, partitions, "read_committed", 72),
        committed
    );
    let all = read_values(&cluster, topic, partitions, "read_uncommitted", 132);
    assert_eq!(
        all.len(),
        132,
        "read_uncommitted sees the aborted records too"
    );
    assert_eq!(all.iter().filter(|v| v.starts_with("ab-")).count(), 60);
}

/// RF=3: the records and the markers (control batches) replicate like any batch: after a
/// commit and an abort every replica of every partition holds its leader's bytes, and
/// read_committed sees exactly the committed records.
#[test]
fn markers_replicate_to_every_replica() {
    let cluster = cluster("\"default.replication.factor\" = 3\n");
    let topic = "replicated";
    let partitions = 3;
    let leaders = create_spread_topic(&cluster, topic, partitions);
    let producer = transactional(&cluster, "replicated-tx");
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, topic, i % partitions, &format!("c-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, topic, i % partitions, &format!("ab-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    producer.abort_transaction(CALL_TIMEOUT).unwrap();
    assert_eq!(
        read_values(&cluster, topic, partitions, "read_committed", 30),
        sorted((0..30).map(|i| format!("c-{i}")))
    );
    for (p, leader) in leaders.iter().enumerate() {
        let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-{p}"));
        let leader_index = usize::try_from(leader - 1).unwrap();
        let leader_bytes = segment_bytes(&dir(leader_index));
        // 10 + 10 records in two batches or more, and two markers.
        assert!(!leader_bytes.is_empty());
        for i in (0..3).filter(|i| *i != leader_index) {
            wait_until(
                Duration::from_secs(20),
                &format!("broker {} to hold {topic}-{p} with its markers", i + 1),
                || segment_bytes(&dir(i)) == leader_bytes,
            );
        }
    }
}

/// Kill -9 of the coordinator mid-transaction (RF=3 everywhere): the `__transaction_state`
/// partition's new leader loads the id (its Ongoing record was replicated before it was
/// answered), the producer finds it and commits, the markers reach every partition's leader
/// (some of them moved with the kill too); then an abort and a commit: the LSO advances and
/// read_committed sees exactly the committed records.
#[test]
fn coordinator_failover_mid_transaction() {
    let mut cluster = cluster("\"default.replication.factor\" = 3\n");
    let topic = "failover";
    let partitions = 3;
    create_spread_topic(&cluster, topic, partitions);
    let id = "failover-tx";
    let producer = transactional(&cluster, id);
    let log_partition = sluice::coordinator_log::partition_for(id, 3);
    let coordinator = leaders(&cluster.metadata(0), "__transaction_state")
        [usize::try_from(log_partition).unwrap()];
    assert!(coordinator > 0);
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, topic, i % partitions, &format!("c1-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    let killed = usize::try_from(coordinator - 1).unwrap();
    cluster.broker_mut(killed).kill9();
    let survivor = (0..3).find(|i| *i != killed).unwrap();
    wait_until(Duration::from_secs(30), "a new coordinator", || {
        let now = leaders(&cluster.metadata(survivor), "__transaction_state");
        now.get(usize::try_from(log_partition).unwrap())
            .is_some_and(|l| *l > 0 && *l != coordinator)
    });
    producer
        .commit_transaction(Duration::from_secs(60))
        .expect("commit through the new coordinator");
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, topic, i % partitions, &format!("ab-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    producer.abort_transaction(CALL_TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..6 {
        send(&producer, topic, i % partitions, &format!("c2-{i}"));
    }
    producer.commit_transaction(CALL_TIMEOUT).unwrap();
    let consumer = kafka::consumer_with(
        cluster.broker(survivor),
        &[("isolation.level", "read_committed")],
    );
    assert_eq!(
        read_from(&consumer, topic, partitions, Until::Quiet(36)),
        sorted(
            (0..30)
                .map(|i| format!("c1-{i}"))
                .chain((0..6).map(|i| format!("c2-{i}")))
        )
    );
}

/// Kill -9 of a broker that leads partitions of an open transaction but does not coordinate
/// it (RF=3): the coordinator's markers to it fail until the controller elects new leaders;
/// it re-reads them from its image and retries, so the commit completes and read_committed
/// sees every record.
#[test]
fn markers_follow_a_partition_leader_killed_mid_transaction() {
    let mut cluster = cluster("\"default.replication.factor\" = 3\n");
    let topic = "moved";
    let partitions = 6;
    let leaders = create_spread_topic(&cluster, topic, partitions);
    let id = "moved-tx";
    let log_partition = usize::try_from(sluice::coordinator_log::partition_for(id, 3)).unwrap();
    let coordinator = leaders_of_log(&cluster, 0)[log_partition];
    let victim = *leaders
        .iter()
        .find(|l| **l != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let producer = transactional(&cluster, id);
    producer.begin_transaction().unwrap();
    for i in 0..60 {
        send(&producer, topic, i % partitions, &format!("v-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    let killed = usize::try_from(victim - 1).unwrap();
    cluster.broker_mut(killed).kill9();
    producer
        .commit_transaction(Duration::from_secs(60))
        .expect("commit once the victim's partitions have new leaders");
    let survivor = usize::try_from(coordinator - 1).unwrap();
    assert_eq!(
        leaders_of_log(&cluster, survivor)[log_partition],
        coordinator,
        "the coordinator did not move"
    );
    let consumer = kafka::consumer_with(
        cluster.broker(survivor),
        &[("isolation.level", "read_committed")],
    );
    assert_eq!(
        read_from(&consumer, topic, partitions, Until::Count(60)),
        sorted((0..60).map(|i| format!("v-{i}")))
    );
}

/// The leaders of the `__transaction_state` partitions as broker `index` answers.
fn leaders_of_log(cluster: &Cluster, index: usize) -> Vec<i32> {
    let mut found = Vec::new();
    wait_until(
        Duration::from_secs(30),
        "the transaction log's leaders",
        || {
            found = leaders(&cluster.metadata(index), "__transaction_state");
            found.len() == 3 && found.iter().all(|l| *l > 0)
        },
    );
    found
}

/// Kill -9 of the coordinator's broker mid-transaction while the producer is gone too (never
/// commits or aborts): the new coordinator loads the open transaction from the replicated
/// `__transaction_state` and aborts it at its timeout, so the LSO of every partition advances
/// and read_committed consumers get past it to the records written after it.
#[test]
fn new_coordinator_aborts_an_orphaned_transaction_and_the_lso_advances() {
    let mut cluster = cluster("\"default.replication.factor\" = 3\n");
    let topic = "orphaned";
    let partitions = 3;
    create_spread_topic(&cluster, topic, partitions);
    let id = "orphaned-tx";
    let producer = common::txn::transactional(
        kafka::client_config(cluster.broker(0))
            .set("bootstrap.servers", cluster.bootstrap())
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "4000")
            .set("socket.timeout.ms", "4000")
            .set("linger.ms", "5"),
    );
    let log_partition = sluice::coordinator_log::partition_for(id, 3);
    let coordinator = leaders_of_log(&cluster, 0)[usize::try_from(log_partition).unwrap()];
    producer.begin_transaction().unwrap();
    for i in 0..30 {
        send(&producer, topic, i % partitions, &format!("orphan-{i}"));
    }
    producer.flush(CALL_TIMEOUT).unwrap();
    // The producer disappears with its transaction open (its client must not abort it).
    std::mem::forget(producer);
    let killed = usize::try_from(coordinator - 1).unwrap();
    cluster.broker_mut(killed).kill9();
    let survivor = (0..3).find(|i| *i != killed).unwrap();
    // Records after the open transaction: invisible to read_committed until it is aborted.
    let plain: TxnProducer = kafka::client_config(cluster.broker(survivor))
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .create()
        .expect("plain producer");
    for p in 0..partitions {
        send(&plain, topic, p, &format!("after-{p}"));
    }
    plain.flush(kafka::FLUSH_TIMEOUT).unwrap();
    let consumer = kafka::consumer_with(
        cluster.broker(survivor),
        &[
            ("bootstrap.servers", &cluster.bootstrap()),
            ("isolation.level", "read_committed"),
        ],
    );
    assert_eq!(
        read_from(&consumer, topic, partitions, Until::Count(3)),
        sorted((0..partitions).map(|p| format!("after-{p}"))),
        "the orphaned transaction is aborted (LSO advanced), its records never read"
    );
}

/// Followers close transactions on replicated markers and index the aborted ones (breaker
/// B10), as Kafka's `appendAsFollower` updates producer state and `.txnindex` as the leader
/// does: a commit, an abort and a commit on an RF=3 partition, then kill -9 of its leader.
/// The former follower that leads now answers read_committed with exactly the committed
/// records; before, its LSO stayed at the first transaction's start (nothing readable) and
/// the aborted records were not indexed.
#[test]
fn a_follower_that_takes_over_knows_the_replicated_transactions() {
    let mut cluster = cluster("\"default.replication.factor\" = 3\n");
    let topic = "takeover";
    let leader = create_spread_topic(&cluster, topic, 1)[0];
    let producer = transactional(&cluster, "takeover-tx");
    for (prefix, commit) in [("c1", true), ("ab", false), ("c3", true)] {
        producer.begin_transaction().unwrap();
        for i in 0..10 {
            send(&producer, topic, 0, &format!("{prefix}-{i}"));
        }
        producer.flush(CALL_TIMEOUT).unwrap();
        if commit {
            producer.commit_transaction(CALL_TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(CALL_TIMEOUT).unwrap();
        }
    }
    drop(producer);
    let leader_index = usize::try_from(leader - 1).unwrap();
    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&dir(leader_index));
    for i in (0..3).filter(|i| *i != leader_index) {
        wait_until(
            Duration::from_secs(20),
            &format!("broker {} to hold the partition with its markers", i + 1),
            || segment_bytes(&dir(i)) == leader_bytes,
        );
    }
    cluster.broker_mut(leader_index).kill9();
    let survivor = (0..3).find(|i| *i != leader_index).unwrap();
    wait_until(Duration::from_secs(30), "a new leader", || {
        let now = leaders(&cluster.metadata(survivor), topic);
        now.first().is_some_and(|l| *l > 0 && *l != leader)
    });
    let expected = sorted((0..10).flat_map(|i| [format!("c1-{i}"), format!("c3-{i}")]));
    assert_eq!(
        read_values(&cluster, topic, 1, "read_committed", 20),
        expected
    );
}
