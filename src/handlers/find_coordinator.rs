//! FindCoordinator: a group's coordinator is the broker leading its `__consumer_offsets`
//! partition (`abs(javaHash(group)) % partitions`, Kafka's rule), read from the metadata image
//! and answered at its endpoint for the request's listener (inside that broker, the shard owning
//! the partition serves the group). No leader, or no offsets topic yet: COORDINATOR_NOT_AVAILABLE
//! (retriable). v4+ batches keys.
//!
//! Sluice has no transactions yet: a transaction coordinator lookup (key type 1) answers
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as InitProducerId does for a transactional id, so a
//! transactional client fails at once instead of retrying a retriable error until its timeout.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as K;

use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

/// Kafka's coordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: FindCoordinatorRequest = request.decode()?;
        let response = if version >= 4 {
            let coordinators = body
                .coordinator_keys
                .iter()
                .map(|key| coordinator(&shard, &request, key.clone(), body.key_type))
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            let c = coordinator(&shard, &request, body.key.clone(), body.key_type);
            let mut response = FindCoordinatorResponse::default()
                .with_error_code(c.error_code)
                .with_node_id(c.node_id)
                .with_host(c.host)
                .with_port(c.port);
            if version >= 1 {
                response.error_message = c.error_message;
            }
            response
        };
        Outcome::encoded(&response, version)
    })
}

/// Why a key of this type gets no coordinator (None: it gets this broker).
fn key_type_error(key_type: i8) -> Option<K> {
    match key_type {
        KEY_TYPE_GROUP => None,
        // Not retriable, unlike COORDINATOR_NOT_AVAILABLE: see the module comment.
        KEY_TYPE_TRANSACTION => Some(K::TransactionalIdAuthorizationFailed),
        _ => Some(K::InvalidRequest),
    }
}

fn coordinator(shard: &Shard, request: &Request, key: StrBytes, key_type: i8) -> Coordinator {
    // Kafka: GROUP DESCRIBE on the key, else GROUP_AUTHORIZATION_FAILED.
    let denied = key_type == KEY_TYPE_GROUP
        && !authz::allowed(
            shard,
            request,
            Operation::Describe,
            ResourceType::Group,
            key.as_str(),
        );
    let error = if denied {
        Some(K::GroupAuthorizationFailed)
    } else {
        key_type_error(key_type)
    };
    let found = match error {
        None => group_coordinator(shard, &request.session.listener.name, key.as_str())
            .ok_or(K::CoordinatorNotAvailable),
        Some(error) => Err(error),
    };
    match found {
        Ok((node, host, port)) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(&host))
            .with_port(i32::from(port)),
        Err(error) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&error.to_string()))),
    }
}

/// The broker leading `group`'s offsets partition, at its endpoint for `listener`.
fn group_coordinator(shard: &Shard, listener: &str, group: &str) -> Option<(i32, String, u16)> {
    let image = shard.topics.borrow();
    let offsets = image.get(crate::groups::OFFSETS_TOPIC)?;
    let partition = crate::groups::partition_for(group, offsets.partitions);
    let leader = image
        .partition(crate::groups::OFFSETS_TOPIC, partition)?
        .leader;
    let node = crate::cluster::view::alive_node(&image, leader, listener)?;
    Some((node.id, node.host, node.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_group_keys_get_a_coordinator() {
        assert_eq!(key_type_error(KEY_TYPE_GROUP), None);
        assert_eq!(
            key_type_error(KEY_TYPE_TRANSACTION).map(|e| e.code()),
            Some(53),
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED: no transactions"
        );
        assert_eq!(key_type_error(2), Some(K::InvalidRequest));
    }
}
