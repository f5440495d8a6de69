//! Injected disk faults (the `storage::fault` test hook): a failed segment fsync is sticky
//! (every later append, flush and wait fails, the durable end offset never covers the failed
//! range), a failed append write leaves the log as it was, and reopening the directory keeps
//! every batch that was durable before the fault, byte-identical, and never a corrupt one.
//!
//! The hook is armed by environment variables read once per process and counts operations
//! process-wide, so each test re-runs itself alone in a child process (`isolated`) with its
//! variable set; the parent only checks that the child passed.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::process::Command;

use bytes::Bytes;
use common::{batch, opts, part_dir, read_all, rt, small_config};
use futures_util::future::join_all;
use storage::fault::{FSYNC_EIO_AFTER_VAR, WRITE_EIO_AFTER_VAR};
use storage::{batch as wire, Log, LogConfig, Offset, StorageError};

/// Set in the child process that runs a test's body.
const CHILD_VAR: &str = "SLUICE_FAULT_TEST_CHILD";
/// EIO as the kernel reports it.
const EIO: i32 = 5;

/// In the parent: runs `test` alone in a child process with `env` set, asserts it passed and
/// returns false. In that child: returns true (run the body).
fn isolated(test: &str, env: (&str, &str)) -> bool {
    if std::env::var_os(CHILD_VAR).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .env(env.0, env.1)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {test} failed:\n{text}");
    // A filter that matched nothing would "pass" without running the body.
    assert!(
        text.contains("1 passed"),
        "child {test} ran no test:\n{text}"
    );
    false
}

/// Large segments: no roll, so every fsync is a group-commit fsync.
fn no_roll_config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn assert_io(res: Result<impl std::fmt::Debug, StorageError>, what: &str) -> String {
    match res {
        Err(StorageError::Io(e)) => e.to_string(),
        other => panic!("{what}: expected an Io error, got {other:?}"),
    }
}

/// The batches of a full read, each checked (CRC, structure).
fn batches(bytes: &Bytes) -> Vec<Vec<u8>> {
    wire::split_batches(bytes)
        .map(|b| {
            let b = b.unwrap();
            wire::validate_batch(b, u32::MAX).unwrap();
            b.to_vec()
        })
        .collect()
}

fn base_offset(batch: &[u8]) -> i64 {
    storage::BatchHeader::parse(batch).unwrap().base_offset
}

/// After reopening: every batch of `before` (the pre-fault read) below `durable_end` is
/// there byte-identical; whatever else is there is also a batch of `before`, in order.
fn assert_recovered(after: &[Vec<u8>], before: &[Vec<u8>], durable_end: Offset) {
    let durable = before
        .iter()
        .filter(|b| base_offset(b) < durable_end.0)
        .count();
    assert!(
        after.len() >= durable,
        "{} batches recovered, {durable} were durable",
        after.len()
    );
    assert!(after.len() <= before.len(), "more batches than appended");
    for (i, (a, b)) in after.iter().zip(before).enumerate() {
        assert_eq!(a, b, "batch {i} differs after recovery");
    }
}

#[test]
fn failed_fsync_is_sticky_and_durable_data_survives() {
    // Fsyncs #1 and #2 succeed, #3 fails.
    if !isolated(
        "failed_fsync_is_sticky_and_durable_data_survives",
        (FSYNC_EIO_AFTER_VAR, "2"),
    ) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), no_roll_config()).await.unwrap();
        for tag in 0..2 {
            let info = log.append(batch(tag, 3, 1_000), opts(1_000)).await.unwrap();
            log.wait_durable(info.last_offset).await.unwrap();
        }
        let durable_before = log.durable_end_offset();
        assert_eq!(durable_before, Offset(6));
        // Two appends whose waiters share the failing fsync.
        let a = log.append(batch(2, 3, 1_000), opts(1_000)).await.unwrap();
        let b = log.append(batch(3, 3, 1_000), opts(1_000)).await.unwrap();
        let waits = join_all([
            log.wait_durable(a.last_offset),
            log.wait_durable(b.last_offset),
        ])
        .await;
        for w in waits {
            let msg = assert_io(w, "wait_durable across the failed fsync");
            assert!(msg.contains("fsync failed"), "{msg}");
            assert!(msg.contains(&format!("os error {EIO}")), "{msg}");
            assert!(msg.contains("offsets from 6 on are not durable"), "{msg}");
        }
        assert_eq!(log.durable_end_offset(), durable_before);
        assert_eq!(log.high_watermark(), durable_before);
        let before = batches(&read_all(&log).await);
        assert_eq!(before.len(), 4, "the page cache still holds every write");

        // Sticky: later fsyncs would succeed, but nothing may claim durability any more.
        assert_io(log.flush().await, "flush after the fault");
        assert_io(
            log.wait_durable(a.last_offset).await,
            "wait after the fault",
        );
        assert_io(log.maybe_flush(2_000).await, "maybe_flush after the fault");
        let end = log.log_end_offset();
        assert_io(
            log.append(batch(4, 3, 1_000), opts(1_000)).await,
            "append after the fault",
        );
        assert_eq!(log.log_end_offset(), end, "a refused append wrote nothing");
        assert_eq!(log.durable_end_offset(), durable_before);
        assert_io(log.close().await, "close after the fault");
        drop(log);

        let log = Log::open(dir, no_roll_config()).await.unwrap();
        let after = batches(&read_all(&log).await);
        assert_recovered(&after, &before, durable_before);
        // The recovered log takes appends again, right after what it kept.
        let info = log.append(batch(9, 3, 1_000), opts(1_000)).await.unwrap();
        assert_eq!(info.base_offset, Offset(after.len() as i64 * 3));
        log.wait_durable(info.last_offset).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn failed_seal_fsync_is_sticky() {
    // The first data fsync is the seal of the first full segment (no waiter asked for one).
    if !isolated("failed_seal_fsync_is_sticky", (FSYNC_EIO_AFTER_VAR, "0")) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), small_config()).await.unwrap();
        let mut failed = None;
        for tag in 0..100 {
            match log.append(batch(tag, 3, 1_000), opts(1_000)).await {
                Ok(_) => {}
                Err(e) => {
                    failed = Some(tag);
                    let msg = assert_io(Err::<(), _>(e), "append that rolls");
                    assert!(msg.contains("fsync failed"), "{msg}");
                    assert!(msg.contains("offsets from 0 on are not durable"), "{msg}");
                    break;
                }
            }
        }
        assert!(failed.is_some(), "no append rolled a segment");
        assert_eq!(log.durable_end_offset(), Offset(0));
        let before = batches(&read_all(&log).await);
        assert_io(
            log.append(batch(100, 3, 1_000), opts(1_000)).await,
            "append after the failed seal",
        );
        assert_io(log.flush().await, "flush after the failed seal");
        drop(log);

        let log = Log::open(dir, small_config()).await.unwrap();
        let after = batches(&read_all(&log).await);
        assert_recovered(&after, &before, Offset(0));
        log.close().await.unwrap();
    });
}

