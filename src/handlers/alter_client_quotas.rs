//! AlterClientQuotas (API 49): sets or removes `producer_byte_rate`, `consumer_byte_rate` and
//! `request_percentage` of user / client-id entities (and their defaults), each entry answered
//! on its own as Kafka's `ClientQuotaControlManager`: INVALID_REQUEST for a bad entity, key or
//! value, UNSUPPORTED_VERSION for an unknown entity type; CLUSTER ALTER_CONFIGS is required
//! (else every entry gets CLUSTER_AUTHORIZATION_FAILED). The valid entries become
//! `ClientQuotaRecord`s committed through the controller (`security_control::modify_quotas`),
//! so every broker enforces them; `validate_only` changes nothing.

use std::rc::Rc;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::ResponseError as K;

use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::quotas::entity::QuotaError;
use crate::quotas::{self, AlterEntry};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AlterClientQuotasRequest = request.decode()?;
        let results: Vec<Result<(), QuotaError>> =
            if !authz::cluster_allowed(&shard, &request, Operation::AlterConfigs) {
                let refused = QuotaError {
                    code: K::ClusterAuthorizationFailed.code(),
                    message: "Cluster authorization failed.".into(),
                };
                vec![Err(refused); body.entries.len()]
            } else {
                let entries: Vec<AlterEntry<'_>> = body
                    .entries
                    .iter()
                    .map(|e| AlterEntry {
                        entity: e
                            .entity
                            .iter()
                            .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref()))
                            .collect(),
                        ops: e
                            .ops
                            .iter()
                            .map(|o| (o.key.as_str(), o.value, o.remove))
                            .collect(),
                    })
                    .collect();
                alter(&shard, &entries, body.validate_only).await
            };
        let entries = body
            .entries
            .iter()
            .zip(results)
            .map(|(entry, result)| {
                let entity = entry
                    .entity
                    .iter()
                    .map(|p| {
                        EntityData::default()
                            .with_entity_type(p.entity_type.clone())
                            .with_entity_name(p.entity_name.clone())
                    })
                    .collect();
                let (code, message) = match result {
                    Ok(()) => (0, None),
                    Err(e) => (e.code, Some(str_bytes(&e.message))),
                };
                EntryData::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_entity(entity)
            })
            .collect();
        Outcome::encoded(
            &AlterClientQuotasResponse::default().with_entries(entries),
            version,
        )
    })
}

/// Validates each entry, then (unless `validate_only`) commits the valid ones together; a
/// failed commit fails every valid entry, as nothing of them was applied.
async fn alter(
    shard: &Shard,
    entries: &[AlterEntry<'_>],
    validate_only: bool,
) -> Vec<Result<(), QuotaError>> {
    let valid = quotas::validate(entries);
    let results: Vec<Result<(), QuotaError>> = valid
        .iter()
        .map(|v| v.as_ref().map(|_| ()).map_err(Clone::clone))
        .collect();
    if validate_only || results.iter().all(Result::is_err) {
        return results;
    }
    let stored =
        crate::cluster::security_control::modify_quotas(&shard.controller_context(), move |map| {
            ((), quotas::apply_valid(map, &valid))
        })
        .await;
    let Err(e) = stored else {
        return results;
    };
    tracing::error!(error = %e, "AlterClientQuotas");
    let failed = QuotaError {
        code: K::UnknownServerError.code(),
        message: "The client quotas could not be stored.".into(),
    };
    results
        .into_iter()
        .map(|r| r.and(Err(failed.clone())))
        .collect()
}
