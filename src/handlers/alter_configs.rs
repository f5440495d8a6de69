//! AlterConfigs (replace a topic's whole override set) and IncrementalAlterConfigs (SET /
//! DELETE / APPEND / SUBTRACT per key), for topic resources, through shard 0, which persists the
//! new overrides and has every owning shard apply them to its live logs (or only validates:
//! `validate_only`). BROKER resources ("" cluster-wide, or this node's id) change the dynamic
//! broker configs (`topics::dynamic`); a broker setting Kafka cannot update dynamically is
//! INVALID_REQUEST, as in Kafka. In a cluster a broker forwards its own BROKER resource to the
//! active controller, which commits it for that broker (Kafka's `ConfigAdminManager` checks
//! the id on the receiving broker, before forwarding).
//!
//! Invariant: one answer per requested resource, in request order; a resource named twice is
//! INVALID_REQUEST for each mention, and is not changed.

use std::rc::Rc;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::error::admin_error_code;
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::router::admin::{AdminError, ConfigChange, RegistryChange};
use crate::router::Router;
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::topics::alter::IncrementalEntry;
use crate::topics::dynamic::{BrokerChange, Scope};

/// One resource of either request, decoded.
struct Resource {
    resource_type: i8,
    name: String,
    change: ConfigChange,
}

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AlterConfigsRequest = request.decode()?;
        let resources = body
            .resources
            .iter()
            .map(|r| Resource {
                resource_type: r.resource_type,
                name: r.resource_name.to_string(),
                change: ConfigChange::Replace(
                    r.configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect(),
                ),
            })
            .collect();
        let answers = alter(shard, &request, resources, body.validate_only).await;
        let responses = body
            .resources
            .iter()
            .zip(answers)
            .map(|(r, result)| {
                let answer = alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_message(None)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                match result {
                    Ok(()) => answer,
                    Err(e) => answer
                        .with_error_code(admin_error_code(&e))
                        .with_error_message(Some(str_bytes(&e.to_string()))),
                }
            })
            .collect();
        Outcome::encoded(
            &AlterConfigsResponse::default().with_responses(responses),
            version,
        )
    })
}

pub fn handle_incremental(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: IncrementalAlterConfigsRequest = request.decode()?;
        let resources = body
            .resources
            .iter()
            .map(|r| Resource {
                resource_type: r.resource_type,
                name: r.resource_name.to_string(),
                change: ConfigChange::IncrementalAlter(
                    r.configs
                        .iter()
                        .map(|c| IncrementalEntry {
                            key: c.name.to_string(),
                            op: c.config_operation,
                            value: c.value.as_ref().map(|v| v.to_string()),
                        })
                        .collect(),
                ),
            })
            .collect();
        let answers = alter(shard, &request, resources, body.validate_only).await;
        let responses = body
            .resources
            .iter()
            .zip(answers)
            .map(|(r, result)| {
                let answer =
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_error_message(None)
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name.clone());
                match result {
                    Ok(()) => answer,
                    Err(e) => answer
                        .with_error_code(admin_error_code(&e))
                        .with_error_message(Some(str_bytes(&e.to_string()))),
                }
            })
            .collect();
        Outcome::encoded(
            &IncrementalAlterConfigsResponse::default().with_responses(responses),
            version,
        )
    })
}

