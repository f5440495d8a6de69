//! Appends that queue for one log while it is being written are written together (one
//! vectored write): offsets in queue order, every append answered with its own offsets, the
//! bytes on disk in that order, a refused follower append failing alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use futures_util::future::join_all;
use std::future::Future;
use std::pin::Pin;

use storage::{AppendInfo, BatchBuilder, BatchHeader, Log, LogConfig, Offset, StorageError};

const APPENDS: u32 = 8;
const RECORDS: u32 = 3;

/// Tags the batch of append `tag` by its base timestamp.
fn ts_of(tag: u32) -> i64 {
    1_000 + i64::from(tag) * 100
}

/// `(base timestamp, base offset)` of every stored batch, in file order.
async fn stored(log: &Log) -> Vec<(i64, i64)> {
    let bytes = read_all(log).await;
    storage::split_batches(&bytes)
        .map(|b| {
            let h = BatchHeader::parse(b.unwrap()).unwrap();
            (h.base_timestamp, h.base_offset)
        })
        .collect()
}

/// `APPENDS` appends started in one poll (as the broker's connections of one loop turn do):
/// the first is written alone, the ones that queued behind it in one more write; offsets
/// follow the order of the calls, and so do the bytes.
async fn concurrent_appends_in_order(log: &Log) {
    let appends = (0..APPENDS).map(|tag| log.append(batch(tag, RECORDS, ts_of(tag)), opts(5_000)));
    let infos: Vec<_> = join_all(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let n = i64::from(RECORDS);
    for (tag, info) in infos.iter().enumerate() {
        let tag = tag as i64;
        assert_eq!(info.base_offset, Offset(tag * n), "append {tag}");
        assert_eq!(info.last_offset, Offset(tag * n + n - 1), "append {tag}");
        assert_eq!(info.record_count, RECORDS);
    }
    assert_eq!(log.log_end_offset(), Offset(i64::from(APPENDS) * n));
    let expected: Vec<(i64, i64)> = (0..APPENDS)
        .map(|tag| (ts_of(tag), i64::from(tag) * n))
        .collect();
    assert_eq!(stored(log).await, expected);
}

#[test]
fn appends_queued_during_a_write_share_one_write_in_order() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Every write through io_uring: the first append's write suspends, so the other
        // seven queue behind it and are written by the next lock holder at once.
        let config = LogConfig {
            write_inline_max_bytes: 0,
            ..LogConfig::default()
        };
        let log = Log::open(root.path().join("uring-0"), config.clone())
            .await
            .unwrap();
        concurrent_appends_in_order(&log).await;
        assert_eq!(
            log.segment_write_count(),
            2,
            "the first alone, then the seven queued"
        );
        log.close().await.unwrap();
        // What was written together reads back the same after a reopen (recovery scans it).
        let log = Log::open(root.path().join("uring-0"), config)
            .await
            .unwrap();
        assert_eq!(stored(&log).await.len(), APPENDS as usize);
        log.close().await.unwrap();

        // Inline `pwritev` path (the default for small appends): same order, fewer writes.
        let log = Log::open(root.path().join("inline-0"), LogConfig::default())
            .await
            .unwrap();
        concurrent_appends_in_order(&log).await;
        assert!(
            log.segment_write_count() < u64::from(APPENDS),
            "{} writes for {APPENDS} appends",
            log.segment_write_count()
        );
        assert!(log.inline_write_count() > 0);
    });
}

/// A config whose segments hold two of this file's batches (io_uring writes), and the size
/// of one batch.
fn two_batch_segments() -> (LogConfig, u64) {
    let batch_bytes = batch(0, RECORDS, ts_of(0)).len() as u64;
    let config = LogConfig {
        write_inline_max_bytes: 0,
        segment_bytes_max: 2 * batch_bytes + batch_bytes / 2,
        ..LogConfig::default()
    };
    (config, batch_bytes)
}

