//! Replication control across three `sluice` processes (issue 11, control side): a controlled
//! shutdown (SIGTERM) moves leadership to other ISR members and out of every ISR before the
//! process exits (well before `broker.session.timeout.ms` could), with acks=all producers
//! carrying on without a failed delivery or a lost record; ElectLeaders (PREFERRED, UNCLEAN)
//! answers with Kafka's error codes and moves leadership back to the preferred replica; the
//! auto leader rebalance does so on its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::checker::QueueChecker;
use common::cluster::{topics_view, Cluster, ClusterOpts, TopicView};
use common::wait_until;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest,
    ElectLeadersResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// Far longer than any wait of these tests: only a controlled shutdown (not a session expiry)
/// can explain a leader moving off a stopped broker.
const SESSION_TIMEOUT_MS: u64 = 60_000;
/// How long after the process exited its partitions may still name it (metadata propagation
/// to the survivors only; the change itself is committed before the exit).
const PROPAGATION_BOUND: Duration = Duration::from_secs(5);

fn opts(extra: &str) -> ClusterOpts {
    ClusterOpts {
        session_timeout_ms: SESSION_TIMEOUT_MS,
        extra_toml: format!("\"default.replication.factor\" = 3\n{extra}"),
        ..ClusterOpts::default()
    }
}

/// (index, leader, leader epoch, replicas, ISR) of one partition.
type PartitionView = (i32, i32, i32, Vec<i32>, Vec<i32>);

/// The topic's partitions as broker `index` reports them: (index, leader, epoch, replicas, isr).
fn partitions(cluster: &Cluster, index: usize, topic: &str) -> Vec<PartitionView> {
    let view: Vec<TopicView> = topics_view(&cluster.metadata(index));
    view.into_iter()
        .find(|t| t.0 == topic)
        .map(|t| t.2)
        .unwrap_or_default()
}

/// Waits until every broker of `on` reports `count` partitions of `topic`, each with a leader
/// and a full ISR (all `replicas`), the same on every broker; returns that view.
fn wait_settled(cluster: &Cluster, on: &[usize], topic: &str, count: usize) -> Vec<PartitionView> {
    let mut settled = Vec::new();
    wait_until(
        Duration::from_secs(60),
        &format!("{topic}: every partition led with a full ISR, seen alike by {on:?}"),
        || {
            let views: Vec<_> = on.iter().map(|i| partitions(cluster, *i, topic)).collect();
            let full = views[0].len() == count
                && views[0].iter().all(|p| {
                    let mut isr = p.4.clone();
                    let mut replicas = p.3.clone();
                    isr.sort_unstable();
                    replicas.sort_unstable();
                    p.1 > 0 && replicas.len() == 3 && isr == replicas
                });
            settled = views[0].clone();
            full && views.iter().all(|v| *v == views[0])
        },
    );
    settled
}

/// CreateTopics v5 of one partition with replication factor `rf` at broker `index`: the code.
fn create_with_rf(cluster: &Cluster, index: usize, name: &str, rf: i16) -> i16 {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(1)
        .with_replication_factor(rf);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse = common::wire::call(
        cluster.broker(index).socket_addr(),
        ApiKey::CreateTopics,
        5,
        &request,
    );
    response.topics.first().map_or(-1, |t| t.error_code)
}

/// The sum of metric `name` over the brokers `on`.
fn metric_sum(cluster: &Cluster, on: &[usize], name: &str) -> f64 {
    on.iter()
        .map(|i| cluster.broker(*i).scrape().sum(name, &[]))
        .sum()
}

fn index_of(node_id: i32) -> usize {
    usize::try_from(node_id - 1).unwrap()
}