/// Checks each resource, sends the topic ones to shard 0 as one change, answers in order.
async fn alter(
    shard: Rc<Shard>,
    request: &Request,
    resources: Vec<Resource>,
    validate_only: bool,
) -> Vec<Result<(), AdminError>> {
    let mut early: Vec<Option<Result<(), AdminError>>> = Vec::with_capacity(resources.len());
    let mut topics = Vec::new();
    let router = Router::new(shard.router_context());
    for (i, r) in resources.iter().enumerate() {
        let repeated = resources
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.resource_type == r.resource_type && o.name == r.name);
        let denied = super::authz::config_refusal(
            &shard,
            request,
            Operation::AlterConfigs,
            r.resource_type,
            &r.name,
        );
        let refused = if denied.is_some() {
            denied
        } else if repeated {
            Some(AdminError::InvalidRequest(format!(
                "Duplicate resource {}",
                r.name
            )))
        } else {
            resource_refusal(&shard, request, r)
        };
        match (refused, broker_scope(&shard, request, r)) {
            (Some(e), _) => early.push(Some(Err(e))),
            // Listener settings apply to this node's own listeners only.
            (None, Some((_, node_id)))
                if node_id != shard.config.server.node_id
                    && super::listener_configs::touches_listeners(&r.change) =>
            {
                early.push(Some(Err(unexpected_broker_id(&shard, r))));
            }
            (None, Some((scope, _))) if super::listener_configs::touches_listeners(&r.change) => {
                let per_node = matches!(scope, Scope::Node);
                let answer =
                    super::listener_configs::alter(&shard, per_node, &r.change, validate_only)
                        .await;
                early.push(Some(answer));
            }
            (None, Some((scope, node_id))) => {
                let change = match &r.change {
                    ConfigChange::Replace(pairs) => BrokerChange::Replace(pairs.clone()),
                    ConfigChange::IncrementalAlter(e) => BrokerChange::IncrementalAlter(e.clone()),
                };
                let answer = router
                    .change_broker_configs(scope, node_id, change, validate_only)
                    .await;
                early.push(Some(answer));
            }
            (None, None) => {
                topics.push((r.name.clone(), r.change.clone()));
                early.push(None);
            }
        }
    }
    let change = RegistryChange::AlterConfigs {
        topics,
        validate_only,
    };
    let mut answers = router.change_registry(change).await.into_iter();
    early
        .into_iter()
        .map(|decided| match decided {
            Some(answer) => answer,
            None => answers
                .next()
                .unwrap_or_else(|| Err(AdminError::Storage("no answer".into())))
                .map(|_| ()),
        })
        .collect()
}

/// The dynamic-config scope of a BROKER resource naming this cluster ("") or a node, and that
/// node's id (this node's for ""). A client names this node (Kafka's `ConfigAdminManager`
/// refuses another id before forwarding); a request another broker forwarded names that
/// broker, which checked it, so the active controller takes any id there.
fn broker_scope(shard: &Shard, request: &Request, r: &Resource) -> Option<(Scope, i32)> {
    if r.resource_type != RESOURCE_BROKER {
        return None;
    }
    let own = shard.config.server.node_id;
    if r.name.is_empty() {
        return Some((Scope::Cluster, own));
    }
    let id: i32 = r.name.parse().ok()?;
    (id == own || request.session.is_forwarded()).then_some((Scope::Node, id))
}

/// Whether an (Incremental)AlterConfigs request names a BROKER resource of another node:
/// Kafka's `ConfigAdminManager.preprocess` refuses those on the receiving broker, before
/// forwarding, so such a request is answered here (INVALID_REQUEST for those resources, the
/// rest NOT_CONTROLLER, retriable) and the controller can take the ids it is forwarded as given.
/// Kafka's admin client sends broker N's resources to broker N, so it never meets this.
pub(super) fn names_another_broker(shard: &Shard, request: &Request) -> bool {
    let own = shard.config.server.node_id.to_string();
    let foreign = |resource_type: i8, name: &StrBytes| {
        resource_type == RESOURCE_BROKER && !name.is_empty() && name.as_str() != own
    };
    match request.api_key {
        ApiKey::AlterConfigs => request.decode::<AlterConfigsRequest>().is_ok_and(|body| {
            body.resources
                .iter()
                .any(|r| foreign(r.resource_type, &r.resource_name))
        }),
        ApiKey::IncrementalAlterConfigs => request
            .decode::<IncrementalAlterConfigsRequest>()
            .is_ok_and(|body| {
                body.resources
                    .iter()
                    .any(|r| foreign(r.resource_type, &r.resource_name))
            }),
        _ => false,
    }
}

fn unexpected_broker_id(shard: &Shard, r: &Resource) -> AdminError {
    AdminError::InvalidRequest(format!(
        "Unexpected broker id, expected {} or empty string, but received {}",
        shard.config.server.node_id, r.name
    ))
}

/// Why a resource cannot be altered (None: a topic, decided on shard 0, or a BROKER resource
/// of this node or cluster).
fn resource_refusal(shard: &Shard, request: &Request, r: &Resource) -> Option<AdminError> {
    match r.resource_type {
        RESOURCE_TOPIC => None,
        RESOURCE_BROKER if broker_scope(shard, request, r).is_some() => None,
        RESOURCE_BROKER => Some(unexpected_broker_id(shard, r)),
        other => Some(AdminError::InvalidRequest(format!(
            "Unsupported resource type: {other}"
        ))),
    }
}
