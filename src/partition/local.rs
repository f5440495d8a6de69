//! The single-replica partition: [`PartitionProxy`] over one local `storage::Log`. It is the
//! leader and the only replica, so the high watermark is the log end (acks=0/1 data is readable
//! before it is fsynced, as on a Kafka partition whose only replica is the leader;
//! docs/decisions/0004), acks=-1 answers once the append is durable, and the last stable offset
//! is the first offset of the oldest open transaction, or the high watermark (`txn.rs`).
//!
//! Invariants: an idempotent append's sequence check, write and state update are one step under
//! the partition's producer lock, in a task of its own so a caller going away cannot split
//! them; every append that wrote something wakes the partition's long-polls; storage I/O
//! errors stop the process (`error::storage_error`).

use std::rc::Rc;
use std::time::Instant;

use futures_channel::oneshot;

use super::api::{DeleteRecordsResult, OffsetOk, ProduceOk, ReadOk};
use super::error::storage_error;
use super::proxy::{AppendOrigin, AppendRequest, Appended, PartitionProxy};
use super::timestamps::TimestampLimits;
use super::{LeaderEpochError, Partition, PartitionError, TopicPartition};
use crate::producers::{self, BatchMeta, Plan};

/// Batches of a compacted topic are decompressed at most this far to check their keys.
const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

impl PartitionProxy for Partition {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset().0
    }

    fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset().0
    }

    /// Single replica: the log end. storage's own `high_watermark` is the durable end instead,
    /// which would hide acks=1 data until the next flush (docs/decisions/0004).
    fn high_watermark(&self) -> i64 {
        self.log.log_end_offset().0
    }

    /// The first offset of the oldest open transaction, else the high watermark.
    fn last_stable_offset(&self) -> i64 {
        self.stable_offset()
    }

    fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// Kafka's `Partition.localLogWithEpochOrThrow`: newer than ours means our metadata is
    /// behind (UNKNOWN_LEADER_EPOCH), older means the client's is (FENCED_LEADER_EPOCH).
    fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), LeaderEpochError> {
        let ours = self.leader_epoch();
        if current_leader_epoch < 0 || current_leader_epoch == ours {
            Ok(())
        } else if current_leader_epoch > ours {
            Err(LeaderEpochError::Unknown {
                requested: current_leader_epoch,
                current: ours,
            })
        } else {
            Err(LeaderEpochError::Fenced {
                requested: current_leader_epoch,
                current: ours,
            })
        }
    }

    async fn append(self: Rc<Self>, request: AppendRequest) -> Result<Appended, PartitionError> {
        let wait_durable = request.acks == -1 && request.flush_on_acks_all;
        let (written, records_appended) = match write(&self, request).await {
            Ok(Written::New(info)) => (
                (info.base_offset, info.last_offset, info.log_append_time_ms),
                info.record_count,
            ),
            Ok(Written::Duplicate(meta)) => (
                (
                    storage::Offset(meta.base_offset),
                    storage::Offset(meta.last_offset),
                    meta.log_append_time_ms,
                ),
                0,
            ),
            Err(WriteError::Storage(e)) => return Err(storage_error(&self.tp, e)),
            Err(WriteError::Refused(e)) => return Err(e),
        };
        let (base_offset, last_offset, log_append_time_ms) = written;
        // The log end moved (a single replica's high watermark, readable already): wake the
        // long-polls now, not after the fsync below, so a replicated leader's followers fetch
        // the batch while the leader's acks=all fsync runs, not after it.
        self.notify_appended();
        let mut durable_wait = None;
        if wait_durable {
            let started = Instant::now();
            storage::sync::wait_durable(&self.log, last_offset)
                .await
                .map_err(|e| storage_error(&self.tp, e))?;
            durable_wait = Some(started.elapsed());
        }
        if records_appended > 0 {
            self.snapshot_on_roll().await;
        }
        Ok(Appended {
            ok: ProduceOk {
                base_offset: base_offset.0,
                log_append_time_ms,
                log_start_offset: self.log.log_start_offset().0,
            },
            records_appended,
            durable_wait,
        })
    }

    async fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<ReadOk, PartitionError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let (high_watermark, last_stable_offset) =
            (self.high_watermark(), self.last_stable_offset());
        let bounds = ReadBounds {
            high_watermark,
            last_stable_offset,
            read_committed,
        };
        self.read_visible(offset, max_bytes, min_one_batch, bounds)
            .await
    }

    async fn offset_for_timestamp(&self, timestamp: i64) -> Result<OffsetOk, PartitionError> {
        let log = &self.log;
        let at = |offset: i64| OffsetOk {
            offset,
            timestamp: -1,
            leader_epoch: -1,
        };
        let mut ok = match timestamp {
            -1 => at(self.high_watermark()),
            -2 | -4 => at(log.log_start_offset().0),
            -3 => log
                .max_timestamp_record()
                .await
                .map(matched)
                .map_err(PartitionError::from_storage)?,
            ts if ts < 0 => matched(None),
            ts => matched(
                log.offset_for_timestamp(ts)
                    .await
                    .map_err(PartitionError::from_storage)?,
            ),
        };
        ok.leader_epoch = self.epoch_of_offset(ok.offset);
        Ok(ok)
    }

    fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(requested, self.log.log_end_offset().0)
    }

    async fn delete_records(&self, offset: i64) -> DeleteRecordsResult {
        let log = &self.log;
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset().0,
                log_end: high_watermark,
            });
        }
        // Storage bounds deletion by the durable end; the high watermark is the log end (acks=1
        // data is visible before fsync), so make what is visible durable first.
        if target > log.durable_end_offset().0 {
            log.flush().await.map_err(|e| storage_error(&self.tp, e))?;
        }
        let start = log
            .delete_records_before(storage::Offset(target))
            .await
            .map_err(|e| storage_error(&self.tp, e))?;
        self.producers.borrow_mut().evict_below(start.0);
        Ok(start.0)
    }

    fn subscribe(&self) -> Option<oneshot::Receiver<()>> {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| !w.is_canceled());
        if waiters.len() >= self.waiters_max {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.push(tx);
        Some(rx)
    }
}

