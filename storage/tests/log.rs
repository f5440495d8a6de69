//! Behaviour of the public `Log` API beyond the model test.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::rc::Rc;

use common::*;
use storage::batch::BatchHeader;
use storage::builder::decode_batches;
use storage::{Log, LogConfig, Offset, ReadSlice, StorageError, TimestampType};

#[test]
fn kafka_file_names_and_bytes_as_sent() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let sent = batch(1, 4, 777);
        let info = log.append(sent.clone(), opts(1)).await.unwrap();
        assert_eq!(
            (
                info.base_offset,
                info.last_offset,
                info.record_count,
                info.batch_count
            ),
            (Offset(0), Offset(3), 4, 1)
        );
        assert_eq!(info.log_append_time_ms, -1);
        log.close().await.unwrap();
        let on_disk = std::fs::read(dir.join("00000000000000000000.log")).unwrap();
        assert_eq!(on_disk.len(), sent.len());
        assert_eq!(
            &on_disk[16..],
            &sent[16..],
            "only offset and epoch rewritten"
        );
        assert_eq!(
            BatchHeader::parse(&on_disk).unwrap().partition_leader_epoch,
            1
        );
        assert!(dir.join("00000000000000000000.index").exists());
        assert!(dir.join("00000000000000000000.timeindex").exists());
    });
}

#[test]
fn bad_batch_in_a_request_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), small_config())
            .await
            .unwrap();
        fill(&log, 2).await;
        let before = read_all(&log).await;
        let mut req = batch(5, 2, 1);
        let mut bad = batch(6, 2, 1);
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        req.extend_from_slice(&bad);
        assert!(matches!(
            log.append(req, opts(1)).await,
            Err(StorageError::CorruptBatch(_))
        ));
        let mut big = LogConfig {
            max_message_bytes: 60,
            ..small_config()
        };
        big.segment_bytes_max = 2_000;
        log.set_config(big);
        assert!(matches!(
            log.append(batch(1, 1, 1), opts(1)).await,
            Err(StorageError::BatchTooLarge { .. })
        ));
        log.set_config(small_config());
        assert_eq!(log.log_end_offset(), Offset(6));
        assert_eq!(read_all(&log).await, before);
        assert_eq!(
            log.append(batch(7, 1, 1), opts(1))
                .await
                .unwrap()
                .base_offset,
            Offset(6)
        );
    });
}

#[test]
fn log_append_time_rewrites_max_timestamp() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        let info = log.append(batch(1, 2, 10), opts(42_000)).await.unwrap();
        assert_eq!(info.log_append_time_ms, 42_000);
        let b = decode_batches(&read_all(&log).await).unwrap();
        assert_eq!(b[0].header.max_timestamp, 42_000);
        assert!(b[0].header.is_log_append_time());
        assert_eq!(
            b[0].records[0].timestamp_ms, 10,
            "records are not re-encoded"
        );
        assert_eq!(log.max_timestamp().unwrap().timestamp_ms, 42_000);
    });
}

#[test]
fn timestamps_lookup_and_max() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        fill(&log, 20).await; // batch i: records at 1000 + 100 i + {0,1,2}
        let m = log.max_timestamp().unwrap();
        assert_eq!((m.timestamp_ms, m.offset), (1_000 + 1_900 + 2, Offset(59)));
        let t = log.offset_for_timestamp(1_502).await.unwrap().unwrap();
        assert_eq!((t.timestamp_ms, t.offset), (1_502, Offset(17)));
        let t = log.offset_for_timestamp(1_503).await.unwrap().unwrap();
        assert_eq!((t.timestamp_ms, t.offset), (1_600, Offset(18)));
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap().unwrap().offset,
            Offset(0)
        );
        assert_eq!(log.offset_for_timestamp(99_999).await.unwrap(), None);
        log.close().await.unwrap();
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert_eq!(log.max_timestamp().unwrap().offset, Offset(59));
        assert_eq!(
            log.offset_for_timestamp(1_502)
                .await
                .unwrap()
                .unwrap()
                .offset,
            Offset(17)
        );
    });
}

