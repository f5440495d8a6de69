//! One partition's idempotent-producer state (KIP-98, non-transactional), as Kafka 3.x/4.x keeps
//! it: per producer id the current epoch and the last `BATCHES_RETAINED` batches' sequence
//! ranges and offsets. Pure: no I/O, the clock is passed in.
//!
//! Invariants: at most `max_producers` producers are tracked (the least recently used is evicted
//! first); an entry never holds more than `BATCHES_RETAINED` batches, all of its current epoch, in
//! append order; `lru` and `entries` always name the same producers. `plan` never changes state,
//! `commit` never rejects: the caller runs plan -> append -> commit with no other append of this
//! partition in between.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// A transaction a marker closed: what the aborted-transaction index records (Kafka's
/// `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// Batches remembered per producer: Kafka's NUM_BATCHES_TO_RETAIN, which is also the most
/// in-flight requests an idempotent client may have per connection.
pub const BATCHES_RETAINED: usize = 5;
/// Producers whose expired entries one `commit` removes at most (amortised expiry, no timer).
const EXPIRED_SWEEP_PER_COMMIT: usize = 2;

/// A producer id handed out by InitProducerId (>= 0; -1 in a batch means "not idempotent").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId(pub i64);

/// Why a batch was refused (Kafka error codes in `handlers::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("out of order sequence for producer {producer}: {detail}")]
    OutOfOrder { producer: i64, detail: String },
    #[error("producer {producer} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer: i64,
        epoch: i16,
        current: i16,
    },
    #[error("invalid sequence {sequence} for producer {producer}")]
    InvalidSequence { producer: i64, sequence: i32 },
    /// Kafka's InvalidTxnStateException: a non-transactional batch while the producer's
    /// transaction is open.
    #[error("expected a transactional write from producer {producer}: its transaction is open")]
    InvalidTxnState { producer: i64 },
    /// KIP-890: a transactional batch starting a transaction without a current verification
    /// by the transaction coordinator (Kafka's InvalidTxnStateException).
    #[error("Record was not part of an ongoing transaction (producer {producer})")]
    NotVerified { producer: i64 },
}

/// The producer fields of one batch header (what the check needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdent {
    pub producer: ProducerId,
    pub epoch: i16,
    pub first_seq: i32,
    /// lastOffsetDelta of the batch: records - 1 (sequences advance by the same amount).
    pub offset_delta: i32,
    /// The batch's transactional attribute: it opens (or continues) a transaction.
    pub transactional: bool,
}

impl BatchIdent {
    pub fn from_header(h: &storage::BatchHeader) -> Option<Self> {
        (h.producer_id >= 0 && !h.is_control()).then_some(Self {
            producer: ProducerId(h.producer_id),
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            offset_delta: h.last_offset_delta,
            transactional: h.is_transactional(),
        })
    }

    /// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from i32::MAX to 0.
    pub fn last_seq(&self) -> i32 {
        increment_sequence(self.first_seq, self.offset_delta)
    }
}

pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka's `inSequence`: `next` directly follows `last`, wrapping at i32::MAX.
pub fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// Where a remembered batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) epoch: i16,
    pub(super) batches: VecDeque<BatchMeta>,
    /// Wall clock of the last append (or the batch timestamp when rebuilt from the log).
    pub(super) last_ms: i64,
    pub(super) tick: u64,
    /// The epoch of the coordinator that wrote this producer's last marker (-1 none).
    pub(super) coordinator_epoch: i32,
    /// First offset of the producer's open transaction (Kafka's `currentTxnFirstOffset`).
    pub(super) txn_first_offset: Option<i64>,
}

impl Entry {
    pub(super) fn new(epoch: i16, last_ms: i64, tick: u64) -> Self {
        Self {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_RETAINED),
            last_ms,
            tick,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }
}

/// One producer's KIP-890 verification in progress (`producers::verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub guard: u64,
    /// The highest epoch a verification was started with.
    pub epoch: i16,
    pub created_ms: i64,
}

/// What to do with an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Append; then `commit` the batches with their offsets.
    Append,
    /// A retry of a batch already in the log: append nothing, answer with where it went.
    Duplicate(BatchMeta),
}

