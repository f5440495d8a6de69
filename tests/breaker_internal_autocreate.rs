//! A Metadata request naming `__transaction_state` before any transaction ran (kcat `-L -t
//! __transaction_state`, a producer's metadata refresh) creates it as the transaction
//! coordinator does: `transaction.state.log.num.partitions` partitions, `cleanup.policy=compact`
//! (breaker B9), as Kafka's `AutoTopicCreationManager.creatableTopic`. Sluice created it as an
//! ordinary topic (`num.partitions`, delete policy: transaction state dropped by retention).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::wire;
use common::{block_on, kafka, Broker, BrokerOpts};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::ResourceSpecifier;

const TRANSACTION_STATE: &str = "__transaction_state";

#[test]
fn metadata_auto_creates_the_transaction_log_as_the_coordinator_does() {
    let broker = Broker::start(
        BrokerOpts::default().config("\"transaction.state.log.num.partitions\" = 3\n"),
    );
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_static_str(TRANSACTION_STATE)),
        ))]));
    let answer: MetadataResponse = wire::call(broker.socket_addr(), ApiKey::Metadata, 9, &request);
    let topic = &answer.topics[0];
    assert_eq!(topic.error_code, 0, "created at once on a single broker");
    assert!(topic.is_internal);
    assert_eq!(
        topic.partitions.len(),
        3,
        "transaction.state.log.num.partitions, not num.partitions"
    );

    let admin = kafka::admin(&broker);
    let results = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(TRANSACTION_STATE)],
        &kafka::admin_opts(),
    ))
    .unwrap_or_else(|e| panic!("DescribeConfigs: {e}"));
    let configs = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("describe: {e:?}"));
    let policy = configs
        .get("cleanup.policy")
        .expect("cleanup.policy listed");
    assert_eq!(policy.value.as_deref(), Some("compact"));
}
