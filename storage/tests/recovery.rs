//! Recovery: damaged tails are truncated, missing or garbage indexes are rebuilt.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use common::*;
use storage::builder::decode_batches;
use storage::{Log, Offset};

/// Appends, flushes and drops the log without `close` (an unclean shutdown).
fn write_unclean(dir: &std::path::Path, batches: u32) -> (Vec<(i64, u32)>, bytes::Bytes) {
    rt().block_on(async {
        let log = Log::open(dir.to_path_buf(), small_config()).await.unwrap();
        let sizes = fill(&log, batches).await;
        log.flush().await.unwrap();
        (sizes, read_all(&log).await)
    })
}

#[test]
fn corrupt_tail_is_truncated_and_appends_continue() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, _) = write_unclean(&dir, 30);
    let logs = files_with(&dir, ".log");
    assert!(logs.len() > 2, "expected several segments, got {logs:?}");
    let active = logs.last().unwrap();
    let len = std::fs::metadata(active).unwrap().len();
    // Flip a byte inside the last batch of the active segment.
    let last_size = u64::from(sizes.last().unwrap().1);
    let mut f = OpenOptions::new().write(true).open(active).unwrap();
    f.seek(SeekFrom::Start(len - last_size + 70)).unwrap();
    f.write_all(&[0xAB, 0xCD]).unwrap();
    drop(f);
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let lost = sizes.last().unwrap().0;
        assert_eq!(log.log_end_offset(), Offset(lost));
        let batches = decode_batches(&read_all(&log).await).unwrap();
        assert_eq!(batches.len(), sizes.len() - 1);
        for (b, (base, _)) in batches.iter().zip(&sizes) {
            assert_eq!(b.header.base_offset, *base);
        }
        let info = log.append(batch(99, 2, 9_000), opts(9_000)).await.unwrap();
        assert_eq!(info.base_offset, Offset(lost));
        log.close().await.unwrap();
    });
    assert_eq!(
        std::fs::metadata(active).unwrap().len(),
        len - last_size + u64::from(rt().block_on(async { batch(99, 2, 9_000).len() as u32 }))
    );
}

#[test]
fn torn_last_batch_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, all) = write_unclean(&dir, 5);
    let active = files_with(&dir, ".log").pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    let f = OpenOptions::new().write(true).open(&active).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(sizes[4].0));
        let got = read_all(&log).await;
        assert_eq!(&got[..], &all[..all.len() - sizes[4].1 as usize]);
        let info = log.append(batch(7, 1, 1), opts(1)).await.unwrap();
        assert_eq!(info.base_offset, Offset(sizes[4].0));
    });
}

#[test]
fn garbage_appended_after_clean_close_is_cut() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let all = rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        fill(&log, 12).await;
        let all = read_all(&log).await;
        log.close().await.unwrap();
        all
    });
    let active = files_with(&dir, ".log").pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&active).unwrap();
    f.write_all(&[0x55; 100]).unwrap();
    drop(f);
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(36));
        assert_eq!(read_all(&log).await, all);
    });
}

fn reopen_and_check(dir: &std::path::Path, all: &bytes::Bytes, sizes: &[(i64, u32)]) {
    rt().block_on(async {
        let log = Log::open(dir.to_path_buf(), small_config()).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(sizes.len() as i64 * 3));
        assert_eq!(&read_all(&log).await, all);
        // Every batch is found from its own offsets (exercises index look-ups).
        let mut at = 0usize;
        for (base, size) in sizes {
            for off in *base..*base + 3 {
                let s = log
                    .read(Offset(off), 1, true, Offset(i64::MAX))
                    .await
                    .unwrap();
                let got = s.read_bytes().await.unwrap();
                assert_eq!(&got[..], &all[at..at + *size as usize], "offset {off}");
            }
            at += *size as usize;
        }
        let found = log
            .offset_for_timestamp(1_000 + 7 * 100 + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.offset, Offset(7 * 3 + 1));
        log.close().await.unwrap();
    });
}