#[test]
fn retention_by_time_keeps_active_segment() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = LogConfig {
            retention_ms: 10_000,
            ..small_config()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        fill(&log, 30).await; // timestamps 1000..=3902
        let segments = log.segment_count();
        assert!(segments >= 3, "{segments} segments");
        assert_eq!(log.apply_retention(5_000).await.unwrap(), 0);
        let deleted = log.apply_retention(1_000_000).await.unwrap();
        assert_eq!(deleted, segments - 1);
        assert_eq!(log.segment_count(), 1);
        assert!(log.log_start_offset().0 > 0);
        let got = decode_batches(&read_all(&log).await).unwrap();
        assert_eq!(got[0].header.base_offset, log.log_start_offset().0);
        assert!(matches!(
            log.read(Offset(0), 10, true, Offset(i64::MAX)).await,
            Err(StorageError::OffsetOutOfRange { offset: 0, .. })
        ));
    });
}

#[test]
fn flush_policy_and_durable_end() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = LogConfig {
            flush_messages: 7,
            ..small_config()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        log.append(batch(1, 3, 1), opts(1)).await.unwrap();
        assert_eq!(log.durable_end_offset(), Offset(0));
        log.append(batch(2, 3, 1), opts(1)).await.unwrap();
        assert_eq!(log.high_watermark(), Offset(0));
        log.append(batch(3, 3, 1), opts(1)).await.unwrap();
        // The append started the fsync for 7+ messages without waiting for it.
        assert_eq!(
            log.fsync_in_flight(),
            Some(Offset(9)),
            "fsync after 7 messages"
        );
        assert_eq!(log.durable_end_offset(), Offset(0));
        assert_eq!(log.wait_durable(Offset(8)).await.unwrap(), Offset(9));
        assert_eq!(log.fsync_count(), 1, "the wait joined the policy's fsync");
        assert_eq!(log.fsync_in_flight(), None);
        log.set_config(LogConfig {
            flush_ms: 100,
            ..small_config()
        });
        log.append(batch(4, 1, 1), opts(1_000)).await.unwrap();
        assert_eq!(log.durable_end_offset(), Offset(9));
        log.maybe_flush(1_050).await.unwrap();
        assert_eq!(log.durable_end_offset(), Offset(9));
        log.maybe_flush(1_100).await.unwrap();
        assert_eq!(log.durable_end_offset(), Offset(10));
        // An upper bound (high watermark) limits reads.
        log.append(batch(5, 1, 1), opts(1_100)).await.unwrap();
        let s = log
            .read(Offset(0), u32::MAX, true, log.high_watermark())
            .await
            .unwrap();
        let got = decode_batches(&s.read_bytes().await.unwrap()).unwrap();
        assert_eq!(got.last().unwrap().header.last_offset(), 9);
        assert_eq!(log.flush().await.unwrap(), Offset(11));
    });
}

#[test]
fn read_slice_is_send_and_survives_deletion() {
    fn assert_send<T: Send>(_: &T) {}
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let slice: ReadSlice = rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        fill(&log, 3).await;
        let s = log
            .read(Offset(0), u32::MAX, true, Offset(i64::MAX))
            .await
            .unwrap();
        log.delete().await.unwrap();
        s
    });
    assert!(!dir.exists());
    assert_send(&slice);
    let bytes = std::thread::spawn(move || rt().block_on(slice.read_bytes()).unwrap())
        .join()
        .unwrap();
    assert_eq!(decode_batches(&bytes).unwrap().len(), 3);
}