/// Bounds of one partition's state.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    pub max_producers: usize,
    pub expiration_ms: i64,
}

/// The producer state of one partition.
#[derive(Debug)]
pub struct ProducerStates {
    pub(super) limits: StateLimits,
    pub(super) entries: HashMap<ProducerId, Entry>,
    /// tick -> producer: least recently used first.
    pub(super) lru: BTreeMap<u64, ProducerId>,
    pub(super) next_tick: u64,
    /// First offset -> producer of every open transaction: the oldest is the first unstable
    /// offset (the LSO). Always the producers whose entry has `txn_first_offset`.
    pub(super) ongoing: BTreeMap<i64, ProducerId>,
    /// Transactions closed while the log was replayed at open, with the LSO after each: the
    /// partition indexes the aborted ones its `.txnindex` lacks (`take_recovered_aborts`).
    pub(super) recovered: Vec<(CompletedTxn, i64)>,
    /// KIP-890 verifications in progress (Kafka's `verificationStates`), see `verify.rs`.
    pub(super) verifications: HashMap<ProducerId, Verification>,
    pub(super) next_guard: u64,
}

impl ProducerStates {
    pub fn new(limits: StateLimits) -> Self {
        assert!(limits.max_producers > 0, "max producers must be positive");
        Self {
            limits,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            ongoing: BTreeMap::new(),
            recovered: Vec::new(),
            verifications: HashMap::new(),
            next_guard: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn limits(&self) -> StateLimits {
        self.limits
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn live(&self, producer: ProducerId, now_ms: i64) -> Option<&Entry> {
        self.entries
            .get(&producer)
            .filter(|e| !self.expired(e, now_ms))
    }

    /// Idle for `producer.id.expiration.ms` and no open transaction (Kafka never expires a
    /// producer whose transaction is open: the LSO depends on it).
    fn expired(&self, entry: &Entry, now_ms: i64) -> bool {
        entry.txn_first_offset.is_none()
            && now_ms.saturating_sub(entry.last_ms) >= self.limits.expiration_ms
    }

    /// Checks the idempotent batches of one append (in order) against the state, as Kafka's
    /// `ProducerAppendInfo` does: a batch equal to a remembered one of the same epoch is a
    /// duplicate (the whole append is then answered with the first duplicate's placement); an
    /// older epoch is fenced; a newer epoch must start at sequence 0; the same epoch must
    /// continue at last sequence + 1; an unknown (or expired) producer may start anywhere
    /// (Kafka 2.5+: its state may have been removed by retention or expiry).
    pub fn plan(&self, batches: &[BatchIdent], now_ms: i64) -> Result<Plan, SequenceError> {
        self.plan_for(batches, now_ms, true, None)
    }

    /// `plan`; `client` false is Kafka's `AppendOrigin.COORDINATOR` (the group coordinator's
    /// transactional offset commits): epochs and transaction state are checked, sequences not.
    /// `verification`: Some(guard) when transactional batches need a verification (KIP-890,
    /// `transaction.partition.verification.enable`): a batch that starts its producer's
    /// transaction must carry the producer's current guard (0: none), else NotVerified.
    pub fn plan_for(
        &self,
        batches: &[BatchIdent],
        now_ms: i64,
        client: bool,
        verification: Option<u64>,
    ) -> Result<Plan, SequenceError> {
        // Epoch and last sequence as earlier batches of this same append leave them.
        let mut staged: HashMap<ProducerId, (i16, i32)> = HashMap::new();
        for batch in batches {
            let producer = batch.producer.0;
            let entry = self.live(batch.producer, now_ms);
            if !batch.transactional && entry.is_some_and(|e| e.txn_first_offset.is_some()) {
                return Err(SequenceError::InvalidTxnState { producer });
            }
            if client && batch.first_seq < 0 {
                return Err(SequenceError::InvalidSequence {
                    producer,
                    sequence: batch.first_seq,
                });
            }
            let current = staged
                .get(&batch.producer)
                .copied()
                .or_else(|| entry.map(|e| (e.epoch, e.batches.back().map_or(-1, |b| b.last_seq))));
            let Some((epoch, last_seq)) = current else {
                self.check_verified(batch, entry, verification)?;
                staged.insert(batch.producer, (batch.epoch, batch.last_seq()));
                continue;
            };
            if batch.epoch < epoch {
                return Err(SequenceError::InvalidEpoch {
                    producer,
                    epoch: batch.epoch,
                    current: epoch,
                });
            }
            if !client {
                staged.insert(batch.producer, (batch.epoch, batch.last_seq()));
                continue;
            }
            if let Some(dup) = entry.and_then(|e| find_duplicate(e, batch)) {
                return Ok(Plan::Duplicate(dup));
            }
            self.check_verified(batch, entry, verification)?;
            if batch.epoch > epoch && batch.first_seq != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer,
                    detail: format!(
                        "new epoch {} must start at sequence 0, got {}",
                        batch.epoch, batch.first_seq
                    ),
                });
            }
            if batch.epoch == epoch && last_seq >= 0 && !in_sequence(last_seq, batch.first_seq) {
                return Err(SequenceError::OutOfOrder {
                    producer,
                    detail: format!(
                        "expected sequence {}, got {}",
                        increment_sequence(last_seq, 1),
                        batch.first_seq
                    ),
                });
            }
            staged.insert(batch.producer, (batch.epoch, batch.last_seq()));
        }
        Ok(Plan::Append)
    }

