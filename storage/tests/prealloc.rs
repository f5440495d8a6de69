//! Zero-ahead (`log.zero.ahead.bytes`, `storage/src/prealloc.rs`): zeros written past the
//! active segment's end never overwrite data, never become readable, are cut at a roll and a
//! close, and after a crash are read as the segment's end, not as damage; zeros where a
//! sealed segment's offsets should continue are still damage.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use common::{batch, files_with, fill, opts, part_dir, read_all, rt};
use storage::{Log, LogConfig};

const ZERO_AHEAD: u64 = 64 * 1024;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024 * 1024,
        zero_ahead_bytes: ZERO_AHEAD,
        ..LogConfig::default()
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Waits (bounded) until at least one zeroing op ran and none is in flight.
async fn zeroing_settled(log: &Log) {
    for _ in 0..30_000 {
        let s = log.zero_ahead_stats();
        if s.started_total > 0 && s.started_total == s.completed_total {
            return;
        }
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("zero-ahead never settled: {:?}", log.zero_ahead_stats());
}

#[test]
fn zeros_stay_ahead_of_the_data_and_are_cut_at_roll_and_close() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        fill(&log, 200).await;
        zeroing_settled(&log).await;
        let stats = log.zero_ahead_stats();
        assert!(
            stats.started_total >= 1 && stats.bytes_total >= ZERO_AHEAD / 2,
            "{stats:?}"
        );
        assert_eq!(stats.failed_total, 0);
        let active = files_with(&dir, ".log").pop().unwrap();
        let size = log.size_bytes();
        let len = file_len(&active);
        assert!(
            len > size,
            "file {len} should extend past the log's {size} bytes"
        );
        assert!(
            len - size <= ZERO_AHEAD,
            "at most zero-ahead bytes of zeros: {len} vs {size}"
        );
        // Nothing past the log end is readable: exactly the appended batches come back.
        let before = read_all(&log).await;
        assert_eq!(before.len() as u64, size);

        log.roll().await.unwrap();
        assert_eq!(
            file_len(&active),
            size,
            "a rolled segment ends where its data does"
        );
        let more = fill(&log, 50).await;
        zeroing_settled(&log).await;
        log.close().await.unwrap();
        for f in files_with(&dir, ".log") {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.ends_with(&[0u8; 64]),
                "{} still ends in zeros after close",
                f.display()
            );
        }

        let log = Log::open(dir.clone(), config()).await.unwrap();
        let report = log.recovery_report();
        assert!(
            report.clean_shutdown && report.zero_tails.is_empty(),
            "{report:?}"
        );
        assert!(report.truncated.is_none() && report.damaged_segments.is_empty());
        let all = read_all(&log).await;
        assert_eq!(&all[..before.len()], &before[..]);
        assert_eq!(log.log_end_offset().0, more.last().unwrap().0 + 3);
    });
}

#[test]
fn concurrent_appends_are_never_overwritten_by_zeros() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        // Zeroing ops of 4-8 KiB at a time, started after nearly every append: the appends
        // keep catching up with the op in flight.
        let cfg = LogConfig {
            zero_ahead_bytes: 8 * 1024,
            ..config()
        };
        let log = Rc::new(Log::open(dir.clone(), cfg).await.unwrap());
        let tasks = (0..4u32).map(|t| {
            let log = log.clone();
            async move {
                for i in 0..60u32 {
                    let b = batch(t * 1_000 + i, 4, 1_000);
                    log.append(b, opts(5_000)).await.unwrap();
                }
            }
        });
        futures_util::future::join_all(tasks).await;
        zeroing_settled(&log).await;
        let s = log.zero_ahead_stats();
        assert!(s.started_total > 10, "{s:?}");
        let all = read_all(&log).await;
        assert_eq!(all.len() as u64, log.size_bytes());
        let mut next = 0;
        for b in storage::split_batches(&all) {
            let info = storage::batch::validate_batch(b.unwrap(), u32::MAX).expect("valid");
            assert_eq!(info.header.base_offset, next);
            next = info.header.last_offset() + 1;
        }
        assert_eq!(next, 240 * 4);
    });
}

#[test]
fn a_crash_leaves_zeros_that_recovery_cuts_as_the_end_not_as_damage() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let end = rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        fill(&log, 100).await;
        log.flush().await.unwrap();
        zeroing_settled(&log).await;
        let end = log.log_end_offset();
        // Dropped without close: the file keeps its zeros, as after kill -9.
        (end, log.size_bytes())
    });
    let active = files_with(&dir, ".log").pop().unwrap();
    assert!(file_len(&active) > end.1);
    rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        let report = log.recovery_report().clone();
        assert!(!report.clean_shutdown);
        assert!(
            report.truncated.is_none(),
            "zeros are not damage: {report:?}"
        );
        assert_eq!(report.zero_tails.len(), 1, "{report:?}");
        assert_eq!(report.zero_tails[0].position, end.1);
        assert_eq!(log.log_end_offset(), end.0);
        assert_eq!(file_len(&active), end.1, "the zeros were cut");
        let info = log.append(batch(7, 3, 9_000), opts(9_000)).await.unwrap();
        assert_eq!(
            info.base_offset, end.0,
            "appends continue at the recovered end"
        );
    });
}