/// A timestamp lookup's answer: offset and timestamp -1 when no batch matches.
fn matched(found: Option<storage::TimestampOffset>) -> OffsetOk {
    found.map_or(
        OffsetOk {
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        },
        |t| OffsetOk {
            offset: t.offset.0,
            timestamp: t.timestamp_ms,
            leader_epoch: -1,
        },
    )
}

/// What a write did: wrote the batches, or found them already in the log (a producer retry).
enum Written {
    New(storage::AppendInfo),
    Duplicate(BatchMeta),
}

enum WriteError {
    Storage(storage::StorageError),
    Refused(PartitionError),
}

/// Checks a client's batches as Kafka's LogValidator does beyond what storage checks (keys of
/// a compacted topic, timestamp limits, the topic's codec), then writes them; idempotent
/// batches through the producer state.
async fn write(partition: &Rc<Partition>, request: AppendRequest) -> Result<Written, WriteError> {
    let refused = WriteError::Refused;
    let opts = storage::AppendOptions {
        leader_epoch: partition.leader_epoch(),
        now_ms: request.now_ms,
    };
    let mut records = request.records;
    if request.origin == AppendOrigin::Client {
        if partition.compacted.get() {
            check_keyed(&partition.tp, &records)
                .map_err(|e| refused(PartitionError::from_storage(e)))?;
        }
        // message.timestamp.before/after.max.ms: CreateTime topics only (LogAppendTime batches
        // get the broker's clock).
        let limits = partition.timestamp_limits();
        if limits != TimestampLimits::default()
            && partition.log.config().timestamp_type == storage::TimestampType::CreateTime
        {
            limits
                .check(&records, opts.now_ms)
                .map_err(|e| refused(PartitionError::InvalidTimestamp(e)))?;
        }
        // compression.type other than `producer`: stored in the topic's codec.
        records = partition
            .to_topic_codec(records)
            .map_err(|e| refused(PartitionError::from_storage(e)))?;
    }
    // Validated once (header, CRC, records): the producer state reads the headers parsed
    // here, and the append writes the batches without parsing them again. As in Kafka's
    // `UnifiedLog.append`, records are validated before the producer state looks at them.
    let valid = partition
        .log
        .validate(records)
        .map_err(WriteError::Storage)?;
    if request.origin == AppendOrigin::Client {
        check_client_headers(partition, valid.infos()).map_err(refused)?;
    }
    // Batches with a producer id go through the producer state: a client's get the full
    // check; the coordinator's (transactional offset commits) the epoch and transaction checks.
    let idempotent = valid
        .infos()
        .iter()
        .any(|i| producers::BatchIdent::from_header(&i.header).is_some());
    if idempotent {
        let batches = producers::scan_valid(valid.infos());
        let client = request.origin == AppendOrigin::Client;
        let verification = request.verification_guard.filter(|_| client);
        let checks = (client, verification);
        return write_idempotent(partition.clone(), valid, batches, opts, checks).await;
    }
    partition
        .log
        .append_valid(valid, opts)
        .await
        .map(Written::New)
        .map_err(WriteError::Storage)
}

