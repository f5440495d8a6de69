//! Metadata: brokers, topics, leaders, replicas, ISR and leader epochs, all from the shard's
//! metadata image (`cluster`), auto-creating requested unknown topics when allowed.
//!
//! Invariants: an auto-created topic is only reported once the controller persisted it and
//! every shard opened its partitions, so the client's next produce finds the partition. Each
//! broker is answered at its endpoint for the listener the request came in on (Kafka's rule);
//! a broker without that listener is left out.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;

use super::error::topic_error_code;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request, AUTHORIZED_OPERATIONS_OMITTED};
use crate::cluster::view;
use crate::router::{NewTopic, Router};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::shard::Shard;
use crate::topics::{self, TopicError, TopicId, TopicMeta};

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: MetadataRequest = request.decode()?;
        let response = respond(&shard, &request, &body, version).await;
        Outcome::encoded(&response, version)
    })
}

enum Wanted {
    Name(String),
    Id(uuid::Uuid),
}

impl Wanted {
    fn key(&self) -> (Option<String>, uuid::Uuid) {
        match self {
            Wanted::Name(name) => (Some(name.clone()), uuid::Uuid::nil()),
            Wanted::Id(id) => (None, *id),
        }
    }
}

async fn respond(
    shard: &Rc<Shard>,
    request: &Request,
    body: &MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let wanted: Option<Vec<Wanted>> = match &body.topics {
        None => None,
        // v0 spells "all topics" as an empty list.
        Some(list) if version == 0 && list.is_empty() => None,
        // Kafka turns the requested topics into a set: one entry per distinct topic. A
        // non-zero topic id selects by id, whatever the name holds: the Java client sends ""
        // (the field's default), not null, beside an id (Kafka's KafkaApis decides by the id
        // the same way).
        Some(list) => Some(super::dedup::first_wins(
            list.iter().map(|t| match &t.name {
                _ if !t.topic_id.is_nil() => Wanted::Id(t.topic_id),
                Some(name) => Wanted::Name(name.0.to_string()),
                None => Wanted::Id(t.topic_id),
            }),
            Wanted::key,
        )),
    };
    // v0-v3 have no allow flag and always auto-create.
    let allow_create = (version < 4 || body.allow_auto_topic_creation)
        && shard.config.topics.auto_create_topics_enable;
    let mut create_errors = std::collections::HashMap::new();
    if let (Some(wanted), true) = (&wanted, allow_create) {
        let missing: Vec<String> = wanted
            .iter()
            .filter_map(|w| match w {
                Wanted::Name(name)
                    if shard.topics.borrow().get(name).is_none()
                        // Quiet: the listing below answers (and audits) a refusal.
                        && authz::allowed_quietly(
                            shard,
                            request,
                            Operation::Describe,
                            ResourceType::Topic,
                            name,
                        )
                        && authz::may_create_topic_quietly(shard, request, name) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        create_errors = auto_create(shard, missing).await.into_iter().collect();
    }
    let mut budget = super::dedup::Budget::new();
    let mut topics = Vec::new();
    match wanted {
        None => {
            let all: Vec<TopicMeta> = shard.topics.borrow().iter().cloned().collect();
            // Kafka lists only the topics the principal may DESCRIBE, without auditing the rest.
            let visible = all.iter().filter(|meta| {
                authz::allowed_quietly(
                    shard,
                    request,
                    Operation::Describe,
                    ResourceType::Topic,
                    &meta.name,
                )
            });
            for meta in visible {
                topics.push(with_operations(
                    topic_entry(shard, meta, &request.session.listener.name, version),
                    shard,
                    request,
                    body,
                ));
                budget.tick().await;
            }
        }
        Some(wanted) => {
            for w in &wanted {
                let entry = match wanted_name(shard, w) {
                    Some(name) if !may_describe(shard, request, &name) => unauthorized(w, name),
                    Some(name)
                        if allow_create
                            && shard.topics.borrow().get(&name).is_none()
                            && !authz::may_create_topic(shard, request, &name) =>
                    {
                        unauthorized(w, name)
                    }
                    _ => describe_wanted(
                        shard,
                        &request.session.listener.name,
                        w,
                        &create_errors,
                        version,
                    ),
                };
                topics.push(with_operations(entry, shard, request, body));
                budget.tick().await;
            }
        }
    }
    let brokers = brokers(shard, &request.session.listener.name, version);
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 2 {
        response.cluster_id = Some(str_bytes(&shard.config.server.cluster_id));
    }
    if version >= 1 {
        response.controller_id = BrokerId(shard.controller_id());
    }
    if (8..=10).contains(&version) {
        response.cluster_authorized_operations = if body.include_cluster_authorized_operations {
            authz::authorized_operations(shard, request, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    }
    response
}

/// Every alive broker at its endpoint for `listener` (v1+ with its rack).
fn brokers(shard: &Shard, listener: &str, version: i16) -> Vec<MetadataResponseBroker> {
    let image = shard.topics.borrow();
    view::alive_nodes(&image, listener)
        .into_iter()
        .map(|node| {
            let mut broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(node.id))
                .with_host(str_bytes(&node.host))
                .with_port(i32::from(node.port));
            if version >= 1 {
                broker.rack = node.rack.as_deref().map(str_bytes);
            }
            broker
        })
        .collect()
}

fn may_describe(shard: &Shard, request: &Request, topic: &str) -> bool {
    authz::allowed(
        shard,
        request,
        Operation::Describe,
        ResourceType::Topic,
        topic,
    )
}

/// The topic's name: as asked, or the name of the topic with the asked id (None if unknown).
fn wanted_name(shard: &Shard, wanted: &Wanted) -> Option<String> {
    match wanted {
        Wanted::Name(name) => Some(name.clone()),
        Wanted::Id(id) => shard
            .topics
            .borrow()
            .by_id(TopicId(id.as_u128()))
            .map(|m| m.name.clone()),
    }
}

/// TOPIC_AUTHORIZATION_FAILED, without partitions; a topic asked by id keeps its name hidden.
fn unauthorized(wanted: &Wanted, name: String) -> MetadataResponseTopic {
    let (name, id) = match wanted {
        Wanted::Name(_) => (Some(TopicName(str_bytes(&name))), uuid::Uuid::nil()),
        Wanted::Id(id) => (None, *id),
    };
    MetadataResponseTopic::default()
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// Fills `topic_authorized_operations` when the client asked for it (v8+) for a found topic.
fn with_operations(
    mut topic: MetadataResponseTopic,
    shard: &Shard,
    request: &Request,
    body: &MetadataRequest,
) -> MetadataResponseTopic {
    if body.include_topic_authorized_operations && topic.error_code == 0 {
        if let Some(name) = &topic.name {
            topic.topic_authorized_operations =
                authz::authorized_operations(shard, request, ResourceType::Topic, name.0.as_str());
        }
    }
    topic
}

fn describe_wanted(
    shard: &Shard,
    listener: &str,
    wanted: &Wanted,
    create_errors: &std::collections::HashMap<String, TopicError>,
    version: i16,
) -> MetadataResponseTopic {
    let table = shard.topics.borrow();
    let (found, name, id) = match wanted {
        Wanted::Name(name) => (
            table.get(name).cloned(),
            Some(name.clone()),
            uuid::Uuid::nil(),
        ),
        Wanted::Id(id) => (table.by_id(TopicId(id.as_u128())).cloned(), None, *id),
    };
    drop(table);
    if let Some(meta) = found {
        return topic_entry(shard, &meta, listener, version);
    }
    let code = match (&name, wanted) {
        (Some(name), _) => match create_errors.get(name) {
            // The active controller could not be reached (or changed) for the auto-creation:
            // the topic is answered as Kafka answers one whose creation is under way, so the
            // client asks again (NOT_CONTROLLER means nothing to a Metadata client).
            Some(TopicError::NotController) => ResponseError::LeaderNotAvailable.code(),
            Some(error) => topic_error_code(error),
            None if topics::validate_name(name).is_err() => {
                ResponseError::InvalidTopicException.code()
            }
            None => ResponseError::UnknownTopicOrPartition.code(),
        },
        (None, _) => ResponseError::UnknownTopicId.code(),
    };
    let mut topic = MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(str_bytes(&n))))
        .with_topic_id(id);
    if version >= 8 {
        topic.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    }
    topic
}

/// A found topic's entry: each partition's leader, leader epoch, replicas, ISR and offline
/// replicas as the image registers them, for the request's listener (`cluster::view`, Kafka's
/// `KRaftMetadataCache.getPartitionMetadata`): a leader that is not an alive broker is -1 with
/// LEADER_NOT_AVAILABLE (LISTENER_NOT_FOUND from v6 when only the listener is missing); v0
/// lists only available replicas (REPLICA_NOT_AVAILABLE when one was left out).
pub(super) fn topic_entry(
    shard: &Shard,
    meta: &TopicMeta,
    listener: &str,
    version: i16,
) -> MetadataResponseTopic {
    let image = shard.topics.borrow();
    let ids = |list: &[i32]| list.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = (0..meta.partitions)
        .zip(&meta.registrations)
        .map(|(index, r)| {
            let v = view::partition_view(&image, r, listener, version == 0);
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                .with_leader_id(BrokerId(v.leader))
                .with_replica_nodes(ids(&v.replicas))
                .with_isr_nodes(ids(&v.isr));
            p.error_code = match v.error {
                None => 0,
                Some(view::LeaderError::ReplicaNotAvailable) => {
                    ResponseError::ReplicaNotAvailable.code()
                }
                Some(view::LeaderError::ListenerNotFound) if version >= 6 => {
                    ResponseError::ListenerNotFound.code()
                }
                Some(_) => ResponseError::LeaderNotAvailable.code(),
            };
            if version >= 5 {
                p.offline_replicas = ids(&v.offline);
            }
            if version >= 7 {
                p.leader_epoch = v.leader_epoch;
            }
            p
        })
        .collect();
    drop(image);
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&meta.name))))
        .with_topic_id(meta.id.uuid())
        .with_is_internal(crate::internal_topics::is_internal(&meta.name))
        .with_partitions(partitions);
    if version >= 8 {
        topic.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    }
    topic
}

