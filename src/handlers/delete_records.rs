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
    let router = Router::new(shard.clone());
    super::route::route_known(
        shard,
        wanted,
        |tp, offset| DeleteRecordsItem { tp, offset },
        |items| router.delete_records(items),
    )
    .await
}