    /// Records an appended batch (also used to replay the log at open, unchecked).
    pub fn commit(&mut self, batch: &BatchIdent, placed: BatchMeta, now_ms: i64) {
        self.sweep_expired(now_ms);
        let producer = batch.producer;
        // The transaction has started (or the batch needed none): the verification is done.
        self.verifications.remove(&producer);
        let expired = self
            .entries
            .get(&producer)
            .is_some_and(|e| self.expired(e, now_ms));
        if expired {
            self.remove(producer);
        }
        if !self.entries.contains_key(&producer) {
            self.make_room();
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        let entry = self
            .entries
            .entry(producer)
            .or_insert_with(|| Entry::new(batch.epoch, now_ms, tick));
        if entry.epoch != batch.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(placed);
        entry.last_ms = entry.last_ms.max(now_ms);
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(placed.base_offset);
            self.ongoing.insert(placed.base_offset, producer);
        }
        let old_tick = std::mem::replace(&mut entry.tick, tick);
        self.lru.remove(&old_tick);
        self.lru.insert(tick, producer);
        assert_eq!(self.lru.len(), self.entries.len(), "lru out of step");
    }

    /// Drops a few producers idle for `producer.id.expiration.ms`, least recently used first.
    fn sweep_expired(&mut self, now_ms: i64) {
        for _ in 0..EXPIRED_SWEEP_PER_COMMIT {
            let Some(&oldest) = self.lru.values().next() else {
                return;
            };
            let expired = self
                .entries
                .get(&oldest)
                .is_some_and(|e| self.expired(e, now_ms));
            if !expired {
                return;
            }
            self.remove(oldest);
        }
    }

    /// Evicts least recently used producers until one more fits, skipping those with an open
    /// transaction (forgetting one would move the LSO past uncommitted data); such producers
    /// are bounded by their transactions' timeouts (the coordinator aborts them).
    pub(super) fn make_room(&mut self) {
        let mut skipped = 0;
        while self.entries.len() >= self.limits.max_producers {
            let candidate = self.lru.values().nth(skipped).copied();
            let Some(candidate) = candidate else {
                break;
            };
            let open = self
                .entries
                .get(&candidate)
                .is_some_and(|e| e.txn_first_offset.is_some());
            if open {
                skipped += 1;
                continue;
            }
            self.remove(candidate);
        }
    }

    pub(super) fn remove(&mut self, producer: ProducerId) {
        if let Some(entry) = self.entries.remove(&producer) {
            self.lru.remove(&entry.tick);
            if let Some(first) = entry.txn_first_offset {
                self.ongoing.remove(&first);
            }
        }
    }

