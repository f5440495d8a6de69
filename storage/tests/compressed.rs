//! Compressed batches: validated record by record on append (issue 8 item 7) and searched
//! record by record by timestamp (issue 8 item 1), for every codec.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use storage::batch::compute_crc;
use storage::inflate::{CODEC_GZIP, CODEC_LZ4, CODEC_SNAPPY, CODEC_ZSTD};
use storage::{BatchBuilder, Log, LogConfig, Offset, StorageError};

const T: i64 = 1_700_000_000_000;
const CODECS: [i16; 4] = [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD];

/// One batch of `n` records with timestamps T + start, T + start + 1s, ...
fn timed(codec: i16, start_ms: i64, n: i64) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(T + start_ms).compression(codec);
    for i in 0..n {
        b = b.record_at(T + start_ms + i * 1000, Some(b"k"), Some(&[7u8; 100]), &[]);
    }
    b.build()
}

fn set_crc(b: &mut [u8]) {
    let crc = compute_crc(b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn timestamp_lookups_see_records_inside_compressed_batches() {
    for codec in CODECS {
        let root = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let cfg = LogConfig {
                segment_bytes_max: 1_000,
                index_interval_bytes: 100,
                ..LogConfig::default()
            };
            let log = Log::open(part_dir(root.path()), cfg.clone()).await.unwrap();
            // Offsets 0-4 at T..T+4s, then 5-9 at T+10s..T+14s in a later segment.
            log.append(timed(codec, 0, 5), opts(T)).await.unwrap();
            log.roll().await.unwrap();
            log.append(timed(codec, 10_000, 5), opts(T)).await.unwrap();
            for (target, offset, ts) in [
                (T - 5, 0, T),
                (T + 1_500, 2, T + 2_000),
                (T + 4_000, 4, T + 4_000),
                (T + 4_001, 5, T + 10_000),
                (T + 12_999, 8, T + 13_000),
            ] {
                let got = log.offset_for_timestamp(target).await.unwrap().unwrap();
                assert_eq!(
                    (got.offset, got.timestamp_ms),
                    (Offset(offset), ts),
                    "codec {codec}, target T+{}",
                    target - T
                );
            }
            assert!(log
                .offset_for_timestamp(T + 14_001)
                .await
                .unwrap()
                .is_none());
            let max = log.max_timestamp_record().await.unwrap().unwrap();
            assert_eq!((max.offset, max.timestamp_ms), (Offset(9), T + 14_000));
            // The same after a restart (indexes from disk, lazily loaded).
            log.close().await.unwrap();
            let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
            let got = log.offset_for_timestamp(T + 1_500).await.unwrap().unwrap();
            assert_eq!((got.offset, got.timestamp_ms), (Offset(2), T + 2_000));
            let max = log.max_timestamp_record().await.unwrap().unwrap();
            assert_eq!((max.offset, max.timestamp_ms), (Offset(9), T + 14_000));
        });
    }
}

#[test]
fn a_wrong_header_max_timestamp_is_rewritten_from_the_records() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), LogConfig::default())
            .await
            .unwrap();
        let mut b = timed(CODEC_ZSTD, 0, 5);
        b[35..43].copy_from_slice(&(T + 99_000).to_be_bytes());
        set_crc(&mut b);
        log.append(b, opts(T)).await.unwrap();
        let max = log.max_timestamp_record().await.unwrap().unwrap();
        assert_eq!((max.offset, max.timestamp_ms), (Offset(4), T + 4_000));
        let stored = read_all(&log).await;
        let h = storage::BatchHeader::parse(&stored).unwrap();
        assert_eq!(h.max_timestamp, T + 4_000);
        assert_eq!(h.crc, compute_crc(&stored));
    });
}

#[test]
fn inconsistent_or_undecodable_batches_are_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), LogConfig::default())
            .await
            .unwrap();
        // rel-01: one record whose header claims 2^31 - 1 offsets.
        let mut gap = timed(CODEC_GZIP, 0, 1);
        gap[23..27].copy_from_slice(&2_147_483_646i32.to_be_bytes());
        set_crc(&mut gap);
        // rel-09: gzip codec, payload that is not a gzip stream.
        let mut junk = timed(CODEC_GZIP, 0, 1);
        for byte in junk.iter_mut().skip(63) {
            *byte = 0x5a;
        }
        set_crc(&mut junk);
        // A valid batch followed by a bad one: the whole request is refused.
        let mut pair = timed(CODEC_LZ4, 0, 2);
        pair.extend_from_slice(&junk);
        for (what, b) in [("gap", gap), ("junk", junk), ("pair", pair)] {
            let err = log.append(b, opts(T)).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StorageError::InvalidRecord(_) | StorageError::CorruptBatch(_)
                ),
                "{what}: {err}"
            );
        }
        assert_eq!(log.log_end_offset(), Offset(0));
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        let ok = log
            .append(timed(CODEC_SNAPPY, 0, 3), opts(T))
            .await
            .unwrap();
        assert_eq!((ok.base_offset, ok.last_offset), (Offset(0), Offset(2)));
    });
}

#[test]
fn a_decompression_bomb_is_refused_at_the_configured_bound() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = LogConfig {
            inflated_batch_bytes_max: 64 * 1024,
            ..LogConfig::default()
        };
        let log = Log::open(part_dir(root.path()), cfg).await.unwrap();
        // 200 KiB of one value: compresses to almost nothing, inflates past 64 KiB.
        let big = BatchBuilder::new(T)
            .compression(CODEC_ZSTD)
            .record(None, Some(&vec![0u8; 200 * 1024]), &[])
            .build();
        assert!(big.len() < 1024);
        let err = log.append(big, opts(T)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::CorruptBatch(ref m) if m.contains("inflates beyond")),
            "{err}"
        );
        let small = BatchBuilder::new(T)
            .compression(CODEC_ZSTD)
            .record(None, Some(&vec![0u8; 60 * 1024]), &[])
            .build();
        log.append(small, opts(T)).await.unwrap();
    });
}
