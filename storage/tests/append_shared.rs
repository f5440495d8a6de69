//! `Log::append_valid` of batches whose buffer others still hold (as a broker's Produce
//! records are a slice of the connection's read buffer): the log writes them without copying
//! them (only each batch's 61-byte header is copied and stamped, `append_copied_bytes`), the
//! holder's bytes stay as received, and what is read back is the received batch with its
//! base offset and leader epoch (and for LogAppendTime its max timestamp, timestamp type and
//! CRC) stamped, the records unchanged and the CRC valid: across rolls, a clean reopen, a
//! recovery that verifies every batch, and compaction.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use bytes::Bytes;
use common::{batch, opts, part_dir, read_all, rt, small_config};
use storage::batch::{self as batches, BATCH_HEADER_LEN};
use storage::cleaner::{CleanOptions, CleanerLimits, CompactionConfig};
use storage::{AppendInfo, BatchBuilder, BatchHeader, Log, LogConfig, TimestampType};

/// Appends `received` from a buffer the caller keeps (a clone is held, so it is shared).
async fn append_shared(log: &Log, received: &Bytes, now_ms: i64) -> AppendInfo {
    let valid = log.validate(received.clone()).unwrap();
    log.append_valid(valid, opts(now_ms)).await.unwrap()
}

/// The received batches as the log must store them: offsets and leader epoch stamped (and
/// LogAppendTime's fields), one batch after another from the append's base offset.
fn stamped(received: &[u8], info: &AppendInfo, cfg: &LogConfig, now_ms: i64) -> Vec<u8> {
    let mut want = Vec::with_capacity(received.len());
    let mut next = info.base_offset.0;
    for one in batches::split_batches(received) {
        let mut one = one.unwrap().to_vec();
        batches::set_base_offset(&mut one, next);
        batches::set_leader_epoch(&mut one, opts(now_ms).leader_epoch);
        if cfg.timestamp_type == TimestampType::LogAppendTime {
            batches::set_log_append_time(&mut one, now_ms);
        }
        next = BatchHeader::parse(&one).unwrap().last_offset() + 1;
        want.extend(one);
    }
    want
}

/// Each stored batch is valid (CRC included), and the records after its header are the
/// received ones byte for byte.
fn check_each(stored: &[u8], received: &[Bytes]) {
    let mut n = 0;
    for (one, got) in batches::split_batches(stored).zip(received) {
        let one = one.unwrap();
        batches::validate_batch(one, u32::MAX).unwrap();
        assert_eq!(&one[BATCH_HEADER_LEN..], &got[BATCH_HEADER_LEN..]);
        n += 1;
    }
    assert_eq!(n, received.len());
}

#[test]
fn shared_appends_read_back_stamped_across_roll_and_reopen() {
    for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        rt().block_on(async {
            let root = tempfile::tempdir().unwrap();
            let cfg = LogConfig {
                timestamp_type,
                ..small_config()
            };
            let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
            let (mut received, mut want) = (Vec::new(), Vec::new());
            for i in 0..40u32 {
                let held = batch(i, 1 + i % 4, 1_000 + i64::from(i)).freeze();
                let now_ms = 5_000 + i64::from(i);
                let info = append_shared(&log, &held, now_ms).await;
                want.extend(stamped(&held, &info, &cfg, now_ms));
                // The holder's buffer was not stamped (its base offset is still 0).
                assert_eq!(BatchHeader::parse(&held).unwrap().base_offset, 0);
                received.push(held);
            }
            assert!(log.segment_count() >= 3, "rolled: {}", log.segment_count());
            assert_eq!(
                log.append_copied_bytes(),
                40 * BATCH_HEADER_LEN as u64,
                "only the headers were copied"
            );
            let stored = read_all(&log).await;
            assert_eq!(&stored[..], &want[..], "{timestamp_type:?}");
            check_each(&stored, &received);
            log.close().await.unwrap();

            // A clean reopen, then one after a crash (no close): recovery verifies each
            // batch of the unflushed segments, and keeps them all.
            let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
            assert_eq!(&read_all(&log).await[..], &want[..]);
            drop(log);
            let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
            let report = log.recovery_report();
            assert!(!report.clean_shutdown, "{report:?}");
            assert!(!report.scanned_segments.is_empty(), "{report:?}");
            assert!(report.truncated.is_none(), "{report:?}");
            assert_eq!(&read_all(&log).await[..], &want[..]);
            log.close().await.unwrap();
        });
    }
}

