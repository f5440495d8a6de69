//! KIP-890's verification of transactional writes, the broker half of Kafka's
//! `AddPartitionsToTxnManager`: a partition leader (before appending the first transactional
//! batch of a producer's transaction) or a group coordinator (before a TxnOffsetCommit) asks the
//! transaction coordinator of the producer's transactional id whether the partitions are in
//! its ongoing transaction (`verify_only`, transaction version 1), or has it add them
//! (transaction version 2: Produce v12+, TxnOffsetCommit v5+). The coordinator is this broker
//! (the op runs on the owner shard through `txn::route`) or another one, asked with
//! AddPartitionsToTxn v5 (the batched, CLUSTER_ACTION form) over the inter-broker listener.
//!
//! Invariants: every partition asked gets exactly one Kafka code (the coordinator's, or the
//! transport's: COORDINATOR_NOT_AVAILABLE without a coordinator in the image,
//! NETWORK_EXCEPTION for an unanswered request, INVALID_TXN_STATE for a refused
//! CLUSTER_ACTION as Kafka maps it); one request at a time per destination broker and shard
//! (the callers are bounded by the produce requests in flight).

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as K;

use super::state::TxnPartition;
use super::{TxnAnswer, TxnCoordinatorContext, TxnOp, TRANSACTION_STATE_TOPIC};

/// The AddPartitionsToTxn version a broker sends (Kafka 4.x's `forBroker`: v5, which may
/// answer TRANSACTION_ABORTABLE).
const ADD_PARTITIONS_VERSION: i16 = 5;

/// What a leader asks the coordinator.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TxnPartition>,
    /// Transaction version 2: add the partitions (Kafka's `addPartition` operation) rather
    /// than only check them.
    pub add: bool,
}

/// The coordinator's Kafka code per partition of `request`, in its order.
pub async fn verify(shard: &TxnCoordinatorContext<'_>, request: VerifyRequest) -> Vec<i16> {
    let count = request.partitions.len();
    let (_, index) = super::owner_of(&shard.txn, &request.transactional_id);
    if crate::coordinator_log::io::leads_partition(&shard.txn.log, TRANSACTION_STATE_TOPIC, index) {
        return local(shard, request).await;
    }
    let leader = shard
        .router
        .image
        .borrow()
        .partition(TRANSACTION_STATE_TOPIC, index)
        .map_or(-1, |r| r.leader);
    let addr = (leader >= 0)
        .then(|| shard.host.broker_addr(leader))
        .flatten();
    let Some(addr) = addr else {
        return vec![K::CoordinatorNotAvailable.code(); count];
    };
    let body = add_partitions_request(&request);
    let connection = shard.txn.txns.verify_connections.to(leader);
    let mut connection = connection.lock().await;
    let answer: Result<AddPartitionsToTxnResponse, _> = connection
        .request(
            addr,
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_VERSION,
            &body,
        )
        .await;
    drop(connection);
    match answer {
        Ok(response) => codes_of(&request, &response),
        Err(e) => {
            tracing::debug!(broker = leader, error = %e, "transaction verification not answered");
            vec![K::NetworkException.code(); count]
        }
    }
}

async fn local(shard: &TxnCoordinatorContext<'_>, request: VerifyRequest) -> Vec<i16> {
    let count = request.partitions.len();
    let op = TxnOp::AddPartitions {
        transactional_id: request.transactional_id,
        producer_id: request.producer_id,
        producer_epoch: request.producer_epoch,
        partitions: request.partitions,
        verify_only: !request.add,
    };
    match super::route(shard, op).await {
        TxnAnswer::Partitions(codes) if codes.len() == count => {
            codes.into_iter().map(|c| c.code()).collect()
        }
        TxnAnswer::Error(code) | TxnAnswer::Producer { code, .. } => vec![code.code(); count],
        _ => vec![K::UnknownServerError.code(); count],
    }
}

/// Kafka's `AddPartitionsToTxnRequest.Builder.forBroker` for one transaction.
pub fn add_partitions_request(request: &VerifyRequest) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (topic, partition) in &request.partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            request.transactional_id.clone(),
        )))
        .with_producer_id(ProducerId(request.producer_id))
        .with_producer_epoch(request.producer_epoch)
        .with_verify_only(!request.add)
        .with_topics(topics);
    AddPartitionsToTxnRequest::default().with_transactions(vec![transaction])
}

/// The codes of `request`'s partitions in `response` (Kafka's `AddPartitionsToTxnHandler`: a
/// top-level CLUSTER_AUTHORIZATION_FAILED is INVALID_TXN_STATE, any other top-level error is
/// every partition's; a partition without an answer is NETWORK_EXCEPTION).
pub fn codes_of(request: &VerifyRequest, response: &AddPartitionsToTxnResponse) -> Vec<i16> {
    let count = request.partitions.len();
    if response.error_code != 0 {
        let code = if response.error_code == K::ClusterAuthorizationFailed.code() {
            K::InvalidTxnState.code()
        } else {
            response.error_code
        };
        return vec![code; count];
    }
    let result = response
        .results_by_transaction
        .iter()
        .find(|r| r.transactional_id.0.as_str() == request.transactional_id);
    request
        .partitions
        .iter()
        .map(|(topic, partition)| {
            result
                .and_then(|r| r.topic_results.iter().find(|t| t.name.0.as_str() == topic))
                .and_then(|t| {
                    t.results_by_partition
                        .iter()
                        .find(|p| p.partition_index == *partition)
                })
                .map_or(K::NetworkException.code(), |p| p.partition_error_code)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };

    fn request(add: bool) -> VerifyRequest {
        VerifyRequest {
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: 2,
            partitions: vec![("a".into(), 0), ("b".into(), 3), ("a".into(), 1)],
            add,
        }
    }

    /// Partitions of one topic share an entry; verify_only is the inverse of `add`.
    #[test]
    fn request_groups_topics_and_sets_verify_only() {
        let body = add_partitions_request(&request(false));
        let t = &body.transactions[0];
        assert!(t.verify_only);
        assert_eq!((t.producer_id.0, t.producer_epoch), (7, 2));
        let topics: Vec<(&str, Vec<i32>)> = t
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partitions.clone()))
            .collect();
        assert_eq!(topics, vec![("a", vec![0, 1]), ("b", vec![3])]);
        assert!(!add_partitions_request(&request(true)).transactions[0].verify_only);
    }

    /// Codes per partition in request order; gaps are NETWORK_EXCEPTION; a refused
    /// CLUSTER_ACTION is INVALID_TXN_STATE for every partition.
    #[test]
    fn codes_follow_the_request_order() {
        let partition = |index, code| {
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(index)
                .with_partition_error_code(code)
        };
        let topic = |name: &str, partitions| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_results_by_partition(partitions)
        };
        let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("t")))
                .with_topic_results(vec![topic("a", vec![partition(1, 120), partition(0, 0)])]),
        ]);
        assert_eq!(
            codes_of(&request(false), &response),
            vec![0, K::NetworkException.code(), 120]
        );
        let refused = AddPartitionsToTxnResponse::default()
            .with_error_code(K::ClusterAuthorizationFailed.code());
        assert_eq!(
            codes_of(&request(false), &refused),
            vec![K::InvalidTxnState.code(); 3]
        );
    }
}