/// Two segments, the first sealed; 8 KiB of zeros appended to its file (with its last batch
/// replaced by zeros too if `zero_last_batch`); reopened with no checkpoint (every segment
/// scanned, as after a crash before the first segment's seal).
fn reopen_with_zeros_after_first_segment(
    zero_last_batch: bool,
) -> (storage::RecoveryReport, usize) {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let last_batch_bytes = rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        let first = fill(&log, 10).await;
        log.roll().await.unwrap();
        fill(&log, 10).await;
        log.close().await.unwrap();
        u64::from(first.last().unwrap().1)
    });
    let cut = if zero_last_batch { last_batch_bytes } else { 0 };
    let first = files_with(&dir, ".log").remove(0);
    let len = file_len(&first);
    let mut f = OpenOptions::new().write(true).open(&first).unwrap();
    f.set_len(len - cut).unwrap();
    f.set_len(len + 8192).unwrap();
    f.flush().unwrap();
    for p in files_with(&dir, ".checkpoint") {
        std::fs::remove_file(p).unwrap();
    }
    rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        (log.recovery_report().clone(), log.segment_count())
    })
}

#[test]
fn zeros_after_a_sealed_segment_are_its_end_only_if_the_next_segment_continues_it() {
    let (report, segments) = reopen_with_zeros_after_first_segment(false);
    assert!(
        report.checkpoint_missing || !report.scanned_segments.is_empty(),
        "{report:?}"
    );
    assert!(report.truncated.is_none(), "{report:?}");
    assert_eq!(report.zero_tails.len(), 1, "{report:?}");
    assert_eq!(segments, 2, "the next segment is kept");

    // The last batch's bytes are zeros too: offsets the next segment does not have are
    // missing, which is damage (the later segment goes, as for any damage).
    let (report, segments) = reopen_with_zeros_after_first_segment(true);
    let t = report.truncated.as_ref().expect("damage reported");
    assert!(t.reason.contains("zeros where offsets"), "{t:?}");
    assert!(report.zero_tails.is_empty(), "{report:?}");
    assert_eq!(segments, 1, "{report:?}");
}

#[test]
fn a_torn_batch_before_the_zeros_is_still_damage() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (end, size) = rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        fill(&log, 20).await;
        log.flush().await.unwrap();
        zeroing_settled(&log).await;
        (log.log_end_offset(), log.size_bytes())
    });
    // Half a batch written into the zeros (a write cut short by the crash).
    let torn = batch(99, 3, 1_000);
    let active = files_with(&dir, ".log").pop().unwrap();
    let f = OpenOptions::new().write(true).open(&active).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &torn[..torn.len() / 2], size).unwrap();
    rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        let report = log.recovery_report();
        let t = report.truncated.as_ref().expect("torn batch reported");
        assert_eq!((t.position, t.offset), (size, end));
        assert!(report.zero_tails.is_empty());
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(file_len(&active), size);
    });
}

#[test]
fn the_zeroing_fdatasync_makes_nothing_durable() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        // No flush policy: only a caller's wait (acks=all) or flush may move the durable end.
        let log = Log::open(dir.clone(), config()).await.unwrap();
        fill(&log, 50).await;
        zeroing_settled(&log).await;
        assert_eq!(
            log.durable_end_offset().0,
            0,
            "the zeros' fdatasync claimed data durable"
        );
        assert_eq!(
            log.fsync_count(),
            0,
            "zeroing fsyncs are not the log's data fsyncs"
        );
        let end = log.log_end_offset();
        let storage::Offset(last) = end;
        assert_eq!(
            log.wait_durable(storage::Offset(last - 1)).await.unwrap(),
            end
        );
        assert_eq!(log.fsync_count(), 1);
    });
}

/// B24 (session 10 breaker): a truncation that removes nothing (a follower's truncation to an
/// offset at or past its log end, as the replica fetcher asks at every epoch change) kept the
/// zeros in the file but forgot them, so the next roll did not cut them: the sealed segment's
/// file stayed longer than its data, and a clean restart reported it damaged ("does not end
/// where its index says").
#[test]
fn a_truncation_that_removes_nothing_keeps_the_zeros_known_for_the_roll() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), config()).await.unwrap();
        fill(&log, 3).await;
        zeroing_settled(&log).await;
        let data_bytes = log.size_bytes();
        let first = dir.join("00000000000000000000.log");
        assert!(file_len(&first) > data_bytes, "zeros were written ahead");
        let end = log.log_end_offset();
        log.truncate_to(end).await.unwrap();
        assert_eq!(log.log_end_offset(), end, "nothing truncated");
        log.roll().await.unwrap();
        assert_eq!(
            file_len(&first),
            data_bytes,
            "the sealed segment's file ends where its data does"
        );
        log.close().await.unwrap();
        let log = Log::open(dir.clone(), config()).await.unwrap();
        assert_eq!(log.recovery_report().damaged_segments, vec![]);
        assert_eq!(log.log_end_offset(), end);
    });
}