#[test]
fn a_group_never_crosses_a_segment_roll() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Segments of 2 batches: the queued appends are split at every roll.
        let (config, batch_bytes) = two_batch_segments();
        let log = Log::open(root.path().join("roll-0"), config).await.unwrap();
        concurrent_appends_in_order(&log).await;
        // Two batches per segment, so a segment starts every second append.
        let expected: Vec<Offset> = (0..i64::from(APPENDS) / 2)
            .map(|i| Offset(i * 2 * i64::from(RECORDS)))
            .collect();
        assert_eq!(log.segment_bases(), expected);
        assert!(log.segment_write_count() >= expected.len() as u64);
        // Every segment file holds exactly its two batches.
        for seg in files_with(&root.path().join("roll-0"), ".log") {
            let len = std::fs::metadata(&seg).unwrap().len();
            assert!(len == 2 * batch_bytes, "{}: {len} bytes", seg.display());
        }
    });
}

/// A follower's batches, stamped by a leader at `base`.
fn stamped(tag: u32, base: i64) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(ts_of(tag)).base_offset(base);
    for i in 0..RECORDS {
        b = b.record_at(ts_of(tag) + i64::from(i), None, Some(b"v"), &[]);
    }
    b.build()
}

#[test]
fn a_refused_follower_append_fails_alone_in_its_group() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let config = LogConfig {
            write_inline_max_bytes: 0,
            ..LogConfig::default()
        };
        let log = Log::open(root.path().join("follower-0"), config)
            .await
            .unwrap();
        let n = i64::from(RECORDS);
        // 0: written alone; 1-3 queue: 1 continues the log, 2 overlaps it (refused: a
        // follower's offsets only increase; a gap is allowed, as a compacted leader has), 3
        // continues where 1 ended.
        let results = join_all([
            log.append_as_follower(stamped(0, 0), opts(5_000)),
            log.append_as_follower(stamped(1, n), opts(5_000)),
            log.append_as_follower(stamped(2, 1), opts(5_000)),
            log.append_as_follower(stamped(3, 2 * n), opts(5_000)),
        ])
        .await;
        let bases: Vec<Option<i64>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|i| i.base_offset.0))
            .collect();
        assert_eq!(bases, vec![Some(0), Some(n), None, Some(2 * n)]);
        assert!(matches!(
            results[2],
            Err(StorageError::OffsetOutOfRange { offset: 1, .. })
        ));
        assert_eq!(log.log_end_offset(), Offset(3 * n));
        assert_eq!(
            stored(&log).await,
            vec![(ts_of(0), 0), (ts_of(1), n), (ts_of(3), 2 * n)]
        );
        assert_eq!(log.segment_write_count(), 2);
    });
}

/// Appends 0 to `last` start in one poll; 0 is written, then 1 gets the lock, starts its
/// group's first write and is dropped mid-write. Returns appends 2 to `last`, still pending.
async fn cancel_holder_mid_write(
    log: &Log,
    last: u32,
) -> Vec<Pin<Box<impl Future<Output = Result<AppendInfo, StorageError>> + '_>>> {
    let mut appends: Vec<_> = (0..=last)
        .map(|tag| Box::pin(log.append(batch(tag, RECORDS, ts_of(tag)), opts(5_000))))
        .collect();
    for append in &mut appends {
        assert!(futures_util::poll!(append).is_pending());
    }
    let queued = appends.split_off(2);
    let mut holder = appends.pop().unwrap();
    let first = appends.pop().unwrap();
    assert_eq!(first.await.unwrap().base_offset, Offset(0));
    assert!(futures_util::poll!(&mut holder).is_pending());
    drop(holder);
    queued
}

#[test]
fn a_cancelled_group_write_answers_its_appends_not_written_and_commits_none() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let config = LogConfig {
            write_inline_max_bytes: 0,
            ..LogConfig::default()
        };
        let log = Log::open(root.path().join("cancel-0"), config)
            .await
            .unwrap();
        // 0 holds the lock with its write in flight; 1 and 2 queue behind it; 1 gets the
        // lock and starts the write of 1 and 2, and its caller goes away mid-write.
        let mut queued = cancel_holder_mid_write(&log, 2).await;
        let follower = queued.remove(0);
        match follower.await {
            Err(e @ StorageError::NotWritten) => assert!(!e.is_disk_fault()),
            other => panic!("the queued append of a cancelled write: {other:?}"),
        }
        let n = i64::from(RECORDS);
        assert_eq!(
            log.log_end_offset(),
            Offset(n),
            "nothing of the cancelled write committed"
        );
        // The log goes on where the cancelled write would have written.
        let info = log
            .append(batch(3, RECORDS, ts_of(3)), opts(5_000))
            .await
            .unwrap();
        assert_eq!(info.base_offset, Offset(n));
        assert_eq!(stored(&log).await, vec![(ts_of(0), 0), (ts_of(3), n)]);
    });
}

