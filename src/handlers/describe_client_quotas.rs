//! DescribeClientQuotas (API 48): the client quota entities matching a filter, with their
//! configs, as Kafka's `ClientQuotasImage.describe` answers. CLUSTER DESCRIBE_CONFIGS is
//! required (else CLUSTER_AUTHORIZATION_FAILED for the whole request); a bad filter answers
//! INVALID_REQUEST (or UNSUPPORTED_VERSION for an unknown entity or match type) with no entries.

use std::rc::Rc;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::ResponseError as K;

use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::quotas::entity::{self, DescribeFilter};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeClientQuotasRequest = request.decode()?;
        let error = |code: i16, message: &str| {
            DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
                .with_entries(None)
        };
        let response = if !authz::cluster_allowed(&shard, &request, Operation::DescribeConfigs) {
            error(
                K::ClusterAuthorizationFailed.code(),
                "Cluster authorization failed.",
            )
        } else {
            let components = body
                .components
                .iter()
                .map(|c| (c.entity_type.as_str(), c.match_type, c._match.as_deref()));
            match DescribeFilter::from_wire(components, body.strict) {
                Err(e) => error(e.code, &e.message),
                Ok(filter) => DescribeClientQuotasResponse::default()
                    .with_entries(Some(entries(&shard, &filter))),
            }
        };
        Outcome::encoded(&response, version)
    })
}

fn entries(shard: &Shard, filter: &DescribeFilter) -> Vec<EntryData> {
    // The image's quotas: what this broker enforces, the same on every broker of a cluster.
    let image = shard.topics.borrow();
    image
        .security()
        .client_quotas()
        .iter()
        .filter(|(e, _)| filter.matches(e))
        .map(|(e, values)| {
            let entity = entity::parts(e)
                .into_iter()
                .map(|(entity_type, name)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(entity_type))
                        .with_entity_name(name.to_wire().map(str_bytes))
                })
                .collect();
            let values = values
                .iter()
                .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                .collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect()
}
