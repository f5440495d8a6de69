//! Replication across three `sluice` processes (issue 11): an RF=3 topic produced with
//! acks=all is replicated to both followers by their replica fetchers (the leader's bytes
//! unchanged: every replica's segments byte-identical) and consumers read every acknowledged
//! record from the leader; after the leader is killed with SIGKILL, the new leader (elected
//! from the ISR by the controller's fencing) serves every acknowledged record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::checker::QueueChecker;
use common::cluster::{Cluster, ClusterOpts};
use common::faults::segment_bytes;
use common::wait_until;

#[test]
fn acks_all_records_reach_every_replica_byte_for_byte() {
    let topic = "replicated";
    let (cluster, leader_index) = Cluster::start_replicated(ClusterOpts::default(), topic);
    let sent = common::kafka::keyed_records(300, 7, 100);
    let mut checker = QueueChecker::new();
    produce_checked(&cluster, leader_index, topic, &sent, &mut checker);
    // acks=all answered only once the high watermark passed every batch: both followers
    // had fetched them; their segments are the leader's bytes.
    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&dir(leader_index));
    assert!(!leader_bytes.is_empty(), "the leader stored the records");
    for i in (0..3).filter(|i| *i != leader_index) {
        wait_until(
            Duration::from_secs(20),
            &format!("broker {} to hold the leader's segment bytes", i + 1),
            || segment_bytes(&dir(i)) == leader_bytes,
        );
    }
    // Consumers read everything from the leader (high watermark = the log end).
    let received = common::kafka::consume_all(cluster.broker(leader_index), topic, 1);
    assert_eq!(received.len(), sent.len());
    checker.read_all(&received);
    checker.assert_clean();
}

/// The leader is killed with SIGKILL after acknowledging records with acks=all: the
/// controller fences it and elects another ISR member, which serves every acknowledged record
/// (its high watermark catches up once the other survivor fetches from it) and takes new
/// acks=all records, replicated byte for byte to the remaining follower.
#[test]
fn a_new_leader_serves_every_acknowledged_record_after_kill_9() {
    let topic = "failover";
    let (mut cluster, old_index) = Cluster::start_replicated(ClusterOpts::default(), topic);
    let leader = Cluster::node_id(old_index);
    let mut checker = QueueChecker::new();
    let before = common::kafka::keyed_records(200, 5, 80);
    produce_checked(&cluster, old_index, topic, &before, &mut checker);
    cluster.broker_mut(old_index).kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old_index).collect();
    let new_leader = cluster.wait_leader(&survivors, topic, leader);
    let new_index = usize::try_from(new_leader - 1).unwrap();
    // More acks=all records through the new leader (ISR: the two survivors).
    let mut after = common::kafka::keyed_records(100, 5, 80);
    for r in &mut after {
        r.value.extend_from_slice(b"-after");
    }
    produce_checked(&cluster, new_index, topic, &after, &mut checker);
    let total = i64::try_from(before.len() + after.len()).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the new leader's high watermark",
        || common::kafka::watermarks(cluster.broker(new_index), topic, 1)[0].1 >= total,
    );
    checker.read_all(&common::kafka::consume_all(
        cluster.broker(new_index),
        topic,
        1,
    ));
    checker.assert_clean();
    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&dir(new_index));
    let follower = survivors.iter().copied().find(|i| *i != new_index).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the follower to hold the new leader's bytes",
        || segment_bytes(&dir(follower)) == leader_bytes,
    );
}

/// Produces `records` with acks=all to partition 0 through broker `index`, every one
/// acknowledged, and tells the checker (acknowledged in offset order: one stream).
fn produce_checked(
    cluster: &Cluster,
    index: usize,
    topic: &str,
    records: &[common::kafka::TestRecord],
    checker: &mut QueueChecker,
) {
    let producer = common::kafka::producer(cluster.broker(index), &[("acks", "all")]);
    for r in records {
        checker.sent(&r.value);
    }
    let deliveries = common::kafka::produce(&producer, topic, records, Some(0));
    let placed = common::kafka::assert_all_acked(&deliveries);
    let mut by_offset: Vec<(i64, usize)> = placed.iter().map(|(id, (_, o))| (*o, *id)).collect();
    by_offset.sort_unstable();
    assert_eq!(by_offset.len(), records.len(), "every record acknowledged");
    for (_, id) in by_offset {
        checker.acked(0, "p", &records[id].value);
    }
}