#[test]
fn concurrent_appends_get_contiguous_offsets() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Rc::new(
            Log::open(part_dir(root.path()), small_config())
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let log = log.clone();
            tasks.push(compio::runtime::spawn(async move {
                let mut v = Vec::new();
                for i in 0..10 {
                    v.push(
                        log.append(batch(t * 100 + i, 2, 1), opts(1))
                            .await
                            .unwrap()
                            .base_offset
                            .0,
                    );
                }
                v
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..80).map(|i| i * 2).collect::<Vec<_>>());
        let got = decode_batches(&read_all(&log).await).unwrap();
        assert_eq!(got.len(), 80);
        for (i, b) in got.iter().enumerate() {
            assert_eq!(b.header.base_offset, i as i64 * 2);
        }
    });
}

#[test]
fn truncate_below_start_restarts_log() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), small_config())
            .await
            .unwrap();
        fill(&log, 10).await;
        log.truncate_to(Offset(0)).await.unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(0), Offset(0))
        );
        assert!(read_all(&log).await.is_empty());
        assert_eq!(
            log.append(batch(1, 1, 1), opts(1))
                .await
                .unwrap()
                .base_offset,
            Offset(0)
        );
    });
}

/// One batch of one record with a `value_bytes` value.
fn big_batch(value_bytes: usize) -> bytes::BytesMut {
    storage::BatchBuilder::new(1)
        .record(None, Some(&vec![7u8; value_bytes]), &[])
        .build()
}

#[test]
fn inline_and_io_uring_appends_write_the_same_bytes() {
    const INLINE_MAX_BYTES: u32 = 64 * 1024;
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut files = Vec::new();
        for (name, inline_max) in [("uring", 0), ("inline", INLINE_MAX_BYTES)] {
            let dir = root.path().join(name).join("t-0");
            let cfg = LogConfig {
                write_inline_max_bytes: inline_max,
                ..LogConfig::default()
            };
            let log = Log::open(dir.clone(), cfg).await.unwrap();
            for tag in 0..5 {
                log.append(batch(tag, 3, 1), opts(1)).await.unwrap();
            }
            // Larger than the threshold: io_uring either way.
            let big = big_batch(INLINE_MAX_BYTES as usize + 1);
            log.append(big, opts(1)).await.unwrap();
            log.append(batch(9, 2, 1), opts(1)).await.unwrap();
            let expect_inline = if inline_max == 0 { 0 } else { 6 };
            assert_eq!(log.inline_write_count(), expect_inline, "{name}");
            assert_eq!(log.log_end_offset(), Offset(18));
            let read = read_all(&log).await;
            log.close().await.unwrap();
            let on_disk = std::fs::read(dir.join("00000000000000000000.log")).unwrap();
            assert_eq!(&read[..], &on_disk[..], "{name}: reads see what is on disk");
            files.push(on_disk);
        }
        assert_eq!(files[0], files[1], "both write paths store the same bytes");
    });
}

#[test]
fn appends_while_an_fsync_runs_use_io_uring() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = LogConfig {
            flush_messages: 1,
            write_inline_max_bytes: 1024 * 1024,
            ..LogConfig::default()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        log.append(batch(0, 1, 1), opts(1)).await.unwrap();
        assert_eq!(log.inline_write_count(), 1, "no fsync ran: inline");
        // The policy (flush.messages = 1) started an fsync that nothing awaited yet.
        assert_eq!(log.fsync_in_flight(), Some(Offset(1)));
        let info = log.append(batch(1, 1, 1), opts(1)).await.unwrap();
        assert_eq!(log.inline_write_count(), 1, "fsync in flight: io_uring");
        assert_eq!(log.wait_durable(info.last_offset).await.unwrap(), Offset(2));
        assert_eq!(log.fsync_in_flight(), None);
        log.append(batch(2, 1, 1), opts(1)).await.unwrap();
        assert_eq!(log.inline_write_count(), 2, "fsync done: inline again");
        assert_eq!(read_all(&log).await.len(), 3 * batch(0, 1, 1).len());
        log.close().await.unwrap();
    });
}
