//! Three `sluice` processes as one KRaft cluster, from the clients' side: topics (and their
//! replicas) spread over all three brokers; a broker that does not lead a partition refuses it
//! with NOT_LEADER_OR_FOLLOWER and names the current leader (KIP-951) so clients re-route;
//! every broker names the same group coordinator, the broker leading the group's
//! `__consumer_offsets` partition, and the others answer NOT_COORDINATOR; rdkafka,
//! confluent-kafka and kafka-python produce to and consume from every partition through any
//! single bootstrap broker, with consumer groups coordinated by another broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;

use common::cluster::{Cluster, ClusterOpts, TopicView};
use common::{wait_until, wire};

const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// CreateTopics v5 through the active controller (retrying NOT_CONTROLLER as clients do).
fn create(cluster: &Cluster, topic: &str, partitions: i32, replication_factor: i16) -> i16 {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(wire::topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse = cluster.call_retrying(
        None,
        ApiKey::CreateTopics,
        5,
        &request,
        |r: &CreateTopicsResponse| r.topics[0].error_code,
    );
    response.topics[0].error_code
}

/// CreateTopics v5 of one topic with a manual assignment: (error code, message).
fn create_assigned(cluster: &Cluster, topic: &str, assignment: &[&[i32]]) -> (i16, String) {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    let assignments = (0..)
        .zip(assignment)
        .map(|(index, brokers)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(index)
                .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(wire::topic_name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(assignments)])
        .with_timeout_ms(10_000);
    let answer: CreateTopicsResponse = cluster.call_retrying(
        None,
        ApiKey::CreateTopics,
        5,
        &request,
        |r: &CreateTopicsResponse| r.topics[0].error_code,
    );
    let topic = &answer.topics[0];
    let message = topic
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (topic.error_code, message)
}

/// CreatePartitions v3 of one topic to `count` with assignments: (error code, message).
fn grow_assigned(
    cluster: &Cluster,
    topic: &str,
    count: i32,
    assignment: &[&[i32]],
) -> (i16, String) {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
    let assignments = assignment
        .iter()
        .map(|brokers| {
            CreatePartitionsAssignment::default()
                .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
        })
        .collect();
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(wire::topic_name(topic))
            .with_count(count)
            .with_assignments(Some(assignments))])
        .with_timeout_ms(10_000);
    let answer: CreatePartitionsResponse = cluster.call_retrying(
        None,
        ApiKey::CreatePartitions,
        3,
        &request,
        |r: &CreatePartitionsResponse| r.results[0].error_code,
    );
    let result = &answer.results[0];
    let message = result
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (result.error_code, message)
}

/// The leader of each partition of a view.
fn leaders(view: &TopicView) -> Vec<i32> {
    view.2.iter().map(|p| p.1).collect()
}

/// Index (0..3) of a broker that does not lead, and of the one that leads, partition `p`.
fn not_leader_and_leader(view: &TopicView, p: usize) -> (usize, usize) {
    let leader = usize::try_from(view.2[p].1 - 1).unwrap();
    ((leader + 1) % 3, leader)
}

/// A batch of one record, stamped now.
fn one_record() -> bytes::Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    storage::BatchBuilder::new(now_ms)
        .record(Some(b"k"), Some(b"v"), &[])
        .build()
        .freeze()
}