#[test]
fn failed_write_leaves_the_log_unchanged() {
    // Append writes #1 and #2 succeed, #3 fails; all small enough to be inline pwrites.
    if !isolated(
        "failed_write_leaves_the_log_unchanged",
        (WRITE_EIO_AFTER_VAR, "2"),
    ) {
        return;
    }
    failed_write_leaves_the_log_unchanged_with(no_roll_config());
}

#[test]
fn failed_io_uring_write_leaves_the_log_unchanged() {
    // The same through io_uring writes only.
    if !isolated(
        "failed_io_uring_write_leaves_the_log_unchanged",
        (WRITE_EIO_AFTER_VAR, "2"),
    ) {
        return;
    }
    failed_write_leaves_the_log_unchanged_with(LogConfig {
        write_inline_max_bytes: 0,
        ..no_roll_config()
    });
}

/// Body of the two tests above: the injected EIO of append write #3 whichever write path
/// `config` picks.
fn failed_write_leaves_the_log_unchanged_with(config: LogConfig) {
    let inline = config.write_inline_max_bytes > 0;
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), config.clone()).await.unwrap();
        for tag in 0..2 {
            let info = log.append(batch(tag, 3, 1_000), opts(1_000)).await.unwrap();
            log.wait_durable(info.last_offset).await.unwrap();
        }
        assert_eq!(log.inline_write_count(), if inline { 2 } else { 0 });
        let end = log.log_end_offset();
        let msg = assert_io(
            log.append(batch(2, 3, 1_000), opts(1_000)).await,
            "append whose write fails",
        );
        assert!(msg.contains("00000000000000000000.log"), "{msg}");
        assert!(msg.contains(&format!("os error {EIO}")), "{msg}");
        assert_eq!(log.log_end_offset(), end, "a failed write commits nothing");
        assert_eq!(log.durable_end_offset(), end);
        let before = batches(&read_all(&log).await);
        assert_eq!(before.len(), 2);
        drop(log);

        let log = Log::open(dir, config).await.unwrap();
        let after = batches(&read_all(&log).await);
        assert_eq!(after, before, "exactly the committed batches come back");
        let info = log.append(batch(3, 3, 1_000), opts(1_000)).await.unwrap();
        assert_eq!(info.base_offset, end);
        log.close().await.unwrap();
    });
}

#[test]
fn failed_group_write_fails_every_append_of_it_and_commits_none() {
    // Write #1 (the first append, alone) succeeds; #2 (the seven appends that queued behind
    // it, written together through io_uring) fails.
    if !isolated(
        "failed_group_write_fails_every_append_of_it_and_commits_none",
        (WRITE_EIO_AFTER_VAR, "1"),
    ) {
        return;
    }
    let config = LogConfig {
        write_inline_max_bytes: 0,
        ..no_roll_config()
    };
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), config.clone()).await.unwrap();
        let results =
            join_all((0..8).map(|tag| log.append(batch(tag, 3, 1_000), opts(1_000)))).await;
        assert_eq!(results[0].as_ref().unwrap().base_offset, Offset(0));
        for (i, r) in results.iter().enumerate().skip(1) {
            match r {
                Err(e @ StorageError::Io(_)) => {
                    assert!(e.is_disk_fault());
                    assert!(e.to_string().contains("write of"), "append {i}: {e}");
                }
                other => panic!("append {i} of the failed write: {other:?}"),
            }
        }
        assert_eq!(log.segment_write_count(), 1);
        assert_eq!(
            log.log_end_offset(),
            Offset(3),
            "nothing of the failed write committed"
        );
        // The next append lands where the failed write would have: offsets and bytes go on.
        let info = log.append(batch(9, 3, 1_000), opts(1_000)).await.unwrap();
        assert_eq!(info.base_offset, Offset(3));
        let bytes = read_all(&log).await;
        let heads: Vec<i64> = storage::split_batches(&bytes)
            .map(|b| storage::BatchHeader::parse(b.unwrap()).unwrap().base_offset)
            .collect();
        assert_eq!(heads, vec![0, 3]);
        log.close().await.unwrap();
        let log = Log::open(dir, config).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(6));
    });
}
