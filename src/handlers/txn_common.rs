//! What the transactional APIs' handlers share: the TRANSACTIONAL_ID ACL check, the topic and
//! partition checks of a request's partitions, and reading a coordinator answer.

use std::rc::Rc;

use kafka_protocol::ResponseError as K;

use super::Request;
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnCode};

/// Kafka's TRANSACTIONAL_ID `operation` check on `transactional_id`.
pub fn txn_allowed(shard: &Shard, request: &Request, operation: Operation, id: &str) -> bool {
    super::authz::allowed(shard, request, operation, ResourceType::TransactionalId, id)
}

/// Per topic, each partition with its refusal code (None: it may be added).
pub type CheckedPartitions = Vec<(String, Vec<(i32, Option<i16>)>)>;

/// Per partition of a request: None when the topic may be written and the partition exists,
/// else the code Kafka answers (TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION).
/// `internal_allowed` for a broker's AddPartitionsToTxn v4+ (a group
/// coordinator adds its `__consumer_offsets` partition, KIP-890 transaction version 2).
pub fn check_partitions_of(
    shard: &Shard,
    request: &Request,
    topics: &[(String, Vec<i32>)],
    internal_allowed: bool,
) -> CheckedPartitions {
    topics
        .iter()
        .map(|(topic, partitions)| {
            let writable =
                super::authz::allowed(shard, request, Operation::Write, ResourceType::Topic, topic);
            let count = shard.topics.borrow().get(topic).map(|m| m.partitions);
            let codes = partitions
                .iter()
                .map(|p| {
                    let exists = count.is_some_and(|n| u32::try_from(*p).is_ok_and(|i| i < n));
                    let code = if !writable {
                        Some(K::TopicAuthorizationFailed.code())
                    } else if !exists
                        || (!internal_allowed && crate::internal_topics::is_internal(topic))
                    {
                        Some(K::UnknownTopicOrPartition.code())
                    } else {
                        None
                    };
                    (*p, code)
                })
                .collect();
            (topic.clone(), codes)
        })
        .collect()
}

/// Runs `op` on its coordinator.
pub async fn route(shard: &Rc<Shard>, op: crate::txn::TxnOp) -> TxnAnswer {
    crate::txn::route(&shard.txn_coordinator_context(), op).await
}

/// The code of an answer that failed as a whole (or an unexpected answer).
pub fn error_of(answer: &TxnAnswer) -> TxnCode {
    match answer {
        TxnAnswer::Error(code) => *code,
        TxnAnswer::Producer { code, .. } => *code,
        _ => TxnCode::UnknownServerError,
    }
}
