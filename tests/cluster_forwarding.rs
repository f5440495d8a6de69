//! Forwarding (KIP-590) in a three-node KRaft cluster: a broker that is not the active
//! controller forwards the admin APIs to it in an Envelope carrying the client's principal,
//! the controller authorizes that principal (not the broker, not a super user), and the
//! forwarding broker answers once it applied the change itself. Metadata's controller id is a
//! random alive broker, as in Kafka. A controller change while a request is forwarded is not
//! the client's business: the broker retries against the new controller until
//! `request.timeout.ms`, then answers REQUEST_TIMED_OUT (Kafka's `ForwardingManager`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{leaders, Cluster, ClusterOpts};
use common::sasl::{create_user, listener, request, scram_login};
use common::split::SplitCluster;
use common::wire;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice::security::scram::Mechanism;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const REQUEST_TIMED_OUT: i16 = 7;
/// One forwarding attempt gives up on a silent controller after 1 s (default 30 s).
const SOCKET_TIMEOUT_TOML: &str = "\"controller.socket.timeout.ms\" = 1000\n";
/// Longer than any forwarded request of these tests may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(40);
// Kafka's wire codes (ResourceType, PatternType, AclOperation, AclPermissionType).
const TOPIC: i8 = 2;
const PREFIXED: i8 = 4;
const CREATE: i8 = 5;
const ALLOW: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn create_topic_request(name: &str) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(2)
            .with_replication_factor(-1)])
}

/// The active controller's index once there is one other than `not`.
fn active_controller(cluster: &Cluster, not: Option<usize>) -> usize {
    let mut controller = None;
    common::wait_until(Duration::from_secs(30), "an active controller", || {
        controller = cluster.controller_index(0).filter(|c| Some(*c) != not);
        controller.is_some()
    });
    controller.unwrap()
}

/// Creates `name` (two partitions) through broker `index` and waits until it lists it.
fn create_through(cluster: &Cluster, index: usize, name: &str) {
    let created: CreateTopicsResponse = cluster.call_retrying(
        Some(index),
        ApiKey::CreateTopics,
        5,
        &create_topic_request(name),
        |r: &CreateTopicsResponse| r.topics[0].error_code,
    );
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    common::wait_until(
        Duration::from_secs(30),
        "the broker lists the topic",
        || leaders(&cluster.metadata(index), name).len() == 2,
    );
}

/// A SCRAM-SHA-256 login on `addr`.
fn login(addr: SocketAddr, user: &str, password: &str) -> TcpStream {
    let mut stream = wire::connect(addr);
    stream.set_read_timeout(Some(wire::REPLY_TIMEOUT)).unwrap();
    let done = scram_login(&mut stream, Mechanism::Sha256, user, password);
    assert_eq!(done.error_code, 0, "{user} login: {done:?}");
    stream
}