    /// Forgets producers whose last batch lies wholly below the log start offset (after
    /// DeleteRecords or retention), as Kafka does: a retry of such a batch must not be answered
    /// with offsets that no longer exist. Returns how many were dropped.
    pub fn evict_below(&mut self, log_start_offset: i64) -> usize {
        let gone: Vec<ProducerId> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.batches
                    .back()
                    .is_none_or(|b| b.last_offset < log_start_offset)
            })
            .map(|(p, _)| *p)
            .collect();
        for producer in &gone {
            self.remove(*producer);
        }
        gone.len()
    }

    /// The epoch and last sequence known for `producer` (tests, diagnostics).
    pub fn last_sequence(&self, producer: ProducerId) -> Option<(i16, i32)> {
        let entry = self.entries.get(&producer)?;
        Some((entry.epoch, entry.batches.back()?.last_seq))
    }

    /// Whether the batch ending at `last_offset` is `producer`'s last known batch: the log
    /// cleaner keeps such a batch (empty if need be) so a rebuild finds the producer's sequence.
    pub fn is_last_batch(&self, producer: ProducerId, last_offset: i64) -> bool {
        self.entries
            .get(&producer)
            .and_then(|e| e.batches.back())
            .is_some_and(|b| b.last_offset == last_offset)
    }
}

