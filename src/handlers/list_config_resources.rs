//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources): names the resources that
//! have configs, by type. Kafka 4.1+'s `kafka-configs --describe` without an entity name and
//! `Admin.listConfigResources` use it.
//!
//! As Kafka's broker: an empty type list means every type this version supports (v0: client
//! metrics only); a type outside those answers UNSUPPORTED_VERSION. Sluice has topics and this
//! broker; it has no client-metrics subscriptions and no group configs, so those types list
//! nothing. BROKER_LOGGER is left out (Kafka lists each broker for it) because Sluice cannot
//! describe broker loggers: listing a resource the next DescribeConfigs fails on would mislead.
//! ACL: CLUSTER DESCRIBE_CONFIGS, else CLUSTER_AUTHORIZATION_FAILED (Kafka's
//! `handleListConfigResources`).

use std::rc::Rc;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::Operation;
use crate::shard::Shard;

/// Kafka's ConfigResource.Type ids.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ListConfigResourcesRequest = request.decode()?;
        if !super::authz::cluster_allowed(&shard, &request, Operation::DescribeConfigs) {
            let refused = ListConfigResourcesResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
            return Outcome::encoded(&refused, version);
        }
        Outcome::encoded(&respond(&shard, &body, version), version)
    })
}

/// The types a request version may ask for (Kafka's `supportedResourceTypes`).
fn supported(version: i16) -> &'static [i8] {
    if version == 0 {
        &[CLIENT_METRICS]
    } else {
        &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP]
    }
}

fn respond(
    shard: &Shard,
    body: &ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    let supported = supported(version);
    let wanted: &[i8] = if version == 0 || body.resource_types.is_empty() {
        supported
    } else {
        &body.resource_types
    };
    if wanted.iter().any(|t| !supported.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let mut resources = Vec::new();
    if wanted.contains(&BROKER) {
        resources.push(resource(&shard.config.server.node_id.to_string(), BROKER));
    }
    if wanted.contains(&TOPIC) {
        let table = shard.topics.borrow();
        resources.extend(table.iter().map(|meta| resource(&meta.name, TOPIC)));
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

fn resource(name: &str, resource_type: i8) -> ConfigResource {
    ConfigResource::default()
        .with_resource_name(str_bytes(name))
        .with_resource_type(resource_type)
}