/// Creates `names` with the broker defaults (auto.create.topics.enable); returns the failures.
/// A topic that another request created meanwhile is not a failure. An internal topic is
/// created as its coordinator creates it (partition count, compaction), never as an ordinary
/// topic: Kafka's `AutoTopicCreationManager.creatableTopic` (breaker B9).
pub async fn auto_create(shard: &Rc<Shard>, names: Vec<String>) -> Vec<(String, TopicError)> {
    let (internal, names): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|name| crate::internal_topics::is_internal(name));
    // On a KRaft cluster the active controller creates both at start (`cluster::duties`).
    for name in internal.into_iter().filter(|_| shard.cluster.is_none()) {
        if name == crate::internal_topics::TRANSACTION_STATE_TOPIC {
            crate::txn::ensure_log_topic(shard.txn_coordinator_context()).await;
        } else {
            crate::groups::ensure_offsets_topic(&shard.group_routing_context()).await;
        }
    }
    if names.is_empty() {
        return Vec::new();
    }
    if let Some(node) = shard.cluster.clone().filter(|n| !n.is_active_controller()) {
        // A KRaft broker that is not the active controller asks the controller.
        let partitions = shard.config.topics.num_partitions;
        let factor = shard.config.topics.default_replication_factor;
        let results = crate::cluster::heartbeat::auto_create_at_controller(
            node,
            names.clone(),
            partitions,
            factor,
        )
        .await;
        return names
            .into_iter()
            .zip(results)
            .filter_map(|(name, result)| match result {
                Ok(()) | Err(TopicError::AlreadyExists(_)) => None,
                Err(e) => Some((name, e)),
            })
            .collect();
    }
    let requests = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions: shard.config.topics.num_partitions,
            replication_factor: -1,
            configs: Default::default(),
            assignments: None,
        })
        .collect();
    let results = Router::new(shard.router_context())
        .create_topics(requests, false)
        .await;
    names
        .into_iter()
        .zip(results)
        .filter_map(|(name, result)| match result {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => None,
            Err(e) => Some((name, e)),
        })
        .collect()
}
