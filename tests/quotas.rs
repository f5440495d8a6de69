//! Client quotas over real brokers: DescribeClientQuotas / AlterClientQuotas (Kafka's
//! validation, filters, persistence across a restart, ApiVersions lists them, the CLUSTER
//! ALTER_CONFIGS / DESCRIBE_CONFIGS checks), and enforcement: a producer over its
//! `producer_byte_rate` gets Kafka's throttle time in its Produce response and its connection
//! is not read for that long (KIP-219); `request_percentage` throttles any API (Metadata here),
//! at most one window. A consumer over `consumer_byte_rate` gets Kafka's empty throttled Fetch
//! response (throttle time, no records), its fetch size is capped at one quota window's bytes,
//! and the throttled bytes do not count. The throttled-rate measurement with a real client is
//! `scripts/compat/security_quotas.py`.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, BrokerId, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice::security::scram::Mechanism;

use common::sasl::{create_user, listener, request, scram_login};
use common::wire;
use common::{Broker, BrokerOpts};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

fn set(parts: &[(&str, Option<&str>)], ops: &[(&str, f64)]) -> EntryData {
    EntryData::default().with_entity(entity(parts)).with_ops(
        ops.iter()
            .map(|(k, v)| OpData::default().with_key(s(k)).with_value(*v))
            .collect(),
    )
}

fn remove(parts: &[(&str, Option<&str>)], key: &str) -> EntryData {
    EntryData::default()
        .with_entity(entity(parts))
        .with_ops(vec![OpData::default().with_key(s(key)).with_remove(true)])
}

fn alter(addr: SocketAddr, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let resp: AlterClientQuotasResponse = wire::call(
        addr,
        ApiKey::AlterClientQuotas,
        1,
        &AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only),
    );
    resp.entries.iter().map(|e| e.error_code).collect()
}

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(s(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(s))
}

/// One described entity: `("user=alice,client-id=<default>", [(key, value)])`.
type Described = (String, Vec<(String, f64)>);

/// The error code and the entries, sorted.
fn describe(
    addr: SocketAddr,
    components: Vec<ComponentData>,
    strict: bool,
) -> (i16, Vec<Described>) {
    let resp: DescribeClientQuotasResponse = wire::call(
        addr,
        ApiKey::DescribeClientQuotas,
        1,
        &DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict),
    );
    let mut entries: Vec<_> = resp
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let name = e
                .entity
                .iter()
                .map(|p| {
                    let n = p.entity_name.as_ref().map_or("<default>", |n| n.as_str());
                    format!("{}={n}", p.entity_type.as_str())
                })
                .collect::<Vec<_>>()
                .join(",");
            let values = e
                .values
                .iter()
                .map(|v| (v.key.as_str().to_owned(), v.value))
                .collect();
            (name, values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    (resp.error_code, entries)
}

