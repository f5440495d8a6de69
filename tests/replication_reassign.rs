//! Replica reassignment across three `sluice` processes (issue 11, KIP-455):
//! AlterPartitionReassignments moves an RF=2 partition from brokers {1,2} to {2,3} while an
//! idempotent acks=all producer keeps writing; ListPartitionReassignments shows it in progress
//! (replicas = union, adding, removing) while the new replica cannot catch up (SIGSTOP), then
//! nothing; the leader moves off the removed broker with a bumped epoch; the new replica's
//! segments are the old ones' bytes; the removed broker deletes its copy; nothing acknowledged
//! is lost. A cancel reverts, and bad requests get Kafka's error codes. Requests go to a
//! broker that may not be the active controller (forwarded, as Kafka does).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::checker::QueueChecker;
use common::cluster::{topics_view, Cluster, ClusterOpts};
use common::faults::segment_bytes;
use common::load::ProducerLoad;
use common::{wait_until, wire};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    CreateTopicsRequest, CreateTopicsResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// (partition, replicas, adding, removing) of a reassignment in progress.
type Ongoing = (i32, Vec<i32>, Vec<i32>, Vec<i32>);
const WAIT: Duration = Duration::from_secs(60);

fn opts() -> ClusterOpts {
    ClusterOpts {
        // Far above the tests' SIGSTOPs: a stopped broker stays registered (not fenced).
        session_timeout_ms: 60_000,
        extra_toml: "\"replica.lag.time.max.ms\" = 5000\n".into(),
        ..ClusterOpts::default()
    }
}

/// CreateTopics v5 of one partition on `replicas`, through broker 1 (forwarded).
fn create_on(cluster: &Cluster, topic: &str, replicas: &[i32]) {
    let assignment = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect());
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(wire::topic_name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![assignment])])
        .with_timeout_ms(10_000);
    let answer: CreateTopicsResponse = cluster.call_retrying(
        Some(0),
        ApiKey::CreateTopics,
        5,
        &request,
        |r: &CreateTopicsResponse| r.topics[0].error_code,
    );
    assert_eq!(answer.topics[0].error_code, 0, "{answer:?}");
}

/// AlterPartitionReassignments v0 of partition 0 of `topic` through broker `index`: the
/// partition's (error code, message).
fn alter(cluster: &Cluster, index: usize, topic: &str, target: Option<&[i32]>) -> (i16, String) {
    let partition = ReassignablePartition::default()
        .with_partition_index(0)
        .with_replicas(target.map(|t| t.iter().map(|b| BrokerId(*b)).collect()));
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(wire::topic_name(topic))
            .with_partitions(vec![partition])]);
    let answer: AlterPartitionReassignmentsResponse = cluster.call_retrying(
        Some(index),
        ApiKey::AlterPartitionReassignments,
        0,
        &request,
        |r: &AlterPartitionReassignmentsResponse| r.error_code,
    );
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let p = &answer.responses[0].partitions[0];
    let message = p
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (p.error_code, message)
}

/// ListPartitionReassignments v0 through broker `index`: (partition, replicas, adding,
/// removing) of `topic`'s reassignments in progress.
fn list(cluster: &Cluster, index: usize, topic: Option<&str>) -> Vec<Ongoing> {
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topic.map(|t| {
            vec![ListPartitionReassignmentsTopics::default()
                .with_name(wire::topic_name(t))
                .with_partition_indexes(vec![0])]
        }));
    let answer: ListPartitionReassignmentsResponse = cluster.call_retrying(
        Some(index),
        ApiKey::ListPartitionReassignments,
        0,
        &request,
        |r: &ListPartitionReassignmentsResponse| r.error_code,
    );
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    answer
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect()
}

/// (leader, leader epoch, replicas, ISR sorted) of partition 0 of `topic` at broker `index`.
fn registration(
    cluster: &Cluster,
    index: usize,
    topic: &str,
) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
    topics_view(&cluster.metadata(index))
        .into_iter()
        .find(|t| t.0 == topic)
        .and_then(|t| t.2.first().cloned())
        .map(|p| {
            let mut isr = p.4;
            isr.sort_unstable();
            (p.1, p.2, p.3, isr)
        })
}

/// Waits until every broker of `on` reports `replicas` with the full ISR and a leader.
fn wait_registered(cluster: &Cluster, on: &[usize], topic: &str, replicas: &[i32]) -> (i32, i32) {
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut seen = (0, 0);
    wait_until(
        WAIT,
        &format!("{topic}: replicas {replicas:?}, full ISR, on {on:?}"),
        || {
            on.iter().all(|i| match registration(cluster, *i, topic) {
                Some((leader, epoch, r, isr)) => {
                    seen = (leader, epoch);
                    leader > 0 && r == replicas && isr == sorted
                }
                None => false,
            })
        },
    );
    seen
}

