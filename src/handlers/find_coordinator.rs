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
    let node = coordinator_node(&shard.topics.borrow(), listener, group)?;
    Some((node.id, node.host, node.port))
}

/// Kafka's coordinator of `group`: the alive leader of partition `partitionFor(group)` of
/// `__consumer_offsets`, at its `listener` endpoint; None while there is none.
fn coordinator_node(
    image: &crate::cluster::MetadataImage,
    listener: &str,
    group: &str,
) -> Option<crate::cluster::view::Node> {
    let offsets = image.get(crate::groups::OFFSETS_TOPIC)?;
    let partition = crate::groups::partition_for(group, offsets.partitions);
    let leader = image
        .partition(crate::groups::OFFSETS_TOPIC, partition)?
        .leader;
    crate::cluster::view::alive_node(image, leader, listener)
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

    /// Brokers 1-3 (3 fenced), `__consumer_offsets` with partition i led by broker i + 1.
    fn cluster() -> crate::cluster::MetadataImage {
        use crate::cluster::records::{
            BrokerEndpoint, MetadataRecord, PartitionRecord, RegisterBrokerRecord, TopicId,
            TopicRecord,
        };
        let mut image = crate::cluster::MetadataImage::default();
        for id in 1..=3 {
            let endpoint = BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + u16::try_from(id).unwrap(),
                security_protocol: "PLAINTEXT".into(),
            };
            image
                .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: id,
                    incarnation_id: 1,
                    broker_epoch: 1,
                    end_points: vec![endpoint],
                    rack: None,
                    fenced: id == 3,
                }))
                .unwrap();
        }
        let topic = TopicId(77);
        image
            .apply(&MetadataRecord::Topic(TopicRecord {
                name: crate::groups::OFFSETS_TOPIC.into(),
                topic_id: topic,
            }))
            .unwrap();
        for partition_id in 0..3 {
            let leader = i32::try_from(partition_id).unwrap() + 1;
            image
                .apply(&MetadataRecord::Partition(PartitionRecord {
                    partition_id,
                    topic_id: topic,
                    replicas: vec![leader],
                    isr: vec![leader],
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }))
                .unwrap();
        }
        image
    }

    #[test]
    fn the_coordinator_is_the_alive_leader_of_the_groups_partition() {
        let image = cluster();
        let group_on = |p: u32| {
            (0..)
                .map(|n| format!("group-{n}"))
                .find(|g| crate::groups::partition_for(g, 3) == p)
                .unwrap()
        };
        let node = coordinator_node(&image, "PLAINTEXT", &group_on(1)).unwrap();
        assert_eq!((node.id, node.port), (2, 9002));
        assert_eq!(
            coordinator_node(&image, "PLAINTEXT", &group_on(0))
                .unwrap()
                .id,
            1
        );
        assert!(
            coordinator_node(&image, "PLAINTEXT", &group_on(2)).is_none(),
            "a fenced leader coordinates nothing: COORDINATOR_NOT_AVAILABLE"
        );
        assert!(coordinator_node(&image, "SSL", &group_on(1)).is_none());
        assert!(coordinator_node(&Default::default(), "PLAINTEXT", "g").is_none());
    }
}