#[test]
fn describe_and_alter_round_trip_and_survive_a_restart() {
    let mut broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();

    let versions: ApiVersionsResponse =
        wire::call(addr, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for key in [ApiKey::DescribeClientQuotas, ApiKey::AlterClientQuotas] {
        let entry = versions.api_keys.iter().find(|k| k.api_key == key as i16);
        assert_eq!(entry.map(|k| (k.min_version, k.max_version)), Some((0, 1)));
    }

    let codes = alter(
        addr,
        vec![
            set(
                &[("user", Some("alice"))],
                &[("producer_byte_rate", 1024.0)],
            ),
            set(&[("client-id", None)], &[("consumer_byte_rate", 2048.0)]),
            set(
                &[("user", None), ("client-id", Some("app"))],
                &[("request_percentage", 50.5), ("producer_byte_rate", 4096.0)],
            ),
            set(&[("user", Some("x"))], &[("no_such_quota", 1.0)]),
            set(&[("user", Some("x"))], &[("producer_byte_rate", 1.5)]),
            set(&[("user", Some("x"))], &[("producer_byte_rate", -1.0)]),
            // An IP entity names an address and stands alone (KIP-612).
            set(
                &[("ip", Some("not-an-ip"))],
                &[("connection_creation_rate", 1.0)],
            ),
            set(&[("topic", Some("t"))], &[("producer_byte_rate", 1.0)]),
            set(&[], &[("producer_byte_rate", 1.0)]),
            set(
                &[("user", Some("a")), ("user", Some("b"))],
                &[("producer_byte_rate", 1.0)],
            ),
        ],
        false,
    );
    assert_eq!(
        codes,
        [
            0,
            0,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            UNSUPPORTED_VERSION,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    // validate_only answers without applying.
    let codes = alter(
        addr,
        vec![set(
            &[("user", Some("carol"))],
            &[("producer_byte_rate", 1.0)],
        )],
        true,
    );
    assert_eq!(codes, [0]);

    let expected_all = vec![
        (
            "client-id=<default>".to_owned(),
            vec![("consumer_byte_rate".to_owned(), 2048.0)],
        ),
        (
            "user=<default>,client-id=app".to_owned(),
            vec![
                ("producer_byte_rate".to_owned(), 4096.0),
                ("request_percentage".to_owned(), 50.5),
            ],
        ),
        (
            "user=alice".to_owned(),
            vec![("producer_byte_rate".to_owned(), 1024.0)],
        ),
    ];
    assert_eq!(describe(addr, vec![], false), (0, expected_all.clone()));
    // EXACT (0), DEFAULT (1), SPECIFIED (2), strict.
    let (code, only_alice) = describe(addr, vec![component("user", 0, Some("alice"))], false);
    assert_eq!((code, only_alice.len()), (0, 1));
    let (_, default_user) = describe(addr, vec![component("user", 1, None)], false);
    assert_eq!(default_user.len(), 1);
    assert_eq!(default_user[0].0, "user=<default>,client-id=app");
    let (_, strict_user) = describe(addr, vec![component("user", 2, None)], true);
    assert_eq!(strict_user.len(), 1);
    assert_eq!(strict_user[0].0, "user=alice");
    let (_, any_client) = describe(addr, vec![component("client-id", 2, None)], false);
    assert_eq!(any_client.len(), 2);
    assert_eq!(
        describe(addr, vec![component("user", 0, None)], false).0,
        INVALID_REQUEST
    );
    assert_eq!(
        describe(addr, vec![component("group", 2, None)], false).0,
        UNSUPPORTED_VERSION
    );

    broker.restart();
    let addr = broker.socket_addr();
    assert_eq!(describe(addr, vec![], false), (0, expected_all));

    let codes = alter(
        addr,
        vec![
            remove(&[("user", Some("alice"))], "producer_byte_rate"),
            remove(&[("client-id", None)], "consumer_byte_rate"),
        ],
        false,
    );
    assert_eq!(codes, [0, 0]);
    let (_, left) = describe(addr, vec![], false);
    assert_eq!(
        left.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["user=<default>,client-id=app"]
    );
}

/// A produce request of about `payload` bytes from `client_id`; returns its framed bytes.
fn produce_frame(client_id: &str, correlation_id: i32, topic: &str, payload: usize) -> Vec<u8> {
    let value = vec![b'x'; payload];
    let records = storage::BatchBuilder::new(0)
        .record(None, Some(&value), &[])
        .build()
        .freeze();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    wire::encode_request(ApiKey::Produce, 9, correlation_id, client_id, &req)
}

fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    match wire::read_outcome(stream) {
        wire::Outcome::Response(body) => body,
        other => panic!("no response: {other:?}"),
    }
}

#[test]
fn a_producer_over_its_quota_is_told_its_throttle_time_and_muted() {
    let broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    // 1000 B/s: a fresh rate spans ten 1 s windows, so 10 000 bytes are within the quota and
    // a request of L bytes (header included) is throttled (L/10 - 1000)/1000 * 10 s = L - 10 000 ms.
    let codes = alter(
        addr,
        vec![set(
            &[("client-id", Some("slow"))],
            &[("producer_byte_rate", 1000.0)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let topic = "quota-produce";
    common::kafka::create_topic(&broker, topic, 1);

    let mut stream = wire::connect(addr);
    let frame = produce_frame("slow", 1, topic, 11_000);
    let request_bytes = frame.len() - 4;
    wire::send(&mut stream, &frame);
    let body = read_response(&mut stream);
    let resp: ProduceResponse = wire::decode_response(ApiKey::Produce, 9, 1, body);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let expected = i32::try_from(request_bytes - 10_000).unwrap();
    assert!(
        (resp.throttle_time_ms - expected).abs() <= 1,
        "throttle_time_ms {} for a {request_bytes}-byte request, expected {expected}",
        resp.throttle_time_ms
    );
    // The connection is muted: the next request is read only after the throttle time.
    let asked = Instant::now();
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::Metadata, 12, 2, "slow", &MetadataRequest::default()),
    );
    let body = read_response(&mut stream);
    let _: MetadataResponse = wire::decode_response(ApiKey::Metadata, 12, 2, body);
    let waited = asked.elapsed();
    let throttle = Duration::from_millis(u64::try_from(expected).unwrap());
    assert!(
        waited + Duration::from_millis(100) >= throttle,
        "answered after {waited:?}, throttle {throttle:?}"
    );

    // Another client id has no quota: not throttled, not muted.
    let mut other = wire::connect(addr);
    wire::send(&mut other, &produce_frame("fast", 1, topic, 11_000));
    let resp: ProduceResponse =
        wire::decode_response(ApiKey::Produce, 9, 1, read_response(&mut other));
    assert_eq!(resp.throttle_time_ms, 0);
}

#[test]
fn quota_apis_need_cluster_configs_acls() {
    let broker = Broker::start(BrokerOpts::default().config(
        "listeners = \"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"\n\
         \"authorizer.class.name\" = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
         \"super.users\" = \"User:ANONYMOUS\"\n",
    ));
    let admin = broker.socket_addr();
    create_user(&broker, "bob", "bob-secret", Mechanism::Sha256);
    let codes = alter(
        admin,
        vec![set(
            &[("user", Some("bob"))],
            &[("producer_byte_rate", 1e6)],
        )],
        false,
    );
    assert_eq!(codes, [0]);

    let mut bob = wire::connect(listener(&broker, "SASL_PLAINTEXT"));
    bob.set_read_timeout(Some(wire::REPLY_TIMEOUT))
        .unwrap_or_else(|e| panic!("set_read_timeout: {e}"));
    let done = scram_login(&mut bob, Mechanism::Sha256, "bob", "bob-secret");
    assert_eq!(done.error_code, 0);
    let described: DescribeClientQuotasResponse = request(
        &mut bob,
        ApiKey::DescribeClientQuotas,
        1,
        10,
        &DescribeClientQuotasRequest::default(),
    )
    .expect("describe answered");
    assert_eq!(described.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(described.entries.is_none());
    let alter_resp: AlterClientQuotasResponse = request(
        &mut bob,
        ApiKey::AlterClientQuotas,
        1,
        11,
        &AlterClientQuotasRequest::default().with_entries(vec![set(
            &[("user", Some("bob"))],
            &[("producer_byte_rate", 1e9)],
        )]),
    )
    .expect("alter answered");
    assert_eq!(
        alter_resp
            .entries
            .iter()
            .map(|e| e.error_code)
            .collect::<Vec<_>>(),
        [CLUSTER_AUTHORIZATION_FAILED]
    );
    // Unchanged.
    let (_, all) = describe(admin, vec![], false);
    assert_eq!(
        all,
        [(
            "user=bob".to_owned(),
            vec![("producer_byte_rate".to_owned(), 1e6)]
        )]
    );
}

#[test]
fn request_percentage_throttles_any_api_at_most_one_window() {
    let broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    // 0.0001 % of a thread: 10 us of handler time per 10 s window; a few requests exceed it.
    let codes = alter(
        addr,
        vec![set(
            &[("client-id", Some("busy"))],
            &[("request_percentage", 0.0001)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let mut stream = wire::connect(addr);
    let mut throttled = None;
    for correlation_id in 1..=100 {
        wire::send(
            &mut stream,
            &wire::encode_request(
                ApiKey::Metadata,
                12,
                correlation_id,
                "busy",
                &MetadataRequest::default(),
            ),
        );
        let resp: MetadataResponse = wire::decode_response(
            ApiKey::Metadata,
            12,
            correlation_id,
            read_response(&mut stream),
        );
        if resp.throttle_time_ms > 0 {
            throttled = Some(resp.throttle_time_ms);
            break;
        }
    }
    let throttle = throttled.expect("a Metadata response carried a throttle time");
    // ClientRequestQuotaManager caps the request quota's throttle at one window (1 s).
    assert!(throttle <= 1000, "throttle {throttle} ms");
    // Another client id is not throttled.
    let resp: MetadataResponse =
        wire::call(addr, ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(resp.throttle_time_ms, 0);
}

/// Fetch v12, sessionless, partition 0 of `topic` from `offset` (asks for up to 50 MiB).
fn fetch_frame(client_id: &str, correlation_id: i32, topic: &str, offset: i64) -> Vec<u8> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(50 << 20)])]);
    wire::encode_request(ApiKey::Fetch, 12, correlation_id, client_id, &req)
}

/// Record bytes in a fetch response.
fn records_len(resp: &FetchResponse) -> usize {
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

#[test]
fn a_consumer_over_its_quota_gets_an_empty_throttled_fetch_and_is_muted() {
    let broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    // 100 000 B/s: a fresh rate spans ten 1 s windows, so 1 000 000 bytes are within the quota,
    // and that is also the most one fetch may return (Kafka's getMaxValueInQuotaWindow).
    let codes = alter(
        addr,
        vec![set(
            &[("client-id", Some("reader"))],
            &[("consumer_byte_rate", 100_000.0)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let topic = "quota-fetch";
    common::kafka::create_topic(&broker, topic, 1);
    // Offsets 0 and 1: two batches of ~520 KB; offset 2: a small one ("writer" has no quota).
    let mut writer = wire::connect(addr);
    for (id, payload) in [(1, 520_000), (2, 520_000), (3, 1_000)] {
        wire::send(&mut writer, &produce_frame("writer", id, topic, payload));
        let resp: ProduceResponse =
            wire::decode_response(ApiKey::Produce, 9, id, read_response(&mut writer));
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }

    let mut stream = wire::connect(addr);
    // 1: capped at one window's bytes, only the first batch comes back (both would be
    // 1.04 MB and over the quota); ~520 KB is within it.
    wire::send(&mut stream, &fetch_frame("reader", 1, topic, 0));
    let resp: FetchResponse =
        wire::decode_response(ApiKey::Fetch, 12, 1, read_response(&mut stream));
    assert_eq!(resp.throttle_time_ms, 0);
    let first = records_len(&resp);
    assert!((520_000..600_000).contains(&first), "{first} record bytes");

    // 2: ~521 KB more is over the quota: Kafka answers at once without records (no
    // partitions at all, error NONE) and with the throttle time, then mutes the connection.
    wire::send(&mut stream, &fetch_frame("reader", 2, topic, 1));
    let resp: FetchResponse =
        wire::decode_response(ApiKey::Fetch, 12, 2, read_response(&mut stream));
    let throttle_ms = resp.throttle_time_ms;
    assert!(throttle_ms > 0, "not throttled");
    // (1.04 MB - 1 MB) / 100 000 B/s: a few hundred ms.
    assert!(
        resp.throttle_time_ms < 2_000,
        "{} ms",
        resp.throttle_time_ms
    );
    assert_eq!(resp.error_code, 0);
    assert!(resp.responses.is_empty(), "{:?}", resp.responses);
    assert_eq!(records_len(&resp), 0);

    // 3: read only after the mute, and answered with data: the throttled fetch's bytes were
    // taken back out of the rate (counted, they would put this fetch over the quota too).
    let asked = Instant::now();
    wire::send(&mut stream, &fetch_frame("reader", 3, topic, 2));
    let resp: FetchResponse =
        wire::decode_response(ApiKey::Fetch, 12, 3, read_response(&mut stream));
    let waited = asked.elapsed();
    let throttle = Duration::from_millis(u64::try_from(throttle_ms).unwrap());
    assert!(
        waited + Duration::from_millis(100) >= throttle,
        "answered after {waited:?}, throttle {throttle:?}"
    );
    assert_eq!(resp.throttle_time_ms, 0);
    let third = records_len(&resp);
    assert!((1_000..2_000).contains(&third), "{third} record bytes");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 3);
}

const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// KIP-612: `connection_creation_rate` of an IP entity, set and described with the quota APIs:
/// connections past the rate are closed unanswered (after the throttle time), the others are
/// served, and the quota survives a restart.
#[test]
fn connections_over_the_ip_creation_rate_are_closed() {
    let mut broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    let codes = alter(
        addr,
        vec![
            set(
                &[("ip", Some("127.0.0.1"))],
                &[("connection_creation_rate", 1.0)],
            ),
            set(&[("ip", None)], &[("connection_creation_rate", 50.0)]),
            set(
                &[("ip", None), ("user", None)],
                &[("connection_creation_rate", 1.0)],
            ),
            set(&[("ip", None)], &[("producer_byte_rate", 1.0)]),
            set(&[("ip", None)], &[("connection_creation_rate", 1.5)]),
        ],
        false,
    );
    assert_eq!(
        codes,
        [0, 0, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST]
    );
    let (code, ips) = describe(addr, vec![component("ip", 2, None)], false);
    assert_eq!(code, 0);
    assert_eq!(
        ips,
        vec![
            (
                "ip=127.0.0.1".to_owned(),
                vec![("connection_creation_rate".to_owned(), 1.0)]
            ),
            (
                "ip=<default>".to_owned(),
                vec![("connection_creation_rate".to_owned(), 50.0)]
            ),
        ]
    );
    // 1/s over a young rate's ten 1 s windows: ten new connections fit (the DescribeClientQuotas
    // one above was the first), then each is closed.
    let attempt = |addr: SocketAddr| {
        let mut stream = wire::connect(addr);
        wire::send(
            &mut stream,
            &wire::encode_request(
                ApiKey::ApiVersions,
                3,
                1,
                "ip-test",
                &ApiVersionsRequest::default(),
            ),
        );
        wire::read_outcome(&mut stream)
    };
    let outcomes: Vec<bool> = (0..11)
        .map(|_| matches!(attempt(addr), wire::Outcome::Response(_)))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|served| **served).count(),
        9,
        "{outcomes:?}"
    );
    assert!(outcomes[..9].iter().all(|served| *served), "{outcomes:?}");
    broker.restart();
    let addr = broker.socket_addr();
    // The quota persisted; a fresh rate again admits ten, then refuses.
    let outcomes: Vec<bool> = (0..11)
        .map(|_| matches!(attempt(addr), wire::Outcome::Response(_)))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|served| **served).count(),
        10,
        "{outcomes:?}"
    );
}

fn create_topics_frame(client_id: &str, version: i16, topics: &[(&str, i32)]) -> Vec<u8> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::CreateTopicsRequest;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_num_partitions(*partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    wire::encode_request(ApiKey::CreateTopics, version, 1, client_id, &request)
}

fn create_topics_as(
    addr: SocketAddr,
    client_id: &str,
    version: i16,
    topics: &[(&str, i32)],
) -> kafka_protocol::messages::CreateTopicsResponse {
    let mut stream = wire::connect(addr);
    stream.set_read_timeout(Some(wire::REPLY_TIMEOUT)).unwrap();
    wire::send(
        &mut stream,
        &create_topics_frame(client_id, version, topics),
    );
    let wire::Outcome::Response(body) = wire::read_outcome(&mut stream) else {
        panic!("no CreateTopics answer");
    };
    wire::decode_response(ApiKey::CreateTopics, version, 1, body)
}

/// KIP-599: `controller_mutation_rate` (partitions per second, burst of `quota.window.num`
/// windows) refuses a strict CreateTopics (v6+) with THROTTLING_QUOTA_EXCEEDED and the
/// throttle time once exhausted; an older version is created and only throttled; DeleteTopics
/// counts the partitions it removes; another client id is not limited.
#[test]
fn the_controller_mutation_rate_throttles_topic_changes() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse,
    };
    let broker = Broker::start(BrokerOpts::default());
    let addr = broker.socket_addr();
    let codes = alter(
        addr,
        vec![set(
            &[("client-id", Some("mutator"))],
            &[("controller_mutation_rate", 1.0)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let (_, described) = describe(
        addr,
        vec![component("client-id", 0, Some("mutator"))],
        false,
    );
    assert_eq!(
        described,
        vec![(
            "client-id=mutator".to_owned(),
            vec![("controller_mutation_rate".to_owned(), 1.0)]
        )]
    );
    // Burst: 1/s * 11 windows of 1 s = 11 partitions. 10 + 5 may go (the bucket may end below
    // zero), the next topic is refused for as long as the refill to zero takes (about 4 s).
    let first = create_topics_as(addr, "mutator", 7, &[("m1", 10), ("m2", 5), ("m3", 1)]);
    let codes: Vec<i16> = first.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 0, THROTTLING_QUOTA_EXCEEDED], "{first:?}");
    assert_eq!(
        first.topics[2].error_message.as_deref(),
        Some("The throttling quota has been exceeded.")
    );
    assert!(
        (2_000..=4_000).contains(&first.throttle_time_ms),
        "{}",
        first.throttle_time_ms
    );
    // Another client id has no quota.
    let other = create_topics_as(addr, "other-client", 7, &[("o1", 20)]);
    assert_eq!(other.topics[0].error_code, 0);
    // A v5 request (permissive) is created, throttled by the deficit.
    let old = create_topics_as(addr, "mutator", 5, &[("m4", 2)]);
    assert_eq!(old.topics[0].error_code, 0);
    assert!(old.throttle_time_ms > 0, "{old:?}");
    // DeleteTopics v5+ is strict too: the bucket is still below zero.
    let mut stream = wire::connect(addr);
    stream.set_read_timeout(Some(wire::REPLY_TIMEOUT)).unwrap();
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("m1"))])
        .with_timeout_ms(10_000);
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::DeleteTopics, 5, 1, "mutator", &delete),
    );
    let wire::Outcome::Response(body) = wire::read_outcome(&mut stream) else {
        panic!("no DeleteTopics answer");
    };
    let deleted: DeleteTopicsResponse = wire::decode_response(ApiKey::DeleteTopics, 5, 1, body);
    assert_eq!(deleted.responses[0].error_code, THROTTLING_QUOTA_EXCEEDED);
    assert!(deleted.throttle_time_ms > 0);
    // CreatePartitions v3 is strict as well; the topic keeps its partitions.
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("m2")))
            .with_count(8)])
        .with_timeout_ms(10_000);
    let mut stream = wire::connect(addr);
    stream.set_read_timeout(Some(wire::REPLY_TIMEOUT)).unwrap();
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::CreatePartitions, 3, 1, "mutator", &grow),
    );
    let wire::Outcome::Response(body) = wire::read_outcome(&mut stream) else {
        panic!("no CreatePartitions answer");
    };
    let grown: CreatePartitionsResponse =
        wire::decode_response(ApiKey::CreatePartitions, 3, 1, body);
    assert_eq!(grown.results[0].error_code, THROTTLING_QUOTA_EXCEEDED);
    assert!(grown.throttle_time_ms > 0);
}

