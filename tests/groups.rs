//! Consumer groups end to end with librdkafka (rdkafka) group consumers: partition assignment
//! over three members and take-over when one leaves, commits surviving a broker restart,
//! auto-commit, independent groups, cooperative-sticky, static membership; plus raw-protocol
//! checks of the coordinator's error codes. Each test owns its broker.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use rdkafka::error::RDKafkaErrorCode;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::kafka::{self, CALL_TIMEOUT};
use common::{unique_name, wait_until, Broker, BrokerOpts};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Fast group timers so tests do not wait on Kafka's production defaults.
const BROKER_TOML: &str = r#"
"group.initial.rebalance.delay.ms" = 0
"group.min.session.timeout.ms" = 1000
"offsets.topic.num.partitions" = 8
"#;
const GROUP_TIMEOUT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 6;

fn broker() -> Broker {
    Broker::start(BrokerOpts::default().config(BROKER_TOML))
}

fn group_config(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = kafka::client_config(broker);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

/// Counts assignments and revocations seen by a consumer.
#[derive(Default, Clone)]
struct Counting {
    assigns: Arc<AtomicUsize>,
    revokes: Arc<AtomicUsize>,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigns.fetch_add(1, Ordering::SeqCst),
            Rebalance::Revoke(_) => self.revokes.fetch_add(1, Ordering::SeqCst),
            Rebalance::Error(_) => 0,
        };
    }
}

/// A group consumer polling on its own thread.
struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    seen: Arc<Mutex<Vec<(i32, i64)>>>,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    context: Counting,
}

impl Worker {
    /// `commit`: commit each message (sync) right after processing it.
    fn start(config: ClientConfig, topic: &str, commit: bool) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let context = Counting::default();
        let consumer: BaseConsumer<Counting> = config
            .create_with_context(context.clone())
            .unwrap_or_else(|e| panic!("consumer: {e}"));
        consumer
            .subscribe(&[topic])
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        let (stop2, seen2, assigned2) = (stop.clone(), seen.clone(), assigned.clone());
        let handle = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    seen2.lock().unwrap().push((m.partition(), m.offset()));
                    if commit {
                        // A commit racing a rebalance is refused (ILLEGAL_GENERATION,
                        // REBALANCE_IN_PROGRESS), as Kafka refuses it: like a real application,
                        // carry on; the record is simply read again by the next owner.
                        if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                            let code = e.rdkafka_error_code();
                            assert!(
                                matches!(
                                    code,
                                    Some(RDKafkaErrorCode::IllegalGeneration)
                                        | Some(RDKafkaErrorCode::RebalanceInProgress)
                                        | Some(RDKafkaErrorCode::UnknownMemberId)
                                ),
                                "commit: {e}"
                            );
                        }
                    }
                }
                if let Ok(list) = consumer.assignment() {
                    *assigned2.lock().unwrap() =
                        list.elements().iter().map(|e| e.partition()).collect();
                }
            }
            drop(consumer);
        });
        Worker {
            stop,
            handle: Some(handle),
            seen,
            assigned,
            context,
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<(i32, i64)> {
        self.seen.lock().unwrap().clone()
    }

    /// Closes the consumer (a dynamic member sends LeaveGroup).
    fn close(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join()
                .unwrap_or_else(|_| panic!("consumer thread panicked"));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn produce_n(broker: &Broker, topic: &str, count: usize) {
    let records = kafka::keyed_records(count, 60, 50);
    let producer = kafka::producer(broker, &[]);
    kafka::assert_all_acked(&kafka::produce(&producer, topic, &records, None));
}

/// Every partition is owned by exactly one worker.
fn partitions_split(workers: &[&Worker]) -> bool {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.assigned());
    }
    let unique: BTreeSet<i32> = all.iter().copied().collect();
    all.len() == PARTITIONS as usize && unique == (0..PARTITIONS).collect()
}

