//! The one place handlers ask the authorizer (Kafka's `AuthHelper`): whether the request's
//! principal, from its host, may do an operation on a resource, and the authorized-operations
//! bitfields. Every denial of an explicitly named resource is logged on the audit target.
//!
//! With no authorizer configured every check allows, so the handlers behave as before.

use std::rc::Rc;

use crate::groups::{self, GroupAnswer, GroupOp};
use crate::router::admin::AdminError;
use crate::security::acl::{Action, Operation, ResourceType, CLUSTER_NAME};
use crate::security::session::AUDIT_TARGET;
use crate::shard::Shard;

use super::Request;

/// Whether the request may do `operation` on the resource; a denial is audited.
pub fn allowed(
    shard: &Shard,
    request: &Request,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    check(shard, request, operation, resource_type, name, true)
}

/// The topics among `names` the request may not do `operation` on (each denial audited):
/// what Kafka answers TOPIC_AUTHORIZATION_FAILED for, partition by partition.
pub fn denied_topics(
    shard: &Shard,
    request: &Request,
    operation: Operation,
    names: impl IntoIterator<Item = String>,
) -> std::collections::HashSet<String> {
    names
        .into_iter()
        .filter(|name| !allowed(shard, request, operation, ResourceType::Topic, name))
        .collect()
}

/// As `allowed`, without the audit line: for filtering listings (Kafka's `logIfDenied = false`
/// when a client lists all topics or groups it did not name).
pub fn allowed_quietly(
    shard: &Shard,
    request: &Request,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    check(shard, request, operation, resource_type, name, false)
}

