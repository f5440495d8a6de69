//! The transaction coordinator of one shard: runs the state machine (`state`) for the
//! transactional ids this shard owns, writes each transition to `__transaction_state` before
//! installing and answering it, completes transactions (markers through the partition service,
//! then CompleteCommit/CompleteAbort), and drives the timers (abort of transactions past their
//! timeout, removal of expired ids).
//!
//! Invariants: all state is shard-local (`RefCell`, never borrowed across an `.await`); at most
//! one transition per id is in flight (`TxnEntry::pending`, others get CONCURRENT_TRANSACTIONS);
//! memory changes only after the record is appended, so a replay rebuilds what clients were
//! told; the number of ids per shard is bounded by `transaction.max.count.per.shard`.

use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use super::api::{DescribedTxn, ListFilter, ListedTxn, TxnAnswer, TxnCode, TxnOp};
use super::failures::{producer_id_error_code, store_error_code};
use super::state::{self, EndStep, InitArgs, InitStep, TxnMetadata, TxnPartition, TxnState};
use super::table::TxnEntry;
use super::{markers, store, TxnCoordinatorContext};

pub use crate::clock::system_now_ms as now_ms;

/// How long EndTxn waits for the markers before answering anyway (the outcome is already
/// decided and persisted; Kafka answers at that point, Sluice waits so that a client that reads
/// right after its commit sees it).
const END_TXN_WAIT_FOR_MARKERS: Duration = Duration::from_secs(5);

/// Runs one op on this shard (the id's owner).
pub async fn execute(shard: &TxnCoordinatorContext<'_>, op: TxnOp) -> TxnAnswer {
    let partition = match op.transactional_id() {
        Some(id) => match check_owner(shard, id) {
            Ok(partition) => Some(partition),
            Err(code) => return TxnAnswer::Error(code),
        },
        None => None,
    };
    match op {
        TxnOp::InitProducerId {
            transactional_id,
            timeout_ms,
            expected,
        } => {
            let args = InitArgs {
                timeout_ms,
                expected,
            };
            let partition = partition.unwrap_or_default();
            init_producer_id(shard, transactional_id, partition, args).await
        }
        TxnOp::AddPartitions {
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            verify_only,
        } => {
            if verify_only {
                verify(
                    shard,
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                )
            } else {
                let id = transactional_id;
                add_partitions(shard, &id, producer_id, producer_epoch, partitions).await
            }
        }
        TxnOp::EndTxn {
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            bump_epoch,
        } => {
            let id = transactional_id;
            end_txn(shard, &id, producer_id, producer_epoch, commit, bump_epoch).await
        }
        TxnOp::Describe { transactional_id } => describe(shard, &transactional_id),
        TxnOp::List(filter) => list(shard, &filter),
    }
}

fn check_owner(shard: &TxnCoordinatorContext<'_>, transactional_id: &str) -> Result<u32, TxnCode> {
    if transactional_id.is_empty() {
        return Err(TxnCode::InvalidRequest);
    }
    let (owner, partition) = super::owner_of(&shard.txn, transactional_id);
    if owner != shard.router.shard_id {
        return Err(TxnCode::NotCoordinator);
    }
    if shard.txn.txns.loaded().get(partition).is_none() {
        return Err(TxnCode::CoordinatorLoadInProgress);
    }
    Ok(partition)
}

fn producer(code: TxnCode, meta: Option<&TxnMetadata>) -> TxnAnswer {
    TxnAnswer::Producer {
        code,
        producer_id: meta.map_or(-1, |m| m.producer_id),
        producer_epoch: meta.map_or(-1, |m| m.producer_epoch),
    }
}

/// `id`'s metadata when no transition is in flight (the caller decides and calls `transit`
/// without an `.await` in between).
fn idle_metadata(shard: &TxnCoordinatorContext<'_>, id: &str) -> Result<TxnMetadata, TxnCode> {
    let mut txns = shard.txn.txns.txns.borrow_mut();
    let entry = txns.get_mut(id).ok_or(TxnCode::InvalidProducerIdMapping)?;
    if entry.pending {
        return Err(TxnCode::ConcurrentTransactions);
    }
    Ok(entry.meta.clone())
}

