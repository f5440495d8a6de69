//! File descriptors are bounded (issue 8 item 7): sealed segments' files are opened on
//! demand and at most `set_sealed_segment_files_open_max` stay open per thread (shard).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use storage::builder::decode_batches;
use storage::{sealed_segment_files_open, set_sealed_segment_files_open_max, Log};

#[test]
fn sealed_segment_files_stay_within_the_bound() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    set_sealed_segment_files_open_max(3);
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let sizes = fill(&log, 80).await;
        assert!(log.segment_count() >= 6, "{} segments", log.segment_count());
        assert!(sealed_segment_files_open() <= 3);
        let all = decode_batches(&read_all(&log).await).unwrap();
        assert_eq!(
            all.len(),
            sizes.len(),
            "every segment read, reopening closed files"
        );
        assert!(sealed_segment_files_open() <= 3);
        // Time look-ups and reads of old segments reopen them, still within the bound.
        for (base, _) in sizes.iter().step_by(7) {
            let got = log
                .read(storage::Offset(*base), 1, true, storage::Offset(i64::MAX))
                .await
                .unwrap();
            assert!(!got.is_empty());
            assert!(log.offset_for_timestamp(1_000).await.unwrap().is_some());
        }
        assert!(sealed_segment_files_open() <= 3);
        log.close().await.unwrap();
        assert_eq!(
            sealed_segment_files_open(),
            0,
            "closing releases every file"
        );
        // Opening a log with many segments keeps no more open either.
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert!(sealed_segment_files_open() <= 3);
        assert_eq!(
            decode_batches(&read_all(&log).await).unwrap().len(),
            sizes.len()
        );
        log.close().await.unwrap();
    });
}

/// segment.ms measures the incoming batch's timestamp against the segment's first one (Kafka's
/// `timeWaitedForRoll`), so a producer's old CreateTime cannot roll a segment per request.
#[test]
fn old_create_times_do_not_roll_a_segment_per_append() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = storage::LogConfig {
            segment_ms: 60_000,
            ..storage::LogConfig::default()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        let now = 1_700_000_000_000;
        for i in 0..20 {
            log.append(batch(i, 2, 1_000), opts(now)).await.unwrap();
        }
        assert_eq!(log.segment_count(), 1, "ancient timestamps rolled segments");
        // Records a segment.ms later than the segment's first do roll it.
        log.append(batch(20, 2, 1_000 + 60_001), opts(now))
            .await
            .unwrap();
        assert_eq!(log.segment_count(), 2);
        log.close().await.unwrap();
    });
}

/// Active segments' files are bounded too (issue 10, 100,000 partitions): with more logs than
/// `set_active_segment_files_open_max`, cold ones are closed and appends, fsyncs, reads and
/// rolls reopen them; nothing is lost across a close and reopen of the logs.
#[test]
fn active_segment_files_of_many_logs_stay_within_the_bound() {
    use storage::{active_segment_files_open, set_active_segment_files_open_max};
    let root = tempfile::tempdir().unwrap();
    set_active_segment_files_open_max(4);
    rt().block_on(async {
        let dirs: Vec<_> = (0..12)
            .map(|i| {
                let dir = root.path().join(format!("t-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                dir
            })
            .collect();
        let mut logs = Vec::new();
        for dir in &dirs {
            logs.push(Log::open(dir.clone(), small_config()).await.unwrap());
            assert!(active_segment_files_open() <= 4);
        }
        // Round-robin appends (each reopens a closed file), fsyncs, and rolls.
        for round in 0..40u32 {
            for log in &logs {
                log.append(batch(round, 2, 1_000), opts(1_700_000_000_000))
                    .await
                    .unwrap();
                assert!(active_segment_files_open() <= 4);
            }
        }
        for log in &logs {
            log.flush().await.unwrap();
            assert!(active_segment_files_open() <= 4);
        }
        assert!(logs[0].segment_count() >= 2, "rolls happened");
        for log in &logs {
            assert_eq!(decode_batches(&read_all(log).await).unwrap().len(), 40);
        }
        for log in logs.drain(..) {
            log.close().await.unwrap();
        }
        assert_eq!(
            active_segment_files_open(),
            0,
            "closing releases every file"
        );
        for dir in &dirs {
            let log = Log::open(dir.clone(), small_config()).await.unwrap();
            assert_eq!(decode_batches(&read_all(&log).await).unwrap().len(), 40);
            log.close().await.unwrap();
        }
    });
    set_active_segment_files_open_max(storage::ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT);
}