#[test]
fn controlled_shutdown_moves_leadership_before_the_broker_stops() {
    let mut cluster = Cluster::start(opts(""));
    let topic = "controlled";
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    let before = wait_settled(&cluster, &[0, 1, 2], topic, 3);
    let controller = cluster.controller_index(0).expect("an active controller");
    // The victim leads a partition and is not the active controller (the broker path, not a
    // controller failover, is under test).
    let victim_id = before
        .iter()
        .map(|p| p.1)
        .find(|l| index_of(*l) != controller)
        .expect("a leader that is not the controller");
    let victim = index_of(victim_id);
    let survivor = (0..3).find(|i| *i != victim).unwrap();
    let led: Vec<i32> = before
        .iter()
        .filter(|p| p.1 == victim_id)
        .map(|p| p.0)
        .collect();

    let producer = common::kafka::producer(
        cluster.broker(survivor),
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    let records = common::kafka::keyed_records(600, 12, 64);
    let mut checker = QueueChecker::new();
    for r in &records {
        checker.sent(&r.value);
    }
    let victim_broker = cluster.broker_mut(victim);
    let stop_took = std::thread::scope(|s| {
        let stopper = s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let started = Instant::now();
            victim_broker.stop();
            started.elapsed()
        });
        // Paced so that records are in flight before, during and after the shutdown.
        for r in &records {
            common::kafka::send_one(&producer, topic, r, None);
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(3));
        }
        stopper.join().unwrap()
    });
    let exited = Instant::now();
    let deliveries = common::kafka::flush_all(&producer, records.len());
    let placed = common::kafka::assert_all_acked(&deliveries);

    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    wait_until(
        PROPAGATION_BOUND,
        "the stopped broker out of every leadership and ISR on the survivors",
        || {
            survivors.iter().all(|i| {
                let view = partitions(&cluster, *i, topic);
                view.len() == 3
                    && view
                        .iter()
                        .all(|p| p.1 > 0 && p.1 != victim_id && !p.4.contains(&victim_id))
            })
        },
    );
    assert!(
        exited.elapsed() < Duration::from_millis(SESSION_TIMEOUT_MS),
        "moved by the controlled shutdown, not by a session expiry"
    );
    let log = cluster.broker(victim).log_text();
    assert!(
        log.contains("controlled shutdown: the controller fenced this broker"),
        "the controller acknowledged the controlled shutdown; log:\n{log}"
    );
    let after = partitions(&cluster, survivor, topic);
    for p in &led {
        let (old, new) = (&before[*p as usize], &after[*p as usize]);
        assert!(
            new.2 > old.2,
            "partition {p}: leader epoch bumped ({old:?} -> {new:?})"
        );
    }
    eprintln!("controlled shutdown of broker {victim_id} (led {led:?}) took {stop_took:?}");

    let mut acked: Vec<(i32, i64, usize)> =
        placed.iter().map(|(id, (p, o))| (*p, *o, *id)).collect();
    acked.sort_unstable();
    for (p, _, id) in &acked {
        checker.acked(*p, "p", &records[*id].value);
    }
    checker.read_all(&common::kafka::consume_all(
        cluster.broker(survivor),
        topic,
        3,
    ));
    let report = checker.report();
    assert!(report.is_clean(), "{report:?}");
    // Followers fetched the acknowledged records: replication bytes both ways on /metrics.
    let bytes_out = metric_sum(&cluster, &survivors, "sluice_replication_bytes_out_total");
    let bytes_in = metric_sum(&cluster, &survivors, "sluice_replication_bytes_in_total");
    let sent: usize = records.iter().map(|r| r.value.len()).sum();
    assert!(
        bytes_in >= sent as f64 / 3.0,
        "bytes in {bytes_in} for {sent} bytes produced"
    );
    assert!(
        bytes_out >= bytes_in / 2.0,
        "bytes out {bytes_out}, in {bytes_in}"
    );
}

/// The active controller itself stopping: its controlled shutdown still moves its leaderships
/// (committed by itself, or by the next controller), well before a session could expire.
#[test]
fn controlled_shutdown_of_the_active_controller() {
    let mut cluster = Cluster::start(opts(""));
    let topic = "controller-stops";
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    wait_settled(&cluster, &[0, 1, 2], topic, 3);
    let victim = cluster.controller_index(0).expect("an active controller");
    let victim_id = Cluster::node_id(victim);
    let started = Instant::now();
    cluster.broker_mut(victim).stop();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    wait_until(
        Duration::from_secs(15),
        "the stopped controller out of every leadership and ISR",
        || {
            survivors.iter().all(|i| {
                let view = partitions(&cluster, *i, topic);
                view.len() == 3
                    && view
                        .iter()
                        .all(|p| p.1 > 0 && p.1 != victim_id && !p.4.contains(&victim_id))
            })
        },
    );
    assert!(started.elapsed() < Duration::from_millis(SESSION_TIMEOUT_MS / 2));
    let producer = common::kafka::producer(cluster.broker(survivors[0]), &[]);
    let records = common::kafka::keyed_records(30, 3, 32);
    let delivered = common::kafka::produce(&producer, topic, &records, None);
    common::kafka::assert_all_acked(&delivered);
}