/// Check, write and record an append of idempotent batches under the partition's producer
/// lock. Runs as its own task so that a caller going away (a closed connection) cannot stop it
/// between the write and the state update, which would let a retry be written twice.
async fn write_idempotent(
    partition: Rc<Partition>,
    valid: storage::ValidBatches,
    batches: Vec<producers::ScannedBatch>,
    opts: storage::AppendOptions,
    (client, verification): (bool, Option<u64>),
) -> Result<Written, WriteError> {
    let (tx, rx) = oneshot::channel();
    let task = async move {
        let _serialised = partition.producer_lock.lock().await;
        let idents: Vec<_> = batches.iter().filter_map(|b| b.ident).collect();
        let plan =
            partition
                .producers
                .borrow()
                .plan_for(&idents, opts.now_ms, client, verification);
        let result = match plan {
            Err(e) => Err(WriteError::Refused(PartitionError::from_sequence(e))),
            Ok(Plan::Duplicate(meta)) => Ok(Written::Duplicate(meta)),
            Ok(Plan::Append) => {
                let now_ms = opts.now_ms;
                let appended = partition.log.append_valid(valid, opts).await;
                appended.map_err(WriteError::Storage).map(|info| {
                    let placed = producers::placements(
                        &batches,
                        info.base_offset.0,
                        info.log_append_time_ms,
                    );
                    let mut states = partition.producers.borrow_mut();
                    for (ident, meta) in placed {
                        states.commit(&ident, meta, now_ms);
                    }
                    Written::New(info)
                })
            }
        };
        let _caller_gone_is_fine = tx.send(result);
    };
    compio::runtime::spawn(task).detach();
    rx.await
        .unwrap_or(Err(WriteError::Refused(PartitionError::Unavailable)))
}

/// Kafka's checks of a client's batch headers beyond what storage validates: the base offset
/// must be 0 (`UnifiedLog.analyzeAndValidateRecords`: "The baseOffset of the record batch in
/// the append to ... should be 0", INVALID_RECORD), and the producer may not set the
/// LogAppendTime type (`timestamps::check_timestamp_type`).
fn check_client_headers(
    partition: &Partition,
    infos: &[storage::batch::BatchInfo],
) -> Result<(), PartitionError> {
    if let Some(info) = infos.iter().find(|i| i.header.base_offset != 0) {
        return Err(PartitionError::InvalidRecord(format!(
            "The baseOffset of the record batch in the append to {} should be 0, but it is {}",
            partition.tp.dir_name(),
            info.header.base_offset
        )));
    }
    let log_append_time =
        || partition.log.config().timestamp_type == storage::TimestampType::LogAppendTime;
    super::timestamps::check_timestamp_type(infos, log_append_time)
        .map_err(PartitionError::InvalidTimestamp)
}

