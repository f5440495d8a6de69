//! The sync batch hands its fsyncs to the kernel when it closes, not at the end of the loop
//! turn: a task that runs after the batch's task in the same turn already finds them
//! consumed from the submission ring. The batch still starts one fsync per dirty log for all
//! the waiters of its turn, and answers no waiter before the fsync covering its offset ended.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::os::fd::AsRawFd;
use std::rc::Rc;

use common::*;
use storage::sync::SyncBatch;
use storage::{yield_now, Log, LogConfig, Offset};

/// No flush policy: every fsync here is one a waiter asked for.
fn config() -> LogConfig {
    LogConfig {
        flush_messages: u64::MAX,
        ..LogConfig::default()
    }
}

async fn open(root: &std::path::Path, name: &str) -> Rc<Log> {
    Rc::new(Log::open(root.join(name), config()).await.unwrap())
}

/// The kernel's head of this thread's io_uring submission ring (`SqHead` in the ring's
/// fdinfo): how many SQEs the kernel has consumed so far. compio submits only when its driver
/// polls, between loop turns, unless something flushes the ring.
fn sq_head() -> u64 {
    let fd = compio::runtime::Runtime::with_current(|rt| rt.as_raw_fd());
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("SqHead:"))
        .unwrap_or_else(|| panic!("no SqHead in the ring's fdinfo: {info}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_batch_submits_its_fsyncs_in_the_turn_it_closes() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (a, b) = (
            open(root.path(), "a-0").await,
            open(root.path(), "b-0").await,
        );
        let mut lasts = Vec::new();
        for (i, log) in [&a, &a, &b].into_iter().enumerate() {
            let last = log
                .append(batch(i as u32, 3, 1_000), opts(1_000))
                .await
                .unwrap()
                .last_offset;
            lasts.push((log.clone(), last));
        }
        let batch = SyncBatch::new();
        // Three waiters of one turn (two on `a`, one on `b`); the first to run opens the batch,
        // whose task goes to the back of the run queue.
        let waiters: Vec<_> = lasts
            .iter()
            .map(|(log, last)| {
                let (log, last, batch) = (log.clone(), *last, batch.clone());
                compio::runtime::spawn(async move {
                    let durable = batch.wait_durable(&log, last).await.unwrap();
                    // Answered only once the fsync covering `last` ended.
                    assert!(durable > last && log.durable_end_offset() > last);
                    assert!(log.fsync_count() >= 1);
                })
            })
            .collect();
        // Queued behind the waiters: notes the ring's head, then yields to the back of the
        // queue, behind the batch's task, and runs again in the same turn, after it closed.
        let probe = compio::runtime::spawn(async move {
            let before = sq_head();
            yield_now().await;
            sq_head() - before
        });
        let consumed = probe.await.unwrap();
        for w in waiters {
            w.await.unwrap();
        }
        // Without the batch's flush the fsyncs sat in the ring (or were not even pushed)
        // until the turn ended: the probe saw nothing consumed.
        assert!(consumed >= 2, "SQEs consumed during the turn: {consumed}");
        // Group commit unchanged: one batch, one fsync per dirty log for the three waiters.
        let stats = batch.stats();
        assert_eq!((stats.batches_total, stats.logs_synced_total), (1, 2));
        assert_eq!((a.fsync_count(), b.fsync_count()), (1, 1));
        assert_eq!(a.durable_end_offset(), a.log_end_offset());
        assert_eq!(b.durable_end_offset(), Offset(3));
    });
}
