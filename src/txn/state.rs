//! One transactional id's state and its transitions: Kafka's `TransactionMetadata` and the
//! decisions of `TransactionCoordinator`, pure (no I/O, times passed in).
//!
//! Empty -> Ongoing (AddPartitionsToTxn / AddOffsetsToTxn) -> PrepareCommit | PrepareAbort
//! (EndTxn, or the coordinator aborting an expired or fenced transaction) -> CompleteCommit |
//! CompleteAbort (once every partition has its marker) -> Ongoing again with the next
//! transaction. InitProducerId bumps the epoch (fencing the older producer), and on an Ongoing
//! transaction first fences it (PrepareEpochFence: epoch + 1 in memory) and aborts it. Dead is
//! an expired id (removed with a tombstone).
//!
//! Every decision returns the next metadata (a "transit"); the coordinator persists it and only
//! then installs it and answers, so memory never runs ahead of the log. While one is being
//! written the id is `pending` and other requests get CONCURRENT_TRANSACTIONS.

use std::collections::BTreeSet;

use super::code::TxnCode;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH` / `NO_PRODUCER_ID`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_PRODUCER_ID: i64 = -1;

/// Kafka's `TransactionState`, with its ids as written in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's `TransactionState.stateName` (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        (0..=7).filter_map(Self::from_id).find(|s| s.name() == name)
    }

    fn is_complete_or_empty(self) -> bool {
        matches!(
            self,
            Self::Empty | Self::CompleteCommit | Self::CompleteAbort
        )
    }
}

/// A topic partition inside a transaction.
pub type TxnPartition = (String, i32);

/// What the coordinator knows of one transactional id (the `__transaction_state` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// TV2: the producer id of the last committed transaction before a rotation.
    pub previous_producer_id: i64,
    /// TV2: the producer id handed out when the epoch was exhausted at the end of a transaction.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump (a retried InitProducerId gets the same
    /// answer; Kafka's `lastProducerEpoch`, memory only).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// Wall time the current transaction started (first partition added); -1 when none.
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The client's transaction version (2: KIP-890 epoch bump per transaction).
    pub client_txn_version: i16,
}

impl TxnMetadata {
    /// A new transactional id: the given producer id, no epoch yet (the first InitProducerId
    /// bumps it to 0), Empty.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            transactional_id,
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_txn_version: 0,
        }
    }

    /// Kafka's `isEpochExhausted`: at this epoch the producer id must be rotated.
    pub fn epoch_exhausted(epoch: i16) -> bool {
        epoch >= i16::MAX - 1
    }

    /// Whether an ongoing transaction has outlived its timeout at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Checks the producer id and epoch a client request carries (AddPartitionsToTxn,
    /// AddOffsetsToTxn, EndTxn, TxnOffsetCommit).
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnCode> {
        if producer_id != self.producer_id {
            return Err(TxnCode::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(TxnCode::ProducerFenced);
        }
        Ok(())
    }
}

/// InitProducerId's arguments.
#[derive(Debug, Clone, Copy)]
pub struct InitArgs {
    pub timeout_ms: i32,
    /// KIP-360: the producer id and epoch the client had (None for a fresh producer).
    pub expected: Option<(i64, i16)>,
}

/// InitProducerId's decision for an existing id.
#[derive(Debug, PartialEq, Eq)]
pub enum InitStep {
    /// Persist this and answer its producer id and epoch.
    Transit(TxnMetadata),
    /// The epoch is exhausted: allocate a new producer id and call `rotate`.
    NeedNewProducerId,
    /// An ongoing transaction: persist this PrepareAbort (epoch already bumped, fencing the
    /// old producer), complete the abort, and answer CONCURRENT_TRANSACTIONS (the client
    /// retries and then gets the next epoch).
    FenceAndAbort(TxnMetadata),
}

/// Kafka's `handleInitProducerId` for an id that already has metadata.
pub fn init(current: &TxnMetadata, args: InitArgs, now_ms: i64) -> Result<InitStep, TxnCode> {
    if let Some((id, epoch)) = args.expected {
        let known = id == current.producer_id
            || (id == current.previous_producer_id && TxnMetadata::epoch_exhausted(epoch));
        if !known {
            return Err(TxnCode::ProducerFenced);
        }
    }
    match current.state {
        TxnState::PrepareAbort | TxnState::PrepareCommit => Err(TxnCode::ConcurrentTransactions),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let retry_of_rotation = args
                .expected
                .is_some_and(|(id, _)| id != current.producer_id);
            if retry_of_rotation {
                // The producer lost the answer to a rotation: it gets the new id again.
                return Ok(InitStep::Transit(current.clone()));
            }
            let expected_epoch = args.expected.map(|(_, e)| e);
            if TxnMetadata::epoch_exhausted(current.producer_epoch)
                && expected_epoch.is_none_or(|e| e == current.producer_epoch)
            {
                return Ok(InitStep::NeedNewProducerId);
            }
            bump_epoch(current, args.timeout_ms, expected_epoch, now_ms).map(InitStep::Transit)
        }
        TxnState::Ongoing => Ok(InitStep::FenceAndAbort(fence_and_abort(current, now_ms))),
        TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnCode::ConcurrentTransactions),
    }
}

/// Kafka's `prepareIncrementProducerEpoch`.
fn bump_epoch(
    current: &TxnMetadata,
    timeout_ms: i32,
    expected_epoch: Option<i16>,
    now_ms: i64,
) -> Result<TxnMetadata, TxnCode> {
    let bumped = current.producer_epoch.saturating_add(1);
    let (epoch, last_epoch) = match expected_epoch {
        None => (bumped, NO_PRODUCER_EPOCH),
        Some(e) if current.producer_epoch == NO_PRODUCER_EPOCH || e == current.producer_epoch => {
            (bumped, current.producer_epoch)
        }
        // A retry of the InitProducerId that did the last bump: the same answer.
        Some(e) if e == current.last_producer_epoch => {
            (current.producer_epoch, current.last_producer_epoch)
        }
        Some(_) => return Err(TxnCode::ProducerFenced),
    };
    Ok(TxnMetadata {
        producer_epoch: epoch,
        last_producer_epoch: last_epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now_ms,
        ..current.clone()
    })
}

/// Kafka's `prepareProducerIdRotation`: a new producer id with epoch 0.
pub fn rotate(current: &TxnMetadata, new_id: i64, args: InitArgs, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        previous_producer_id: current.producer_id,
        producer_id: new_id,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch: 0,
        last_producer_epoch: if args.expected.is_some() {
            current.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        },
        timeout_ms: args.timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now_ms,
        ..current.clone()
    }
}

/// Kafka's `prepareFenceProducerEpoch` followed by the abort it leads to: the epoch goes up by
/// one (unless exhausted), so the fenced producer's next request is PRODUCER_FENCED, and the
/// transaction moves to PrepareAbort.
pub fn fence_and_abort(current: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    let epoch = if TxnMetadata::epoch_exhausted(current.producer_epoch) {
        current.producer_epoch
    } else {
        current.producer_epoch + 1
    };
    TxnMetadata {
        producer_epoch: epoch,
        last_producer_epoch: current.producer_epoch,
        state: TxnState::PrepareAbort,
        last_update_ms: now_ms,
        ..current.clone()
    }
}

/// AddPartitionsToTxn / AddOffsetsToTxn (Kafka's `handleAddPartitionsToTransaction`). Ok(None)
/// means nothing to write (every partition is already in the ongoing transaction).
pub fn add_partitions(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    added: &[TxnPartition],
    now_ms: i64,
) -> Result<Option<TxnMetadata>, TxnCode> {
    current.check_producer(producer_id, epoch)?;
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            return Err(TxnCode::ConcurrentTransactions)
        }
        TxnState::Dead | TxnState::PrepareEpochFence => return Err(TxnCode::InvalidTxnState),
        TxnState::Ongoing if added.iter().all(|p| current.partitions.contains(p)) => {
            return Ok(None)
        }
        _ => {}
    }
    let start_ms = if current.state.is_complete_or_empty() {
        now_ms
    } else {
        current.start_ms
    };
    let mut next = current.clone();
    if current.state.is_complete_or_empty() {
        next.partitions.clear();
    }
    next.partitions.extend(added.iter().cloned());
    next.state = TxnState::Ongoing;
    next.start_ms = start_ms;
    next.last_update_ms = now_ms;
    Ok(Some(next))
}

/// AddPartitionsToTxn v4+ `verify_only` (the partition leader asking, KIP-890): each
/// partition's code, without changing anything (Kafka's `handleVerifyPartitionsInTransaction`:
/// TRANSACTION_ABORTABLE for a partition outside the transaction; a pending transition is not
/// checked, the append's verification guard is the final check).
pub fn verify(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[TxnPartition],
) -> Result<Vec<TxnCode>, TxnCode> {
    current.check_producer(producer_id, epoch)?;
    if matches!(
        current.state,
        TxnState::PrepareCommit | TxnState::PrepareAbort
    ) {
        return Err(TxnCode::ConcurrentTransactions);
    }
    Ok(partitions
        .iter()
        .map(|p| {
            if current.state == TxnState::Ongoing && current.partitions.contains(p) {
                TxnCode::None
            } else {
                TxnCode::TransactionAbortable
            }
        })
        .collect())
}

/// EndTxn's decision.
#[derive(Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Persist this PrepareCommit/PrepareAbort, write the markers, then complete.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn already done (or being completed): answer with this code and the
    /// current producer id and epoch.
    Answer(TxnCode),
}

/// Kafka's `handleEndTransaction` for a client's EndTxn. `bump_epoch` is TV2 (EndTxn v5+): the
/// epoch goes up with every transaction, so a zombie of this transaction is fenced.
pub fn end(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    bump_epoch: bool,
    now_ms: i64,
) -> Result<EndStep, TxnCode> {
    if producer_id != current.producer_id {
        return Err(TxnCode::InvalidProducerIdMapping);
    }
    // TV2: a retry carries the epoch before the end's bump.
    let is_retry = bump_epoch
        && epoch.checked_add(1) == Some(current.producer_epoch)
        && !matches!(current.state, TxnState::Ongoing);
    if epoch != current.producer_epoch && !is_retry {
        return Err(TxnCode::ProducerFenced);
    }
    let same = |state_commit: bool| state_commit == commit;
    match current.state {
        TxnState::Ongoing => {
            let mut next = current.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            if bump_epoch {
                next.client_txn_version = 2;
                next.last_producer_epoch = current.producer_epoch;
                next.producer_epoch = current.producer_epoch.saturating_add(1);
            }
            next.last_update_ms = now_ms;
            Ok(EndStep::Prepare(next))
        }
        TxnState::CompleteCommit | TxnState::CompleteAbort => {
            if same(current.state == TxnState::CompleteCommit) {
                Ok(EndStep::Answer(TxnCode::None))
            } else {
                Err(TxnCode::InvalidTxnState)
            }
        }
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            if same(current.state == TxnState::PrepareCommit) {
                Ok(EndStep::Answer(TxnCode::ConcurrentTransactions))
            } else {
                Err(TxnCode::InvalidTxnState)
            }
        }
        // TV2: an abort with nothing added is a no-op that still bumps the epoch.
        TxnState::Empty if bump_epoch && !commit => {
            let mut next = current.clone();
            next.state = TxnState::PrepareAbort;
            next.client_txn_version = 2;
            next.last_producer_epoch = current.producer_epoch;
            next.producer_epoch = current.producer_epoch.saturating_add(1);
            next.last_update_ms = now_ms;
            Ok(EndStep::Prepare(next))
        }
        TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
            Err(TxnCode::InvalidTxnState)
        }
    }
}

/// Kafka's `prepareComplete`: every marker is written.
pub fn complete(current: &TxnMetadata, now_ms: i64) -> Option<TxnMetadata> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    Some(TxnMetadata {
        state,
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        ..current.clone()
    })
}

/// Whether an idle id has expired (`transactional.id.expiration.ms`, Kafka's
/// `removeExpiredTransactionalIds`): only ids without a transaction in flight.
pub fn id_expired(current: &TxnMetadata, expiration_ms: i64, now_ms: i64) -> bool {
    current.state.is_complete_or_empty()
        && now_ms.saturating_sub(current.last_update_ms) >= expiration_ms
}