/// KIP-612: `listener.name.<l>.max.connection.creation.rate` delays new connections on that
/// listener once over the rate (Kafka's acceptor waits).
#[test]
fn a_listener_over_its_connection_creation_rate_delays_new_connections() {
    let broker = Broker::start(BrokerOpts::default().config(
        "listeners = \"PLAINTEXT://127.0.0.1:0,LIMITED://127.0.0.1:0\"\n\
         \"listener.security.protocol.map\" = \"PLAINTEXT:PLAINTEXT,LIMITED:PLAINTEXT\"\n\
         \"listener.name.limited.max.connection.creation.rate\" = 1\n",
    ));
    let limited = listener(&broker, "LIMITED");
    let answered_in = |addr: SocketAddr| {
        let started = Instant::now();
        let mut stream = wire::connect(addr);
        stream.set_read_timeout(Some(wire::REPLY_TIMEOUT)).unwrap();
        wire::send(
            &mut stream,
            &wire::encode_request(
                ApiKey::ApiVersions,
                3,
                1,
                "rate",
                &ApiVersionsRequest::default(),
            ),
        );
        assert!(matches!(
            wire::read_outcome(&mut stream),
            wire::Outcome::Response(_)
        ));
        started.elapsed()
    };
    // Ten fit in a young rate's ten 1 s windows at 1/s; the eleventh waits about one window.
    for _ in 0..10 {
        answered_in(limited);
    }
    let eleventh = answered_in(limited);
    assert!(eleventh >= Duration::from_millis(800), "{eleventh:?}");
    // The other listener has no rate of its own: still served (its separation from LIMITED's
    // rate is the unit test `listener_and_broker_rates_delay`; timing it here would be flaky).
    answered_in(broker.socket_addr());
}

