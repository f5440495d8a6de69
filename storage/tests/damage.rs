//! A sealed segment damaged behind the broker's back (issue 8 item 9): everything before
//! the damage stays readable, the damage is detected (at open when the file does not end
//! where its index says, at read otherwise) and reported as Kafka reports it.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::fs::OpenOptions;

use common::*;
use storage::builder::decode_batches;
use storage::{Log, Offset, StorageError};

/// 30 batches of 3 records over several segments, closed cleanly; returns (base, size) per
/// batch and the segment files.
fn write_clean(dir: &std::path::Path) -> (Vec<(i64, u32)>, Vec<std::path::PathBuf>) {
    let sizes = rt().block_on(async {
        let log = Log::open(dir.to_path_buf(), small_config()).await.unwrap();
        let sizes = fill(&log, 30).await;
        log.close().await.unwrap();
        sizes
    });
    let logs = files_with(dir, ".log");
    assert!(logs.len() >= 3, "expected several segments, got {logs:?}");
    (sizes, logs)
}

fn base_of(path: &std::path::Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Base offsets of the batches a read from `from` returns.
async fn bases_from(log: &Log, from: i64) -> Vec<i64> {
    let bytes = log
        .read(Offset(from), u32::MAX, true, Offset(i64::MAX))
        .await
        .unwrap()
        .read_bytes()
        .await
        .unwrap();
    decode_batches(&bytes)
        .unwrap()
        .iter()
        .map(|b| b.header.base_offset)
        .collect()
}

#[test]
fn torn_sealed_segment_is_detected_at_open_and_the_rest_stays_readable() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, logs) = write_clean(&dir);
    let victim = &logs[1];
    let (second, third) = (base_of(&logs[1]), base_of(&logs[2]));
    let len = std::fs::metadata(victim).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    // The batch that lost its last byte is the last one of the second segment.
    let torn = sizes.iter().rev().find(|(b, _)| *b < third).unwrap().0;
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let damage = &log.recovery_report().damaged_segments;
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert_eq!(damage[0].segment, Offset(second));
        assert_eq!(damage[0].offset, Offset(torn));
        let expected: Vec<i64> = sizes.iter().map(|s| s.0).filter(|&b| b != torn).collect();
        assert_eq!(bases_from(&log, 0).await, expected);
        // An offset lost in the torn batch is looked for in the next segment (Kafka).
        assert_eq!(bases_from(&log, torn).await.first(), Some(&third));
        // The file is left as found.
        assert_eq!(std::fs::metadata(victim).unwrap().len(), len - 1);
        log.close().await.unwrap();
    });
}

#[test]
fn damaged_length_mid_segment_serves_what_precedes_it_and_reports_corruption() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, logs) = write_clean(&dir);
    let (second, third) = (base_of(&logs[1]), base_of(&logs[2]));
    // The second batch of the second segment gets a length below the minimum.
    let in_second: Vec<(i64, u32)> = sizes
        .iter()
        .copied()
        .filter(|(b, _)| *b >= second && *b < third)
        .collect();
    assert!(in_second.len() >= 3);
    let pos = u64::from(in_second[0].1);
    let damaged = in_second[1].0;
    let bytes = std::fs::read(&logs[1]).unwrap();
    let mut patched = bytes.clone();
    patched[pos as usize + 8..pos as usize + 12].copy_from_slice(&10i32.to_be_bytes());
    std::fs::write(&logs[1], &patched).unwrap();
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert!(log.recovery_report().damaged_segments.is_empty());
        // From offset 0: the first segment and the batch before the damage come whole (the
        // bytes after them may be served as stored, as Kafka serves them: the damaged batch
        // is then fetched on its own and refused below).
        let bytes = log
            .read(Offset(0), u32::MAX, true, Offset(i64::MAX))
            .await
            .unwrap()
            .read_bytes()
            .await
            .unwrap();
        let got: Vec<i64> = storage::split_batches(&bytes)
            .map_while(Result::ok)
            .map_while(|b| storage::builder::decode_batch(b).ok())
            .map(|b| b.header.base_offset)
            .collect();
        let expected: Vec<i64> = sizes.iter().map(|s| s.0).filter(|&b| b < damaged).collect();
        assert_eq!(got, expected);
        // At the damaged batch: Kafka's CorruptRecordException (CORRUPT_MESSAGE).
        let err = log
            .read(Offset(damaged), u32::MAX, true, Offset(i64::MAX))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::DamagedSegment { position, .. } if position == pos),
            "{err}"
        );
        // Later segments are untouched.
        assert_eq!(bases_from(&log, third).await.first(), Some(&third));
        log.close().await.unwrap();
    });
}

/// A batch whose bytes changed on disk (CRC mismatch, e.g. a plausible but wrong length that
/// a client parses partially): a fetch from inside it, which is what a client that could not
/// decode it all sends next, is refused (CORRUPT_MESSAGE) instead of getting it forever.
#[test]
fn a_fetch_from_inside_a_batch_that_fails_its_crc_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, logs) = write_clean(&dir);
    let second = base_of(&logs[1]);
    let first_in_second = sizes.iter().position(|(b, _)| *b == second).unwrap();
    let (victim_base, victim_size) = sizes[first_in_second + 1];
    let pos = u64::from(sizes[first_in_second].1);
    let mut bytes = std::fs::read(&logs[1]).unwrap();
    let last = (pos + u64::from(victim_size) - 2) as usize;
    bytes[last] ^= 0x40; // inside the last record's value
    std::fs::write(&logs[1], &bytes).unwrap();
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        // From its first offset the batch is served as stored (as Kafka does)...
        assert_eq!(
            bases_from(&log, victim_base).await.first(),
            Some(&victim_base)
        );
        // ...from inside it, it is refused.
        let err = log
            .read(Offset(victim_base + 1), u32::MAX, true, Offset(i64::MAX))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::DamagedSegment { ref reason, position, .. }
                if position == pos && reason.contains("crc")),
            "{err}"
        );
        log.close().await.unwrap();
    });
}