fn seen_union(workers: &[&Worker]) -> HashSet<(i32, i64)> {
    workers.iter().flat_map(|w| w.seen()).collect()
}

fn all_offsets(marks: &[(i64, i64)]) -> HashSet<(i32, i64)> {
    marks
        .iter()
        .enumerate()
        .flat_map(|(p, (lo, hi))| (*lo..*hi).map(move |o| (p as i32, o)))
        .collect()
}

/// The group's committed offsets (by asking as a member of it, without joining).
fn committed(broker: &Broker, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = group_config(broker, group, &[])
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    let list = consumer
        .committed_offsets(list, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("committed: {e}"));
    list.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), offset)
        })
        .collect()
}

#[test]
fn three_members_split_partitions_and_take_over_a_leaver() {
    let broker = broker();
    let topic = unique_name("grp-three");
    let group = unique_name("g-three");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    produce_n(&broker, &topic, 600);
    let mut workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(group_config(&broker, &group, &[]), &topic, true))
        .collect();
    wait_until(GROUP_TIMEOUT, "three members own all partitions", || {
        partitions_split(&workers.iter().collect::<Vec<_>>())
            && workers.iter().all(|w| !w.assigned().is_empty())
    });
    let mut third = workers.pop().unwrap_or_else(|| unreachable!());
    let moved = third.assigned();
    third.close();
    wait_until(GROUP_TIMEOUT, "two members take over", || {
        let rest: Vec<&Worker> = workers.iter().collect();
        partitions_split(&rest)
            && moved
                .iter()
                .all(|p| rest.iter().any(|w| w.assigned().contains(p)))
    });
    produce_n(&broker, &topic, 600);
    let marks = kafka::watermarks(&broker, &topic, PARTITIONS);
    let expected = all_offsets(&marks);
    wait_until(GROUP_TIMEOUT, "every message processed", || {
        let mut all: Vec<&Worker> = workers.iter().collect();
        all.push(&third);
        seen_union(&all).is_superset(&expected)
    });
    for w in &mut workers {
        w.close();
    }
    let committed = committed(&broker, &group, &topic);
    for (p, (_, hi)) in marks.iter().enumerate() {
        assert_eq!(
            committed.get(&(p as i32)),
            Some(hi),
            "partition {p} committed to its end"
        );
    }
}

#[test]
fn a_restarted_broker_resumes_from_committed_offsets() {
    let mut broker = broker();
    let topic = unique_name("grp-restart");
    let group = unique_name("g-restart");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    produce_n(&broker, &topic, 600);
    let mut first = Worker::start(group_config(&broker, &group, &[]), &topic, true);
    wait_until(GROUP_TIMEOUT, "some messages processed", || {
        first.seen().len() >= 250
    });
    first.close();
    let before = committed(&broker, &group, &topic);
    assert!(
        before.values().any(|o| *o > 0),
        "something was committed: {before:?}"
    );
    broker.restart();
    assert_eq!(
        committed(&broker, &group, &topic),
        before,
        "commits survive the restart"
    );
    let second = Worker::start(group_config(&broker, &group, &[]), &topic, true);
    let marks = kafka::watermarks(&broker, &topic, PARTITIONS);
    let remaining: usize = marks
        .iter()
        .enumerate()
        .map(|(p, (_, hi))| {
            (hi - before
                .get(&(p as i32))
                .copied()
                .filter(|o| *o >= 0)
                .unwrap_or(0)) as usize
        })
        .sum();
    wait_until(GROUP_TIMEOUT, "the rest is processed", || {
        second.seen().len() >= remaining
    });
    let seen = second.seen();
    assert_eq!(
        seen.len(),
        remaining,
        "nothing re-read beyond the last commit"
    );
    for (p, offset) in seen {
        let from = before.get(&p).copied().filter(|o| *o >= 0).unwrap_or(0);
        assert!(
            offset >= from,
            "partition {p}: offset {offset} was committed (from {from})"
        );
    }
}

