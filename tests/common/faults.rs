//! Shared steps of the replication fault suites (`tests/replication_faults*.rs`): a 3-broker
//! cluster tuned for fast failure detection, an RF=3 topic with `min.insync.replicas=2`,
//! waits on the partition registrations every broker reports, and the final check that reads
//! every partition back into the queue checker.
//!
//! Invariants: every wait has a deadline and polls Metadata (never a fixed sleep); a leader is
//! only taken as elected once every broker asked names the same one.

use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};

use super::checker::QueueChecker;
use super::cluster::{topics_view, Cluster, ClusterOpts};
use super::load::{committed_offsets, GroupConsumer, ProduceReport, ProducerLoad};
use super::wait_until;

/// How long an election may take before a test fails (the measured bound is far lower and is
/// stated in docs/replication.md; this only keeps a broken election from hanging the suite).
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(45);

/// `broker.session.timeout.ms` of the fault clusters: how long a killed broker stays
/// registered, the floor of the failover time.
pub const SESSION_TIMEOUT_MS: u64 = 2_000;

/// A cluster for fault tests: 3 nodes (broker + controller), RF 3 everywhere (offsets topic
/// included, with few partitions so that a test cluster starts fast), sessions of
/// `SESSION_TIMEOUT_MS`, and `extra` TOML.
pub fn opts(extra: &str) -> ClusterOpts {
    ClusterOpts {
        session_timeout_ms: SESSION_TIMEOUT_MS,
        heartbeat_interval_ms: 200,
        extra_toml: format!(
            "\"default.replication.factor\" = 3\n\
             \"offsets.topic.replication.factor\" = 3\n\
             \"offsets.topic.num.partitions\" = 3\n{extra}"
        ),
        ..ClusterOpts::default()
    }
}

