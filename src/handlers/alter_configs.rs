//! AlterConfigs (replace a topic's whole override set) and IncrementalAlterConfigs (SET /
//! DELETE / APPEND / SUBTRACT per key), for topic resources, through shard 0, which persists the
//! new overrides and has every owning shard apply them to its live logs (or only validates:
//! `validate_only`). BROKER resources ("" cluster-wide, or this node's id) change the dynamic
//! broker configs (`topics::dynamic`); a broker setting Kafka cannot update dynamically is
//! INVALID_REQUEST, as in Kafka.
//!
//! Invariant: one answer per requested resource, in request order; a resource named twice is
//! INVALID_REQUEST for each mention, and is not changed.

use std::rc::Rc;

use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

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
    let router = Router::new(shard.clone());
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
            resource_refusal(&shard, r)
        };
        match (refused, broker_scope(&shard, r)) {
            (Some(e), _) => early.push(Some(Err(e))),
            (None, Some(scope)) if super::listener_configs::touches_listeners(&r.change) => {
                let per_node = matches!(scope, Scope::Node);
                let answer =
                    super::listener_configs::alter(&shard, per_node, &r.change, validate_only)
                        .await;
                early.push(Some(answer));
            }
            (None, Some(scope)) => {
                let change = match &r.change {
                    ConfigChange::Replace(pairs) => BrokerChange::Replace(pairs.clone()),
                    ConfigChange::IncrementalAlter(e) => BrokerChange::IncrementalAlter(e.clone()),
                };
                let answer = router
                    .change_broker_configs(scope, change, validate_only)
                    .await;
                early.push(Some(answer));
            }
            (None, None) if r.resource_type == RESOURCE_BROKER => {
                // Another broker of the cluster (`other_node`): on the controller.
                let node_id = other_node(&shard, r).unwrap_or(-1);
                let change = match &r.change {
                    ConfigChange::Replace(pairs) => BrokerChange::Replace(pairs.clone()),
                    ConfigChange::IncrementalAlter(e) => BrokerChange::IncrementalAlter(e.clone()),
                };
                let answer = other_node_configs(&shard, node_id, change, validate_only).await;
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

/// The dynamic-config scope of a BROKER resource naming this cluster ("") or node.
fn broker_scope(shard: &Shard, r: &Resource) -> Option<Scope> {
    if r.resource_type != RESOURCE_BROKER {
        return None;
    }
    if r.name.is_empty() {
        Some(Scope::Cluster)
    } else if r.name.parse().ok() == Some(shard.config.node_id) {
        Some(Scope::Node)
    } else {
        None
    }
}

/// Why a resource cannot be altered (None: a topic, decided on shard 0, or a BROKER resource
/// of this node or cluster).
fn resource_refusal(shard: &Shard, r: &Resource) -> Option<AdminError> {
    match r.resource_type {
        RESOURCE_TOPIC => None,
        RESOURCE_BROKER if broker_scope(shard, r).is_some() => None,
        RESOURCE_BROKER if other_node(shard, r).is_some() => None,
        RESOURCE_BROKER => Some(AdminError::InvalidRequest(format!(
            "Unexpected broker id, expected {} or empty string, but received {}",
            shard.config.node_id, r.name
        ))),
        other => Some(AdminError::InvalidRequest(format!(
            "Unsupported resource type: {other}"
        ))),
    }
}

/// A BROKER resource naming another registered broker of a KRaft cluster (Kafka's controller
/// changes any broker's dynamic configs).
fn other_node(shard: &Shard, r: &Resource) -> Option<i32> {
    shard.cluster.as_ref()?;
    let id: i32 = r.name.parse().ok()?;
    (id != shard.config.node_id && shard.topics.borrow().broker(id).is_some()).then_some(id)
}

/// Runs `controller::alter_node_configs` on the registry shard.
async fn other_node_configs(
    shard: &Rc<Shard>,
    node_id: i32,
    change: BrokerChange,
    validate_only: bool,
) -> Result<(), AdminError> {
    use crate::cluster::controller::alter_node_configs;
    use crate::router::REGISTRY_SHARD;
    if shard.id == REGISTRY_SHARD {
        return alter_node_configs(shard, node_id, change, validate_only).await;
    }
    shard
        .mesh
        .call(REGISTRY_SHARD, |reply| {
            crate::shard::ShardMsg::run(move |shard| async move {
                reply.send(alter_node_configs(&shard, node_id, change, validate_only).await);
            })
        })
        .await
        .unwrap_or_else(|_| Err(AdminError::Storage("registry shard unavailable".into())))
}
