//! FindCoordinator: this node coordinates every group (the shard that owns a group is reached
//! internally), so the answer is always this broker's advertised address. v4+ batches keys.
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
        let mut response = if version >= 4 {
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
        // The coordinator is this node, at the listener the client connected on.
        let listener = &request.session.listener;
        let (host, port) = (
            str_bytes(&listener.advertised_host),
            i32::from(listener.advertised_port),
        );
        if version < 4 && response.node_id.0 >= 0 {
            (response.host, response.port) = (host.clone(), port);
        }
        for c in response
            .coordinators
            .iter_mut()
            .filter(|c| c.node_id.0 >= 0)
        {
            (c.host, c.port) = (host.clone(), port);
        }
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
    match error {
        None => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(shard.config.node_id))
            .with_host(str_bytes(&shard.advertised_host))
            .with_port(i32::from(shard.advertised_port)),
        Some(error) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&error.to_string()))),
    }
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
