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
        if body.key_type == KEY_TYPE_TRANSACTION {
            ensure_transaction_log(&shard).await;
        }
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
/// Kafka creates `__transaction_state` when a client first looks for a transaction
/// coordinator (`KafkaApis.getOrCreateInternalTopic`), not at start: a broker that never runs
/// transactions keeps no 50 idle partitions. On a single node the creation is awaited here; on
/// a KRaft cluster the active controller creates it with the offsets topic
/// (`cluster::duties`), and until then the answer is COORDINATOR_NOT_AVAILABLE.
async fn ensure_transaction_log(shard: &Rc<Shard>) {
    let exists = shard
        .topics
        .borrow()
        .get(crate::internal_topics::TRANSACTION_STATE_TOPIC)
        .is_some();
    if !exists && shard.cluster.is_none() {
        crate::txn::ensure_log_topic(shard.txn_coordinator_context()).await;
    }
}

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
    let node = coordinator_node(&shard.topics.borrow(), listener, topic, key)?;
    Some((node.id, node.host, node.port))
}

/// Kafka's coordinator of `key`: the alive leader of partition `partitionFor(key)` of the
/// coordinator topic `topic` (`__consumer_offsets`, `__transaction_state`), at its `listener`
/// endpoint; None while there is none.
fn coordinator_node(
    image: &crate::cluster::MetadataImage,
    listener: &str,
    topic: &str,
    key: &str,
) -> Option<crate::cluster::view::Node> {
    let log = image.get(topic)?;
    let partition = crate::coordinator_log::partition_for(key, log.partitions);
    let leader = image.partition(topic, partition)?.leader;
    crate::cluster::view::alive_node(image, leader, listener)
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
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                }))
                .unwrap();
        }
        image
    }

    const OFFSETS: &str = crate::groups::OFFSETS_TOPIC;

    #[test]
    fn the_coordinator_is_the_alive_leader_of_the_groups_partition() {
        let image = cluster();
        let group_on = |p: u32| {
            (0..)
                .map(|n| format!("group-{n}"))
                .find(|g| crate::coordinator_log::partition_for(g, 3) == p)
                .unwrap()
        };
        let node = coordinator_node(&image, "PLAINTEXT", OFFSETS, &group_on(1)).unwrap();
        assert_eq!((node.id, node.port), (2, 9002));
        assert_eq!(
            coordinator_node(&image, "PLAINTEXT", OFFSETS, &group_on(0))
                .unwrap()
                .id,
            1
        );
        assert!(
            coordinator_node(&image, "PLAINTEXT", OFFSETS, &group_on(2)).is_none(),
            "a fenced leader coordinates nothing: COORDINATOR_NOT_AVAILABLE"
        );
        assert!(coordinator_node(&image, "SSL", OFFSETS, &group_on(1)).is_none());
        assert!(coordinator_node(&Default::default(), "PLAINTEXT", OFFSETS, "g").is_none());
    }
}
