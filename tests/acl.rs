//! Authorization (ACLs) over real brokers: SCRAM users on a SASL_PLAINTEXT listener, ACLs
//! managed with CreateAcls/DescribeAcls/DeleteAcls, and the checks of Produce, Fetch,
//! Metadata, CreateTopics, DeleteTopics, FindCoordinator and OffsetCommit for an allowed user,
//! a refused one, a PREFIXED allow, a LITERAL deny that wins, and a super user. Also: without
//! an authorizer the ACL APIs answer SECURITY_DISABLED, ACLs survive a restart, and every
//! denial is logged on the audit target.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::{SocketAddr, TcpStream};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteAclsRequest,
    DeleteAclsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeAclsRequest, DescribeAclsResponse, ElectLeadersRequest,
    ElectLeadersResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice::security::scram::Mechanism;

use common::sasl::{create_user, listener, request, scram_login};
use common::wire;
use common::{Broker, BrokerOpts};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

// Kafka's wire codes (ResourceType, PatternType, AclOperation, AclPermissionType).
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const ANY: i8 = 1;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALTER: i8 = 7;
const ALTER_CONFIGS: i8 = 11;
const IDEMPOTENT_WRITE: i8 = 12;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// PLAINTEXT first (its `User:ANONYMOUS` is a super user, so the test sets up over it), then
/// SASL_PLAINTEXT for alice, bob and admin.
fn acl_broker() -> Broker {
    Broker::start(BrokerOpts::default().config(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"authorizer.class.name\" = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
         \"super.users\" = \"User:ANONYMOUS;User:admin\"\n",
    ))
}

/// A client logged in with SCRAM-SHA-256 on the SASL_PLAINTEXT listener.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    fn login(broker: &Broker, user: &str) -> Client {
        let addr: SocketAddr = listener(broker, "SASL_PLAINTEXT");
        let mut stream = wire::connect(addr);
        // Requests here are answered, not refused: wait as long as a loaded machine may need
        // (SCRAM's PBKDF2 and the controller's broadcasts in a debug build), not wire's 200 ms.
        stream
            .set_read_timeout(Some(wire::REPLY_TIMEOUT))
            .unwrap_or_else(|e| panic!("set_read_timeout: {e}"));
        let done = scram_login(&mut stream, Mechanism::Sha256, user, &pw(user));
        assert_eq!(done.error_code, 0, "{user} login: {done:?}");
        Client {
            stream,
            correlation_id: 100,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation_id += 1;
        request(&mut self.stream, key, version, self.correlation_id, req)
            .unwrap_or_else(|| panic!("{key:?} answered"))
    }
}

fn pw(user: &str) -> String {
    format!("{user}-secret")
}

fn creation(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pt)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

fn create_acls(addr: SocketAddr, creations: Vec<AclCreation>) -> Vec<i16> {
    let resp: CreateAclsResponse = wire::call(
        addr,
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(creations),
    );
    resp.results.iter().map(|r| r.error_code).collect()
}

fn describe_filter(principal: Option<&str>) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn create_topic<F: FnMut(&CreateTopicsRequest) -> CreateTopicsResponse>(
    mut call: F,
    name: &str,
) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    call(&req).topics[0].error_code
}

fn produce(client: &mut Client, topic: &str) -> i16 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let records = storage::BatchBuilder::new(now_ms)
        .record(Some(b"k"), Some(b"v"), &[])
        .build()
        .freeze();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    resp.responses[0].partition_responses[0].error_code
}

fn fetch(client: &mut Client, topic: &str) -> i16 {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    resp.responses[0].partitions[0].error_code
}

/// A Fetch v12 in a session (`topic` None: an incremental fetch naming nothing); returns the
/// session id and the error of the first partition answered, if any.
fn fetch_session(
    client: &mut Client,
    session_id: i32,
    epoch: i32,
    topic: Option<&str>,
) -> (i32, Option<i16>) {
    let topics = topic
        .map(|t| {
            vec![FetchTopic::default()
                .with_topic(TopicName(s(t)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]
        })
        .unwrap_or_default();
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics);
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    let code = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code);
    (resp.session_id, code)
}

