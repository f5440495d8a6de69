//! A segment roll seals the old segment in the background (`seal.rs`, Kafka's asynchronous
//! flush at roll): appends go on while the old segment's fsync runs, nothing counts as durable
//! past the old segment before that fsync completed (an acks=all waiter on the new segment
//! waits for it), offsets and bytes stay in order across the roll, and a log dropped without
//! close (the process killed) reopens with every batch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use storage::{BatchHeader, Log, Offset};

/// Generous for a debug build on a loaded machine.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Appends until the log has `segments` segments; returns the base offsets appended.
async fn append_until_segments(log: &Log, segments: usize, tag0: u32) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut tag = tag0;
    while log.segment_count() < segments {
        let info = log
            .append(batch(tag, 3, 1_000 + i64::from(tag)), opts(5_000))
            .await
            .unwrap();
        bases.push(info.base_offset.0);
        tag += 1;
        assert!(tag < tag0 + 1_000, "no roll after 1,000 appends");
    }
    bases
}

/// Base offsets of every stored batch, in file order.
async fn stored_bases(log: &Log) -> Vec<i64> {
    let bytes = read_all(log).await;
    storage::split_batches(&bytes)
        .map(|b| BatchHeader::parse(b.unwrap()).unwrap().base_offset)
        .collect()
}

/// Polls `cond` (yielding to the runtime, with short sleeps) until true or `WAIT_MAX`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT_MAX, "timed out waiting for {what}");
        compio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A log (shared with spawned tasks) whose background seals wait at the returned gate.
async fn open_holding_seals(root: &std::path::Path) -> (Rc<Log>, Rc<storage::SealGate>) {
    let log = Rc::new(Log::open(part_dir(root), small_config()).await.unwrap());
    let gate = log.hold_seals();
    (log, gate)
}

#[test]
fn a_roll_does_not_wait_for_the_old_segments_fsync_and_durability_waits_for_it() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (log, gate) = open_holding_seals(root.path()).await;
        // Appends that roll return while the old segment's seal is held.
        let mut bases = append_until_segments(&log, 2, 0).await;
        let rolled_at = log.active_segment_base().unwrap();
        assert!(log.seal_in_flight(), "the old segment is sealing");
        assert_eq!(log.durable_end_offset(), Offset(0), "nothing fsynced yet");
        // Appends to the new segment go on meanwhile.
        for tag in 100..103 {
            let info = log.append(batch(tag, 3, 2_000), opts(5_000)).await.unwrap();
            bases.push(info.base_offset.0);
        }
        let last = log.log_end_offset().0 - 1;
        // An acks=all waiter on the new segment: its own fsync completes, but it is not
        // answered (and nothing is durable) until the old segment's seal is done.
        let fsyncs_before = log.fsync_count();
        let answered = Rc::new(Cell::new(None));
        let waiter = {
            let (log, answered) = (log.clone(), answered.clone());
            compio::runtime::spawn(async move {
                answered.set(Some(log.wait_durable(Offset(last)).await.unwrap()));
            })
        };
        eventually("the active segment's fsync", || {
            log.fsync_count() > fsyncs_before
        })
        .await;
        for _ in 0..20 {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            answered.get(),
            None,
            "answered before the old segment is fsynced"
        );
        assert_eq!(log.durable_end_offset(), Offset(0));
        assert!(log.seal_in_flight());
        gate.open();
        waiter.await.unwrap();
        assert_eq!(answered.get(), Some(Offset(last + 1)));
        assert!(!log.seal_in_flight(), "the seal completed");
        assert!(log.durable_end_offset().0 > rolled_at.0);
        // Offsets continue across the roll, the bytes are in that order.
        let expected: Vec<i64> = bases.clone();
        assert!(expected.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(stored_bases(&log).await, expected);
        log.close().await.unwrap();
        let reopened = Log::open(part_dir(root.path()), small_config())
            .await
            .unwrap();
        assert_eq!(stored_bases(&reopened).await, expected);
    });
}

/// A second roll while the first one's seal runs waits for it (one seal at a time), and the
/// appends after it land in order once the seal is let through.
#[test]
fn a_second_roll_waits_for_the_first_seal() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (log, gate) = open_holding_seals(root.path()).await;
        let mut bases = append_until_segments(&log, 2, 0).await;
        assert!(log.seal_in_flight());
        let done = Rc::new(Cell::new(false));
        let filler = {
            let (log, done) = (log.clone(), done.clone());
            compio::runtime::spawn(async move {
                let more = append_until_segments(&log, 3, 500).await;
                done.set(true);
                more
            })
        };
        // The filler fills the second segment, then its rolling append waits for the seal.
        for _ in 0..40 {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!done.get(), "a second roll went ahead of the first seal");
        assert_eq!(log.segment_count(), 2);
        gate.open();
        let more = filler.await.unwrap();
        assert!(done.get());
        bases.extend(more);
        assert_eq!(stored_bases(&log).await, bases);
        log.flush().await.unwrap();
        assert_eq!(log.durable_end_offset(), log.log_end_offset());
    });
}