fn elect(
    cluster: &Cluster,
    index: usize,
    version: i16,
    kind: i8,
    topic: &str,
    parts: &[i32],
) -> ElectLeadersResponse {
    let request = ElectLeadersRequest::default()
        .with_election_type(kind)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(parts.to_vec())]))
        .with_timeout_ms(30_000);
    common::wire::call(
        cluster.broker(index).socket_addr(),
        ApiKey::ElectLeaders,
        version,
        &request,
    )
}

fn codes(response: &ElectLeadersResponse) -> Vec<(i32, i16)> {
    response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
        })
        .collect()
}

/// Stops (SIGTERM) a broker that is not the controller and starts it again; waits until it is
/// back in every ISR. Returns its node id and the partitions it is the preferred replica of.
fn bounce_a_preferred_leader(cluster: &mut Cluster, topic: &str) -> (i32, Vec<i32>) {
    let before = wait_settled(cluster, &[0, 1, 2], topic, 3);
    let controller = cluster.controller_index(0).expect("an active controller");
    let victim_id = before
        .iter()
        .map(|p| p.3[0])
        .find(|r| index_of(*r) != controller)
        .expect("a preferred replica that is not the controller");
    let preferred: Vec<i32> = before
        .iter()
        .filter(|p| p.3[0] == victim_id)
        .map(|p| p.0)
        .collect();
    cluster.broker_mut(index_of(victim_id)).stop();
    let survivor = (0..3).find(|i| *i != index_of(victim_id)).unwrap();
    wait_until(
        PROPAGATION_BOUND,
        "leadership moved off the stopped broker",
        || {
            partitions(cluster, survivor, topic)
                .iter()
                .all(|p| p.1 != victim_id && p.1 > 0)
        },
    );
    cluster.broker_mut(index_of(victim_id)).start_again();
    (victim_id, preferred)
}

#[test]
fn elect_leaders_moves_leadership_back_to_the_preferred_replica() {
    let mut cluster = Cluster::start(opts("\"auto.leader.rebalance.enable\" = false\n"));
    let topic = "preferred";
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    let (victim_id, preferred) = bounce_a_preferred_leader(&mut cluster, topic);
    let back = wait_settled(&cluster, &[0, 1, 2], topic, 3);
    for p in &preferred {
        assert_ne!(
            back[*p as usize].1, victim_id,
            "a returning broker leads nothing by itself"
        );
    }
    let controller = cluster.controller_index(0).expect("an active controller");
    let other = (0..3).find(|i| *i != controller).unwrap();
    // More replicas than brokers: INVALID_REPLICATION_FACTOR (38); as many: created.
    assert_eq!(create_with_rf(&cluster, controller, "rf4", 4), 38);
    assert_eq!(create_with_rf(&cluster, controller, "rf3", 3), 0);
    // Not the controller: forwarded to the active controller (Kafka's forwardToController;
    // `kafka-leader-election` sends it to any broker), which answers.
    let forwarded = elect(&cluster, other, 2, 1, topic, &[0, 1, 2]);
    assert_eq!(forwarded.error_code, 0);
    assert_eq!(codes(&forwarded), vec![(0, 84), (1, 84), (2, 84)]);
    // UNCLEAN for partitions that have a leader: ELECTION_NOT_NEEDED (84).
    let unclean = elect(&cluster, controller, 2, 1, topic, &[0, 1, 2]);
    assert_eq!(codes(&unclean), vec![(0, 84), (1, 84), (2, 84)]);
    // PREFERRED: the bounced broker's partitions elected (0), the others not needed (84), an
    // unknown partition UNKNOWN_TOPIC_OR_PARTITION (3).
    let answer = elect(&cluster, controller, 2, 0, topic, &[0, 1, 2, 7]);
    assert_eq!(answer.error_code, 0);
    let expected: Vec<(i32, i16)> = (0..3)
        .map(|p| (p, if preferred.contains(&p) { 0 } else { 84 }))
        .chain([(7, 3)])
        .collect();
    assert_eq!(codes(&answer), expected);
    wait_until(
        Duration::from_secs(10),
        "every partition led by its preferred replica",
        || (0..3).all(|i| partitions(&cluster, i, topic).iter().all(|p| p.1 == p.3[0])),
    );
    // Done: asking again is ELECTION_NOT_NEEDED everywhere; v0 too.
    let again = elect(&cluster, controller, 0, 0, topic, &[0, 1, 2]);
    assert_eq!(codes(&again), vec![(0, 84), (1, 84), (2, 84)]);
    // The new leader serves acks=all produce.
    let producer = common::kafka::producer(cluster.broker(index_of(victim_id)), &[]);
    let records = common::kafka::keyed_records(50, 5, 32);
    let delivered = common::kafka::produce(&producer, topic, &records, None);
    common::kafka::assert_all_acked(&delivered);
    check_log_dirs(&cluster, topic);
}