/// A data directory written before client quotas were metadata records
/// (`__cluster/client_quotas.toml`) is adopted: its quotas are described and enforced, the old
/// file is kept as `client_quotas.toml.migrated`, and the quotas survive a further restart.
#[test]
fn quotas_of_an_old_data_dir_are_adopted_into_the_image() {
    let mut broker = Broker::start(BrokerOpts::default());
    common::kafka::create_topic(&broker, "quota-old", 1);
    broker.stop();
    let cluster = broker.data_dir().join("__cluster");
    std::fs::write(
        cluster.join("client_quotas.toml"),
        "[[quota]]\nclient_id = \"slow\"\nuser_default = false\nclient_id_default = false\n\
         [quota.values]\nproducer_byte_rate = 1000.0\n\n\
         [[quota]]\nuser_default = true\nclient_id_default = false\n\
         [quota.values]\nrequest_percentage = 250.0\n",
    )
    .unwrap();
    broker.start_again();
    assert!(cluster.join("client_quotas.toml.migrated").exists());
    assert!(!cluster.join("client_quotas.toml").exists());
    let expected: Vec<Described> = vec![
        (
            "client-id=slow".into(),
            vec![("producer_byte_rate".into(), 1000.0)],
        ),
        (
            "user=<default>".into(),
            vec![("request_percentage".into(), 250.0)],
        ),
    ];
    assert_eq!(
        describe(broker.socket_addr(), vec![], false),
        (0, expected.clone())
    );
    // Enforced: a fresh 1000 B/s rate takes 10 000 bytes; 11 000 more are throttled.
    let mut stream = wire::connect(broker.socket_addr());
    wire::send(&mut stream, &produce_frame("slow", 1, "quota-old", 11_000));
    let resp: ProduceResponse =
        wire::decode_response(ApiKey::Produce, 9, 1, read_response(&mut stream));
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert!(resp.throttle_time_ms > 500, "{}", resp.throttle_time_ms);
    broker.restart();
    assert_eq!(describe(broker.socket_addr(), vec![], false), (0, expected));
}
