//! ElectLeaders (PREFERRED and UNCLEAN). In a KRaft cluster the active controller elects
//! (`cluster::leader_election::run`, on its registry shard, committed before the answer);
//! another node forwards it there (`handlers::forward`, as Kafka's brokers do) and answers
//! NOT_CONTROLLER only when forwarding fails.
//! On one node every partition's only replica is its leader and its preferred replica, so no
//! election is ever needed. Answered as Kafka's controller does: a named partition gets
//! ELECTION_NOT_NEEDED (UNKNOWN_TOPIC_OR_PARTITION when it does not exist),
//! PREFERRED_LEADER_NOT_AVAILABLE or ELIGIBLE_LEADERS_NOT_AVAILABLE; "all partitions" (a null
//! list) answers only the partitions that needed an election. Lets `kafka-leader-election` and
//! `Admin.electLeaders` run unchanged.
//!
//! Invariant: every requested partition gets exactly one answer, in request order.

use std::rc::Rc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::cluster::controller::CommitError;
use crate::cluster::leader_election::{self, ElectionType};
use crate::router::REGISTRY_SHARD;
use crate::security::acl::Operation;
use crate::shard::{Shard, ShardMsg};

/// Kafka's ElectionType ids (PREFERRED, UNCLEAN).
const ELECTION_TYPES: [i8; 2] = [0, 1];

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ElectLeadersRequest = request.decode()?;
        // Kafka: CLUSTER ALTER, else a top-level CLUSTER_AUTHORIZATION_FAILED.
        if !super::authz::cluster_allowed(&shard, &request, Operation::Alter) {
            let code = ResponseError::ClusterAuthorizationFailed.code();
            return Outcome::encoded(&refused(body, version, code), version);
        }
        if shard.cluster.is_some() {
            return Outcome::encoded(&respond_cluster(&shard, body, version).await, version);
        }
        Outcome::encoded(&respond(&shard, body, version), version)
    })
}

/// A request-wide error (CLUSTER_AUTHORIZATION_FAILED, NOT_CONTROLLER): top-level from v1; v0
/// has no top-level code, so every requested partition carries it (Kafka's
/// ElectLeadersRequest.getErrorResponse).
fn refused(body: ElectLeadersRequest, version: i16, code: i16) -> ElectLeadersResponse {
    if version >= 1 {
        return ElectLeadersResponse::default().with_error_code(code);
    }
    let results = body
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&index| {
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(code)
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn respond(shard: &Shard, body: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    // v0 has no election type: it is always a preferred election.
    if version >= 1 && !ELECTION_TYPES.contains(&body.election_type) {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let Some(wanted) = body.topic_partitions else {
        return ElectLeadersResponse::default();
    };
    let table = shard.topics.borrow();
    let results = wanted
        .into_iter()
        .map(|topic| {
            let partitions = table.get(&topic.topic.0).map(|meta| meta.partitions);
            let partition_result = topic
                .partitions
                .iter()
                .map(|&index| {
                    let exists = matches!(
                        (partitions, u32::try_from(index)),
                        (Some(count), Ok(i)) if i < count
                    );
                    let (error, message) = if exists {
                        (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.".to_owned(),
                        )
                    } else if partitions.is_none() {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            format!("No such topic as {}", &*topic.topic.0),
                        )
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            format!("No such partition as {}-{index}", &*topic.topic.0),
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(&message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// A KRaft cluster: the election runs on the active controller's registry shard.
async fn respond_cluster(
    shard: &Rc<Shard>,
    body: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // v0 has no election type: it is always a preferred election.
    let kind = match version {
        0 => Some(ElectionType::Preferred),
        _ => ElectionType::from_id(body.election_type),
    };
    let Some(kind) = kind else {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let wanted: Option<Vec<(String, Vec<i32>)>> = body.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let answer = if shard.id == REGISTRY_SHARD {
        leader_election::run(&shard.controller_context(), wanted, kind).await
    } else {
        shard
            .mesh
            .call(REGISTRY_SHARD, |reply| {
                ShardMsg::run(move |shard| async move {
                    reply.send(
                        leader_election::run(&shard.controller_context(), wanted, kind).await,
                    );
                })
            })
            .await
            .unwrap_or_else(|_| Err(CommitError::Failed("registry shard unavailable".into())))
    };
    let results = match answer {
        Ok(results) => results,
        Err(CommitError::NotController) => {
            return refused(body, version, ResponseError::NotController.code());
        }
        Err(CommitError::TimedOut(_)) => {
            return refused(body, version, ResponseError::RequestTimedOut.code());
        }
        Err(CommitError::Failed(message)) => {
            tracing::warn!(error = %message, "leader election not committed");
            return refused(body, version, ResponseError::UnknownServerError.code());
        }
    };
    let results = results
        .into_iter()
        .map(|(topic, partitions)| {
            let partition_result = partitions
                .into_iter()
                .map(|(index, error)| {
                    let result = PartitionResult::default().with_partition_id(index);
                    match error {
                        None => result,
                        Some(e) => result
                            .with_error_code(e.code())
                            .with_error_message(Some(str_bytes(&e.to_string()))),
                    }
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(&topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