/// The log dropped without `close` after rolls whose seals completed (as a killed process
/// leaves it, the checkpoint's recovery point one roll behind): it reopens with every batch,
/// and appends continue at the recovered end.
#[test]
fn unclean_reopen_after_background_seals_keeps_every_batch() {
    let root = tempfile::tempdir().unwrap();
    let bases = rt().block_on(async {
        let log = Log::open(part_dir(root.path()), small_config())
            .await
            .unwrap();
        let bases = append_until_segments(&log, 4, 0).await;
        log.flush().await.unwrap();
        assert!(!log.seal_in_flight());
        bases
    });
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), small_config())
            .await
            .unwrap();
        assert_eq!(stored_bases(&log).await, bases);
        let end = log.log_end_offset();
        let info = log.append(batch(9, 3, 9_000), opts(9_000)).await.unwrap();
        assert_eq!(info.base_offset, end);
    });
}

/// Three batches stamped 1000.., 2000.., 3000.. (3 records each, the last one's largest
/// timestamp 3002 at offset 8), small enough to earn no sparse time index entry.
async fn append_three_stamped(log: &Log) {
    for (tag, ts) in [(0, 1_000), (1, 2_000), (2, 3_000)] {
        log.append(batch(tag, 3, ts), opts(ts)).await.unwrap();
    }
}

fn large_segments() -> storage::LogConfig {
    storage::LogConfig {
        segment_bytes_max: 1 << 20,
        ..storage::LogConfig::default()
    }
}

/// Regression (the compaction property test's failure with the background seal): a crash
/// before a rolled segment's seal completed leaves the recovery point before that segment,
/// so the next open rebuilds its indexes from the log. The rebuilt time index must end with
/// the segment's largest timestamp (Kafka's `LogSegment.recover` appends it), because the
/// open after that trusts the sealed segment and reads its largest timestamp back from that
/// last entry. Without it the segment read as having no timestamp: `min.compaction.lag.ms`
/// no longer protected its records, and ListOffsets(max timestamp) lost them.
#[test]
fn a_segment_recovered_after_a_crash_mid_seal_keeps_its_largest_timestamp() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let largest = Some(storage::TimestampOffset {
        timestamp_ms: 3_002,
        offset: Offset(8),
    });
    rt().block_on(async {
        let log = Log::open(dir.clone(), large_segments()).await.unwrap();
        append_three_stamped(&log).await;
        let gate = log.hold_seals();
        log.roll().await.unwrap();
        assert!(log.seal_in_flight());
        // The process dies with the seal not done (it never runs: the gate stays shut).
        drop(log);
        let log = Log::open(dir.clone(), large_segments()).await.unwrap();
        assert!(
            log.recovery_report().scanned_segments.contains(&Offset(0)),
            "the unsealed segment is recovered: {:?}",
            log.recovery_report()
        );
        assert_eq!(log.max_timestamp(), largest, "after recovering it");
        // Crash again: the segment is now below the recovery point, trusted as sealed.
        drop(log);
        let log = Log::open(dir.clone(), large_segments()).await.unwrap();
        assert!(!log.recovery_report().scanned_segments.contains(&Offset(0)));
        assert_eq!(
            log.max_timestamp(),
            largest,
            "read back from its time index"
        );
        let cfg = storage::cleaner::CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            delete_retention_ms: i64::MAX / 4,
            min_compaction_lag_ms: 100,
            max_compaction_lag_ms: i64::MAX,
        };
        // At 3050 with a 100 ms lag, a record stamped 3002 is too recent to clean.
        let info = log.dirty_info(&cfg, 3_050).await.unwrap();
        assert_eq!(info.first_uncleanable_offset, 0, "{info:?}");
        drop(gate);
    });
}

/// A seal still running after its log was dropped without close (the old instance of a
/// partition whose new instance already opened the directory) writes no file: the roll wrote
/// the old segment's last index entries under the append lock (Kafka's
/// `onBecomeInactiveSegment`), and the background part only fsyncs descriptors it holds.
/// Before, it opened the index files by name and wrote its entries into whatever the new
/// instance had put there (here: files of segments it deleted, created again).
#[test]
fn a_seal_outliving_its_log_writes_no_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let old = Log::open(dir.clone(), large_segments()).await.unwrap();
        append_three_stamped(&old).await;
        let gate = old.hold_seals();
        old.roll().await.unwrap();
        assert!(old.seal_in_flight());
        // The old instance is abandoned (never closed); a new one takes the directory and
        // deletes every segment (a follower restarting from the leader's log start).
        let new = Log::open(dir.clone(), large_segments()).await.unwrap();
        new.truncate_fully_and_start_at(Offset(100)).await.unwrap();
        let snapshot = |dir: &std::path::Path| {
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            files.sort();
            files
        };
        let before = snapshot(&dir);
        gate.open();
        eventually("the old seal", || !old.seal_in_flight()).await;
        assert_eq!(
            snapshot(&dir),
            before,
            "the old instance's seal changed files"
        );
        let info = new.append(batch(9, 3, 9_000), opts(9_000)).await.unwrap();
        assert_eq!(info.base_offset, Offset(100));
        new.close().await.unwrap();
    });
}