#[test]
fn auto_commit_and_two_independent_groups() {
    let broker = broker();
    let topic = unique_name("grp-auto");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    produce_n(&broker, &topic, 300);
    let marks = kafka::watermarks(&broker, &topic, PARTITIONS);
    let expected = all_offsets(&marks);
    let auto = [
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
    ];
    let (ga, gb) = (unique_name("g-auto-a"), unique_name("g-auto-b"));
    let mut a = Worker::start(group_config(&broker, &ga, &auto), &topic, false);
    let mut b = Worker::start(group_config(&broker, &gb, &auto), &topic, false);
    wait_until(GROUP_TIMEOUT, "both groups read everything", || {
        seen_union(&[&a]).is_superset(&expected) && seen_union(&[&b]).is_superset(&expected)
    });
    let ends: BTreeMap<i32, i64> = marks
        .iter()
        .enumerate()
        .map(|(p, m)| (p as i32, m.1))
        .collect();
    wait_until(GROUP_TIMEOUT, "auto-commit reaches the end", || {
        committed(&broker, &ga, &topic) == ends
    });
    a.close();
    b.close();
    assert_eq!(committed(&broker, &gb, &topic), ends);
    // A new member of group A only gets what was produced after the commit.
    produce_n(&broker, &topic, 60);
    let again = Worker::start(group_config(&broker, &ga, &[]), &topic, false);
    wait_until(GROUP_TIMEOUT, "new messages read", || {
        again.seen().len() >= 60
    });
    assert!(
        again.seen().iter().all(|(p, o)| *o >= ends[p]),
        "group A re-read committed messages"
    );
}

#[test]
fn cooperative_sticky_group_splits_and_rebalances() {
    let broker = broker();
    let topic = unique_name("grp-coop");
    let group = unique_name("g-coop");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    produce_n(&broker, &topic, 300);
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = Worker::start(group_config(&broker, &group, &coop), &topic, true);
    wait_until(GROUP_TIMEOUT, "one member owns everything", || {
        partitions_split(&[&a])
    });
    let b = Worker::start(group_config(&broker, &group, &coop), &topic, true);
    wait_until(GROUP_TIMEOUT, "two members split", || {
        partitions_split(&[&a, &b]) && !b.assigned().is_empty() && !a.assigned().is_empty()
    });
    let expected = all_offsets(&kafka::watermarks(&broker, &topic, PARTITIONS));
    wait_until(GROUP_TIMEOUT, "everything processed", || {
        seen_union(&[&a, &b]).is_superset(&expected)
    });
}

#[test]
fn a_restarted_static_member_rejoins_without_a_rebalance() {
    let broker = broker();
    let topic = unique_name("grp-static");
    let group = unique_name("g-static");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    let config = |instance: &str| {
        group_config(
            &broker,
            &group,
            &[
                ("group.instance.id", instance),
                ("session.timeout.ms", "30000"),
            ],
        )
    };
    let mut a = Worker::start(config("static-a"), &topic, false);
    let b = Worker::start(config("static-b"), &topic, false);
    wait_until(GROUP_TIMEOUT, "two static members split", || {
        partitions_split(&[&a, &b]) && !a.assigned().is_empty() && !b.assigned().is_empty()
    });
    let a_partitions = a.assigned();
    // Counted from here: the initial joins may rebalance b once (whichever member joined first
    // got every partition), which is not what this test is about.
    let b_assigns = b.context.assigns.load(Ordering::SeqCst);
    let b_revokes = b.context.revokes.load(Ordering::SeqCst);
    a.close();
    let a2 = Worker::start(config("static-a"), &topic, false);
    wait_until(
        GROUP_TIMEOUT,
        "the restarted member gets its partitions back",
        || a2.assigned() == a_partitions,
    );
    assert_eq!(
        b.context.assigns.load(Ordering::SeqCst),
        b_assigns,
        "the other member saw no rebalance"
    );
    assert_eq!(b.context.revokes.load(Ordering::SeqCst), b_revokes);
}