#[test]
fn a_broker_that_is_not_the_controller_forwards_admin_requests_as_the_client() {
    let cluster = Cluster::start(ClusterOpts {
        extra_listeners: ",SASL_PLAINTEXT://127.0.0.1:0".into(),
        extra_toml: "\"authorizer.class.name\" = \
                     \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
                     \"super.users\" = \"User:ANONYMOUS\"\n"
            .into(),
        ..ClusterOpts::default()
    });
    let other = (active_controller(&cluster, None) + 1) % 3;
    let broker = cluster.broker(other);
    // Metadata's controller id: an alive broker (random, as Kafka's getRandomAliveBrokerId).
    for _ in 0..5 {
        let id = cluster.metadata(other).controller_id.0;
        assert!((1..=3).contains(&id), "controller id {id}");
    }
    // AlterUserScramCredentials (forwarded) by the PLAINTEXT super user; the forwarding
    // broker answers once it applied the credential, so alice logs in there at once.
    create_user(broker, "alice", "alice-secret", Mechanism::Sha256);
    let sasl = listener(broker, "SASL_PLAINTEXT");
    let mut alice = login(sasl, "alice", "alice-secret");
    // Forwarded as alice, the controller refuses: were the request run as the broker's
    // PLAINTEXT session (a super user here), it would pass.
    let refused: CreateTopicsResponse = request(
        &mut alice,
        ApiKey::CreateTopics,
        5,
        11,
        &create_topic_request("alice-refused"),
    )
    .expect("an answer");
    assert_eq!(refused.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    // CreateAcls (forwarded) by the super user lets alice create `alice-` topics.
    let acl = AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s("alice-"))
        .with_resource_pattern_type(PREFIXED)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(CREATE)
        .with_permission_type(ALLOW);
    let acls: CreateAclsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(vec![acl]),
    );
    assert_eq!(acls.results[0].error_code, 0, "{acls:?}");
    let created: CreateTopicsResponse = request(
        &mut alice,
        ApiKey::CreateTopics,
        5,
        12,
        &create_topic_request("alice-made"),
    )
    .expect("an answer");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    assert_eq!(created.topics[0].num_partitions, 2);
    // The forwarding broker answered once it applied the topic: it lists it at once.
    assert_eq!(leaders(&cluster.metadata(other), "alice-made").len(), 2);
    // The other admin APIs, through rdkafka's admin client bootstrapped on this broker only.
    let admin = common::kafka::admin(broker);
    let opts = common::kafka::admin_opts();
    common::block_on(admin.create_partitions(
        &[rdkafka::admin::NewPartitions::new("alice-made", 3)],
        &opts,
    ))
    .unwrap()
    .into_iter()
    .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    // rdkafka sends admin requests to Metadata's controller id, a random alive broker (as
    // Kafka's), which may not be `other`: wait for `other` to apply what that one answered.
    common::wait_until(
        Duration::from_secs(30),
        "3 partitions on the broker",
        || leaders(&cluster.metadata(other), "alice-made").len() == 3,
    );
    common::block_on(admin.delete_topics(&["alice-made"], &opts))
        .unwrap()
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    common::wait_until(
        Duration::from_secs(30),
        "the topic gone on the broker",
        || leaders(&cluster.metadata(other), "alice-made").is_empty(),
    );
}

/// B12: an admin request forwarded while the controller changes is answered by the new
/// controller, not NOT_CONTROLLER: first a controller that stops answering (SIGSTOP: the
/// broker's attempt waits out `controller.socket.timeout.ms`), then one that dies (kill -9,
/// under `sluice topic delete`, which exited 1 with NOT_CONTROLLER before).
#[test]
fn forwarded_admin_requests_outlive_controller_changes() {
    let mut cluster = Cluster::start(ClusterOpts {
        extra_toml: SOCKET_TIMEOUT_TOML.into(),
        ..ClusterOpts::default()
    });
    let controller = active_controller(&cluster, None);
    let other = (controller + 1) % 3;
    create_through(&cluster, other, "moving");
    cluster.broker(controller).send_signal("-STOP");
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("moving"))])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = wire::call_within(
        cluster.broker(other).socket_addr(),
        ApiKey::DeleteTopics,
        4,
        &request,
        ANSWER_WITHIN,
    );
    assert_eq!(deleted.responses[0].error_code, 0, "{deleted:?}");
    let next = active_controller(&cluster, Some(controller));
    cluster.broker(controller).send_signal("-CONT");

    // The CLI, bootstrapped on the broker that was a follower all along (the resumed one may
    // still take itself for the leader a moment), while the controller dies.
    let asked = (0..3).find(|i| *i != next && *i != controller).unwrap();
    create_through(&cluster, asked, "cli-moving");
    cluster.broker_mut(next).kill9();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["topic", "delete", "cli-moving", "--brokers"])
        .arg(cluster.broker(asked).addr())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sluice topic delete: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deleted"), "{stdout}");
    common::wait_until(Duration::from_secs(30), "the topic gone", || {
        leaders(&cluster.metadata(asked), "cli-moving").is_empty()
    });
}