/// A buffer only the append holds is stamped in place: nothing is copied, the stored batch
/// is the same as from a shared buffer.
#[test]
fn an_unshared_append_copies_nothing() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let cfg = small_config();
        let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
        let received = batch(1, 3, 1_000).freeze();
        let expected = received.to_vec();
        let valid = log.validate(received).unwrap();
        let info = log.append_valid(valid, opts(5_000)).await.unwrap();
        assert_eq!(log.append_copied_bytes(), 0);
        let want = stamped(&expected, &info, &cfg, 5_000);
        assert_eq!(&read_all(&log).await[..], &want[..]);
        log.close().await.unwrap();
    });
}

fn keyed(keys: &[u8], ts: i64) -> Bytes {
    let mut b = BatchBuilder::new(ts);
    for (i, k) in keys.iter().enumerate() {
        let value = format!("value-{k}-{ts}");
        b = b.record_at(
            ts + i as i64,
            Some(format!("key-{k}").as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    b.build().freeze()
}

/// Compaction keeps a batch whose records all survive as it was stored (header stamped at
/// append, records as received), and rewrites one that lost records into a valid batch.
#[test]
fn compaction_keeps_shared_appended_batches_whole() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes_max: 1 << 20,
            index_interval_bytes: 128,
            ..LogConfig::default()
        };
        let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
        // The first batch's key 0 is overwritten by the second; the third is untouched.
        let plan: [&[u8]; 3] = [&[0, 1], &[0], &[2, 3]];
        let mut stored_want = Vec::new();
        for (i, keys) in plan.iter().enumerate() {
            let held = keyed(keys, 1_000 + i as i64);
            let info = append_shared(&log, &held, 5_000).await;
            stored_want.push((info.base_offset.0, stamped(&held, &info, &cfg, 5_000)));
        }
        log.roll().await.unwrap();
        let options = CleanOptions {
            now_ms: 10_000,
            config: CompactionConfig {
                min_cleanable_dirty_ratio: 0.0,
                delete_retention_ms: i64::MAX / 4,
                min_compaction_lag_ms: 0,
                max_compaction_lag_ms: i64::MAX,
            },
            limits: CleanerLimits::default(),
            pace: None,
            crash_at: None,
            is_last_producer_batch: None,
            is_aborted_batch: None,
            force: false,
        };
        let stats = log.clean(options).await.unwrap();
        assert!(stats.records_kept < stats.records_read, "{stats:?}");
        let stored = read_all(&log).await;
        let mut kept = Vec::new();
        for one in batches::split_batches(&stored) {
            let one = one.unwrap();
            // A cleaned batch has offset gaps (not a client's batch): its CRC is checked.
            let header = BatchHeader::parse(one).unwrap();
            assert_eq!(batches::compute_crc(one), header.crc);
            kept.push((header.base_offset, one.to_vec()));
        }
        assert_eq!(kept.len(), 3, "every batch keeps a record");
        // The rewritten first batch keeps its offsets; the others are byte-identical.
        assert_eq!(kept[0].0, stored_want[0].0);
        assert_ne!(kept[0].1, stored_want[0].1, "the first batch lost key 0");
        assert_eq!(kept[1..], stored_want[1..]);
        log.close().await.unwrap();
    });
}

/// `count` batches of 2 records in one buffer.
fn many(tag: u32, count: u32) -> Bytes {
    let mut buf = bytes::BytesMut::new();
    for i in 0..count {
        buf.extend_from_slice(&batch(tag * 1_000 + i, 2, 1_000 + i64::from(i)));
    }
    buf.freeze()
}

/// Shared appends queued behind a write are written together, as two iovecs per batch, up
/// to `APPEND_IOVECS_MAX` (256) per write: an append of 100 batches (200 iovecs) does not
/// share a write with the next one of 100, but does with a one-batch append. Through
/// io_uring and inline `pwritev` alike, the file holds every append's stamped batches in
/// order.
#[test]
fn coalesced_shared_appends_stay_within_the_iovec_bound() {
    for write_inline_max_bytes in [0, u32::MAX] {
        rt().block_on(async {
            let root = tempfile::tempdir().unwrap();
            let cfg = LogConfig {
                write_inline_max_bytes,
                ..LogConfig::default()
            };
            let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
            let held = [many(1, 1), many(2, 100), many(3, 100), many(4, 1)];
            let appends = held.iter().map(|h| append_shared(&log, h, 5_000));
            let infos = futures_util::future::join_all(appends).await;
            let mut want = Vec::new();
            for (h, info) in held.iter().zip(&infos) {
                want.extend(stamped(h, info, &cfg, 5_000));
            }
            assert_eq!(
                log.segment_write_count(),
                3,
                "inline max {write_inline_max_bytes}: [1], [100], [100, 1]"
            );
            assert_eq!(log.append_copied_bytes(), 202 * BATCH_HEADER_LEN as u64);
            let stored = read_all(&log).await;
            assert_eq!(&stored[..], &want[..]);
            log.close().await.unwrap();
        });
    }
}