/// A group that takes more than one write (here split by a segment roll) leaves the appends
/// of its later writes queued until each write starts: when its holder is cancelled during
/// the first write, the next lock holder writes the rest, in queue order (nothing of the
/// cancelled write committed, nothing queued lost).
#[test]
fn a_cancelled_holder_leaves_the_rest_of_its_group_to_the_next() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Segments of 2 batches: appends 0 and 1 fill the first, 2 rolls.
        let (config, _) = two_batch_segments();
        let log = Log::open(root.path().join("cancel-1"), config)
            .await
            .unwrap();
        // 1 gets the lock and starts the write of 1 alone (2 needs a roll); then goes away.
        let mut queued = cancel_holder_mid_write(&log, 3).await;
        let (second, third) = (queued.remove(0), queued.remove(0));
        let n = i64::from(RECORDS);
        let (second, third) = futures_util::join!(second, third);
        assert_eq!(second.unwrap().base_offset, Offset(n));
        assert_eq!(third.unwrap().base_offset, Offset(2 * n));
        assert_eq!(log.log_end_offset(), Offset(3 * n));
        assert_eq!(
            stored(&log).await,
            vec![(ts_of(0), 0), (ts_of(2), n), (ts_of(3), 2 * n)]
        );
    });
}

/// A compacted leader's log has offset gaps: a follower appends its batches as they are
/// (offsets only increase), reads find the batch after a gap, and a truncation into a gap
/// leaves the log ending at the truncation offset (nothing between is skipped when the
/// follower fetches again), one inside a batch removes the batch whole.
#[test]
fn follower_appends_keep_offset_gaps_and_truncate_into_them() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(root.path().join("gaps-0"), LogConfig::default())
            .await
            .unwrap();
        let n = i64::from(RECORDS);
        log.append_as_follower(stamped(0, 0), opts(5_000))
            .await
            .unwrap();
        let after_gap = log
            .append_as_follower(stamped(1, 10), opts(5_000))
            .await
            .unwrap();
        assert_eq!(after_gap.base_offset, Offset(10));
        assert_eq!(log.log_end_offset(), Offset(10 + n));
        assert!(matches!(
            log.append_as_follower(stamped(2, 10 + n - 1), opts(5_000))
                .await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(stored(&log).await, vec![(ts_of(0), 0), (ts_of(1), 10)]);
        // Truncation inside the second batch removes it whole.
        log.truncate_to(Offset(11)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(10));
        log.append_as_follower(stamped(1, 10), opts(5_000))
            .await
            .unwrap();
        // Truncation into the gap: the log ends there, not at the next batch.
        log.truncate_to(Offset(5)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(5));
        assert_eq!(stored(&log).await, vec![(ts_of(0), 0)]);
        log.append_as_follower(stamped(3, 5), opts(5_000))
            .await
            .unwrap();
        assert_eq!(stored(&log).await, vec![(ts_of(0), 0), (ts_of(3), 5)]);
    });
}

/// A follower stores what its leader accepted whatever its own `max.message.bytes` (lowered
/// after the leader appended, say): Kafka's `appendAsFollower` ignores the record size, so a
/// lowered limit cannot stop replication of older batches for good.
#[test]
fn a_follower_takes_a_batch_above_its_max_message_bytes() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let config = LogConfig {
            max_message_bytes: 64,
            ..LogConfig::default()
        };
        let log = Log::open(root.path().join("small-limit-0"), config)
            .await
            .unwrap();
        let big = stamped(0, 0);
        assert!(big.len() > 64, "{}", big.len());
        assert!(matches!(
            log.append(big.clone(), opts(5_000)).await,
            Err(StorageError::BatchTooLarge { .. })
        ));
        let appended = log.append_as_follower(big, opts(5_000)).await.unwrap();
        assert_eq!(appended.base_offset, Offset(0));
        assert_eq!(stored(&log).await, vec![(ts_of(0), 0)]);
    });
}
