//! FindCoordinator: a group's coordinator is the broker leading its `__consumer_offsets`
//! partition (`abs(javaHash(group)) % partitions`, Kafka's rule), read from the metadata image
//! and answered at its endpoint for the request's listener (inside that broker, the shard owning
//! the partition serves the group). No leader, or no offsets topic yet: COORDINATOR_NOT_AVAILABLE
//! (retriable). v4+ batches keys.
//!
//! A transactional id's coordinator (key type 1) is found the same way on `__transaction_state`
//! (TRANSACTIONAL_ID DESCRIBE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka).

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
        KEY_TYPE_TRANSACTION => None,
        _ => Some(K::InvalidRequest),
    }
}

fn coordinator(shard: &Shard, request: &Request, key: StrBytes, key_type: i8) -> Coordinator {
    // Kafka: GROUP (TRANSACTIONAL_ID) DESCRIBE on the key, else GROUP_AUTHORIZATION_FAILED
    // (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
    let (resource, refusal, topic) = if key_type == KEY_TYPE_TRANSACTION {
        (
            ResourceType::TransactionalId,
            K::TransactionalIdAuthorizationFailed,
            crate::internal_topics::TRANSACTION_STATE_TOPIC,
        )
    } else {
        (
            ResourceType::Group,
            K::GroupAuthorizationFailed,
            crate::groups::OFFSETS_TOPIC,
        )
    };
    let error = key_type_error(key_type).or_else(|| {
        let allowed = authz::allowed(shard, request, Operation::Describe, resource, key.as_str());
        (!allowed).then_some(refusal)
    });
    let found = match error {
        None => coordinator_of(shard, &request.session.listener.name, topic, key.as_str())
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

/// The broker leading `key`'s partition of the coordinator topic `topic`, at its endpoint for
/// `listener`.
fn coordinator_of(
    shard: &Shard,
    listener: &str,
    topic: &str,
    key: &str,
) -> Option<(i32, String, u16)> {
    let image = shard.topics.borrow();
    let log = image.get(topic)?;
    let partition = crate::coordinator_log::partition_for(key, log.partitions);
    let leader = image.partition(topic, partition)?.leader;
    let broker = image.broker(leader).filter(|b| !b.fenced)?;
    let endpoint = broker.end_points.iter().find(|e| e.name == listener)?;
    Some((leader, endpoint.host.clone(), endpoint.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_transaction_keys_get_a_coordinator() {
        assert_eq!(key_type_error(KEY_TYPE_GROUP), None);
        assert_eq!(key_type_error(KEY_TYPE_TRANSACTION), None);
        assert_eq!(key_type_error(2), Some(K::InvalidRequest));
    }
}