fn describe_log_dirs(
    cluster: &Cluster,
    index: usize,
    version: i16,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeLogDirsResponse {
    let topics = topics.map(|list| {
        list.into_iter()
            .map(|(name, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                    .with_partitions(partitions)
            })
            .collect()
    });
    let request = DescribeLogDirsRequest::default().with_topics(topics);
    common::wire::call(
        cluster.broker(index).socket_addr(),
        ApiKey::DescribeLogDirs,
        version,
        &request,
    )
}

/// DescribeLogDirs on every broker: one log dir holding the three replicas of `topic` (RF 3),
/// their sizes adding up to what was produced, no lag once replicated; a partition that does
/// not exist is left out; v4 adds the file system's total and usable bytes.
fn check_log_dirs(cluster: &Cluster, topic: &str) {
    for i in 0..3 {
        wait_until(
            Duration::from_secs(20),
            "every replica's bytes in its log dir",
            || {
                let r = describe_log_dirs(cluster, i, 4, Some(vec![(topic, vec![0, 1, 2, 99])]));
                assert_eq!((r.error_code, r.results.len()), (0, 1), "{r:?}");
                let dir = &r.results[0];
                assert!(
                    dir.total_bytes > 0
                        && dir.usable_bytes > 0
                        && dir.usable_bytes <= dir.total_bytes
                );
                assert_eq!(dir.topics.len(), 1);
                let parts = &dir.topics[0].partitions;
                let indexes: Vec<i32> = parts.iter().map(|p| p.partition_index).collect();
                assert_eq!(
                    indexes,
                    vec![0, 1, 2],
                    "partition 99 does not exist: left out"
                );
                assert!(parts.iter().all(|p| !p.is_future_key && p.offset_lag >= 0));
                parts.iter().map(|p| p.partition_size).sum::<i64>() >= 50 * 32
            },
        );
        let all = describe_log_dirs(cluster, i, 1, None);
        assert!(all.results[0]
            .topics
            .iter()
            .any(|t| t.name.0.as_str() == topic));
        assert_eq!(
            all.results[0].total_bytes, -1,
            "v1 has no total bytes (default -1)"
        );
    }
}

#[test]
fn auto_leader_rebalance_restores_preferred_leaders() {
    let mut cluster = Cluster::start(opts(
        // 0%: any imbalance counts (the internal topics' partitions, led by their preferred
        // replicas, would otherwise dilute one partition's imbalance below Kafka's 10%).
        "\"auto.leader.rebalance.enable\" = true\n\"leader.imbalance.check.interval.seconds\" = 1\n\
         \"leader.imbalance.per.broker.percentage\" = 0\n",
    ));
    let topic = "rebalanced";
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    let (victim_id, preferred) = bounce_a_preferred_leader(&mut cluster, topic);
    assert!(!preferred.is_empty());
    wait_until(
        Duration::from_secs(60),
        "the returning broker leads its preferred partitions again",
        || {
            (0..3).all(|i| {
                let view = partitions(&cluster, i, topic);
                view.len() == 3 && view.iter().all(|p| p.1 == p.3[0] && p.4.len() == 3)
            })
        },
    );
    let view = partitions(&cluster, 0, topic);
    for p in &preferred {
        assert_eq!(view[*p as usize].1, victim_id);
    }
}
