//! AddPartitionsToTxn v0-5: a producer adds partitions to its transaction (v0-3, one
//! transaction), or a broker asks for several transactions at once (v4+, CLUSTER_ACTION; with
//! `verify_only` it only checks that the partitions are in the transaction: KIP-890's defence
//! against hanging transactions).
//!
//! As Kafka's KafkaApis: TRANSACTIONAL_ID WRITE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
//! topics without WRITE are TOPIC_AUTHORIZATION_FAILED and unknown partitions
//! UNKNOWN_TOPIC_OR_PARTITION, the others then OPERATION_NOT_ATTEMPTED; otherwise the
//! coordinator's code for every partition (PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2).

use std::rc::Rc;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use kafka_protocol::ResponseError as K;

use super::txn_common::{check_partitions_of, error_of, route, txn_allowed};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnOp};

/// The first version where PRODUCER_FENCED is answered as such.
const PRODUCER_FENCED_SINCE: i16 = 2;
/// The first (broker-to-broker) batched version.
const BATCHED_SINCE: i16 = 4;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AddPartitionsToTxnRequest = request.decode()?;
        let response = if version >= BATCHED_SINCE {
            if !super::authz::cluster_allowed(&shard, &request, Operation::ClusterAction) {
                AddPartitionsToTxnResponse::default()
                    .with_error_code(K::ClusterAuthorizationFailed.code())
            } else {
                let results = body
                    .transactions
                    .iter()
                    .map(|t| one_transaction(&shard, &request, t, version));
                let results = super::dedup::in_order(results).await;
                AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
            }
        } else {
            let transaction = AddPartitionsToTxnTransaction::default()
                .with_transactional_id(body.v3_and_below_transactional_id.clone())
                .with_producer_id(body.v3_and_below_producer_id)
                .with_producer_epoch(body.v3_and_below_producer_epoch)
                .with_topics(body.v3_and_below_topics.clone());
            let result = one_transaction(&shard, &request, &transaction, version).await;
            AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(result.topic_results)
        };
        Outcome::encoded(&response, version)
    })
}

fn topics_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, Vec<i32>)> {
    topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect()
}

async fn one_transaction(
    shard: &Rc<Shard>,
    request: &Request,
    transaction: &AddPartitionsToTxnTransaction,
    version: i16,
) -> AddPartitionsToTxnResult {
    let id = transaction.transactional_id.0.to_string();
    let topics = topics_of(&transaction.topics);
    let codes = codes_for(shard, request, transaction, &id, &topics, version).await;
    let topic_results = topics
        .iter()
        .zip(codes)
        .map(|((topic, partitions), codes)| {
            let results = partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResult::default()
        .with_transactional_id(TransactionalId(str_bytes(&id)))
        .with_topic_results(topic_results)
}

/// One code per partition, per topic, in request order.
async fn codes_for(
    shard: &Rc<Shard>,
    request: &Request,
    transaction: &AddPartitionsToTxnTransaction,
    id: &str,
    topics: &[(String, Vec<i32>)],
    version: i16,
) -> Vec<Vec<i16>> {
    let all = |code: i16| -> Vec<Vec<i16>> {
        topics.iter().map(|(_, ps)| vec![code; ps.len()]).collect()
    };
    // v4+ comes from brokers (CLUSTER_ACTION checked): Kafka checks TRANSACTIONAL_ID only
    // below v4, and lets a group coordinator add its `__consumer_offsets` partition.
    let from_broker = version >= BATCHED_SINCE;
    if !from_broker && !txn_allowed(shard, request, Operation::Write, id) {
        return all(K::TransactionalIdAuthorizationFailed.code());
    }
    let checked = check_partitions_of(shard, request, topics, from_broker);
    let refused = checked
        .iter()
        .any(|(_, ps)| ps.iter().any(|(_, code)| code.is_some()));
    if refused {
        let not_attempted = K::OperationNotAttempted.code();
        return checked
            .into_iter()
            .map(|(_, ps)| {
                ps.into_iter()
                    .map(|(_, c)| c.unwrap_or(not_attempted))
                    .collect()
            })
            .collect();
    }
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect();
    let op = TxnOp::AddPartitions {
        transactional_id: id.to_owned(),
        producer_id: transaction.producer_id.0,
        producer_epoch: transaction.producer_epoch,
        partitions,
        verify_only: version >= BATCHED_SINCE && transaction.verify_only,
    };
    let answer = route(shard, op).await;
    let codes = match answer {
        TxnAnswer::Partitions(codes) => codes,
        other => {
            let code = error_of(&other).for_version(version, PRODUCER_FENCED_SINCE);
            return all(code);
        }
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|(_, ps)| {
            ps.iter()
                .map(|_| {
                    codes.next().map_or(K::UnknownServerError.code(), |c| {
                        c.for_version(version, PRODUCER_FENCED_SINCE)
                    })
                })
                .collect()
        })
        .collect()
}