/// Persists `next` and installs it (Kafka's prepareTransitionTo, then
/// `TransactionStateManager.appendTransactionToLog` and its callback). The caller checked the
/// id is not pending, in the same borrow as its decision.
async fn transit(shard: &TxnCoordinatorContext<'_>, next: TxnMetadata) -> Result<(), TxnCode> {
    let id = next.transactional_id.clone();
    let (partition, load) = {
        let mut txns = shard.txn.txns.txns.borrow_mut();
        let entry = txns.get_mut(&id).ok_or(TxnCode::NotCoordinator)?;
        if entry.pending {
            return Err(TxnCode::ConcurrentTransactions);
        }
        // Kafka's coordinator epoch: the load of the partition the decision was made in.
        let load = shard
            .txn
            .txns
            .loaded()
            .get(entry.partition)
            .ok_or(TxnCode::NotCoordinator)?;
        entry.pending = true;
        (entry.partition, load)
    };
    let written = store::persist(&shard.txn, partition, &next).await;
    let same_load = shard
        .txn
        .txns
        .loaded()
        .get(partition)
        .is_some_and(|now| Rc::ptr_eq(&now, &load));
    let mut txns = shard.txn.txns.txns.borrow_mut();
    let entry = txns.get_mut(&id).filter(|_| same_load);
    settle(entry, next, written)
}

/// The end of a transition once its append returned (Kafka's `updateCacheCallback`): `entry`
/// is the id's entry when the partition is still the load the transition started in, `None`
/// when it was unloaded (and maybe loaded again) meanwhile. A written record is installed, or
/// answers NOT_COORDINATOR without touching a newer load's entry; a failed one clears the
/// pending transition (of the same load only) and answers the append error through
/// `store_error_code`, also when the entry is gone (Kafka returns "the original append error").
fn settle(
    entry: Option<&mut TxnEntry>,
    next: TxnMetadata,
    written: Result<(), super::TxnError>,
) -> Result<(), TxnCode> {
    match (written, entry) {
        (Ok(()), Some(entry)) => {
            entry.pending = false;
            entry.meta = next;
            Ok(())
        }
        (Ok(()), None) => {
            tracing::info!(
                transactional_id = next.transactional_id,
                "transaction log partition unloaded during the write; NOT_COORDINATOR"
            );
            Err(TxnCode::NotCoordinator)
        }
        (Err(e), entry) => {
            if let Some(entry) = entry {
                entry.pending = false;
            }
            let code = store_error_code(&e);
            tracing::warn!(transactional_id = next.transactional_id, error = %e, ?code, "cannot persist transaction state");
            Err(code)
        }
    }
}

async fn new_producer_id(shard: &TxnCoordinatorContext<'_>) -> Result<i64, TxnCode> {
    crate::router::Router::new(shard.router)
        .next_producer_id()
        .await
        .map(|id| id.0)
        .map_err(|e| {
            let code = producer_id_error_code(&e);
            tracing::warn!(error = %e, ?code, "cannot allocate a producer id");
            code
        })
}