/// The brokers of a test: (a, b) hold the partition first, `n` is the new one, never the
/// active controller (it is SIGSTOPped; a stopped controller would only slow the test down
/// with a re-election). Indexes; node ids are index + 1.
fn roles(cluster: &Cluster) -> (usize, usize, usize) {
    let mut controller = None;
    wait_until(WAIT, "an active controller", || {
        controller = cluster.controller_index(0);
        controller.is_some()
    });
    let controller = controller.unwrap();
    let n = (0..3).rev().find(|i| *i != controller).unwrap();
    let old: Vec<usize> = (0..3).filter(|i| *i != n).collect();
    (old[0], old[1], n)
}

fn id(index: usize) -> i32 {
    Cluster::node_id(index)
}

#[test]
fn reassignment_moves_a_partition_under_acks_all_load() {
    let cluster = Cluster::start(opts());
    let topic = "moved";
    let (a, b, n) = roles(&cluster);
    create_on(&cluster, topic, &[id(a), id(b)]);
    let (leader, epoch) = wait_registered(&cluster, &[0, 1, 2], topic, &[id(a), id(b)]);
    assert_eq!(leader, id(a), "the first replica leads");
    let load = ProducerLoad::start(
        &cluster.bootstrap(),
        topic,
        "s",
        Duration::from_millis(2),
        &[],
    );
    load.wait_acked_more(300, WAIT);

    // The new broker cannot catch up while stopped: the reassignment stays in progress.
    cluster.broker(n).send_signal("-STOP");
    assert_eq!(alter(&cluster, a, topic, Some(&[id(b), id(n)])).0, 0);
    let ongoing = vec![(0, vec![id(b), id(n), id(a)], vec![id(n)], vec![id(a)])];
    assert_eq!(list(&cluster, b, Some(topic)), ongoing);
    assert_eq!(list(&cluster, a, None), ongoing);
    load.wait_acked_more(200, WAIT);
    cluster.broker(n).send_signal("-CONT");

    let (leader, new_epoch) = wait_registered(&cluster, &[0, 1, 2], topic, &[id(b), id(n)]);
    assert_eq!(leader, id(b), "leadership left the removed broker");
    assert!(
        new_epoch > epoch,
        "leader epoch bumped: {epoch} -> {new_epoch}"
    );
    assert!(
        list(&cluster, n, None).is_empty(),
        "the reassignment completed"
    );
    load.wait_acked_more(300, WAIT);
    let produced = load.stop();
    assert!(
        produced.failed.is_empty(),
        "failed deliveries: {:?}",
        &produced.failed[..produced.failed.len().min(5)]
    );

    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    wait_until(WAIT, "the removed broker deleted its copy", || {
        !dir(a).exists()
    });
    wait_until(
        WAIT,
        "the new replica's segments are the leader's bytes",
        || {
            let (old, new) = (segment_bytes(&dir(b)), segment_bytes(&dir(n)));
            !old.is_empty() && old == new
        },
    );
    let mut checker = QueueChecker::new();
    produced.feed(&mut checker);
    let last = common::faults::last_offsets(&produced.acked);
    common::faults::read_back(&cluster, n, topic, 1, &last, &mut checker);
    let report = checker.report();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.acked, produced.acked.len());
}