fn metadata_all(client: &mut Client) -> Vec<String> {
    let all = MetadataRequest::default().with_topics(None);
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &all);
    let mut names: Vec<String> = resp
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names
}

fn metadata_one(client: &mut Client, topic: &str) -> (i16, i32) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))
        ]))
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(true);
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req);
    (
        resp.topics[0].error_code,
        resp.topics[0].topic_authorized_operations,
    )
}

fn find_coordinator(client: &mut Client, group: &str) -> i16 {
    let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)]);
    let resp: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &req);
    resp.coordinators[0].error_code
}

fn commit(client: &mut Client, group: &str, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    let resp: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &req);
    resp.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of one partition: (partition error, committed offset).
fn offset_fetch(client: &mut Client, group: &str, topic: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(resp.error_code, 0, "{resp:?}");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

fn delete_topic(client: &mut Client, topic: &str) -> i16 {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![TopicName(s(topic))]);
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &req);
    resp.responses[0].error_code
}

/// DeleteRecords, CreatePartitions (to 2 partitions) and ElectLeaders error codes.
fn admin_calls(client: &mut Client, topic: &str) -> (i16, i16, i16) {
    let records: DeleteRecordsResponse = client.call(
        ApiKey::DeleteRecords,
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(0)])]),
    );
    let partitions: CreatePartitionsResponse = client.call(
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_count(2)
                .with_assignments(None)]),
    );
    let elect: ElectLeadersResponse = client.call(
        ApiKey::ElectLeaders,
        2,
        &ElectLeadersRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![0])])),
    );
    (
        records.topics[0].partitions[0].error_code,
        partitions.results[0].error_code,
        elect.error_code,
    )
}

