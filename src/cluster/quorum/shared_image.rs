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

/// Committed entries kept for followers that are a little behind (broker-only nodes fetch the
/// records after their offset instead of the whole image).
const RECENT_ENTRIES_MAX: usize = 1024;
const RECENT_RECORDS_MAX: usize = 100_000;

/// The newest committed entries: every entry with an offset above `floor`, in order.
#[derive(Debug, Default)]
struct Recent {
    floor: u64,
    entries: std::collections::VecDeque<(u64, Vec<MetadataRecord>)>,
    records: usize,
}

/// The committed entries after an offset, for a follower.
pub type Entries = Vec<(u64, Vec<MetadataRecord>)>;

/// What a follower at some offset needs to catch up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    Nothing,
    /// The entries after its offset, up to `offset`.
    Entries {
        offset: u64,
        entries: Entries,
    },
    /// Too far behind (or the entries were replaced by a snapshot): the whole state.
    Image(Vec<u8>),
}

/// See the module documentation.
pub struct SharedImage {
    state: Mutex<ImageState>,
    /// The records of the entry being applied (the quorum thread's only).
    pending: Mutex<Vec<MetadataRecord>>,
    /// Locked only while `state` is held (one lock order).
    recent: Mutex<Recent>,
    changed_tx: flume::Sender<()>,
    changed_rx: flume::Receiver<()>,
    /// Long polls waiting for an offset past theirs (`wait_newer`): each a bounded(1) signal,
    /// all woken by the next change; those whose waiter gave up are pruned at each new wait,
    /// so the list holds at most one entry per waiting connection.
    waiters: Mutex<Vec<flume::Sender<()>>>,
}

impl Default for SharedImage {
    fn default() -> Self {
        let (changed_tx, changed_rx) = flume::bounded(1);
        Self {
            state: Mutex::new(ImageState::default()),
            pending: Mutex::new(Vec::new()),
            recent: Mutex::new(Recent::default()),
            changed_tx,
            changed_rx,
            waiters: Mutex::new(Vec::new()),
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
        let waiters = std::mem::take(&mut *self.waiters());
        for waiter in waiters {
            let _ = waiter.try_send(());
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Vec<flume::Sender<()>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the offset is past `known`, at most `max_wait` (a broker's long poll for
    /// committed metadata). Unlike `changed`, any number of waiters may wait at once.
    pub async fn wait_newer(&self, known: u64, max_wait: std::time::Duration) {
        let (tx, rx) = flume::bounded(1);
        {
            // Checked and registered under the waiters' lock, which `wake` takes after the
            // state changed: either this sees the new offset or `wake` sees this waiter.
            let mut waiters = self.waiters();
            waiters.retain(|w| !w.is_disconnected());
            if self.offset() > known {
                return;
            }
            waiters.push(tx);
        }
        let _ = compio::time::timeout(max_wait, rx.recv_async()).await;
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole state (a snapshot fetched from the controller).
    pub fn replace(&self, state: ImageState) {
        {
            let mut current = self.lock();
            *self.recent() = Recent {
                floor: state.offset,
                ..Recent::default()
            };
            *current = state;
        }
        self.wake();
    }

    /// What a follower that applied up to `known` needs.
    pub fn catch_up(&self, known: u64) -> CatchUp {
        let state = self.lock();
        if state.offset <= known {
            return CatchUp::Nothing;
        }
        let recent = self.recent();
        if known < recent.floor {
            return CatchUp::Image(Self::encode(&state));
        }
        let entries = recent
            .entries
            .iter()
            .filter(|(offset, _)| *offset > known)
            .cloned()
            .collect();
        CatchUp::Entries {
            offset: state.offset,
            entries,
        }
    }

    /// Applies entries a controller sent (`catch_up`), then moves to `offset`.
    pub fn apply_entries(&self, entries: &[(u64, Vec<MetadataRecord>)], offset: u64) {
        for (at, records) in entries {
            for record in records {
                self.apply(*at, record);
            }
            self.applied(*at);
        }
        self.applied(offset);
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
            if !records.is_empty() {
                let mut recent = self.recent();
                recent.records += records.len();
                recent.entries.push_back((offset, records));
                while recent.entries.len() > RECENT_ENTRIES_MAX
                    || recent.records > RECENT_RECORDS_MAX
                {
                    let Some((gone, records)) = recent.entries.pop_front() else {
                        break;
                    };
                    recent.floor = gone;
                    recent.records -= records.len();
                }
            }
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

/// Whether `bytes` decode as an [`ImageApplier`] snapshot (the controller listener checks a
/// peer's snapshot before openraft installs it: a restore that fails there is a fatal storage
/// error).
pub fn check_snapshot(bytes: &[u8]) -> Result<(), RecordError> {
    SharedImage::decode(bytes).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{FenceBrokerRecord, RegisterBrokerRecord};

    #[test]
    fn a_long_poll_returns_once_a_newer_entry_is_applied_and_times_out_otherwise() {
        use std::time::{Duration, Instant};
        let runtime = compio::runtime::Runtime::new().unwrap();
        let image = Arc::new(SharedImage::default());
        let writer = image.clone();
        let applier = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.applied(1);
        });
        let started = Instant::now();
        runtime.block_on(image.wait_newer(0, Duration::from_secs(60)));
        assert_eq!(image.offset(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "woken, not timed out"
        );
        applier.join().unwrap();
        // Nothing newer than 1: the wait runs out; the waiters given up are pruned.
        for _ in 0..5 {
            let started = Instant::now();
            runtime.block_on(image.wait_newer(1, Duration::from_millis(20)));
            assert!(started.elapsed() >= Duration::from_millis(20));
        }
        assert!(image.waiters().len() <= 1, "{}", image.waiters().len());
        // Already newer: no wait at all.
        let started = Instant::now();
        runtime.block_on(image.wait_newer(0, Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

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
            assert!(check_snapshot(&bytes[..len]).is_err(), "prefix {len}");
        }
        // What the controller listener checks a peer's snapshot with accepts a real one.
        check_snapshot(&bytes).unwrap();
    }

    #[test]
    fn a_follower_gets_the_entries_after_its_offset_or_the_image() {
        let leader = SharedImage::default();
        let fence = |epoch| MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch });
        for offset in 1..=3 {
            leader.apply(offset, &fence(offset as i64));
            leader.applied(offset);
        }
        let follower = SharedImage::default();
        match leader.catch_up(1) {
            CatchUp::Entries { offset, entries } => {
                assert_eq!(offset, 3);
                assert_eq!(entries.len(), 2, "offsets 2 and 3");
                follower.apply_entries(&entries, offset);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(follower.offset(), 3);
        assert_eq!(leader.catch_up(3), CatchUp::Nothing);
        // After a snapshot replaced the state, older followers get the whole image.
        leader.replace(leader.current());
        assert!(matches!(leader.catch_up(1), CatchUp::Image(_)));
        assert_eq!(leader.catch_up(3), CatchUp::Nothing);
        leader.apply(4, &fence(4));
        leader.applied(4);
        assert!(matches!(leader.catch_up(3), CatchUp::Entries { .. }));
    }
}