#[test]
fn cancel_reverts_and_bad_requests_get_kafkas_codes() {
    let cluster = Cluster::start(opts());
    let topic = "cancelled";
    let (a, b, n) = roles(&cluster);
    create_on(&cluster, topic, &[id(a), id(b)]);
    let (_, epoch) = wait_registered(&cluster, &[0, 1, 2], topic, &[id(a), id(b)]);
    assert_eq!(
        alter(&cluster, a, topic, None).0,
        85,
        "NO_REASSIGNMENT_IN_PROGRESS"
    );
    assert_eq!(alter(&cluster, a, topic, Some(&[])).0, 39);
    let (code, message) = alter(&cluster, a, topic, Some(&[id(a), id(a)]));
    assert_eq!(code, 39, "INVALID_REPLICA_ASSIGNMENT: {message}");
    assert!(message.contains("more than once"), "{message}");
    let (code, message) = alter(&cluster, b, topic, Some(&[id(a), 9]));
    assert_eq!(code, 39, "{message}");
    assert!(message.contains("broker 9"), "{message}");
    assert_eq!(alter(&cluster, b, "no-such-topic", Some(&[1])).0, 3);

    cluster.broker(n).send_signal("-STOP");
    assert_eq!(alter(&cluster, a, topic, Some(&[id(a), id(n)])).0, 0);
    let ongoing = vec![(0, vec![id(a), id(n), id(b)], vec![id(n)], vec![id(b)])];
    assert_eq!(list(&cluster, b, Some(topic)), ongoing);
    assert_eq!(alter(&cluster, b, topic, None).0, 0, "cancelled");
    assert!(list(&cluster, a, None).is_empty());
    cluster.broker(n).send_signal("-CONT");
    // The resumed broker may still show the registration from before the move: ask the others.
    let (leader, new_epoch) = wait_registered(&cluster, &[a, b], topic, &[id(a), id(b)]);
    wait_until(WAIT, "the resumed broker caught up with the image", || {
        registration(&cluster, n, topic) == registration(&cluster, a, topic)
    });
    assert_eq!(leader, id(a));
    assert!(
        new_epoch > epoch,
        "a replica left: epoch bumped ({epoch} -> {new_epoch})"
    );
    assert_eq!(alter(&cluster, a, topic, None).0, 85);
    // It may have created its copy before the cancel; it deletes it once it applies the
    // image (as the removed broker of a completed move does, above).
    let dir = cluster.broker(n).data_dir().join(format!("{topic}-0"));
    wait_until(WAIT, "the new broker holds no copy", || !dir.exists());
}

/// IncrementalAlterConfigs v1 SET (value) or DELETE (None) of one resource, sent to broker
/// `index` (forwarded to the controller): the resource's error code.
fn set_configs(
    cluster: &Cluster,
    index: usize,
    resource: (i8, String),
    configs: &[(&str, Option<String>)],
) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let configs = configs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_config_operation(if v.is_some() { 0 } else { 1 })
                .with_value(v.clone().map(StrBytes::from_string))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource.0)
            .with_resource_name(StrBytes::from_string(resource.1))
            .with_configs(configs),
    ]);
    let answer: IncrementalAlterConfigsResponse = cluster.call_retrying(
        Some(index),
        ApiKey::IncrementalAlterConfigs,
        1,
        &request,
        |r: &IncrementalAlterConfigsResponse| r.responses[0].error_code,
    );
    answer.responses[0].error_code
}

const BROKER: i8 = 4;
const TOPIC: i8 = 2;

/// Writes `bytes` of records (1 KiB values, acks=all) to partition 0 of `topic`.
fn fill(cluster: &Cluster, leader: usize, topic: &str, bytes: usize) {
    let producer = common::kafka::producer(
        cluster.broker(leader),
        &[("acks", "all"), ("linger.ms", "5"), ("batch.size", "16384")],
    );
    let records = common::kafka::keyed_records(bytes / 1024, 4, 1024);
    let deliveries = common::kafka::produce(&producer, topic, &records, Some(0));
    common::kafka::assert_all_acked(&deliveries);
}

/// Reassigns `topic` from (a, b) to (b, n) and samples the bytes of n's copy every 50 ms
/// until the reassignment completed: (elapsed ms, bytes) samples.
fn move_and_sample(
    cluster: &Cluster,
    topic: &str,
    (a, b, n): (usize, usize, usize),
) -> Vec<(u128, u64)> {
    let dir = cluster.broker(n).data_dir().join(format!("{topic}-0"));
    let started = std::time::Instant::now();
    assert_eq!(alter(cluster, a, topic, Some(&[id(b), id(n)])).0, 0);
    let mut samples = Vec::new();
    wait_until(
        WAIT,
        &format!("{topic}: the reassignment completed"),
        || {
            let bytes = segment_bytes(&dir).len() as u64;
            samples.push((started.elapsed().as_millis(), bytes));
            let done =
                registration(cluster, a, topic).is_some_and(|(_, _, r, _)| r == [id(b), id(n)]);
            if !done {
                std::thread::sleep(Duration::from_millis(50));
            }
            done
        },
    );
    samples
}

/// The copy rate of a move, from the new replica's bytes over time: between the first sample
/// past the quota window's first allowance (`allowance` bytes) and the last one before the
/// end (bytes per second).
fn steady_rate(samples: &[(u128, u64)], allowance: u64) -> f64 {
    let total = samples.last().unwrap().1;
    let steady: Vec<&(u128, u64)> = samples
        .iter()
        .filter(|(_, bytes)| *bytes >= allowance && *bytes < total)
        .collect();
    assert!(steady.len() >= 5, "enough samples: {samples:?}");
    let (first, last) = (steady[0], steady[steady.len() - 1]);
    (last.1 - first.1) as f64 * 1000.0 / (last.0 - first.0) as f64
}