#[test]
fn partitions_spread_and_only_the_leader_serves_them() {
    let cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(create(&cluster, "spread3", 6, 3), 0);
    let view = cluster.wait_topic("spread3", 6);
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for (_, leader, epoch, replicas, isr) in &view.2 {
        assert_eq!(
            replicas.iter().collect::<BTreeSet<_>>().len(),
            3,
            "{view:?}"
        );
        assert_eq!(isr, replicas, "ISR = replicas at creation");
        assert_eq!(*leader, replicas[0], "the first replica leads");
        assert_eq!(*epoch, 0);
        *led.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        led,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders spread evenly"
    );
    assert_eq!(
        create(&cluster, "too-many-replicas", 1, 4),
        INVALID_REPLICATION_FACTOR
    );

    let (other, leader) = not_leader_and_leader(&view, 1);
    let leader_id = Cluster::node_id(leader);
    let leader_port = i32::from(cluster.broker(leader).socket_addr().port());
    let on_other = cluster.broker(other).socket_addr();

    // Produce v10: refused, with the current leader and its endpoint.
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(wire::topic_name("spread3"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(one_record()))])]);
    let answer: ProduceResponse = wire::call(on_other, ApiKey::Produce, 10, &produce);
    let partition = &answer.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(partition.current_leader.leader_id, BrokerId(leader_id));
    assert_eq!(partition.current_leader.leader_epoch, 0);
    assert_eq!(answer.node_endpoints.len(), 1);
    assert_eq!(answer.node_endpoints[0].node_id, BrokerId(leader_id));
    assert_eq!(answer.node_endpoints[0].port, leader_port);
    // The leader takes it, once it serves the partition it applied.
    assert_eq!(cluster.wait_leader_serving(leader, "spread3", 1), leader);
    let answer: ProduceResponse = wire::call(
        cluster.broker(leader).socket_addr(),
        ApiKey::Produce,
        10,
        &produce,
    );
    assert_eq!(
        answer.responses[0].partition_responses[0].error_code, 0,
        "produce on the leader: {answer:?}"
    );
    assert!(answer.node_endpoints.is_empty(), "{answer:?}");

    // Fetch v16: the same, by topic id.
    let topic_id = uuid::Uuid::parse_str(&view.1).unwrap();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(1)
                .with_partition_max_bytes(1 << 20)])]);
    let answer: FetchResponse = wire::call(on_other, ApiKey::Fetch, 16, &fetch);
    let partition = &answer.responses[0].partitions[0];
    assert_eq!(partition.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(partition.current_leader.leader_id, BrokerId(leader_id));
    assert_eq!(answer.node_endpoints[0].port, leader_port);

    // ListOffsets: refused too; on the leader it answers.
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(wire::topic_name("spread3"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(1)
                .with_timestamp(-1)])]);
    let code = |addr: SocketAddr| {
        let answer: ListOffsetsResponse = wire::call(addr, ApiKey::ListOffsets, 7, &list);
        answer.topics[0].partitions[0].error_code
    };
    assert_eq!(code(on_other), NOT_LEADER_OR_FOLLOWER);
    assert_eq!(code(cluster.broker(leader).socket_addr()), 0);
    // RF=3 and acks=1: the high watermark reaches the record once both followers fetched it
    // (Kafka's rule), a moment after the produce was answered.
    wait_until(
        Duration::from_secs(20),
        "the record below the high watermark",
        || {
            let answer: FetchResponse = wire::call(
                cluster.broker(leader).socket_addr(),
                ApiKey::Fetch,
                16,
                &fetch,
            );
            let partition = &answer.responses[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            assert!(partition.high_watermark <= 1, "one record produced");
            partition.high_watermark == 1
        },
    );
}

