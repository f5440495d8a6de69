//! DeleteRecords: advances each partition's log start offset on its owning shard (offset -1 =
//! the high watermark) and answers the new low watermark.
//!
//! Invariant: every requested partition gets exactly one answer, in request order; a failed
//! partition answers low watermark -1 (Kafka's INVALID_LOW_WATERMARK).

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::error::partition_error_code;
use super::{HandlerFuture, Outcome, Request};
use crate::partition::TopicPartition;
use crate::router::admin::{DeleteRecordsItem, DeleteRecordsResult};
use crate::router::{PartitionError, Router};
use crate::shard::Shard;

/// Kafka's low watermark of a failed partition.
const INVALID_LOW_WATERMARK: i64 = -1;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DeleteRecordsRequest = request.decode()?;
        let wanted = body
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.0.to_string(), p.partition_index, p.offset))
            })
            .collect();
        let mut results = delete(&shard, wanted).await.into_iter();
        let topics = body
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = results.next().unwrap_or(Err(PartitionError::Unavailable));
                        let answer = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        match result {
                            Ok(low) => answer.with_low_watermark(low),
                            Err(e) => answer
                                .with_low_watermark(INVALID_LOW_WATERMARK)
                                .with_error_code(partition_error_code(&e)),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(
            &DeleteRecordsResponse::default().with_topics(topics),
            version,
        )
    })
}

/// Routes (topic, partition, offset) items to their owners; unknown partitions fail here.
async fn delete(shard: &Rc<Shard>, wanted: Vec<(String, i32, i64)>) -> Vec<DeleteRecordsResult> {
    let mut slots: Vec<Option<DeleteRecordsResult>> = Vec::with_capacity(wanted.len());
    let mut routed = Vec::new();
    let mut routed_slots = Vec::new();
    for (topic, partition, offset) in wanted {
        let count = shard.topics.borrow().get(&topic).map(|m| m.partitions);
        match (count, u32::try_from(partition)) {
            (Some(count), Ok(index)) if index < count => {
                routed_slots.push(slots.len());
                slots.push(None);
                routed.push(DeleteRecordsItem {
                    tp: TopicPartition::new(topic, index),
                    offset,
                });
            }
            _ => slots.push(Some(Err(PartitionError::UnknownTopicOrPartition))),
        }
    }
    let answers = Router::new(shard.clone()).delete_records(routed).await;
    for (slot, answer) in routed_slots.into_iter().zip(answers) {
        if let Some(s) = slots.get_mut(slot) {
            *s = Some(answer);
        }
    }
    slots
        .into_iter()
        .map(|s| s.unwrap_or(Err(PartitionError::Unavailable)))
        .collect()
}