async fn init_producer_id(
    shard: &TxnCoordinatorContext<'_>,
    id: String,
    partition: u32,
    args: InitArgs,
) -> TxnAnswer {
    if args.timeout_ms <= 0 || args.timeout_ms > shard.txn.txns.limits.max_timeout_ms {
        return producer(TxnCode::InvalidTransactionTimeout, None);
    }
    if !shard.txn.txns.txns.borrow().contains_key(&id) {
        if shard.txn.txns.count() >= shard.txn.txns.limits.ids_max {
            return producer(TxnCode::CoordinatorNotAvailable, None);
        }
        let producer_id = match new_producer_id(shard).await {
            Ok(p) => p,
            Err(code) => return producer(code, None),
        };
        // Not persisted: the first transition (epoch 0) is.
        let meta = TxnMetadata::new(id.clone(), producer_id, args.timeout_ms, now_ms());
        shard
            .txn
            .txns
            .txns
            .borrow_mut()
            .entry(id.clone())
            .or_insert_with(|| TxnEntry::new(meta, partition));
    }
    let step = idle_metadata(shard, &id).and_then(|m| state::init(&m, args, now_ms()));
    let next = match step {
        Err(code) => return producer(code, None),
        Ok(InitStep::Transit(next)) => next,
        Ok(InitStep::NeedNewProducerId) => {
            let new_id = match new_producer_id(shard).await {
                Ok(p) => p,
                Err(code) => return producer(code, None),
            };
            match idle_metadata(shard, &id) {
                Ok(current) => state::rotate(&current, new_id, args, now_ms()),
                Err(code) => return producer(code, None),
            }
        }
        Ok(InitStep::FenceAndAbort(next)) => {
            // The producer retries (CONCURRENT_TRANSACTIONS) and gets the next epoch once the
            // fenced transaction is aborted.
            let code = match transit(shard, next).await {
                Ok(()) => {
                    start_completion(shard, &id);
                    TxnCode::ConcurrentTransactions
                }
                Err(code) => code,
            };
            return producer(code, None);
        }
    };
    match transit(shard, next.clone()).await {
        Ok(()) => producer(TxnCode::None, Some(&next)),
        Err(code) => producer(code, None),
    }
}

async fn add_partitions(
    shard: &TxnCoordinatorContext<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: Vec<TxnPartition>,
) -> TxnAnswer {
    let count = partitions.len();
    let decided = idle_metadata(shard, id)
        .and_then(|m| state::add_partitions(&m, producer_id, epoch, &partitions, now_ms()));
    let code = match decided {
        Ok(None) => TxnCode::None,
        Ok(Some(next)) => transit(shard, next).await.err().unwrap_or(TxnCode::None),
        Err(code) => code,
    };
    TxnAnswer::Partitions(vec![code; count])
}

fn verify(
    shard: &TxnCoordinatorContext<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[TxnPartition],
) -> TxnAnswer {
    let txns = shard.txn.txns.txns.borrow();
    let codes = match txns.get(id) {
        None => Err(TxnCode::InvalidProducerIdMapping),
        Some(entry) => state::verify(&entry.meta, producer_id, epoch, partitions),
    };
    TxnAnswer::Partitions(codes.unwrap_or_else(|code| vec![code; partitions.len()]))
}

async fn end_txn(
    shard: &TxnCoordinatorContext<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    bump_epoch: bool,
) -> TxnAnswer {
    let current = match idle_metadata(shard, id) {
        Ok(m) => m,
        Err(code) => return producer(code, None),
    };
    let next = match state::end(&current, producer_id, epoch, commit, bump_epoch, now_ms()) {
        Err(code) => return producer(code, None),
        Ok(EndStep::Answer(code)) => return producer(code, Some(&current)),
        Ok(EndStep::Prepare(next)) => next,
    };
    if let Err(code) = transit(shard, next.clone()).await {
        return producer(code, None);
    }
    let (tx, rx) = oneshot::channel();
    if let Some(entry) = shard.txn.txns.txns.borrow_mut().get_mut(id) {
        entry.waiters.push(tx);
    }
    start_completion(shard, id);
    let wait = compio::time::timeout(END_TXN_WAIT_FOR_MARKERS, rx).await;
    if wait.is_err() {
        tracing::warn!(
            transactional_id = id,
            "markers not written yet; EndTxn answered"
        );
    }
    producer(TxnCode::None, Some(&next))
}

/// Starts the completion of `id`'s PrepareCommit/PrepareAbort unless one runs already.
pub fn start_completion(shard: &TxnCoordinatorContext<'_>, id: &str) {
    {
        let mut txns = shard.txn.txns.txns.borrow_mut();
        let Some(entry) = txns.get_mut(id) else {
            return;
        };
        if entry.completing {
            return;
        }
        entry.completing = true;
    }
    shard.host.spawn_completion(id.to_owned());
}

