//! What clients are told about the cluster, read from the metadata image: the alive brokers at
//! their endpoint for the listener a request arrived on, and each partition's leader, replicas,
//! ISR and offline replicas (Kafka's `KRaftMetadataCache`). Metadata, DescribeCluster,
//! DescribeTopicPartitions, FindCoordinator and the NOT_LEADER_OR_FOLLOWER answers all read
//! through here, so every API tells the same story.
//!
//! Invariants: pure functions of the image (no I/O, no shard); a broker is alive when it is
//! registered and not fenced; a broker is reported only at an endpoint of the asked listener,
//! and a leader that is not alive there is reported as -1.

use super::image::{BrokerRegistration, MetadataImage, PartitionRegistration};
use super::records::NO_LEADER;

/// A broker as a client reaches it on one listener (Kafka's `Node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

fn node_of(broker: &BrokerRegistration, listener: &str) -> Option<Node> {
    let endpoint = broker.end_points.iter().find(|e| e.name == listener)?;
    Some(Node {
        id: broker.broker_id,
        host: endpoint.host.clone(),
        port: endpoint.port,
        rack: broker.rack.clone(),
    })
}

/// Kafka's `getAliveBrokerNode`: the broker, registered and unfenced, at its `listener`
/// endpoint.
pub fn alive_node(image: &MetadataImage, id: i32, listener: &str) -> Option<Node> {
    image
        .broker(id)
        .filter(|b| !b.fenced)
        .and_then(|b| node_of(b, listener))
}

/// Kafka's `getAliveBrokerNodes`: every unfenced broker that has `listener`, by id.
pub fn alive_nodes(image: &MetadataImage, listener: &str) -> Vec<Node> {
    image
        .brokers()
        .filter(|b| !b.fenced)
        .filter_map(|b| node_of(b, listener))
        .collect()
}

/// Why a partition has no leader to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderError {
    /// LEADER_NOT_AVAILABLE: no leader, or the leader is not registered or fenced.
    NotAvailable,
    /// LISTENER_NOT_FOUND (Metadata v6+): the leader is alive but lacks the request's listener.
    ListenerNotFound,
    /// REPLICA_NOT_AVAILABLE (Metadata v0 only): the leader is there, but some replica or ISR
    /// member is not available and was left out of the lists.
    ReplicaNotAvailable,
}

/// One partition as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// -1 when `error` is set.
    pub leader: i32,
    pub error: Option<LeaderError>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are absent, fenced or without the listener.
    pub offline: Vec<i32>,
}

/// Kafka's `getPartitionMetadata` for one registration. `filter_unavailable` (Metadata v0)
/// keeps only alive replicas with the listener in the replica and ISR lists, and says
/// REPLICA_NOT_AVAILABLE when that left one out of a led partition.
pub fn partition_view(
    image: &MetadataImage,
    registration: &PartitionRegistration,
    listener: &str,
    filter_unavailable: bool,
) -> PartitionView {
    let online = |id: &i32| alive_node(image, *id, listener).is_some();
    let keep = |list: &[i32]| -> Vec<i32> {
        if filter_unavailable {
            list.iter().copied().filter(online).collect()
        } else {
            list.to_vec()
        }
    };
    let offline = registration
        .replicas
        .iter()
        .copied()
        .filter(|b| !online(b))
        .collect();
    let error = match image.broker(registration.leader) {
        _ if registration.leader == NO_LEADER => Some(LeaderError::NotAvailable),
        None => Some(LeaderError::NotAvailable),
        Some(b) if b.fenced => Some(LeaderError::NotAvailable),
        Some(b) if node_of(b, listener).is_none() => Some(LeaderError::ListenerNotFound),
        Some(_) => None,
    };
    let (replicas, isr) = (keep(&registration.replicas), keep(&registration.isr));
    let leader = if error.is_some() {
        NO_LEADER
    } else {
        registration.leader
    };
    let filtered =
        replicas.len() < registration.replicas.len() || isr.len() < registration.isr.len();
    PartitionView {
        leader,
        error: error.or(filtered.then_some(LeaderError::ReplicaNotAvailable)),
        leader_epoch: registration.leader_epoch,
        replicas,
        isr,
        offline,
    }
}

/// Where a client should send requests for a partition (KIP-951's current leader, Kafka's
/// `KafkaApis.getCurrentLeader`): the registered leader's id and epoch ((-1, -1) for an
/// unknown partition), and that leader at its `listener` endpoint when it is alive there.
pub fn current_leader(
    image: &MetadataImage,
    topic: &str,
    partition: u32,
    listener: &str,
) -> (i32, i32, Option<Node>) {
    match image.partition(topic, partition) {
        Some(r) => (
            r.leader,
            r.leader_epoch,
            alive_node(image, r.leader, listener),
        ),
        None => (NO_LEADER, -1, None),
    }
}

/// Kafka's `ReplicaManager` answer for a partition operation on this broker: Ok when `broker`
/// leads it, `Err(true)` when the partition exists but another broker (or none) leads it
/// (NOT_LEADER_OR_FOLLOWER), `Err(false)` when it is not in the image (UNKNOWN_TOPIC_OR_PARTITION).
pub fn check_leader(
    image: &MetadataImage,
    topic: &str,
    partition: u32,
    broker: i32,
) -> Result<(), bool> {
    match image.partition(topic, partition) {
        Some(r) if r.leader == broker => Ok(()),
        Some(_) => Err(true),
        None => Err(false),
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