/// Metadata v12 for one topic, auto-creating it: the topic's error code.
fn auto_create(addr: SocketAddr, topic: &str) -> i16 {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(wire::topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    let answer: MetadataResponse = wire::call(addr, ApiKey::Metadata, 12, &request);
    answer.topics[0].error_code
}

#[test]
fn auto_created_topics_spread_whichever_broker_creates_them() {
    let cluster = Cluster::start(ClusterOpts {
        extra_toml: "\"num.partitions\" = 6\n\"default.replication.factor\" = 2\n".into(),
        ..ClusterOpts::default()
    });
    let controller = cluster.controller_index(0).expect("a controller");
    for (asked, topic) in [((controller + 1) % 3, "auto-off"), (controller, "auto-on")] {
        let addr = cluster.broker(asked).socket_addr();
        let code = auto_create(addr, topic);
        assert!(
            code == 0 || code == LEADER_NOT_AVAILABLE,
            "{topic} via broker {}: {code}",
            Cluster::node_id(asked)
        );
        let view = cluster.wait_topic(topic, 6);
        let hosts: BTreeSet<i32> = leaders(&view).into_iter().collect();
        assert_eq!(hosts, BTreeSet::from([1, 2, 3]), "{view:?}");
        assert!(view.2.iter().all(|p| p.3.len() == 2), "{view:?}");
        assert_eq!(auto_create(addr, topic), 0);
    }
}

/// FindCoordinator v3 for `group` asked of broker `index`: (error, node id, port).
fn find_coordinator(cluster: &Cluster, index: usize, group: &str) -> (i16, i32, i32) {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let addr = cluster.broker(index).socket_addr();
    let answer: FindCoordinatorResponse = wire::call(addr, ApiKey::FindCoordinator, 3, &request);
    (answer.error_code, answer.node_id.0, answer.port)
}

/// Waits until the offsets topic exists with a live leader for every partition everywhere.
fn wait_offsets_topic(cluster: &Cluster) -> TopicView {
    cluster.wait_topic(OFFSETS_TOPIC, 50)
}

/// A group name, with both per-library names derived from it, coordinated by another broker
/// than `bootstrap` (the same coordinator named by every broker).
fn group_away_from(cluster: &Cluster, bootstrap: usize) -> String {
    let away = |group: &str| {
        let answers: Vec<_> = (0..3)
            .map(|i| find_coordinator(cluster, i, group))
            .collect();
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{group}: {answers:?}"
        );
        assert_eq!(answers[0].0, 0, "{group}: {answers:?}");
        answers[0].1 != Cluster::node_id(bootstrap)
    };
    (0..1000)
        .map(|n| format!("routed-{bootstrap}-{n}"))
        .find(|g| away(&format!("{g}-confluent")) && away(&format!("{g}-kafka_python")))
        .expect("some group is coordinated elsewhere")
}

#[test]
fn group_coordinators_spread_and_others_answer_not_coordinator() {
    let cluster = Cluster::start(ClusterOpts::default());
    let offsets = wait_offsets_topic(&cluster);
    let coordinators: BTreeSet<i32> = leaders(&offsets).into_iter().collect();
    assert_eq!(
        coordinators,
        BTreeSet::from([1, 2, 3]),
        "__consumer_offsets partitions lead on every broker"
    );
    assert!(
        offsets.2.iter().all(|p| p.3.len() == 3),
        "offsets.topic.replication.factor 3"
    );
    // Coordinated by another broker than broker 1 (index 0).
    let group = format!("{}-confluent", group_away_from(&cluster, 0));
    let (_, coordinator, port) = find_coordinator(&cluster, 0, &group);
    let coordinator_index = usize::try_from(coordinator - 1).unwrap();
    assert_eq!(
        port,
        i32::from(cluster.broker(coordinator_index).socket_addr().port())
    );
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_static_str("nobody"));
    let code = |index: usize| {
        let addr = cluster.broker(index).socket_addr();
        let answer: HeartbeatResponse = wire::call(addr, ApiKey::Heartbeat, 4, &heartbeat);
        answer.error_code
    };
    assert_eq!(code(0), NOT_COORDINATOR, "bootstrap is not the coordinator");
    assert_ne!(code(coordinator_index), NOT_COORDINATOR);
}

#[test]
fn manual_assignments_are_kept_and_checked_as_kafka_does() {
    let cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(
        create_assigned(&cluster, "manual", &[&[3, 1], &[2, 3]]).0,
        0
    );
    let view = cluster.wait_topic("manual", 2);
    let placed: Vec<(i32, Vec<i32>, Vec<i32>)> = view
        .2
        .iter()
        .map(|p| (p.1, p.3.clone(), p.4.clone()))
        .collect();
    assert_eq!(
        placed,
        vec![(3, vec![3, 1], vec![3, 1]), (2, vec![2, 3], vec![2, 3])]
    );
    assert_eq!(grow_assigned(&cluster, "manual", 3, &[&[1, 2]]).0, 0);
    let view = cluster.wait_topic("manual", 3);
    assert_eq!((view.2[2].1, view.2[2].3.clone()), (1, vec![1, 2]));
    assert_eq!(
        grow_assigned(&cluster, "manual", 4, &[&[1, 9]]),
        (
            INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes broker 9, but no such broker is \
             registered."
                .to_owned()
        )
    );
    assert_eq!(
        grow_assigned(&cluster, "manual", 4, &[&[1]]).0,
        INVALID_REPLICA_ASSIGNMENT,
        "one replica where the others have two"
    );
    assert_eq!(
        create_assigned(&cluster, "twice", &[&[2, 2]]),
        (
            INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes the broker 2 more than once.".to_owned()
        )
    );
}