/// Backoff between marker attempts that failed (a partition's owner not ready, say).
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Writes the markers of `id`'s prepared transaction until every partition has one, then
/// persists CompleteCommit/CompleteAbort and wakes the EndTxn answers waiting for it. Runs in
/// a task of its own (`TxnHost::spawn_completion`), started by `start_completion`.
pub async fn complete(shard: &TxnCoordinatorContext<'_>, id: String) {
    let mut done = std::collections::BTreeSet::new();
    loop {
        let meta = shard
            .txn
            .txns
            .txns
            .borrow()
            .get(&id)
            .map(|e| e.meta.clone());
        let Some(meta) =
            meta.filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
        else {
            break;
        };
        if markers::write_missing(shard, &meta, &mut done)
            .await
            .is_err()
        {
            compio::time::sleep(MARKER_RETRY_BACKOFF).await;
            continue;
        }
        let Some(done) = state::complete(&meta, now_ms()) else {
            break;
        };
        match transit(shard, done).await {
            Ok(()) => break,
            Err(code) => {
                tracing::warn!(transactional_id = id, ?code, "cannot persist completion");
                if shard.shutdown.is_triggered() {
                    break;
                }
                compio::time::sleep(MARKER_RETRY_BACKOFF).await;
            }
        }
    }
    let waiters = match shard.txn.txns.txns.borrow_mut().get_mut(&id) {
        Some(entry) => {
            entry.completing = false;
            std::mem::take(&mut entry.waiters)
        }
        None => Vec::new(),
    };
    for waiter in waiters {
        let _gone_is_fine = waiter.send(());
    }
}

fn describe(shard: &TxnCoordinatorContext<'_>, id: &str) -> TxnAnswer {
    let txns = shard.txn.txns.txns.borrow();
    TxnAnswer::Described(match txns.get(id) {
        None => Err(TxnCode::TransactionalIdNotFound),
        Some(entry) => Ok(DescribedTxn {
            state: entry.meta.state.name(),
            timeout_ms: entry.meta.timeout_ms,
            start_ms: entry.meta.start_ms,
            producer_id: entry.meta.producer_id,
            producer_epoch: entry.meta.producer_epoch,
            partitions: entry.meta.partitions.iter().cloned().collect(),
        }),
    })
}

fn list(shard: &TxnCoordinatorContext<'_>, filter: &ListFilter) -> TxnAnswer {
    let now = now_ms();
    let txns = shard.txn.txns.txns.borrow();
    let listed = txns
        .values()
        .map(|e| &e.meta)
        .filter(|m| filter.states.is_empty() || filter.states.contains(&m.state))
        .filter(|m| filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id))
        .filter(|m| {
            filter.duration_ms < 0
                || (m.state == TxnState::Ongoing
                    && m.start_ms >= 0
                    && now.saturating_sub(m.start_ms) > filter.duration_ms)
        })
        .map(|m| ListedTxn {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            state: m.state.name(),
        })
        .collect();
    TxnAnswer::Listed(listed)
}

