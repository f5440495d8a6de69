//! ListPartitionReassignments (api key 46, v0; KIP-455). Kafka forwards it to the active
//! controller (`handlers::forward`), which answers from its committed image
//! (`cluster::reassign_run::run_list`): the partitions with a reassignment in progress among
//! those named (all when the topic list is null), each with its replicas (the union of the
//! target and the replicas being removed), adding and removing replicas. Unknown topics and
//! partitions, and partitions not being reassigned, are left out, as Kafka does. A broker
//! that is not the controller answers NOT_CONTROLLER; CLUSTER DESCRIBE is required.
//! `kafka-reassign-partitions --verify` and `--list` read it.

use std::rc::Rc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::cluster::controller::CommitError;
use crate::cluster::reassign_run;
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ListPartitionReassignmentsRequest = request.decode()?;
        let refused = |e: ResponseError| {
            ListPartitionReassignmentsResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(&e.to_string())))
        };
        if !super::authz::cluster_allowed(&shard, &request, Operation::Describe) {
            let response = refused(ResponseError::ClusterAuthorizationFailed);
            return Outcome::encoded(&response, version);
        }
        let wanted = body.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let ongoing = match reassign_run::run_list(&shard.controller_context(), wanted) {
            Ok(ongoing) => ongoing,
            Err(CommitError::NotController) => {
                return Outcome::encoded(&refused(ResponseError::NotController), version)
            }
            Err(CommitError::TimedOut(_)) => {
                return Outcome::encoded(&refused(ResponseError::RequestTimedOut), version)
            }
            Err(CommitError::Failed(_)) => {
                return Outcome::encoded(&refused(ResponseError::UnknownServerError), version)
            }
        };
        let ids = |list: Vec<i32>| list.into_iter().map(BrokerId).collect::<Vec<_>>();
        let topics = ongoing
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, replicas, adding, removing)| {
                        OngoingPartitionReassignment::default()
                            .with_partition_index(index)
                            .with_replicas(ids(replicas))
                            .with_adding_replicas(ids(adding))
                            .with_removing_replicas(ids(removing))
                    })
                    .collect();
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(partitions)
            })
            .collect();
        let response = ListPartitionReassignmentsResponse::default()
            .with_error_message(None)
            .with_topics(topics);
        Outcome::encoded(&response, version)
    })
}