/// Rejects a produce to a compacted topic that holds a keyless record (Kafka's
/// LogValidator: INVALID_RECORD); a compressed batch that does not decompress is corrupt.
pub fn check_keyed(tp: &TopicPartition, records: &[u8]) -> Result<(), storage::StorageError> {
    for batch in storage::split_batches(records) {
        // Framing errors are the append validation's to report.
        let Ok(batch) = batch else { return Ok(()) };
        match storage::cleaner::records::all_records_keyed(batch, DECOMPRESSED_BATCH_BYTES_MAX) {
            Ok(true) => {}
            Ok(false) => {
                return Err(storage::StorageError::InvalidRecord(format!(
                    "Compacted topic cannot accept message without key in topic partition {}",
                    tp.dir_name()
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a read may see: below the high watermark, or below the LSO when `read_committed`.
#[derive(Debug, Clone, Copy)]
pub struct ReadBounds {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub read_committed: bool,
}

impl Partition {
    /// The one read of the log for consumers, single replica or replicated leader alike:
    /// batches from `offset` below the bound, and for read_committed the aborted transactions
    /// of the range.
    pub async fn read_visible(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        bounds: ReadBounds,
    ) -> Result<ReadOk, PartitionError> {
        let read_committed = bounds.read_committed;
        // read_committed reads end at the LSO (Kafka's FetchIsolation.TXN_COMMITTED).
        let read_end = storage::Offset(if read_committed {
            bounds.last_stable_offset
        } else {
            bounds.high_watermark
        });
        let log_start = self.log.log_start_offset();
        let offset = storage::Offset(offset);
        // Between the high watermark and the log end nothing is visible yet: an empty answer,
        // not an error (Kafka's behaviour for a leader's not yet replicated tail).
        let slice =
            if offset >= read_end && offset <= self.log.log_end_offset() && offset >= log_start {
                None
            } else {
                let slice = self
                    .log
                    .read(offset, max_bytes, min_one_batch, read_end)
                    .await
                    .map_err(PartitionError::from_storage)?;
                (slice.total_bytes > 0).then_some(slice)
            };
        // Kafka bounds the search by the end of the batches read; the LSO (their bound) gives
        // a superset, which clients handle alike (an entry applies only to its producer's
        // batches at or after its first offset, up to that producer's abort marker).
        let aborted_transactions = match (&slice, read_committed) {
            (Some(_), true) => Some(self.aborted_transactions(offset.0, read_end.0).await?),
            (None, true) => Some(Vec::new()),
            (_, false) => None,
        };
        Ok(ReadOk {
            high_watermark: bounds.high_watermark,
            last_stable_offset: bounds.last_stable_offset,
            log_start_offset: log_start.0,
            slice,
            aborted_transactions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use storage::StorageError;

    #[test]
    fn keyless_records_are_refused() {
        let tp = TopicPartition::new("t", 0);
        let keyed = storage::BatchBuilder::new(1)
            .record(Some(b"k"), Some(b"v"), &[])
            .build();
        assert!(check_keyed(&tp, &keyed).is_ok());
        let keyless = storage::BatchBuilder::new(1)
            .record(Some(b"k"), Some(b"v"), &[])
            .record(None, Some(b"v"), &[])
            .build();
        let zstd = storage::cleaner::records::compress_batch(&keyless, 4).unwrap();
        for b in [&keyless[..], &zstd[..]] {
            assert!(
                matches!(check_keyed(&tp, b), Err(StorageError::InvalidRecord(m)) if m.contains("without key"))
            );
        }
        let mut corrupt = zstd.clone();
        let n = corrupt.len();
        corrupt[n - 3] ^= 0xff;
        assert!(check_keyed(&tp, &corrupt).is_err());
    }

    async fn leader(dir: &std::path::Path) -> Rc<Partition> {
        let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::ProducerStates::new(limits.state);
        let partition = Partition::new(TopicPartition::new("t", 0), log, 8, producers);
        partition
            .become_leader(super::super::INITIAL_LEADER_EPOCH)
            .await
            .unwrap();
        Rc::new(partition)
    }

    fn batch(keys: &[Option<&[u8]>]) -> Bytes {
        let mut builder = storage::BatchBuilder::new(1_000);
        for key in keys {
            builder = builder.record(*key, Some(b"v"), &[]);
        }
        builder.build().freeze()
    }

    fn client(records: Bytes, acks: i16) -> AppendRequest {
        AppendRequest {
            verification_guard: None,
            records,
            origin: AppendOrigin::Client,
            acks,
            flush_on_acks_all: true,
            now_ms: 2_000,
            timeout_ms: None,
        }
    }

    /// A client's batches reach the log without a copy: a buffer theirs alone is stamped in
    /// place; one someone else still holds (a slice of a request frame) is written from where
    /// it is, with only the batch header (61 bytes) copied and stamped. The stored bytes are
    /// the batch either way, with the offsets the log gave them, and the holder's are not
    /// stamped.
    #[compio::test]
    async fn client_batches_are_appended_without_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        p.clone()
            .append(client(batch(&[Some(b"a")]), 1))
            .await
            .unwrap();
        assert_eq!(p.log.append_copied_bytes(), 0, "unique buffer: no copy");
        let frame = batch(&[Some(b"b"), Some(b"c")]);
        let held = frame.clone();
        let second = p.clone().append(client(frame, 1)).await.unwrap();
        assert_eq!(second.ok.base_offset, 1);
        let header_len = storage::batch::BATCH_HEADER_LEN as u64;
        assert_eq!(
            p.log.append_copied_bytes(),
            header_len,
            "shared: the header"
        );
        assert_eq!(storage::BatchHeader::parse(&held).unwrap().base_offset, 0);
        let read = p.read(1, 1 << 20, true, -1, false).await.unwrap();
        let bytes = read.slice.unwrap().read_bytes().await.unwrap();
        assert_eq!(storage::BatchHeader::parse(&bytes).unwrap().base_offset, 1);
        let at = storage::batch::BATCH_HEADER_LEN;
        assert_eq!(&bytes[at..], &held[at..], "records as received");
    }

    /// Records are validated before the producer state sees them (Kafka's
    /// `UnifiedLog.append`): a corrupt idempotent batch is CORRUPT_MESSAGE, not a sequence
    /// error, and leaves no producer state behind.
    #[compio::test]
    async fn a_corrupt_idempotent_batch_is_refused_before_the_sequence_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        let mut b = storage::BatchBuilder::new(1_000)
            .producer(7, 0, 5)
            .record(Some(b"k"), Some(b"v"), &[])
            .build();
        let n = b.len();
        b[n - 1] ^= 0xff;
        let refused = p.clone().append(client(b.freeze(), 1)).await;
        assert!(
            matches!(refused, Err(PartitionError::Corrupt(_))),
            "{refused:?}"
        );
        assert_eq!(p.log_end_offset(), 0);
    }

    /// The seam's single-replica contract: an append moves the log end and, with it, the high
    /// watermark (LSO = HW), wakes long-polls, and is readable below the high watermark; the
    /// offsets answered follow Kafka's special timestamps; DeleteRecords moves the log start.
    #[compio::test]
    async fn append_read_offsets_and_delete_through_the_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        assert_eq!((p.log_end_offset(), p.high_watermark()), (0, 0));
        let woken = p.subscribe().unwrap();
        let first = p
            .clone()
            .append(client(batch(&[Some(b"a"), None]), 1))
            .await;
        let first = first.unwrap();
        assert_eq!((first.ok.base_offset, first.records_appended), (0, 2));
        assert!(
            first.durable_wait.is_none(),
            "acks=1 does not wait for fsync"
        );
        assert!(woken.await.is_ok(), "the append wakes long-polls");
        let second = p.clone().append(client(batch(&[Some(b"b")]), -1)).await;
        let second = second.unwrap();
        assert_eq!(second.ok.base_offset, 2);
        assert!(second.durable_wait.is_some(), "acks=-1 waits until durable");
        assert_eq!(p.high_watermark(), 3);
        assert_eq!(p.last_stable_offset(), p.high_watermark());
        let read = p.read(0, 1 << 20, true, -1, false).await.unwrap();
        assert_eq!((read.high_watermark, read.last_stable_offset), (3, 3));
        assert!(read.bytes() > 0);
        assert!(p
            .read(3, 1 << 20, true, -1, false)
            .await
            .unwrap()
            .slice
            .is_none());
        assert!(matches!(
            p.read(0, 1 << 20, true, 5, false).await,
            Err(PartitionError::UnknownLeaderEpoch { .. })
        ));
        assert_eq!(p.offset_for_timestamp(-1).await.unwrap().offset, 3);
        assert_eq!(p.offset_for_timestamp(-2).await.unwrap().offset, 0);
        assert_eq!(p.end_offset_for_epoch(0), (0, 3));
        assert_eq!(p.delete_records(-1).await, Ok(3));
        assert_eq!(p.log_start_offset(), 3);
        assert!(matches!(
            p.delete_records(7).await,
            Err(PartitionError::OffsetOutOfRange { .. })
        ));
    }

    /// A compacted topic refuses a producer's keyless record (nothing is written); the
    /// coordinator's own records take the same write path without the client checks.
    #[compio::test]
    async fn client_checks_apply_to_clients_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader(dir.path()).await;
        p.set_compacted(true);
        let refused = p.clone().append(client(batch(&[None]), 1)).await;
        assert!(matches!(refused, Err(PartitionError::InvalidRecord(_))));
        assert_eq!(p.log_end_offset(), 0);
        let coordinator = AppendRequest {
            verification_guard: None,
            records: batch(&[Some(b"group")]),
            origin: AppendOrigin::Coordinator,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 2_000,
            timeout_ms: None,
        };
        assert_eq!(
            p.clone().append(coordinator).await.unwrap().ok.base_offset,
            0
        );
        assert_eq!(p.high_watermark(), 1);
    }
}
