//! Opening and closing logs whose clean shutdown is tracked by the caller's data-directory
//! marker (`OpenOptions`): an idle log opens and closes without writing anything (so stop and
//! start time do not grow with idle partitions), a changed one is closed in full, and without
//! the marker a checkpoint's clean flag is not trusted.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use storage::{Log, OpenOptions};

const MARKER_PRESENT: OpenOptions = OpenOptions {
    previous_shutdown_clean: true,
    mark_unclean_on_open: false,
};
const MARKER_ABSENT: OpenOptions = OpenOptions {
    previous_shutdown_clean: false,
    mark_unclean_on_open: false,
};

/// (name, inode, size, mtime in ns) of every file: any rewrite, rename or append shows.
fn snapshot(dir: &Path) -> Vec<(String, u64, u64, i128)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.len(),
                mtime,
            )
        })
        .collect();
    files.sort();
    files
}

fn written_and_closed(dir: &Path) -> bytes::Bytes {
    rt().block_on(async {
        let log = Log::open(dir.to_path_buf(), small_config()).await.unwrap();
        fill(&log, 12).await;
        let all = read_all(&log).await;
        log.close().await.unwrap();
        all
    })
}

#[test]
fn an_idle_log_opens_and_closes_without_writing() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let all = written_and_closed(&dir);
    let before = snapshot(&dir);
    // Let a rewrite show in the mtime even on coarse-grained clocks.
    std::thread::sleep(std::time::Duration::from_millis(20));
    rt().block_on(async {
        let log = Log::open_with(dir.clone(), small_config(), MARKER_PRESENT)
            .await
            .unwrap();
        assert!(log.recovery_report().clean_shutdown);
        assert_eq!(read_all(&log).await, all);
        log.close().await.unwrap();
    });
    assert_eq!(
        snapshot(&dir),
        before,
        "nothing rewritten by an idle open + close"
    );
}

#[test]
fn a_changed_log_is_closed_in_full() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    written_and_closed(&dir);
    let all = rt().block_on(async {
        let log = Log::open_with(dir.clone(), small_config(), MARKER_PRESENT)
            .await
            .unwrap();
        fill(&log, 3).await;
        let all = read_all(&log).await;
        log.close().await.unwrap();
        all
    });
    rt().block_on(async {
        // The standalone open trusts the checkpoint's own flag: it must say clean, with the
        // new end as recovery point (nothing scanned).
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let report = log.recovery_report();
        assert!(report.clean_shutdown, "{report:?}");
        assert!(report.scanned_segments.is_empty(), "{report:?}");
        assert_eq!(read_all(&log).await, all);
    });
}

#[test]
fn without_the_marker_the_checkpoint_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    let all = written_and_closed(&dir);
    rt().block_on(async {
        let log = Log::open_with(dir.clone(), small_config(), MARKER_ABSENT)
            .await
            .unwrap();
        let report = log.recovery_report();
        assert!(!report.clean_shutdown, "{report:?}");
        assert!(!report.scanned_segments.is_empty(), "{report:?}");
        assert_eq!(read_all(&log).await, all);
        log.close().await.unwrap();
    });
}

#[test]
fn an_empty_log_closes_without_a_checkpoint_and_reopens_empty() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open_with(dir.clone(), small_config(), MARKER_PRESENT)
            .await
            .unwrap();
        log.close().await.unwrap();
    });
    assert!(
        files_with(&dir, ".checkpoint").is_empty(),
        "no checkpoint for a never-written log"
    );
    rt().block_on(async {
        let log = Log::open_with(dir.clone(), small_config(), MARKER_PRESENT)
            .await
            .unwrap();
        assert_eq!(log.log_end_offset().0, 0);
        fill(&log, 2).await;
        assert_eq!(log.log_end_offset().0, 6);
        log.close().await.unwrap();
    });
}