fn find_duplicate(entry: &Entry, batch: &BatchIdent) -> Option<BatchMeta> {
    if entry.epoch != batch.epoch {
        return None;
    }
    let last_seq = batch.last_seq();
    entry
        .batches
        .iter()
        .find(|b| b.first_seq == batch.first_seq && b.last_seq == last_seq)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StateLimits = StateLimits {
        max_producers: 3,
        expiration_ms: 1000,
    };

    fn ident(producer: i64, epoch: i16, first_seq: i32, records: i32) -> BatchIdent {
        BatchIdent {
            producer: ProducerId(producer),
            epoch,
            first_seq,
            offset_delta: records - 1,
            transactional: false,
        }
    }

    /// Plans and, when it says append, commits at `offset`; returns the plan.
    fn append(s: &mut ProducerStates, b: BatchIdent, offset: i64, now: i64) -> Plan {
        let plan = s.plan(&[b], now).unwrap();
        if plan == Plan::Append {
            let meta = BatchMeta {
                first_seq: b.first_seq,
                last_seq: b.last_seq(),
                base_offset: offset,
                last_offset: offset + i64::from(b.offset_delta),
                log_append_time_ms: -1,
            };
            s.commit(&b, meta, now);
        }
        plan
    }

    #[test]
    fn producers_below_the_log_start_are_forgotten() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, ident(1, 0, 0, 10), 0, 0); // offsets 0..=9
        append(&mut s, ident(2, 0, 0, 10), 10, 0); // offsets 10..=19
        assert_eq!(s.evict_below(10), 1);
        assert_eq!(s.last_sequence(ProducerId(1)), None);
        assert_eq!(s.last_sequence(ProducerId(2)), Some((0, 9)));
        // A retry of producer 1's batch is no longer a duplicate: its offsets are gone.
        assert_eq!(s.plan(&[ident(1, 0, 0, 10)], 0), Ok(Plan::Append));
        assert_eq!(
            s.evict_below(19),
            0,
            "a producer whose last batch reaches the start stays"
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 4), 9);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(4, 5));
        assert!(in_sequence(i32::MAX, 0));
        assert!(!in_sequence(4, 6));
        assert!(!in_sequence(4, 4));
        assert_eq!(ident(1, 0, i32::MAX - 1, 3).last_seq(), 0);
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStates::new(LIMITS);
        assert_eq!(append(&mut s, ident(7, 0, 0, 10), 100, 0), Plan::Append);
        assert_eq!(append(&mut s, ident(7, 0, 10, 5), 110, 0), Plan::Append);
        let Plan::Duplicate(dup) = append(&mut s, ident(7, 0, 0, 10), 999, 0) else {
            panic!("retry of the first batch must be a duplicate");
        };
        assert_eq!((dup.base_offset, dup.last_offset), (100, 109));
        let Plan::Duplicate(dup) = append(&mut s, ident(7, 0, 10, 5), 999, 0) else {
            panic!("retry of the last batch must be a duplicate");
        };
        assert_eq!(dup.base_offset, 110);
        assert_eq!(s.last_sequence(ProducerId(7)), Some((0, 14)));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::new(LIMITS);
        for i in 0..6 {
            assert_eq!(
                append(&mut s, ident(1, 0, i, 1), i64::from(i), 0),
                Plan::Append
            );
        }
        assert!(matches!(
            s.plan(&[ident(1, 0, 1, 1)], 0),
            Ok(Plan::Duplicate(_))
        ));
        // Sequence 0 fell out of the window: no longer a duplicate, and out of order.
        assert!(matches!(
            s.plan(&[ident(1, 0, 0, 1)], 0),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn gaps_overlaps_and_partial_matches_are_out_of_order() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, ident(1, 0, 0, 10), 0, 0);
        for bad in [ident(1, 0, 11, 1), ident(1, 0, 5, 10), ident(1, 0, 0, 3)] {
            assert!(
                matches!(s.plan(&[bad], 0), Err(SequenceError::OutOfOrder { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            s.plan(&[ident(1, 0, -1, 1)], 0),
            Err(SequenceError::InvalidSequence { .. })
        ));
    }

    #[test]
    fn epochs_fence_and_a_new_epoch_restarts_at_zero() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, ident(1, 3, 0, 2), 0, 0);
        assert!(matches!(
            s.plan(&[ident(1, 2, 2, 1)], 0),
            Err(SequenceError::InvalidEpoch { current: 3, .. })
        ));
        assert!(matches!(
            s.plan(&[ident(1, 4, 5, 1)], 0),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(append(&mut s, ident(1, 4, 0, 1), 2, 0), Plan::Append);
        // The old epoch's batches are forgotten: its retry is now fenced, not a duplicate.
        assert!(matches!(
            s.plan(&[ident(1, 3, 0, 2)], 0),
            Err(SequenceError::InvalidEpoch { .. })
        ));
    }

    #[test]
    fn unknown_producers_may_start_at_any_sequence() {
        let s = ProducerStates::new(LIMITS);
        assert_eq!(s.plan(&[ident(9, 0, 42, 1)], 0), Ok(Plan::Append));
    }

    #[test]
    fn batches_of_one_append_are_checked_in_order() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, ident(1, 0, 0, 2), 0, 0);
        let two = [ident(1, 0, 2, 3), ident(1, 0, 5, 1)];
        assert_eq!(s.plan(&two, 0), Ok(Plan::Append));
        let gap = [ident(1, 0, 2, 3), ident(1, 0, 6, 1)];
        assert!(s.plan(&gap, 0).is_err());
        let fresh = [ident(2, 0, 7, 1), ident(2, 0, 9, 1)];
        assert!(s.plan(&fresh, 0).is_err());
    }

    #[test]
    fn least_recently_used_producer_is_evicted_at_the_bound() {
        let mut s = ProducerStates::new(LIMITS);
        for p in 0..3 {
            append(&mut s, ident(p, 0, 0, 1), p, 0);
        }
        append(&mut s, ident(0, 0, 1, 1), 3, 0); // 0 is now the most recent
        append(&mut s, ident(3, 0, 0, 1), 4, 0); // evicts 1
        assert_eq!(s.len(), 3);
        assert_eq!(s.last_sequence(ProducerId(1)), None);
        assert_eq!(s.last_sequence(ProducerId(0)), Some((0, 1)));
        // Evicted: accepted with any sequence, as an unknown producer.
        assert_eq!(s.plan(&[ident(1, 0, 17, 1)], 0), Ok(Plan::Append));
    }

    #[test]
    fn idle_producers_expire() {
        let mut s = ProducerStates::new(LIMITS);
        append(&mut s, ident(1, 0, 0, 1), 0, 0);
        assert!(s.plan(&[ident(1, 0, 5, 1)], 999).is_err());
        assert_eq!(s.plan(&[ident(1, 0, 5, 1)], 1000), Ok(Plan::Append));
        append(&mut s, ident(2, 0, 0, 1), 1, 1000);
        assert_eq!(s.last_sequence(ProducerId(1)), None, "swept on commit");
        assert_eq!(s.len(), 1);
    }
}