/// The timers of this shard's coordinator: resumes completions found at load, aborts
/// transactions past their timeout (every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`) and removes expired ids
/// (every `transaction.remove.expired.transaction.cleanup.interval.ms`).
pub async fn timer_loop(shard: &TxnCoordinatorContext<'_>) {
    const TICK: Duration = Duration::from_millis(200);
    let limits = shard.txn.txns.limits;
    let mut next_abort = now_ms();
    let mut next_expiry = now_ms().saturating_add(ms_i64(limits.expiry_check_interval_ms));
    while !shard.shutdown.is_triggered() {
        compio::time::sleep(TICK).await;
        let resume = std::mem::take(&mut *shard.txn.txns.to_resume.borrow_mut());
        for id in resume {
            start_completion(shard, &id);
        }
        let now = now_ms();
        if now >= next_abort {
            next_abort = now.saturating_add(ms_i64(limits.abort_check_interval_ms));
            abort_timed_out(shard, now).await;
        }
        if now >= next_expiry {
            next_expiry = now.saturating_add(ms_i64(limits.expiry_check_interval_ms));
            remove_expired(shard, now).await;
        }
    }
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Kafka's `abortTimedOutTransactions`: fence the producer (epoch + 1) and abort.
async fn abort_timed_out(shard: &TxnCoordinatorContext<'_>, now: i64) {
    let expired: Vec<TxnMetadata> = shard
        .txn
        .txns
        .txns
        .borrow()
        .values()
        .filter(|e| !e.pending && e.meta.expired(now))
        .map(|e| state::fence_and_abort(&e.meta, now))
        .collect();
    for next in expired {
        let id = next.transactional_id.clone();
        tracing::info!(
            transactional_id = id,
            "aborting a transaction past its timeout"
        );
        if transit(shard, next).await.is_ok() {
            start_completion(shard, &id);
        }
    }
}

/// Kafka's `removeExpiredTransactionalIds`: a tombstone, then the id is forgotten.
async fn remove_expired(shard: &TxnCoordinatorContext<'_>, now: i64) {
    let expiration = shard.txn.txns.limits.id_expiration_ms;
    let expired: Vec<TxnMetadata> = shard
        .txn
        .txns
        .txns
        .borrow()
        .values()
        .filter(|e| !e.pending && state::id_expired(&e.meta, expiration, now))
        .map(|e| TxnMetadata {
            state: TxnState::Dead,
            ..e.meta.clone()
        })
        .collect();
    for dead in expired {
        let id = dead.transactional_id.clone();
        if transit(shard, dead).await.is_ok() {
            let mut txns = shard.txn.txns.txns.borrow_mut();
            if txns
                .get(&id)
                .is_some_and(|e| e.meta.state == TxnState::Dead)
            {
                txns.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator_log::LogError;
    use crate::partition::PartitionError;

    fn entry() -> TxnEntry {
        let mut entry = TxnEntry::new(TxnMetadata::new("t".into(), 7, 1000, 0), 0);
        entry.pending = true;
        entry
    }

    fn next() -> TxnMetadata {
        TxnMetadata {
            producer_epoch: 1,
            ..TxnMetadata::new("t".into(), 7, 1000, 0)
        }
    }

    fn failed(error: PartitionError) -> Result<(), super::super::TxnError> {
        Err(LogError::Partition(error).into())
    }

    #[test]
    fn a_failed_write_clears_the_pending_transition_and_answers_the_mapped_error() {
        let mut entry = entry();
        let before = entry.meta.clone();
        let code = settle(
            Some(&mut entry),
            next(),
            failed(PartitionError::NotLeaderOrFollower),
        );
        assert_eq!(code, Err(TxnCode::NotCoordinator));
        assert!(!entry.pending);
        assert_eq!(entry.meta.producer_epoch, before.producer_epoch);
        let code = settle(
            Some(&mut entry),
            next(),
            failed(PartitionError::TooLarge { size: 2, max: 1 }),
        );
        assert_eq!(code, Err(TxnCode::UnknownServerError));
    }

    #[test]
    fn a_failed_write_whose_load_is_gone_answers_the_append_error() {
        // Kafka: "we want to return the original append error to the user".
        let code = settle(None, next(), failed(PartitionError::RequestTimedOut));
        assert_eq!(code, Err(TxnCode::CoordinatorNotAvailable));
    }

    #[test]
    fn a_write_whose_load_is_gone_is_not_installed_and_answers_not_coordinator() {
        assert_eq!(settle(None, next(), Ok(())), Err(TxnCode::NotCoordinator));
        let mut entry = entry();
        assert_eq!(settle(Some(&mut entry), next(), Ok(())), Ok(()));
        assert!(!entry.pending);
        assert_eq!(entry.meta.producer_epoch, 1);
    }
}