/// Creates `topic` (RF 3, `min.insync.replicas=2`) through the admin client (which sends
/// CreateTopics to the controller) and waits until every running broker names a leader and a
/// full ISR for every partition.
pub fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) {
    let admin = super::kafka::admin(cluster.broker(cluster.running()[0]));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let created = super::block_on(admin.create_topics(&[new], &super::kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    wait_full_isr(cluster, topic, partitions);
}

/// (leader, leader epoch, ISR) of every partition of `topic` as broker `index` reports it;
/// empty when it does not know the topic.
pub fn partitions(cluster: &Cluster, index: usize, topic: &str) -> Vec<(i32, i32, Vec<i32>)> {
    topics_view(&cluster.metadata(index))
        .into_iter()
        .find(|t| t.0 == topic)
        .map(|t| t.2.into_iter().map(|p| (p.1, p.2, p.4)).collect())
        .unwrap_or_default()
}

/// Waits until every running broker reports, for each of the `count` partitions, the same
/// live leader and an ISR of all three replicas.
pub fn wait_full_isr(cluster: &Cluster, topic: &str, count: i32) {
    let running = cluster.running();
    let expected = usize::try_from(count).unwrap_or(0);
    wait_views(
        cluster,
        &running,
        topic,
        &format!("{topic}: full ISR everywhere"),
        |views| {
            views[0].len() == expected
                && views.iter().all(|v| v == &views[0])
                && views[0].iter().all(|(l, _, isr)| *l > 0 && isr.len() == 3)
        },
    );
}

/// (leader, leader epoch, ISR) per partition, as one broker reports them.
type View = Vec<(i32, i32, Vec<i32>)>;

/// Polls the views of `topic` every broker of `on` reports until `done` holds for them;
/// past `ELECTION_TIMEOUT` panics with `what` and the last views (which broker disagreed,
/// which ISR stayed short).
fn wait_views(
    cluster: &Cluster,
    on: &[usize],
    topic: &str,
    what: &str,
    mut done: impl FnMut(&[View]) -> bool,
) {
    let deadline = Instant::now() + ELECTION_TIMEOUT;
    loop {
        let last: Vec<View> = on.iter().map(|i| partitions(cluster, *i, topic)).collect();
        if done(&last) {
            return;
        }
        let named: Vec<_> = on.iter().map(|i| Cluster::node_id(*i)).zip(&last).collect();
        assert!(
            Instant::now() < deadline,
            "timed out after {ELECTION_TIMEOUT:?}: {what}; last views (node, [(leader, epoch, isr)]): {named:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every broker of `on` names, for every partition, one same leader that is not
/// `dead` and is among `on`; answers how long that took from `since`.
pub fn wait_leaders_without(
    cluster: &Cluster,
    on: &[usize],
    topic: &str,
    dead: i32,
    since: Instant,
) -> Duration {
    let alive: Vec<i32> = on.iter().map(|i| Cluster::node_id(*i)).collect();
    wait_views(
        cluster,
        on,
        topic,
        &format!("{topic}: leaders other than {dead}"),
        |views| {
            !views[0].is_empty()
                && views.iter().all(|v| v == &views[0])
                && views[0]
                    .iter()
                    .all(|(l, _, _)| *l != dead && alive.contains(l))
        },
    );
    since.elapsed()
}

/// Waits until the high watermark of every partition passes the last acknowledged offset,
/// then reads every partition from offset 0 through broker `index` into the checker.
pub fn read_back(
    cluster: &Cluster,
    index: usize,
    topic: &str,
    count: i32,
    last_acked: &std::collections::BTreeMap<i32, i64>,
    checker: &mut QueueChecker,
) {
    let broker = cluster.broker(index);
    wait_until(
        ELECTION_TIMEOUT,
        &format!("{topic}: high watermarks past every acknowledged offset"),
        || {
            let marks = super::kafka::watermarks(broker, topic, count);
            last_acked.iter().all(|(p, o)| {
                usize::try_from(*p)
                    .ok()
                    .and_then(|p| marks.get(p))
                    .is_some_and(|(_, high)| high > o)
            })
        },
    );
    checker.read_all(&super::kafka::consume_all(broker, topic, count));
}

/// The last acknowledged offset per partition of `acked` ((partition, offset, value)).
pub fn last_offsets(acked: &[(i32, i64, Vec<u8>)]) -> std::collections::BTreeMap<i32, i64> {
    let mut last = std::collections::BTreeMap::new();
    for (p, o, _) in acked {
        let e = last.entry(*p).or_insert(*o);
        *e = (*e).max(*o);
    }
    last
}

/// The `.log` segment files of a partition directory, concatenated in name order.
pub fn segment_bytes(dir: &std::path::Path) -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap_or_default())
        .collect()
}

/// Waits until every broker's replica of every partition of `topic` holds the same bytes
/// (no divergent batch survived a fault; every replica caught up).
pub fn wait_identical_replicas(cluster: &Cluster, topic: &str, count: i32) {
    for p in 0..count {
        let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-{p}"));
        wait_until(
            ELECTION_TIMEOUT,
            &format!("{topic}-{p}: every replica holds the same bytes"),
            || {
                let bytes: Vec<Vec<u8>> = (0..cluster.brokers.len())
                    .map(|i| segment_bytes(&dir(i)))
                    .collect();
                !bytes[0].is_empty() && bytes.iter().all(|b| *b == bytes[0])
            },
        );
    }
}

/// The partitions of the fault suites' topics.
pub const PARTITIONS: i32 = 3;

/// Stops the load and the consumer, reads everything back and checks: nothing acknowledged
/// lost, duplicated or reordered; the consumer read everything acknowledged; the committed
/// offsets survived. Answers the produce report.
pub fn check_everything(
    cluster: &Cluster,
    bootstrap: &str,
    topic: &str,
    group: &str,
    (load, earlier): (ProducerLoad, &[ProduceReport]),
    consumer: GroupConsumer,
) -> ProduceReport {
    let produced = load.stop();
    let all: Vec<&ProduceReport> = earlier.iter().chain([&produced]).collect();
    for r in &all {
        assert!(
            r.failed.is_empty(),
            "deliveries failed (message.timeout.ms is far above any fault): {:?}",
            &r.failed[..r.failed.len().min(5)]
        );
    }
    let acked_values: Vec<(i32, i64, Vec<u8>)> =
        all.iter().flat_map(|r| r.acked.iter().cloned()).collect();
    let last = last_offsets(&acked_values);
    // The consumer catches up with everything acknowledged before it stops.
    let acked = acked_values.len();
    wait_until(
        Duration::from_secs(60),
        "the group consumer to read every acknowledged record",
        || consumer.read_count() >= acked,
    );
    let consumed = consumer.stop();
    let mut checker = QueueChecker::new();
    for r in &all {
        r.feed(&mut checker);
    }
    let index = cluster.running()[0];
    read_back(cluster, index, topic, PARTITIONS, &last, &mut checker);
    let report = checker.report();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.acked, acked);
    // What the group read is the log (same value at every offset), and covers every
    // acknowledged record.
    let mut group_checker = QueueChecker::new();
    for r in &all {
        r.feed(&mut group_checker);
    }
    consumed.feed(&mut group_checker);
    let group_report = group_checker.report();
    assert!(
        group_report.lost.is_empty() && group_report.unexpected.is_empty(),
        "group consumer: {group_report}"
    );
    let committed = committed_offsets(bootstrap, group, topic, PARTITIONS);
    assert!(!consumed.committed.is_empty(), "the consumer committed");
    for (p, o) in &consumed.committed {
        assert_eq!(
            committed.get(p),
            Some(o),
            "partition {p}: the group's last commit is kept ({committed:?})"
        );
    }
    wait_identical_replicas(cluster, topic, PARTITIONS);
    produced
}

/// A small xorshift generator seeded from the clock (printed, so a failure can be replayed
/// with `SLUICE_FAULT_SEED`): the random moments of the fault tests.
pub struct Random(u64);

impl Random {
    pub fn new(test: &str) -> Random {
        let seed = std::env::var("SLUICE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("{test}: SLUICE_FAULT_SEED={seed}");
        Random(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration in `[low, high)`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = u64::try_from((high - low).as_millis()).unwrap_or(1).max(1);
        low + Duration::from_millis(self.next() % span)
    }
}