#[test]
fn deleted_indexes_are_rebuilt() {
    for clean in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let dir = part_dir(root.path());
        let (sizes, all) = rt().block_on(async {
            let log = Log::open(dir.clone(), small_config()).await.unwrap();
            let sizes = fill(&log, 25).await;
            let all = read_all(&log).await;
            if clean {
                log.close().await.unwrap();
            } else {
                log.flush().await.unwrap();
            }
            (sizes, all)
        });
        let indexes = files_with(&dir, ".index");
        assert!(indexes.len() > 2);
        let sealed_index = std::fs::read(&indexes[0]).unwrap();
        assert!(
            !sealed_index.is_empty(),
            "sealed segment should have index entries"
        );
        for p in files_with(&dir, ".index")
            .iter()
            .chain(&files_with(&dir, ".timeindex"))
        {
            std::fs::remove_file(p).unwrap();
        }
        reopen_and_check(&dir, &all, &sizes);
        assert_eq!(
            std::fs::read(&indexes[0]).unwrap(),
            sealed_index,
            "rebuilt like the original"
        );
        assert_eq!(files_with(&dir, ".timeindex").len(), indexes.len());
    }
}

#[test]
fn garbage_indexes_are_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, all) = rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let sizes = fill(&log, 25).await;
        let all = read_all(&log).await;
        log.close().await.unwrap();
        (sizes, all)
    });
    let originals: Vec<Vec<u8>> = files_with(&dir, ".index")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for (i, p) in files_with(&dir, ".index").iter().enumerate() {
        // Alternate: wrong size, non-monotonic, positions past the end.
        let garbage: Vec<u8> = match i % 3 {
            0 => vec![0xEE; 13],
            1 => [[0, 0, 0, 9, 0, 0, 1, 0], [0, 0, 0, 2, 0, 0, 2, 0]].concat(),
            _ => [0u8, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff].to_vec(),
        };
        std::fs::write(p, garbage).unwrap();
    }
    for p in files_with(&dir, ".timeindex") {
        std::fs::write(p, [0xFFu8; 12 * 2 + 1]).unwrap();
    }
    reopen_and_check(&dir, &all, &sizes);
    let rebuilt: Vec<Vec<u8>> = files_with(&dir, ".index")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(rebuilt, originals);
}

#[test]
fn unclean_shutdown_scans_only_from_recovery_point() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, all) = write_unclean(&dir, 25);
    // Damage the first (sealed, fsynced, below the recovery point) segment's index: an
    // unclean open must not look at it, so it stays damaged until first use.
    let first_index = files_with(&dir, ".index").remove(0);
    std::fs::write(&first_index, [1u8; 5]).unwrap();
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        assert_eq!(
            std::fs::read(&first_index).unwrap(),
            vec![1u8; 5],
            "loaded lazily"
        );
        assert_eq!(read_all(&log).await, all);
        assert_ne!(
            std::fs::read(&first_index).unwrap(),
            vec![1u8; 5],
            "rebuilt on first use"
        );
        assert_eq!(log.log_end_offset(), Offset(sizes.len() as i64 * 3));
    });
}

/// Found by the `recovery_scan` fuzz target: a CRC-valid batch whose offsets reach i64::MAX
/// (base offset + last offset delta overflowed) after the valid data. It is damage: recovery
/// cuts it, keeps what precedes it, and appends continue after the kept data.
#[test]
fn batch_reaching_the_end_of_the_offset_space_is_cut() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let (sizes, all) = write_unclean(&dir, 3);
    let active = files_with(&dir, ".log").pop().unwrap();
    let mut hostile = storage::BatchBuilder::new(1).base_offset(i64::MAX - 1);
    for i in 0..4u8 {
        hostile = hostile.record(Some(&[i]), Some(b"v"), &[]);
    }
    let mut f = OpenOptions::new().append(true).open(&active).unwrap();
    f.write_all(&hostile.build()).unwrap();
    drop(f);
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let end = sizes.last().map(|(base, _)| base + 3).unwrap();
        assert_eq!(log.log_end_offset(), Offset(end));
        let cut = log
            .recovery_report()
            .truncated
            .clone()
            .expect("the batch is cut");
        assert!(cut.reason.contains("end of the offset space"), "{cut:?}");
        assert_eq!(read_all(&log).await, all);
        let info = log.append(batch(7, 1, 1), opts(1)).await.unwrap();
        assert_eq!(info.base_offset, Offset(end));
    });
}
