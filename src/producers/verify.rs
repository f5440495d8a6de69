//! KIP-890 part 1 in a partition's producer state: Kafka's `VerificationStateEntry` and
//! `VerificationGuard`. Before the leader appends the first transactional batch of a producer's
//! transaction it starts a verification (`start_verification`: a guard, unless the producer's
//! transaction at that epoch is already open here), asks the transaction coordinator, and
//! appends with the guard; the append is refused unless the guard is still the producer's
//! (`check_verified`). A marker or any append of the producer clears it, so an append delayed
//! past the end of its transaction cannot open a new, hanging one.
//!
//! Invariants: guards are never 0 (0 is Kafka's SENTINEL: "no verification"); at most
//! `max_producers` verifications are kept, each for at most `producer.id.expiration.ms`.

use super::state::{BatchIdent, Entry, ProducerId, ProducerStates, SequenceError, Verification};

/// Kafka's `VerificationGuard.SENTINEL`: no verification needed or started.
pub const NO_GUARD: u64 = 0;

impl ProducerStates {
    /// Kafka's `maybeStartTransactionVerification`: NO_GUARD when `producer` has an open
    /// transaction at `epoch` here (nothing to verify), else the producer's guard (a new one,
    /// or the one of a verification already running, as Kafka's `computeIfAbsent`).
    pub fn start_verification(&mut self, producer: ProducerId, epoch: i16, now_ms: i64) -> u64 {
        let ongoing = self
            .entries
            .get(&producer)
            .is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == epoch);
        if ongoing {
            return NO_GUARD;
        }
        let expiration_ms = self.limits.expiration_ms;
        self.verifications
            .retain(|_, v| now_ms.saturating_sub(v.created_ms) < expiration_ms);
        if !self.verifications.contains_key(&producer)
            && self.verifications.len() >= self.limits.max_producers
        {
            let oldest = self
                .verifications
                .iter()
                .min_by_key(|(_, v)| v.created_ms)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.verifications.remove(&oldest);
            }
        }
        let next = self.next_guard;
        let verification = self
            .verifications
            .entry(producer)
            .or_insert_with(|| Verification {
                guard: next,
                epoch,
                created_ms: now_ms,
            });
        if verification.guard == next {
            self.next_guard = next.wrapping_add(1).max(1);
        }
        verification.epoch = verification.epoch.max(epoch);
        verification.guard
    }

    /// Kafka's `batchMissingRequiredVerification` for a client's batch: a transactional batch
    /// that does not continue its producer's open transaction at its epoch needs the
    /// producer's current guard.
    pub(super) fn check_verified(
        &self,
        batch: &BatchIdent,
        entry: Option<&Entry>,
        verification: Option<u64>,
    ) -> Result<(), SequenceError> {
        let Some(guard) = verification else {
            return Ok(());
        };
        let continues =
            entry.is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == batch.epoch);
        if !batch.transactional || continues {
            return Ok(());
        }
        let verified = guard != NO_GUARD
            && self
                .verifications
                .get(&batch.producer)
                .is_some_and(|v| v.guard == guard);
        if verified {
            Ok(())
        } else {
            Err(SequenceError::NotVerified {
                producer: batch.producer.0,
            })
        }
    }

    /// A marker (or the producer's removal) ends any verification of `producer`.
    pub fn clear_verification(&mut self, producer: ProducerId) {
        self.verifications.remove(&producer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producers::state::{BatchMeta, Plan, StateLimits};

    fn states() -> ProducerStates {
        ProducerStates::new(StateLimits {
            max_producers: 2,
            expiration_ms: 1000,
        })
    }

    fn txn(producer: i64, epoch: i16, seq: i32) -> BatchIdent {
        BatchIdent {
            producer: ProducerId(producer),
            epoch,
            first_seq: seq,
            offset_delta: 0,
            transactional: true,
        }
    }

    fn placed(offset: i64, seq: i32) -> BatchMeta {
        BatchMeta {
            first_seq: seq,
            last_seq: seq,
            base_offset: offset,
            last_offset: offset,
            log_append_time_ms: -1,
        }
    }

    /// The first batch of a transaction needs the current guard; once the transaction is
    /// open, later batches need none; a marker ends it and the next transaction needs a new
    /// verification.
    #[test]
    fn a_transaction_starts_only_with_the_current_guard() {
        let mut s = states();
        let p = ProducerId(1);
        let first = txn(1, 0, 0);
        assert_eq!(
            s.plan_for(&[first], 0, true, Some(NO_GUARD)),
            Err(SequenceError::NotVerified { producer: 1 })
        );
        let guard = s.start_verification(p, 0, 0);
        assert_ne!(guard, NO_GUARD);
        assert_eq!(
            s.start_verification(p, 0, 0),
            guard,
            "one verification at a time"
        );
        assert!(s.plan_for(&[first], 0, true, Some(guard + 1)).is_err());
        assert_eq!(s.plan_for(&[first], 0, true, Some(guard)), Ok(Plan::Append));
        s.commit(&first, placed(0, 0), 0);
        assert_eq!(
            s.start_verification(p, 0, 0),
            NO_GUARD,
            "open here: no verification"
        );
        assert_eq!(
            s.plan_for(&[txn(1, 0, 1)], 0, true, Some(NO_GUARD)),
            Ok(Plan::Append)
        );
        // The marker closes the transaction: a batch verified before it cannot reopen one.
        let guard = s.start_verification(p, 1, 0);
        s.complete_marker(p, 1, 0, 2, true, 0);
        assert_eq!(
            s.plan_for(&[txn(1, 1, 0)], 0, true, Some(guard)),
            Err(SequenceError::NotVerified { producer: 1 })
        );
        // Without verification (disabled) anything goes.
        assert_eq!(s.plan_for(&[txn(1, 1, 0)], 0, true, None), Ok(Plan::Append));
    }

    /// Verifications are bounded in number and in time.
    #[test]
    fn verifications_are_bounded() {
        let mut s = states();
        let a = s.start_verification(ProducerId(1), 0, 0);
        s.start_verification(ProducerId(2), 0, 10);
        s.start_verification(ProducerId(3), 0, 20);
        assert_eq!(s.verifications.len(), 2);
        assert!(!s.verifications.contains_key(&ProducerId(1)));
        assert_ne!(s.start_verification(ProducerId(1), 0, 30), a);
        s.start_verification(ProducerId(4), 0, 5000);
        assert_eq!(s.verifications.len(), 1, "expired ones are dropped");
    }
}
