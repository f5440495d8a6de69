//! Forwarding (KIP-590) in a three-node KRaft cluster: a broker that is not the active
//! controller forwards the admin APIs to it in an Envelope carrying the client's principal,
//! the controller authorizes that principal (not the broker, not a super user), and the
//! forwarding broker answers once it applied the change itself. Metadata's controller id is a
//! random alive broker, as in Kafka.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::cluster::{leaders, Cluster, ClusterOpts};
use common::sasl::{create_user, listener, request, scram_login};
use common::wire;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice::security::scram::Mechanism;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
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
    let mut controller = None;
    common::wait_until(Duration::from_secs(30), "an active controller", || {
        controller = cluster.controller_index(0);
        controller.is_some()
    });
    let other = (controller.unwrap() + 1) % 3;
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
