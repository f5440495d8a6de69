//! Per-broker dynamic configs in a KRaft cluster, as `kafka-configs --alter --entity-type brokers
//! --entity-name N` sends them: the admin client addresses the BROKER resource "N" to broker N,
//! which (not being the active controller) forwards it in an Envelope. Kafka's broker checks
//! that the resource names itself (`ConfigAdminManager`) before forwarding, and the controller
//! commits a ConfigRecord for broker N. Sluice's controller used to compare the name with its
//! own id and refuse every other broker's: INVALID_REQUEST "Unexpected broker id, expected
//! <controller> ...".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{Cluster, ClusterOpts};
use common::wire;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const INVALID_REQUEST: i16 = 42;
/// DescribeConfigs' config source of a per-broker dynamic value.
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const KEY: &str = "log.retention.ms";
const VALUE: &str = "3600000";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// IncrementalAlterConfigs v1 SET `KEY=VALUE` on BROKER resource `name`, sent to `addr`;
/// the resource's error code.
fn set_broker_config(addr: SocketAddr, name: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(s(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(KEY))
                .with_config_operation(OP_SET)
                .with_value(Some(s(VALUE)))]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        wire::call(addr, ApiKey::IncrementalAlterConfigs, 1, &request);
    assert_eq!(response.responses.len(), 1, "{response:?}");
    response.responses[0].error_code
}

/// `KEY`'s value and source as broker `addr` describes its BROKER resource `name`.
fn described(addr: SocketAddr, name: &str) -> Option<(String, i8)> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(vec![s(KEY)]))]);
    let response: DescribeConfigsResponse = wire::call(addr, ApiKey::DescribeConfigs, 4, &request);
    let result = response.results.first()?;
    assert_eq!(result.error_code, 0, "{result:?}");
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == KEY)
        .map(|c| {
            (
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
            )
        })
}

#[test]
fn a_broker_that_is_not_the_controller_alters_its_own_dynamic_config() {
    let cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_all_registered();
    let mut controller = None;
    common::wait_until(Duration::from_secs(30), "an active controller", || {
        controller = cluster.controller_index(0);
        controller.is_some()
    });
    let controller = controller.unwrap();
    let other = (controller + 1) % 3;
    let third = (controller + 2) % 3;
    let other_id = Cluster::node_id(other).to_string();
    let addr = cluster.broker(other).socket_addr();

    // A client naming another broker's resource on this broker: refused here, as Kafka's
    // ConfigAdminManager does, and nothing is forwarded.
    let third_id = Cluster::node_id(third).to_string();
    assert_eq!(set_broker_config(addr, &third_id), INVALID_REQUEST);

    // Its own resource: forwarded to the controller, committed for this broker.
    let mut code = -1;
    common::wait_until(Duration::from_secs(30), "the alter answered", || {
        code = set_broker_config(addr, &other_id);
        code != common::cluster::NOT_CONTROLLER
    });
    assert_eq!(
        code, 0,
        "IncrementalAlterConfigs of broker {other_id} on itself"
    );
    common::wait_until(
        Duration::from_secs(30),
        "the broker describes its value",
        || described(addr, &other_id) == Some((VALUE.to_owned(), DYNAMIC_BROKER_CONFIG)),
    );

    // The controller's own configs (and the third broker's) did not take the value.
    let controller_id = Cluster::node_id(controller).to_string();
    let theirs = described(cluster.broker(controller).socket_addr(), &controller_id);
    assert_ne!(
        theirs.map(|(_, source)| source),
        Some(DYNAMIC_BROKER_CONFIG)
    );
    let thirds = described(cluster.broker(third).socket_addr(), &third_id);
    assert_ne!(
        thirds.map(|(_, source)| source),
        Some(DYNAMIC_BROKER_CONFIG)
    );
}
