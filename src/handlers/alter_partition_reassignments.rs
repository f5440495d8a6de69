//! AlterPartitionReassignments (api key 45, v0-1; KIP-455). Kafka forwards it to the active
//! controller (`handlers::forward`); there `cluster::reassign_run::run_alter` starts, changes or
//! cancels (null replicas) each partition's reassignment and commits the records before the
//! answer. A broker that is not the controller (forwarding failed) answers NOT_CONTROLLER
//! top-level, retriable. CLUSTER ALTER is required (else CLUSTER_AUTHORIZATION_FAILED
//! top-level). Per partition: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty,
//! duplicate or unregistered broker), INVALID_REPLICATION_FACTOR (v1 without
//! `allow_replication_factor_change`), NO_REASSIGNMENT_IN_PROGRESS (cancel), with Kafka's
//! messages. `kafka-reassign-partitions --execute` and `Admin.alterPartitionReassignments`
//! run unchanged.
//!
//! Invariant: every requested partition gets exactly one answer, in request order.

use std::rc::Rc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::cluster::controller::CommitError;
use crate::cluster::reassign::{ReassignRequest, ReassignResults};
use crate::cluster::reassign_run;
use crate::router::REGISTRY_SHARD;
use crate::security::acl::Operation;
use crate::shard::{Shard, ShardMsg};

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AlterPartitionReassignmentsRequest = request.decode()?;
        // Kafka's v0 has no such field and never changes the replication factor check.
        let allow_rf_change = version == 0 || body.allow_replication_factor_change;
        let refused = |code: i16, message: &str| {
            AlterPartitionReassignmentsResponse::default()
                .with_allow_replication_factor_change(allow_rf_change)
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        };
        if !super::authz::cluster_allowed(&shard, &request, Operation::Alter) {
            let code = ResponseError::ClusterAuthorizationFailed.code();
            return Outcome::encoded(&refused(code, "Cluster authorization failed."), version);
        }
        let wanted: ReassignRequest = body
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                        (p.partition_index, target)
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect();
        let answer = run(&shard, wanted, allow_rf_change).await;
        let results = match answer {
            Ok(results) => results,
            Err(CommitError::NotController) => {
                let e = ResponseError::NotController;
                return Outcome::encoded(&refused(e.code(), &e.to_string()), version);
            }
            Err(CommitError::TimedOut(message)) => {
                let code = ResponseError::RequestTimedOut.code();
                return Outcome::encoded(&refused(code, &message), version);
            }
            Err(CommitError::Failed(message)) => {
                tracing::warn!(error = %message, "partition reassignment not committed");
                let code = ResponseError::UnknownServerError.code();
                return Outcome::encoded(&refused(code, &message), version);
            }
        };
        let responses = results
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let answer =
                            ReassignablePartitionResponse::default().with_partition_index(index);
                        match error {
                            None => answer.with_error_message(None),
                            Some(e) => answer
                                .with_error_code(e.code())
                                .with_error_message(Some(str_bytes(&e.to_string()))),
                        }
                    })
                    .collect();
                ReassignableTopicResponse::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(partitions)
            })
            .collect();
        let response = AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_error_message(None)
            .with_responses(responses);
        Outcome::encoded(&response, version)
    })
}

/// On the registry shard (the controller's admin changes are serialised there).
async fn run(
    shard: &Rc<Shard>,
    wanted: ReassignRequest,
    allow_rf_change: bool,
) -> Result<ReassignResults, CommitError> {
    if shard.id == REGISTRY_SHARD {
        return reassign_run::run_alter(&shard.controller_context(), wanted, allow_rf_change).await;
    }
    shard
        .mesh
        .call(REGISTRY_SHARD, |reply| {
            ShardMsg::run(move |shard| async move {
                reply.send(
                    reassign_run::run_alter(&shard.controller_context(), wanted, allow_rf_change)
                        .await,
                );
            })
        })
        .await
        .unwrap_or_else(|_| Err(CommitError::Failed("registry shard unavailable".into())))
}