/// A follower that stops fetching (SIGSTOP) while its session is still alive leaves the ISR
/// through the leader's AlterPartition after `replica.lag.time.max.ms`, so acks=all produces
/// complete with the other two; once it runs again it catches up, the leader adds it back
/// (AlterPartition again) and its segments are the leader's bytes.
#[test]
fn a_stalled_follower_leaves_the_isr_and_rejoins_through_alter_partition() {
    let opts = ClusterOpts {
        // Fencing (session timeout) far later than the ISR shrink: only AlterPartition can
        // explain an ISR without the stalled broker while it is still listed.
        session_timeout_ms: 60_000,
        extra_toml: "\"replica.lag.time.max.ms\" = 2000\n".into(),
        ..ClusterOpts::default()
    };
    let topic = "stall";
    let (cluster, leader_index) = Cluster::start_replicated(opts, topic);
    let leader = Cluster::node_id(leader_index);
    let stalled = (leader_index + 1) % 3;
    let stalled_id = Cluster::node_id(stalled);
    let mut checker = QueueChecker::new();
    produce_checked(
        &cluster,
        leader_index,
        topic,
        &common::kafka::keyed_records(50, 3, 50),
        &mut checker,
    );
    cluster.broker(stalled).send_signal("-STOP");
    let mut during = common::kafka::keyed_records(50, 3, 50);
    for r in &mut during {
        r.value.extend_from_slice(b"-during");
    }
    produce_checked(&cluster, leader_index, topic, &during, &mut checker);
    // The leader's own Metadata reflects the committed change a moment after its answer.
    wait_until(
        Duration::from_secs(20),
        "the ISR without the stalled follower",
        || {
            cluster
                .registration(leader_index, topic)
                .is_some_and(|(l, _, isr)| l == leader && !isr.contains(&stalled_id))
        },
    );
    let listed: Vec<i32> = cluster
        .metadata(leader_index)
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect();
    assert!(
        listed.contains(&stalled_id),
        "still registered and unfenced ({listed:?}): the ISR shrank by AlterPartition"
    );
    cluster.broker(stalled).send_signal("-CONT");
    wait_until(
        Duration::from_secs(30),
        "the follower back in the ISR",
        || {
            cluster
                .registration(leader_index, topic)
                .is_some_and(|r| r.2.len() == 3)
        },
    );
    checker.read_all(&common::kafka::consume_all(
        cluster.broker(leader_index),
        topic,
        1,
    ));
    checker.assert_clean();
    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&dir(leader_index));
    wait_until(
        Duration::from_secs(20),
        "the rejoined follower's bytes",
        || segment_bytes(&dir(stalled)) == leader_bytes,
    );
}

/// Deleting a replicated topic while its followers fetch: every broker stays up (no fetcher
/// appends to a closed log), the data goes everywhere, and a topic of the same name starts
/// empty and replicates again.
#[test]
fn deleting_a_replicated_topic_stops_its_fetchers_first() {
    let topic = "doomed";
    let (mut cluster, leader_index) = Cluster::start_replicated(ClusterOpts::default(), topic);
    let mut checker = QueueChecker::new();
    let records = common::kafka::keyed_records(100, 3, 50);
    produce_checked(&cluster, leader_index, topic, &records, &mut checker);
    let admin = common::kafka::admin(cluster.broker(0));
    let deleted =
        common::block_on(admin.delete_topics(&[topic], &common::kafka::admin_opts())).unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    wait_until(
        Duration::from_secs(20),
        "the topic gone from every broker",
        || (0..3).all(|i| cluster.registration(i, topic).is_none()),
    );
    for i in 0..3 {
        assert!(
            cluster.broker_mut(i).is_running(),
            "broker {} still up",
            i + 1
        );
    }
    assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
    let leader = cluster.wait_leader(&[0, 1, 2], topic, -1);
    let leader_index = usize::try_from(leader - 1).unwrap();
    let mut checker = QueueChecker::new();
    produce_checked(&cluster, leader_index, topic, &records[..10], &mut checker);
    let received = common::kafka::consume_all(cluster.broker(leader_index), topic, 1);
    assert_eq!(
        received.len(),
        10,
        "the new topic holds only its own records"
    );
    checker.read_all(&received);
    checker.assert_clean();
}

/// Two shards per broker: the partitions of a topic spread over both shards of every broker
/// (each shard runs its own fetchers, follower fetches reach the owning shard of the leader),
/// acks=all completes on every partition and every replica holds the leader's bytes.
#[test]
fn replication_across_shards() {
    let topic = "sharded";
    let partitions = 4;
    let cluster = Cluster::start_sharded("", topic, partitions);
    let producer = common::kafka::producer(cluster.broker(0), &[("acks", "all")]);
    let records = common::kafka::keyed_records(400, 16, 40);
    let deliveries = common::kafka::produce(&producer, topic, &records, None);
    let placed = common::kafka::assert_all_acked(&deliveries);
    assert_eq!(placed.len(), records.len());
    let mut used: Vec<i32> = placed.values().map(|(p, _)| *p).collect();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() > 1, "records spread over partitions: {used:?}");
    for p in 0..partitions {
        let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-{p}"));
        let bytes: Vec<Vec<u8>> = (0..3).map(|i| segment_bytes(&dir(i))).collect();
        let longest = bytes.iter().map(Vec::len).max().unwrap();
        wait_until(
            Duration::from_secs(20),
            &format!("partition {p} identical on every replica"),
            || {
                let now: Vec<Vec<u8>> = (0..3).map(|i| segment_bytes(&dir(i))).collect();
                now.iter().all(|b| *b == now[0]) && now[0].len() >= longest
            },
        );
    }
}
