//! Kafka conformance over the wire (issue 8): inputs on which Sluice must answer exactly as
//! Apache Kafka 4.0 does. Each test names the Kafka rule it checks: topic-name collisions,
//! CreateTopics' configs in the answer, leader-epoch validation and the leader-epoch cache,
//! and the topic configs Kafka accepts. Requests are built with kafka-protocol and sent raw,
//! so every field of the answer can be checked.

mod common;

use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

/// CreateTopics v7 over the wire.
fn create_topics(broker: &Broker, topics: Vec<CreatableTopic>) -> CreateTopicsResponse {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request)
}

/// Error codes of CreateTopics, in request order.
fn create_codes(broker: &Broker, topics: Vec<CreatableTopic>) -> Vec<i16> {
    create_topics(broker, topics)
        .topics
        .iter()
        .map(|t| t.error_code)
        .collect()
}

/// Metadata v12 for `names`, with auto-creation allowed.
fn metadata(broker: &Broker, names: &[&str]) -> MetadataResponse {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n)))))
                .collect(),
        ));
    wire::call(broker.socket_addr(), ApiKey::Metadata, 12, &request)
}

/// Kafka's `Topic.hasCollision`: '.' and '_' collide, in CreateTopics (against existing topics
/// and earlier topics of the same request) and in auto-creation.
#[test]
fn topic_names_that_collide_on_dot_and_underscore_are_refused() {
    let broker = Broker::start(BrokerOpts::default());
    let base = unique_name("coll").replace('-', "");
    let under = format!("{base}_x_y");
    let dot = format!("{base}.x.y");
    let mixed = format!("{base}_x.y");
    assert_eq!(create_codes(&broker, vec![topic(&under, 1, &[])]), vec![0]);
    assert_eq!(
        create_codes(
            &broker,
            vec![topic(&dot, 1, &[]), topic(&mixed, 1, &[]), topic(&under, 1, &[])]
        ),
        vec![
            INVALID_TOPIC_EXCEPTION,
            INVALID_TOPIC_EXCEPTION,
            TOPIC_ALREADY_EXISTS
        ]
    );
    let answer = create_topics(&broker, vec![topic(&dot, 1, &[])]);
    let message = answer.topics[0].error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("collides with existing topic") && message.contains(&under),
        "{message}"
    );

    // Two new names that collide with each other in one request: the second is refused.
    let a = format!("{base}.p");
    let b = format!("{base}_p");
    assert_eq!(
        create_codes(&broker, vec![topic(&a, 1, &[]), topic(&b, 1, &[])]),
        vec![0, INVALID_TOPIC_EXCEPTION]
    );

    // Auto-creation through Metadata follows the same rule.
    let auto = format!("{base}.x_y");
    let response = metadata(&broker, &[&auto]);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    let all = metadata(&broker, &[&under, &dot]);
    let codes: Vec<i16> = all.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, INVALID_TOPIC_EXCEPTION]);
}

/// KIP-525: CreateTopics v5+ answers the resolved partition count and replication factor and
/// every topic config with its value and source (an override is DYNAMIC_TOPIC_CONFIG, the rest
/// come from the broker: DEFAULT_CONFIG or STATIC_BROKER_CONFIG), for validate_only too.
#[test]
fn create_topics_answers_with_the_topics_configs() {
    let broker = Broker::start(BrokerOpts::default().config("\"num.partitions\" = 3\n"));
    for validate_only in [true, false] {
        let name = unique_name("kip525");
        let mut request = CreateTopicsRequest::default()
            .with_topics(vec![topic(&name, -1, &[("retention.ms", "123456")])])
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        request.topics[0].replication_factor = -1;
        let response: CreateTopicsResponse =
            wire::call(broker.socket_addr(), ApiKey::CreateTopics, 7, &request);
        let t = &response.topics[0];
        assert_eq!(t.error_code, 0);
        assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
        let configs = t.configs.as_deref().unwrap_or_default();
        let find = |key: &str| {
            configs
                .iter()
                .find(|c| c.name.as_str() == key)
                .unwrap_or_else(|| panic!("{key} missing from {configs:?}"))
        };
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("123456"));
        assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
        let cleanup = find("cleanup.policy");
        assert_eq!(cleanup.value.as_deref(), Some("delete"));
        assert_eq!(cleanup.config_source, 5, "DEFAULT_CONFIG");
        for key in ["segment.bytes", "max.message.bytes", "message.timestamp.type"] {
            let c = find(key);
            assert!(!c.read_only && !c.is_sensitive, "{key}");
            assert!(c.value.is_some(), "{key}");
        }
    }
    // Before v5 there is nothing to fill.
    let name = unique_name("kip525-v4");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic(&name, 1, &[])])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse =
        wire::call(broker.socket_addr(), ApiKey::CreateTopics, 4, &request);
    assert_eq!(response.topics[0].error_code, 0);
}
