//! DescribeProducers (API 61): the producers a partition tracks, with their epoch, last
//! sequence, last append time, coordinator epoch and open transaction's first offset (Kafka's
//! `KafkaApis.handleDescribeProducersRequest`, used by `kafka-transactions.sh
//! describe-producers` and Admin `describeProducers`).
//!
//! Invariants: TOPIC READ per topic, else TOPIC_AUTHORIZATION_FAILED for its partitions; every
//! requested partition gets exactly one answer, in request order; a partition is read on its
//! owning shard.

use std::rc::Rc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::error::partition_error_code;
use super::{authz, HandlerFuture, Outcome, Request};
use crate::partition::api::ProducersResult;
use crate::router::{PartitionError, Router};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeProducersRequest = request.decode()?;
        let denied = authz::denied_topics(
            &shard,
            &request,
            Operation::Read,
            body.topics.iter().map(|t| t.name.0.to_string()),
        );
        let mut entries = Vec::new();
        for topic in &body.topics {
            let name = topic.name.0.to_string();
            for &index in &topic.partition_indexes {
                entries.push(if denied.contains(&name) {
                    Err(PartitionError::TopicAuthorizationFailed)
                } else {
                    super::route::resolve(&shard, name.clone(), index)
                });
            }
        }
        let router = Router::new(shard.router_context());
        let results: Vec<ProducersResult> =
            super::route::route_in_order(entries, |items| router.describe_producers(items)).await;
        let mut results = results.into_iter();
        let topics = body
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|&index| {
                        let answer = PartitionResponse::default().with_partition_index(index);
                        match results.next().unwrap_or(Err(PartitionError::Unavailable)) {
                            Ok(views) => answer.with_active_producers(
                                views
                                    .into_iter()
                                    .map(|v| {
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(v.producer_id))
                                            .with_producer_epoch(i32::from(v.producer_epoch))
                                            .with_last_sequence(v.last_sequence)
                                            .with_last_timestamp(v.last_timestamp_ms)
                                            .with_coordinator_epoch(v.coordinator_epoch)
                                            .with_current_txn_start_offset(
                                                v.current_txn_start_offset,
                                            )
                                    })
                                    .collect(),
                            ),
                            Err(e) => answer
                                .with_error_code(partition_error_code(&e))
                                .with_error_message(Some(super::str_bytes(&e.to_string()))),
                        }
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(
            &DescribeProducersResponse::default().with_topics(topics),
            version,
        )
    })
}