#[test]
fn acls_allow_deny_prefixed_and_super_users_across_the_apis() {
    let mut broker = acl_broker();
    let plain = broker.socket_addr();
    for user in ["alice", "bob", "admin"] {
        create_user(&broker, user, &pw(user), Mechanism::Sha256);
    }
    // alice: everything on app-* (PREFIXED), but WRITE on app-ro denied (LITERAL DENY wins);
    // READ on group g. bob: nothing. One invalid binding (CLUSTER must be kafka-cluster).
    let codes = create_acls(
        plain,
        vec![
            creation(TOPIC, "app-", PREFIXED, "User:alice", ALL, ALLOW),
            creation(TOPIC, "app-ro", LITERAL, "User:alice", WRITE, DENY),
            creation(GROUP, "g", LITERAL, "User:alice", READ, ALLOW),
            creation(
                CLUSTER,
                "not-the-cluster",
                LITERAL,
                "User:alice",
                ALTER,
                ALLOW,
            ),
        ],
    );
    assert_eq!(codes, vec![0, 0, 0, INVALID_REQUEST]);

    let described: DescribeAclsResponse = wire::call(
        plain,
        ApiKey::DescribeAcls,
        3,
        &describe_filter(Some("User:alice")),
    );
    assert_eq!(described.error_code, 0);
    let count: usize = described.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 3, "{described:?}");

    let mut alice = Client::login(&broker, "alice");
    let mut bob = Client::login(&broker, "bob");
    let mut admin = Client::login(&broker, "admin");

    // CreateTopics: alice's ALL implies CREATE on app-*; bob has nothing; admin is super.
    assert_eq!(
        create_topic(|r| alice.call(ApiKey::CreateTopics, 5, r), "app-1"),
        0
    );
    assert_eq!(
        create_topic(|r| bob.call(ApiKey::CreateTopics, 5, r), "app-2"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        create_topic(|r| alice.call(ApiKey::CreateTopics, 5, r), "other"),
        TOPIC_AUTHORIZATION_FAILED,
        "outside the prefix"
    );
    assert_eq!(
        create_topic(|r| admin.call(ApiKey::CreateTopics, 5, r), "app-ro"),
        0
    );
    assert_eq!(
        create_topic(|r| admin.call(ApiKey::CreateTopics, 5, r), "app-del"),
        0
    );

    // Produce / Fetch.
    assert_eq!(produce(&mut alice, "app-1"), 0);
    assert_eq!(produce(&mut bob, "app-1"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        produce(&mut alice, "app-ro"),
        TOPIC_AUTHORIZATION_FAILED,
        "deny wins"
    );
    assert_eq!(produce(&mut admin, "app-ro"), 0, "super user");
    assert_eq!(fetch(&mut alice, "app-1"), 0);
    assert_eq!(fetch(&mut alice, "app-ro"), 0, "the deny is WRITE only");
    assert_eq!(fetch(&mut bob, "app-1"), TOPIC_AUTHORIZATION_FAILED);

    // Metadata: only the topics the principal may DESCRIBE.
    assert_eq!(metadata_all(&mut alice), vec!["app-1", "app-del", "app-ro"]);
    assert!(metadata_all(&mut bob).is_empty());
    let everything = metadata_all(&mut admin);
    assert!(
        ["app-1", "app-del", "app-ro"]
            .iter()
            .all(|t| everything.iter().any(|e| e == t)),
        "{everything:?}"
    );
    assert_eq!(
        metadata_one(&mut bob, "app-1").0,
        TOPIC_AUTHORIZATION_FAILED
    );
    let (code, ops) = metadata_one(&mut alice, "app-ro");
    assert_eq!(code, 0);
    assert_eq!(ops & (1 << READ), 1 << READ, "READ in {ops:b}");
    assert_eq!(ops & (1 << WRITE), 0, "WRITE denied in {ops:b}");

    // Groups: FindCoordinator needs GROUP DESCRIBE (implied by READ), OffsetCommit GROUP READ
    // and TOPIC READ.
    assert_eq!(find_coordinator(&mut alice, "g"), 0);
    assert_eq!(find_coordinator(&mut bob, "g"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(commit(&mut alice, "g", "app-1"), 0);
    assert_eq!(commit(&mut bob, "g", "app-1"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(
        commit(&mut alice, "g2", "app-1"),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(commit(&mut alice, "g", "other"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(offset_fetch(&mut alice, "g", "app-1"), (0, 1));
    assert_eq!(
        offset_fetch(&mut alice, "g", "other"),
        (TOPIC_AUTHORIZATION_FAILED, -1)
    );

    // DeleteRecords needs TOPIC DELETE, CreatePartitions TOPIC ALTER, ElectLeaders CLUSTER ALTER.
    let (records, partitions, elect) = admin_calls(&mut bob, "app-1");
    assert_eq!(records, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(partitions, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(elect, CLUSTER_AUTHORIZATION_FAILED);
    let (records, partitions, elect) = admin_calls(&mut alice, "app-1");
    assert_eq!(
        (records, partitions),
        (0, 0),
        "ALL on app-* implies DELETE and ALTER"
    );
    assert_eq!(elect, CLUSTER_AUTHORIZATION_FAILED);

    // DeleteTopics.
    assert_eq!(
        delete_topic(&mut bob, "app-del"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(delete_topic(&mut alice, "app-del"), 0);

    // The ACL APIs need CLUSTER DESCRIBE / ALTER.
    let refused: DescribeAclsResponse = bob.call(ApiKey::DescribeAcls, 3, &describe_filter(None));
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let refused: CreateAclsResponse = bob.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default()
            .with_creations(vec![creation(TOPIC, "*", LITERAL, "User:bob", ALL, ALLOW)]),
    );
    assert_eq!(refused.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);

    // DeleteAcls removes the deny; alice may then write app-ro.
    let deny_filter = DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s("app-ro")))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(Some(s("User:alice")))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(DENY);
    let deleted: DeleteAclsResponse = admin.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![deny_filter]),
    );
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(produce(&mut alice, "app-ro"), 0);

    // Every denial is audited.
    let log = broker.log_text();
    assert!(
        log.lines().any(|l| l.contains("sluice::audit")
            && l.contains("authorization denied")
            && l.contains("User:bob")),
        "no audit line for bob"
    );

    // A fetch session opened while allowed is re-checked at each incremental fetch: revoking
    // the PREFIXED allow refuses the partition the session carries.
    let (session_id, code) = fetch_session(&mut alice, 0, 0, Some("app-1"));
    assert_eq!(code, Some(0));
    assert_ne!(session_id, 0, "a session was created");
    let prefixed = DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s("app-")))
        .with_pattern_type_filter(PREFIXED)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let deleted: DeleteAclsResponse = admin.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![prefixed]),
    );
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    let (_, code) = fetch_session(&mut alice, session_id, 1, None);
    assert_eq!(code, Some(TOPIC_AUTHORIZATION_FAILED));

    // ACLs persist: after a restart the remaining one is there.
    broker.restart();
    let after: DescribeAclsResponse = wire::call(
        broker.socket_addr(),
        ApiKey::DescribeAcls,
        3,
        &describe_filter(None),
    );
    let count: usize = after.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 1, "{after:?}");
}

fn init_producer_id(client: &mut Client) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    resp.error_code
}

fn list_config_resources(client: &mut Client) -> i16 {
    let resp: ListConfigResourcesResponse = client.call(
        ApiKey::ListConfigResources,
        1,
        &ListConfigResourcesRequest::default(),
    );
    resp.error_code
}

/// InitProducerId without a transactional id: CLUSTER IDEMPOTENT_WRITE or WRITE on any topic
/// (Kafka 3+, `authorizeByResourceType`); ListConfigResources: CLUSTER DESCRIBE_CONFIGS.
#[test]
fn idempotent_producers_and_config_listing_need_kafkas_acls() {
    let broker = acl_broker();
    let plain = broker.socket_addr();
    for user in ["alice", "bob", "carol", "dave", "admin"] {
        create_user(&broker, user, &pw(user), Mechanism::Sha256);
    }
    let codes = create_acls(
        plain,
        vec![
            creation(TOPIC, "app-", PREFIXED, "User:alice", WRITE, ALLOW),
            creation(
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:carol",
                IDEMPOTENT_WRITE,
                ALLOW,
            ),
            creation(
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:carol",
                ALTER_CONFIGS,
                ALLOW,
            ),
            creation(TOPIC, "app-", PREFIXED, "User:dave", WRITE, ALLOW),
            creation(TOPIC, "ap", PREFIXED, "User:dave", WRITE, DENY),
        ],
    );
    assert_eq!(codes, vec![0; 5]);
    let mut alice = Client::login(&broker, "alice");
    let mut bob = Client::login(&broker, "bob");
    let mut carol = Client::login(&broker, "carol");
    let mut dave = Client::login(&broker, "dave");
    let mut admin = Client::login(&broker, "admin");
    assert_eq!(init_producer_id(&mut alice), 0, "WRITE on some topic");
    assert_eq!(init_producer_id(&mut carol), 0, "CLUSTER IDEMPOTENT_WRITE");
    assert_eq!(init_producer_id(&mut admin), 0, "super user");
    assert_eq!(init_producer_id(&mut bob), CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        init_producer_id(&mut dave),
        CLUSTER_AUTHORIZATION_FAILED,
        "the prefixed DENY on ap covers the ALLOW on app-"
    );
    assert_eq!(
        list_config_resources(&mut carol),
        0,
        "ALTER_CONFIGS implies DESCRIBE_CONFIGS"
    );
    assert_eq!(list_config_resources(&mut admin), 0);
    assert_eq!(
        list_config_resources(&mut alice),
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert!(broker
        .log_text()
        .contains("authorization denied (and no WRITE on any topic) principal=User:bob"));
}

#[test]
fn without_an_authorizer_acl_apis_answer_security_disabled_and_all_is_allowed() {
    let broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    let codes = create_acls(
        addr,
        vec![creation(TOPIC, "t", LITERAL, "User:*", ALL, DENY)],
    );
    assert_eq!(codes, vec![SECURITY_DISABLED]);
    let described: DescribeAclsResponse =
        wire::call(addr, ApiKey::DescribeAcls, 3, &describe_filter(None));
    assert_eq!(described.error_code, SECURITY_DISABLED);
    let deleted: DeleteAclsResponse = wire::call(
        addr,
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(ANY)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(ANY)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(ANY)
            .with_permission_type(ANY)]),
    );
    assert_eq!(deleted.filter_results[0].error_code, SECURITY_DISABLED);
    let created: CreateTopicsResponse = wire::call(
        addr,
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s("t")))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0, "everything allowed");
}

