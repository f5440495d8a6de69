//! The seam between the quorum's state machine and the metadata image: committed records are
//! applied, in log order, to a [`MetadataApplier`]; snapshots are the applier's own bytes.
//!
//! Invariants: `apply` is called exactly once per committed record, in offset order, on every
//! node; `restore(snapshot())` yields an applier that behaves as the original.

use super::records::{MetadataRecord, RecordBatch, RecordError};

/// What the replicated metadata log drives. The cluster's metadata image implements it; the
/// quorum stores nothing of its own state beyond what `snapshot` returns.
pub trait MetadataApplier: 'static {
    /// Applies one committed record. `offset` is the metadata offset (raft log index) of the
    /// batch the record was committed in; records of one batch share it.
    fn apply(&mut self, offset: u64, record: &MetadataRecord);
    /// Every record of the entry at `offset` (none for a blank or membership entry) was
    /// applied: a state published to others changes here, a whole entry at a time.
    fn applied(&mut self, _offset: u64) {}
    /// The whole state, as bytes that [`MetadataApplier::restore`] reads back.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's. Bytes that do not decode are an error and
    /// leave the state unchanged.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError>;
}

/// An applier shared with other threads (the quorum runs on its own): the owner keeps a clone
/// of the `Arc` to read the state.
impl<A: MetadataApplier> MetadataApplier for std::sync::Arc<std::sync::Mutex<A>> {
    fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        lock(self).apply(offset, record)
    }

    fn applied(&mut self, offset: u64) {
        lock(self).applied(offset)
    }

    fn snapshot(&self) -> Vec<u8> {
        lock(self).snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        lock(self).restore(bytes)
    }
}

fn lock<A>(m: &std::sync::Mutex<A>) -> std::sync::MutexGuard<'_, A> {
    // A reader that panicked while holding the lock did not change the state.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A minimal applier: the committed records with their offsets, in order. Used by the quorum's
/// tests to compare what every node applied; its snapshot is the record list itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHistory {
    pub records: Vec<(u64, MetadataRecord)>,
}

impl MetadataApplier for RecordHistory {
    fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        if let Some((last, _)) = self.records.last() {
            assert!(
                *last <= offset,
                "offsets applied out of order: {last} then {offset}"
            );
        }
        self.records.push((offset, record.clone()));
    }

    fn snapshot(&self) -> Vec<u8> {
        // Offsets then the records as one batch: reuses the record codec.
        let mut out = Vec::with_capacity(8 * self.records.len() + 64);
        out.extend_from_slice(&(self.records.len() as u64).to_be_bytes());
        for (offset, _) in &self.records {
            out.extend_from_slice(&offset.to_be_bytes());
        }
        let batch = RecordBatch(self.records.iter().map(|(_, r)| r.clone()).collect());
        out.extend_from_slice(&batch.encode());
        out
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        let truncated = RecordError::Truncated { at: 0, needed: 8 };
        let count_bytes: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(truncated)?;
        let count = u64::from_be_bytes(count_bytes) as usize;
        let offsets_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(8))
            .filter(|end| *end <= bytes.len())
            .ok_or(RecordError::Invalid(
                "snapshot offset list longer than the snapshot",
            ))?;
        let offsets = bytes
            .get(8..offsets_end)
            .unwrap_or_default()
            .chunks_exact(8)
            .filter_map(|c| super::be_u64_at(c, 0));
        let batch = RecordBatch::decode(bytes.get(offsets_end..).unwrap_or_default())?;
        if batch.0.len() != count {
            return Err(RecordError::Invalid(
                "snapshot offset and record counts differ",
            ));
        }
        self.records = offsets.zip(batch.0).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_snapshot_round_trips_and_rejects_garbage() {
        let mut history = RecordHistory::default();
        use crate::cluster::records::{
            FenceBrokerRecord, RemoveTopicRecord, TopicId, UnfenceBrokerRecord,
        };
        history.apply(
            3,
            &MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch: 2 }),
        );
        history.apply(
            3,
            &MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 2 }),
        );
        history.apply(
            5,
            &MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: TopicId(0),
            }),
        );
        let bytes = history.snapshot();
        let mut restored = RecordHistory::default();
        restored.restore(&bytes).expect("restore");
        assert_eq!(restored, history);
        for len in 0..bytes.len() {
            let mut other = RecordHistory::default();
            assert!(
                other.restore(&bytes[..len]).is_err(),
                "prefix {len} restored"
            );
            assert!(other.records.is_empty());
        }
    }
}