/// `operation` on the CLUSTER resource.
pub fn cluster_allowed(shard: &Shard, request: &Request, operation: Operation) -> bool {
    allowed(
        shard,
        request,
        operation,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
}

/// `operation` on the CLUSTER resource, without the audit line (a fallback check).
pub fn cluster_allowed_quietly(shard: &Shard, request: &Request, operation: Operation) -> bool {
    allowed_quietly(
        shard,
        request,
        operation,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
}

/// InitProducerId without a transactional id (Kafka 3+): CLUSTER IDEMPOTENT_WRITE, or WRITE on
/// any topic (`authorizeByResourceType`, KIP-679). A refusal is audited once.
pub fn idempotent_write_allowed(shard: &Shard, request: &Request) -> bool {
    if cluster_allowed_quietly(shard, request, Operation::IdempotentWrite) {
        return true;
    }
    let principal = request.session.principal();
    let host = request.peer.ip().to_string();
    let ok = shard.authorizer.authorize_by_resource_type(
        shard.topics.borrow().security().acls(),
        &principal,
        &host,
        Operation::Write,
        ResourceType::Topic,
    );
    if !ok {
        tracing::info!(
            target: AUDIT_TARGET,
            principal = %principal,
            host = %host,
            operation = ?Operation::IdempotentWrite,
            resource_type = ?ResourceType::Cluster,
            resource = CLUSTER_NAME,
            api = ?request.api_key,
            "authorization denied (and no WRITE on any topic)"
        );
    }
    ok
}

fn check(
    shard: &Shard,
    request: &Request,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
    audit: bool,
) -> bool {
    let authorizer = &shard.authorizer;
    if !authorizer.enabled() {
        return true;
    }
    let principal = request.session.principal();
    let host = request.peer.ip().to_string();
    let ok = authorizer.authorize(
        shard.topics.borrow().security().acls(),
        &Action {
            principal: &principal,
            host: &host,
            operation,
            resource_type,
            resource_name: name,
        },
    );
    if !ok && audit {
        tracing::info!(
            target: AUDIT_TARGET,
            principal = %principal,
            host = %host,
            operation = ?operation,
            resource_type = ?resource_type,
            resource = name,
            api = ?request.api_key,
            "authorization denied"
        );
    }
    ok
}

/// Kafka's authorized-operations bitfield of the request's principal for one resource (every
/// supported operation when no authorizer is configured, as Kafka answers).
pub fn authorized_operations(
    shard: &Shard,
    request: &Request,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    let principal = request.session.principal();
    let host = request.peer.ip().to_string();
    shard.authorizer.authorized_operations(
        shard.topics.borrow().security().acls(),
        &principal,
        &host,
        resource_type,
        name,
    )
}

/// Kafka's rule for creating a topic (CreateTopics, auto-creation): CLUSTER CREATE, or CREATE
/// on the topic. Checks the cluster quietly so that only a refusal on both is audited.
pub fn may_create_topic(shard: &Shard, request: &Request, topic: &str) -> bool {
    cluster_allowed_quietly(shard, request, Operation::Create)
        || allowed(
            shard,
            request,
            Operation::Create,
            ResourceType::Topic,
            topic,
        )
}

/// As `may_create_topic`, without the audit line (a pre-check whose refusal is audited later).
pub fn may_create_topic_quietly(shard: &Shard, request: &Request, topic: &str) -> bool {
    cluster_allowed_quietly(shard, request, Operation::Create)
        || allowed_quietly(
            shard,
            request,
            Operation::Create,
            ResourceType::Topic,
            topic,
        )
}

/// The GROUP operation Kafka's KafkaApis checks for a group request.
fn group_operation(op: &GroupOp) -> Operation {
    match op {
        GroupOp::Join { .. }
        | GroupOp::Sync { .. }
        | GroupOp::Heartbeat { .. }
        | GroupOp::Leave { .. }
        | GroupOp::Commit(_) => Operation::Read,
        GroupOp::FetchOffsets { .. } | GroupOp::Describe { .. } | GroupOp::List => {
            Operation::Describe
        }
        GroupOp::Delete { .. } | GroupOp::DeleteOffsets { .. } => Operation::Delete,
        // From the transaction coordinator, never from a client request.
        GroupOp::CompleteTxn { .. } => Operation::ClusterAction,
    }
}

/// Routes a group operation after the GROUP check (READ to join, sync, heartbeat, leave and
/// commit; DESCRIBE to describe and fetch offsets; DELETE to delete); a refusal answers
/// GROUP_AUTHORIZATION_FAILED without reaching the coordinator.
pub async fn route_group(shard: &Rc<Shard>, request: &Request, op: GroupOp) -> GroupAnswer {
    if let Some(group) = op.group() {
        if !allowed(
            shard,
            request,
            group_operation(&op),
            ResourceType::Group,
            group,
        ) {
            return GroupAnswer::Error(crate::groups::GroupCode::GroupAuthorizationFailed);
        }
    }
    groups::route(&shard.group_routing_context(), op).await
}

/// A request's topics with what it asks of each.
pub type NamedTopics<T> = Vec<(String, T)>;

/// OffsetCommit / OffsetDelete: splits the topics into (readable, refused) by TOPIC READ. When
/// the group itself is refused (`group_operation`), nothing is split off: `route_group` then
/// fails the whole request with GROUP_AUTHORIZATION_FAILED, as Kafka checks the group first.
pub fn split_readable_topics<T>(
    shard: &Shard,
    request: &Request,
    group: &str,
    group_operation: Operation,
    topics: Vec<(String, T)>,
) -> (NamedTopics<T>, NamedTopics<T>) {
    let group_ok = allowed_quietly(shard, request, group_operation, ResourceType::Group, group);
    topics.into_iter().partition(|(name, _)| {
        !group_ok || allowed(shard, request, Operation::Read, ResourceType::Topic, name)
    })
}

/// DescribeConfigs / AlterConfigs: a config resource's check (Kafka maps TOPIC to the topic
/// and BROKER to the CLUSTER resource). The refusal to answer, or None when allowed or when the
/// resource type is not one Sluice serves (the handler refuses those itself).
pub fn config_refusal(
    shard: &Shard,
    request: &Request,
    operation: Operation,
    config_resource_type: i8,
    name: &str,
) -> Option<AdminError> {
    match config_resource_type {
        CONFIG_RESOURCE_TOPIC if !allowed(shard, request, operation, ResourceType::Topic, name) => {
            Some(AdminError::TopicAuthorizationFailed)
        }
        CONFIG_RESOURCE_BROKER if !cluster_allowed(shard, request, operation) => {
            Some(AdminError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

/// Kafka's ConfigResource.Type codes.
const CONFIG_RESOURCE_TOPIC: i8 = 2;
const CONFIG_RESOURCE_BROKER: i8 = 4;