/// A three-broker cluster whose brokers register racks "a", "a" and "b".
fn racked_cluster() -> Cluster {
    Cluster::start_with(ClusterOpts::default(), |i| {
        let rack = if i < 2 { "a" } else { "b" };
        format!("\"broker.rack\" = \"{rack}\"\n")
    })
}

#[test]
fn racks_are_registered_answered_and_used_for_placement() {
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
    let cluster = racked_cluster();
    let racks: Vec<(i32, Option<String>)> = cluster
        .metadata(2)
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    let expected = vec![
        (1, Some("a".to_owned())),
        (2, Some("a".to_owned())),
        (3, Some("b".to_owned())),
    ];
    assert_eq!(racks, expected);
    let described: DescribeClusterResponse = wire::call(
        cluster.broker(0).socket_addr(),
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    );
    let racks: Vec<(i32, Option<String>)> = described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    assert_eq!(racks, expected);
    // Replication factor 2 over racks a (brokers 1, 2) and b (broker 3): every partition has
    // a replica in each rack, so broker 3 holds every partition.
    assert_eq!(create(&cluster, "racked", 6, 2), 0);
    let view = cluster.wait_topic("racked", 6);
    for (_, _, _, replicas, _) in &view.2 {
        assert!(replicas.contains(&3), "one replica in rack b: {view:?}");
        assert!(replicas.iter().any(|b| *b != 3), "one in rack a: {view:?}");
    }
}

fn python() -> String {
    std::env::var("PYTHON")
        .unwrap_or_else(|_| format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn clients_use_every_partition_through_any_bootstrap_broker() {
    let cluster = Cluster::start(ClusterOpts::default());
    wait_offsets_topic(&cluster);
    let script = format!(
        "{}/scripts/compat/cluster_clients.py",
        env!("CARGO_MANIFEST_DIR")
    );
    for bootstrap in 0..3 {
        let topic = format!("clients-{bootstrap}");
        assert_eq!(create(&cluster, &topic, 6, -1), 0);
        let view = cluster.wait_topic(&topic, 6);
        let hosts: BTreeSet<i32> = leaders(&view).into_iter().collect();
        assert_eq!(hosts, BTreeSet::from([1, 2, 3]), "{view:?}");
        let group = group_away_from(&cluster, bootstrap);
        let output = std::process::Command::new(python())
            .args([
                script.as_str(),
                &cluster.broker(bootstrap).addr(),
                &topic,
                "6",
                &group,
            ])
            .output()
            .unwrap_or_else(|e| panic!("run {} (make py-deps): {e}", python()));
        assert!(
            output.status.success(),
            "python clients via broker {}: {}\n{}",
            Cluster::node_id(bootstrap),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // rdkafka: produce through broker 1 only, read back through broker 3 only.
    assert_eq!(create(&cluster, "clients-rdkafka", 6, -1), 0);
    cluster.wait_topic("clients-rdkafka", 6);
    let records = common::kafka::keyed_records(60, 6, 20);
    let producer = common::kafka::producer(cluster.broker(0), &[]);
    for p in 0..6 {
        let chunk = &records[p * 10..(p + 1) * 10];
        let acked = common::kafka::produce(
            &producer,
            "clients-rdkafka",
            chunk,
            Some(i32::try_from(p).unwrap()),
        );
        common::kafka::assert_all_acked(&acked);
    }
    drop(producer);
    let received = common::kafka::consume_all(cluster.broker(2), "clients-rdkafka", 6);
    assert_eq!(received.len(), 60);
    let partitions: BTreeSet<i32> = received.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 6, "every partition read back");
}
