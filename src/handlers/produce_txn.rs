//! Produce's transactional checks (Kafka's `KafkaApis.handleProduceRequest` and
//! `ReplicaManager.handleProduceAppend`): TRANSACTIONAL_ID WRITE for a request with a
//! transactional id, and KIP-890's verification. With `transaction.partition.verification.
//! enable`, each partition leader starts a verification for a producer's transactional batch
//! (a guard, unless the producer's transaction is already open on the partition), asks the
//! transaction coordinator (`txn::verify`: verify only below Produce v12; from v12, transaction
//! version 2, the coordinator adds the partition itself) and appends with the guard, which the
//! partition checks again under its producer lock.
//!
//! Codes as Kafka answers them per Produce version: INVALID_TXN_STATE ("Partition was not
//! added to the transaction"; TRANSACTION_ABORTABLE from v11), INVALID_PRODUCER_EPOCH for a
//! fenced producer, NOT_ENOUGH_REPLICAS (retried by every client) for the coordinator's
//! transient errors, CONCURRENT_TRANSACTIONS as such from v12; INVALID_PRODUCER_ID_MAPPING
//! when transactional batches of one request come from several producers.

use std::rc::Rc;

use kafka_protocol::ResponseError as K;

use super::Request;
use crate::partition::api::{ProduceItem, VerifyItem};
use crate::router::{PartitionError, Router};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

/// The last Produce version whose clients know no TRANSACTION_ABORTABLE (Kafka's
/// `defaultError` operation).
const LAST_DEFAULT_ERROR_VERSION: i16 = 10;
/// The first Produce version of transaction version 2 (Kafka's `addPartition` operation).
const FIRST_ADD_PARTITION_VERSION: i16 = 12;

type Entry = Result<ProduceItem, PartitionError>;

fn refused(code: K, message: &str) -> PartitionError {
    PartitionError::TxnVerification {
        code: code.code(),
        message: message.to_owned(),
    }
}

/// Applies the transactional checks to `entries` (one per partition, in request order).
pub async fn check(
    shard: &Rc<Shard>,
    request: &Request,
    version: i16,
    transactional_id: Option<&str>,
    mut entries: Vec<Entry>,
) -> Vec<Entry> {
    // Kafka's KafkaApis.handleProduceRequest: transactional records (the batch attribute,
    // whatever the producer id) need a transactional id that may be written; without one the
    // whole request is refused.
    if transactional_id.is_none() && entries.iter().flatten().any(has_transactional_batch) {
        let code = K::TransactionalIdAuthorizationFailed;
        let message = "Transactional records need a transactional id.";
        return entries
            .into_iter()
            .map(|_| Err(refused(code, message)))
            .collect();
    }
    if let Some(id) = transactional_id {
        let allowed = super::authz::allowed(
            shard,
            request,
            Operation::Write,
            ResourceType::TransactionalId,
            id,
        );
        if !allowed {
            let code = K::TransactionalIdAuthorizationFailed;
            let message = "Transactional Id authorization failed.";
            return entries
                .into_iter()
                .map(|_| Err(refused(code, message)))
                .collect();
        }
    }
    if !shard
        .config
        .transaction
        .transaction_partition_verification_enable
    {
        return entries;
    }
    // Every client append is checked: a transactional batch may open a transaction only with
    // a guard (none without a transactional id, as in Kafka).
    for item in entries.iter_mut().flatten() {
        item.verification_guard = Some(crate::producers::verify::NO_GUARD);
    }
    let Some(id) = transactional_id else {
        return entries;
    };
    let producers: Vec<Option<(i64, i16)>> = entries
        .iter()
        .map(|e| e.as_ref().ok().and_then(transactional_producer))
        .collect();
    let mut distinct: Vec<(i64, i16)> = producers.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let (producer_id, producer_epoch) = match distinct.as_slice() {
        [] => return entries,
        [one] => *one,
        _ => {
            let message = "Transactional records contained more than one producer ID";
            return mark(entries, &producers, |_| {
                Some(refused(K::InvalidProducerIdMapping, message))
            });
        }
    };
    let started = start(shard, &entries, &producers, producer_id, producer_epoch).await;
    verify_started(
        shard,
        version,
        id,
        (producer_id, producer_epoch),
        entries,
        started,
    )
    .await
}

/// Whether any batch of one partition's records has the transactional attribute (Kafka's
/// `ProduceRequest.hasTransactionalRecords`). Reads only each batch's attributes field, as the
/// handler reads only frame lengths: the header is parsed once, by the log's validation,
/// which also rejects whatever framing this skips.
fn has_transactional_batch(item: &ProduceItem) -> bool {
    storage::split_batches(&item.records)
        .filter_map(Result::ok)
        .any(storage::batch::is_transactional)
}

/// The transactional producer of one partition's batch.
fn transactional_producer(item: &ProduceItem) -> Option<(i64, i16)> {
    crate::producers::scan_batches(&item.records)?
        .into_iter()
        .filter_map(|b| b.ident)
        .find(|ident| ident.transactional)
        .map(|ident| (ident.producer.0, ident.epoch))
}

