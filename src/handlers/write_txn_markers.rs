//! WriteTxnMarkers (API 27): the transaction coordinator asks partition leaders to write the
//! commit/abort markers of a transaction (Kafka's `KafkaApis.handleWriteTxnMarkersRequest`).
//! Each marker is a control batch appended through the partition service (`router::markers`),
//! answered once durable; the partition checks the producer and coordinator epochs. A marker
//! written to a `__consumer_offsets` partition completes the producer's pending transactional
//! offsets there (`groups::complete_txn`), as Kafka's `onTransactionCompleted`.
//!
//! Invariants: CLUSTER_ACTION is required (brokers and the coordinator only): without it every
//! partition answers CLUSTER_AUTHORIZATION_FAILED and nothing is written; every requested
//! partition gets exactly one answer, in request order. Version 1 carries no transaction
//! version, which Kafka reads as TV0 (markers at least the producer's epoch).

use std::rc::Rc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;

use super::error::code_of;
use super::{authz, HandlerFuture, Outcome, Request};
use crate::partition::api::{MarkerItem, MarkerResult};
use crate::router::{PartitionError, Router};
use crate::security::acl::Operation;
use crate::shard::Shard;

/// The transaction version of a request without the field (v1): Kafka's default, TV0.
const TRANSACTION_VERSION_DEFAULT: i16 = 0;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: WriteTxnMarkersRequest = request.decode()?;
        let allowed = authz::cluster_allowed(&shard, &request, Operation::ClusterAction);
        let mut entries: Vec<Result<MarkerItem, PartitionError>> = Vec::new();
        if allowed {
            for marker in &body.markers {
                for topic in &marker.topics {
                    for &index in &topic.partition_indexes {
                        let name = topic.name.0.to_string();
                        entries.push(super::route::resolve(&shard, name, index).map(|tp| {
                            MarkerItem {
                                tp,
                                producer_id: marker.producer_id.0,
                                producer_epoch: marker.producer_epoch,
                                coordinator_epoch: marker.coordinator_epoch,
                                commit: marker.transaction_result,
                                transaction_version: TRANSACTION_VERSION_DEFAULT,
                            }
                        }));
                    }
                }
            }
        }
        // Which written markers close a transaction's offsets (Kafka's
        // `groupCoordinator.onTransactionCompleted` for __consumer_offsets partitions).
        let offsets_items: Vec<Option<(u32, i64, bool)>> = entries
            .iter()
            .map(|e| {
                e.as_ref().ok().and_then(|item| {
                    (item.tp.topic == crate::internal_topics::OFFSETS_TOPIC).then_some((
                        item.tp.partition,
                        item.producer_id,
                        item.commit,
                    ))
                })
            })
            .collect();
        let router = Router::new(shard.router_context());
        let results: Vec<MarkerResult> = if allowed {
            super::route::route_in_order(entries, |items| router.write_markers(items)).await
        } else {
            Vec::new()
        };
        for (offsets, result) in offsets_items.iter().zip(&results) {
            if let (Some((partition, producer_id, commit)), Ok(())) = (offsets, result) {
                crate::groups::complete_txn(
                    &shard.group_routing_context(),
                    *partition,
                    *producer_id,
                    *commit,
                )
                .await;
            }
        }
        let mut results = results.into_iter();
        let mut next_code = || {
            if !allowed {
                return ResponseError::ClusterAuthorizationFailed.code();
            }
            code_of(&results.next().unwrap_or(Err(PartitionError::Unavailable)))
        };
        let markers = body
            .markers
            .iter()
            .map(|marker| {
                let topics = marker
                    .topics
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|&index| {
                                WritableTxnMarkerPartitionResult::default()
                                    .with_partition_index(index)
                                    .with_error_code(next_code())
                            })
                            .collect();
                        WritableTxnMarkerTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics)
            })
            .collect();
        Outcome::encoded(
            &WriteTxnMarkersResponse::default().with_markers(markers),
            version,
        )
    })
}
