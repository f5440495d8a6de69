//! The node's committed metadata image, shared between the thread that learns the committed
//! records (the quorum member on a controller node, the metadata fetcher on a broker-only
//! node) and shard 0, which brings every shard's image up to it (`follow`).
//!
//! Invariants: the image and its offset change together under one lock, a whole committed
//! entry at a time (its records are staged by `MetadataApplier::apply` and applied in log
//! order by `applied`, so no reader sees half a CreateTopics), or by replacing both with a
//! snapshot's; every change wakes the follower (a bounded(1) signal: changes coalesce, the
//! follower always reads the latest state). A committed record that does not apply is skipped
//! on every node alike (the images are equal, so the refusal is too) and logged.

use std::sync::{Arc, Mutex, MutexGuard};

use super::applier::MetadataApplier;
use super::records::{MetadataRecord, RecordBatch, RecordError};
use crate::cluster::image::MetadataImage;

/// The image and the metadata offset (last applied raft log index) it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageState {
    pub image: MetadataImage,
    pub offset: u64,
}

/// See the module documentation.
pub struct SharedImage {
    state: Mutex<ImageState>,
    /// The records of the entry being applied (the quorum thread's only).
    pending: Mutex<Vec<MetadataRecord>>,
    changed_tx: flume::Sender<()>,
    changed_rx: flume::Receiver<()>,
}

impl Default for SharedImage {
    fn default() -> Self {
        let (changed_tx, changed_rx) = flume::bounded(1);
        Self {
            state: Mutex::new(ImageState::default()),
            pending: Mutex::new(Vec::new()),
            changed_tx,
            changed_rx,
        }
    }
}

impl SharedImage {
    pub fn lock(&self) -> MutexGuard<'_, ImageState> {
        // A holder that panicked left a consistent state: every change is one assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the state now.
    pub fn current(&self) -> ImageState {
        self.lock().clone()
    }

    pub fn offset(&self) -> u64 {
        self.lock().offset
    }

    /// Waits until the state may have changed since the last wake-up.
    pub async fn changed(&self) {
        let _ = self.changed_rx.recv_async().await;
    }

    fn wake(&self) {
        let _ = self.changed_tx.try_send(());
    }

    /// Replaces the whole state (a snapshot fetched from the controller).
    pub fn replace(&self, state: ImageState) {
        *self.lock() = state;
        self.wake();
    }

    fn pending(&self) -> MutexGuard<'_, Vec<MetadataRecord>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stages one committed record of the entry at `offset` (see `applied`).
    pub fn apply(&self, _offset: u64, record: &MetadataRecord) {
        self.pending().push(record.clone());
    }

    /// Applies the staged records of the entry at `offset`, in order, and publishes the result.
    pub fn applied(&self, offset: u64) {
        let records = std::mem::take(&mut *self.pending());
        {
            let mut state = self.lock();
            for record in &records {
                if let Err(e) = state.image.apply(record) {
                    tracing::warn!(offset, error = %e, ?record, "committed metadata record skipped");
                }
            }
            state.offset = state.offset.max(offset);
        }
        self.wake();
    }

    /// The state as bytes: `offset u64`, then the records rebuilding the image as one batch.
    pub fn encode(state: &ImageState) -> Vec<u8> {
        let mut out = state.offset.to_be_bytes().to_vec();
        out.extend_from_slice(&RecordBatch(state.image.snapshot_records()).encode());
        out
    }

    /// Reads `encode`'s bytes back.
    pub fn decode(bytes: &[u8]) -> Result<ImageState, RecordError> {
        let offset =
            super::be_u64_at(bytes, 0).ok_or(RecordError::Truncated { at: 0, needed: 8 })?;
        let batch = RecordBatch::decode(bytes.get(8..).unwrap_or_default())?;
        let mut image = MetadataImage::default();
        image
            .apply_all(&batch.0)
            .map_err(|_| RecordError::Invalid("snapshot records do not form an image"))?;
        Ok(ImageState { image, offset })
    }
}

/// The quorum's applier over the shared image: its snapshots are the image's records.
pub struct ImageApplier(pub Arc<SharedImage>);

impl MetadataApplier for ImageApplier {
    fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        self.0.apply(offset, record);
    }

    fn applied(&mut self, offset: u64) {
        self.0.applied(offset);
    }

    fn snapshot(&self) -> Vec<u8> {
        SharedImage::encode(&self.0.lock())
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        let state = SharedImage::decode(bytes)?;
        self.0.pending().clear();
        self.0.replace(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{FenceBrokerRecord, RegisterBrokerRecord};

    #[test]
    fn the_snapshot_round_trips_and_garbage_is_refused() {
        let shared = Arc::new(SharedImage::default());
        let mut applier = ImageApplier(shared.clone());
        applier.apply(
            3,
            &MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                incarnation_id: 5,
                broker_epoch: 7,
                end_points: Vec::new(),
                rack: None,
                fenced: false,
            }),
        );
        applier.applied(3);
        applier.apply(
            4,
            &MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch: 7 }),
        );
        assert_eq!(
            shared.offset(),
            3,
            "an entry is published whole, at its end"
        );
        assert!(shared.current().image.broker(1).is_some_and(|b| !b.fenced));
        applier.applied(4);
        let bytes = applier.snapshot();
        let other = Arc::new(SharedImage::default());
        ImageApplier(other.clone()).restore(&bytes).unwrap();
        assert_eq!(other.current(), shared.current());
        assert_eq!(other.offset(), 4);
        assert!(other.current().image.broker(1).is_some_and(|b| b.fenced));
        for len in 0..bytes.len() {
            assert!(SharedImage::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }
}