/// Each transactional entry's guard from its leader (None: not transactional).
async fn start(
    shard: &Rc<Shard>,
    entries: &[Entry],
    producers: &[Option<(i64, i16)>],
    producer_id: i64,
    producer_epoch: i16,
) -> Vec<Option<Result<u64, PartitionError>>> {
    let asked: Vec<VerifyItem> = entries
        .iter()
        .zip(producers)
        .filter_map(|(e, p)| {
            let item = e.as_ref().ok().filter(|_| p.is_some())?;
            Some(VerifyItem {
                tp: item.tp.clone(),
                producer_id,
                producer_epoch,
            })
        })
        .collect();
    let mut guards = Router::new(shard.router_context())
        .start_verification(asked)
        .await
        .into_iter();
    entries
        .iter()
        .zip(producers)
        .map(|(e, p)| {
            (e.is_ok() && p.is_some())
                .then(|| guards.next().unwrap_or(Err(PartitionError::Unavailable)))
        })
        .collect()
}

/// Asks the coordinator about the partitions that got a guard and applies its answers.
async fn verify_started(
    shard: &Rc<Shard>,
    version: i16,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    entries: Vec<Entry>,
    started: Vec<Option<Result<u64, PartitionError>>>,
) -> Vec<Entry> {
    let asked: Vec<(String, i32)> = entries
        .iter()
        .zip(&started)
        .filter_map(|(e, s)| match (e, s) {
            (Ok(item), Some(Ok(guard))) if *guard != crate::producers::verify::NO_GUARD => Some((
                item.tp.topic.clone(),
                i32::try_from(item.tp.partition).unwrap_or(i32::MAX),
            )),
            _ => None,
        })
        .collect();
    let codes = if asked.is_empty() {
        Vec::new()
    } else {
        let request = crate::txn::verify::VerifyRequest {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            producer_epoch,
            partitions: asked,
            add: version >= FIRST_ADD_PARTITION_VERSION,
        };
        crate::txn::verify::verify(&shard.txn_coordinator_context(), request).await
    };
    let mut codes = codes.into_iter();
    entries
        .into_iter()
        .zip(started)
        .map(|(entry, started)| {
            let mut item = entry?;
            match started {
                None => Ok(item),
                Some(Err(e)) => Err(e),
                Some(Ok(crate::producers::verify::NO_GUARD)) => Ok(item),
                Some(Ok(guard)) => {
                    let code = codes.next().unwrap_or(K::NetworkException.code());
                    match produce_error(code, version) {
                        None => {
                            item.verification_guard = Some(guard);
                            Ok(item)
                        }
                        Some(e) => Err(e),
                    }
                }
            }
        })
        .collect()
}

fn mark(
    entries: Vec<Entry>,
    producers: &[Option<(i64, i16)>],
    error: impl Fn(&ProduceItem) -> Option<PartitionError>,
) -> Vec<Entry> {
    entries
        .into_iter()
        .zip(producers)
        .map(|(entry, producer)| {
            let item = entry?;
            match producer.and_then(|_| error(&item)) {
                Some(e) => Err(e),
                None => Ok(item),
            }
        })
        .collect()
}

/// The produce error for a coordinator code (None: verified), as Kafka's
/// `AddPartitionsToTxnManager` and `ReplicaManager` translate it for the Produce `version`.
pub fn produce_error(code: i16, version: i16) -> Option<PartitionError> {
    let transient = [
        K::NetworkException,
        K::CoordinatorLoadInProgress,
        K::CoordinatorNotAvailable,
        K::NotCoordinator,
    ];
    let underlying = transient
        .into_iter()
        .find(|k| k.code() == code)
        .or_else(|| {
            (code == K::ConcurrentTransactions.code() && version < FIRST_ADD_PARTITION_VERSION)
                .then_some(K::ConcurrentTransactions)
        });
    if let Some(underlying) = underlying {
        let message = format!(
            "Unable to verify the partition has been added to the transaction. Underlying error: {underlying:?}"
        );
        return Some(refused(K::NotEnoughReplicas, &message));
    }
    let code = match code {
        0 => return None,
        c if c == K::ProducerFenced.code() => K::InvalidProducerEpoch.code(),
        c if c == K::TransactionAbortable.code() && version <= LAST_DEFAULT_ERROR_VERSION => {
            K::InvalidTxnState.code()
        }
        c => c,
    };
    let message = if code == K::InvalidTxnState.code() || code == K::TransactionAbortable.code() {
        "Partition was not added to the transaction".to_owned()
    } else {
        format!("Transaction verification failed with error code {code}")
    };
    Some(PartitionError::TxnVerification { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: Option<PartitionError>) -> Option<i16> {
        e.map(|e| match e {
            PartitionError::TxnVerification { code, .. } => code,
            _ => -100,
        })
    }

    /// Kafka's translations per Produce version.
    #[test]
    fn coordinator_codes_become_kafkas_produce_errors() {
        assert_eq!(code(produce_error(0, 9)), None);
        let abortable = K::TransactionAbortable.code();
        assert_eq!(
            code(produce_error(abortable, 10)),
            Some(K::InvalidTxnState.code())
        );
        assert_eq!(code(produce_error(abortable, 11)), Some(abortable));
        let fenced = K::ProducerFenced.code();
        assert_eq!(
            code(produce_error(fenced, 12)),
            Some(K::InvalidProducerEpoch.code())
        );
        let not_coordinator = K::NotCoordinator.code();
        assert_eq!(
            code(produce_error(not_coordinator, 12)),
            Some(K::NotEnoughReplicas.code())
        );
        let concurrent = K::ConcurrentTransactions.code();
        assert_eq!(
            code(produce_error(concurrent, 11)),
            Some(K::NotEnoughReplicas.code())
        );
        assert_eq!(code(produce_error(concurrent, 12)), Some(concurrent));
    }
}