/// Whether node `index` reports itself the active controller.
fn reports_active(cluster: &Cluster, index: usize) -> bool {
    cluster.brokers[index]
        .try_scrape(Duration::from_secs(2))
        .is_some_and(|m| m.sum("sluice_kraft_active_controller", &[]) == 1.0)
}

/// A CreateTopics that reached the active controller itself, which loses its leadership while
/// the proposal waits, is answered by the next controller, not NOT_CONTROLLER per topic (as
/// Kafka's broker side, which forwards to its own node's controller too and retries that
/// answer). The controller is cut off from the others (it still takes itself for the leader,
/// and its proposal cannot commit), the majority elects another, then the cut is healed: the
/// old controller's proposal is discarded.
#[test]
fn a_controller_that_loses_its_leadership_under_a_request_forwards_it() {
    let split = SplitCluster::start(ClusterOpts {
        extra_toml: SOCKET_TIMEOUT_TOML.into(),
        ..ClusterOpts::default()
    });
    let cluster = &split.cluster;
    let old = active_controller(cluster, None);
    split.isolate(old);
    let mut next = None;
    common::wait_until(
        Duration::from_secs(30),
        "a controller among the majority",
        || {
            next = (0..3).find(|i| *i != old && reports_active(cluster, *i));
            next.is_some()
        },
    );
    let next = next.unwrap();
    assert!(
        reports_active(cluster, old),
        "the cut-off controller stepped down by itself: the request would be forwarded"
    );
    let addr = split.client_addr(old);
    let asking = std::thread::spawn(move || {
        let answer: CreateTopicsResponse = wire::call_within(
            addr,
            ApiKey::CreateTopics,
            5,
            &create_topic_request("stranded"),
            ANSWER_WITHIN,
        );
        (answer, Instant::now())
    });
    // Time for the request to reach the cut-off controller's proposal, which cannot commit;
    // the answer coming after the heal below shows it waited there.
    std::thread::sleep(Duration::from_secs(1));
    let healed_at = Instant::now();
    split.heal();
    let (answer, answered_at) = asking.join().unwrap();
    assert!(
        answered_at > healed_at,
        "answered before the heal (the cut-off controller did not hold it): {answer:?}"
    );
    assert_eq!(answer.topics[0].error_code, 0, "{answer:?}");
    common::wait_until(
        Duration::from_secs(30),
        "the new controller lists the topic",
        || leaders(&cluster.metadata(next), "stranded").len() == 2,
    );
}

/// Without a controller quorum (two of three nodes stopped) a forwarded request is retried
/// until `request.timeout.ms`, then answered REQUEST_TIMED_OUT (Kafka's
/// `ForwardingManager.onTimeout`), not NOT_CONTROLLER at once.
#[test]
fn a_forwarded_request_without_a_controller_times_out() {
    let cluster = Cluster::start(ClusterOpts {
        extra_toml: format!("{SOCKET_TIMEOUT_TOML}\"request.timeout.ms\" = 2000\n"),
        ..ClusterOpts::default()
    });
    let controller = active_controller(&cluster, None);
    let (other, third) = ((controller + 1) % 3, (controller + 2) % 3);
    cluster.broker(controller).send_signal("-STOP");
    cluster.broker(third).send_signal("-STOP");
    let started = Instant::now();
    let answer: CreateTopicsResponse = wire::call_within(
        cluster.broker(other).socket_addr(),
        ApiKey::CreateTopics,
        5,
        &create_topic_request("orphan"),
        ANSWER_WITHIN,
    );
    let waited = started.elapsed();
    assert_eq!(answer.topics[0].error_code, REQUEST_TIMED_OUT, "{answer:?}");
    assert!(
        waited >= Duration::from_secs(2),
        "answered after {waited:?}"
    );
}