/// The copy rate of a whole move: all bytes over the time from the last empty sample to the
/// first full one (bytes per second).
fn copy_rate(samples: &[(u128, u64)]) -> f64 {
    let total = samples.last().unwrap().1;
    let start = samples
        .iter()
        .rev()
        .find(|(_, b)| *b == 0)
        .map_or(0, |s| s.0);
    let end = samples.iter().find(|(_, b)| *b == total).unwrap().0;
    total as f64 * 1000.0 / (end.saturating_sub(start).max(1)) as f64
}

/// Throttles one move: `rates` on every broker, the throttled replicas on the topic (as
/// `kafka-reassign-partitions --throttle` sets them), then moves it and answers the samples.
fn throttled_move(
    cluster: &Cluster,
    topic: &str,
    (a, b, n): (usize, usize, usize),
    rates: &[(&str, Option<String>)],
) -> Vec<(u128, u64)> {
    create_on(cluster, topic, &[id(a), id(b)]);
    wait_registered(cluster, &[0, 1, 2], topic, &[id(a), id(b)]);
    fill(cluster, a, topic, DATA);
    for broker in [a, b, n] {
        // Sent to the broker named, as Kafka's admin client does (a broker refuses another
        // node's resource, `ConfigAdminManager`); it forwards the change to the controller.
        let resource = (BROKER, id(broker).to_string());
        assert_eq!(set_configs(cluster, broker, resource, rates), 0);
    }
    let topic_throttle = [
        (
            "leader.replication.throttled.replicas",
            Some(format!("0:{},0:{}", id(a), id(b))),
        ),
        (
            "follower.replication.throttled.replicas",
            Some(format!("0:{}", id(n))),
        ),
    ];
    assert_eq!(
        set_configs(cluster, a, (TOPIC, topic.into()), &topic_throttle),
        0
    );
    move_and_sample(cluster, topic, (a, b, n))
}

const RATE: u64 = 400_000;
const DATA: usize = 2_000_000;

/// A reassignment throttled on the follower side, then one throttled on the leader side, copy
/// at about the set rate (measured from the new replica's bytes over time, past the quota
/// window's first allowance); the same move unthrottled is several times faster.
#[test]
fn a_throttled_reassignment_copies_at_the_set_rate() {
    let cluster = Cluster::start(ClusterOpts {
        session_timeout_ms: 60_000,
        extra_toml: "\"replication.quota.window.num\" = 2\n\
                     \"replica.fetch.max.bytes\" = 65536\n\
                     \"replica.fetch.wait.max.ms\" = 100\n"
            .into(),
        ..ClusterOpts::default()
    });
    let roles = roles(&cluster);
    create_on(&cluster, "free", &[id(roles.0), id(roles.1)]);
    wait_registered(&cluster, &[0, 1, 2], "free", &[id(roles.0), id(roles.1)]);
    fill(&cluster, roles.0, "free", DATA);
    let free = move_and_sample(&cluster, "free", roles);
    let free_ms = free.last().unwrap().0;
    let free_rate = copy_rate(&free);
    assert!(
        free_rate > 2.0 * RATE as f64,
        "unthrottled: {free_rate:.0} B/s, not much faster than {RATE}: {free:?}"
    );

    let rate = Some(RATE.to_string());
    let follower = throttled_move(
        &cluster,
        "follower-side",
        roles,
        &[("follower.replication.throttled.rate", rate.clone())],
    );
    let leader = throttled_move(
        &cluster,
        "leader-side",
        roles,
        &[
            ("follower.replication.throttled.rate", None),
            ("leader.replication.throttled.rate", rate.clone()),
        ],
    );
    for (side, samples) in [("follower", &follower), ("leader", &leader)] {
        let measured = steady_rate(samples, RATE);
        let took_ms = samples.last().unwrap().0;
        eprintln!("{side} throttle at {RATE} B/s: measured {measured:.0} B/s, move took {took_ms} ms (unthrottled {free_ms} ms); samples {samples:?}");
        let ratio = measured / RATE as f64;
        assert!(
            (0.5..=1.2).contains(&ratio),
            "{side}: {measured:.0} B/s against {RATE}: {samples:?}"
        );
        assert!(
            free_rate > 2.0 * measured,
            "{side}: unthrottled {free_rate:.0} B/s, throttled {measured:.0} B/s"
        );
    }
}