/// A data directory written before ACLs and SCRAM credentials were metadata records
/// (`__cluster/acls.toml`, `__cluster/scram_credentials.toml`) is adopted: its user logs in,
/// its ACL is described and enforced, the old files are kept as `*.migrated`, and the records
/// survive a further restart.
#[test]
fn acls_and_scram_users_of_an_old_data_dir_are_adopted() {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let mut broker = acl_broker();
    broker.stop();
    let cluster = broker.data_dir().join("__cluster");
    std::fs::create_dir_all(&cluster).unwrap();
    let c = sluice::security::scram::Credential::from_password(
        Mechanism::Sha256,
        &pw("carol"),
        b"old-salt",
        4096,
    );
    std::fs::write(
        cluster.join("scram_credentials.toml"),
        format!(
            "[[credential]]\nuser = \"carol\"\nmechanism = \"SCRAM-SHA-256\"\nsalt = \"{}\"\n\
             stored_key = \"{}\"\nserver_key = \"{}\"\niterations = 4096\n",
            B64.encode(&c.salt),
            B64.encode(&c.stored_key),
            B64.encode(&c.server_key)
        ),
    )
    .unwrap();
    std::fs::write(
        cluster.join("acls.toml"),
        format!(
            "[[acl]]\nresource_type = {TOPIC}\nresource_name = \"old-\"\npattern_type = {PREFIXED}\n\
             principal = \"User:carol\"\nhost = \"*\"\noperation = {WRITE}\npermission = {ALLOW}\n"
        ),
    )
    .unwrap();
    broker.start_again();
    assert!(cluster.join("acls.toml.migrated").exists());
    assert!(cluster.join("scram_credentials.toml.migrated").exists());
    assert!(!cluster.join("acls.toml").exists());
    assert!(cluster.join("security.json").exists());
    let check = |broker: &Broker| {
        let described: DescribeAclsResponse = wire::call(
            broker.socket_addr(),
            ApiKey::DescribeAcls,
            3,
            &describe_filter(Some("User:carol")),
        );
        assert_eq!(described.resources.len(), 1, "{described:?}");
        // Logins land on either shard: each reads the credential from its own image.
        for _ in 0..2 {
            let mut carol = Client::login(broker, "carol");
            assert_eq!(
                produce(&mut carol, "old-orders"),
                0,
                "the migrated ACL allows"
            );
            assert_eq!(
                produce(&mut carol, "other"),
                TOPIC_AUTHORIZATION_FAILED,
                "and only it"
            );
        }
    };
    let created = create_topic(
        |req| wire::call(broker.socket_addr(), ApiKey::CreateTopics, 5, req),
        "old-orders",
    );
    assert_eq!(created, 0);
    check(&broker);
    broker.restart();
    check(&broker);
    let secret = std::fs::read_to_string(cluster.join("security.json")).unwrap();
    assert!(!secret.contains(&pw("carol")), "no password on disk");
}
