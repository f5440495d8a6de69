//! The shard-wide sync batch (`storage::sync`): waiters of one loop turn share one fsync per
//! log, every dirty log's fsync starts in the same batch, and no waiter is told its offset is
//! durable before the log's durable end is past it. The batch hands its fsyncs to the kernel
//! when it closes, not at the end of the loop turn.
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

/// Yields a batch stays open for in the staggered tests (the broker's default is 0).
const PASSES: u32 = 4;

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

/// Spawns `APPENDERS` tasks (as the broker's connections are) that each yield `i` times, append
/// one batch and wait for it to be durable, with the batch or, without one, through the log's
/// own group commit; returns the offsets and what each wait returned.
async fn staggered_appends(log: &Rc<Log>, batch: Option<&SyncBatch>) -> Vec<(Offset, Offset)> {
    const APPENDERS: u32 = 3;
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|i| {
            let (log, batch) = (log.clone(), batch.cloned());
            compio::runtime::spawn(async move {
                for _ in 0..i {
                    yield_now().await;
                }
                let last = log
                    .append(batch_of(i), opts(1_000))
                    .await
                    .unwrap()
                    .last_offset;
                let durable = match batch {
                    Some(b) => b.wait_durable(&log, last).await.unwrap(),
                    None => log.wait_durable(last).await.unwrap(),
                };
                // What the answer may promise: the log itself says it is durable.
                assert!(log.durable_end_offset() > last);
                (last, durable)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn batch_of(tag: u32) -> bytes::BytesMut {
    batch(tag, 3, 1_000)
}

#[test]
fn appends_of_one_turn_share_one_fsync() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Without the batch, the first waiter's fsync starts before the later appends and
        // they need a second one (this is what the batch is for; if it stops being so, the
        // assertion below proves nothing).
        let alone = open(root.path(), "alone-0").await;
        staggered_appends(&alone, None).await;
        assert!(alone.fsync_count() >= 2, "{} fsyncs", alone.fsync_count());

        let log = open(root.path(), "batched-0").await;
        let batch = SyncBatch::with_passes(PASSES);
        for (last, durable) in staggered_appends(&log, Some(&batch)).await {
            assert!(durable > last);
        }
        assert_eq!(
            log.fsync_count(),
            1,
            "one fsync for the turn's three appends"
        );
        let stats = batch.stats();
        assert_eq!((stats.batches_total, stats.waiters_total), (1, 3));
        assert_eq!(stats.logs_synced_total, 1);
        // Already durable: answered at once, no batch, no fsync.
        assert_eq!(
            batch.wait_durable(&log, Offset(0)).await.unwrap(),
            Offset(9)
        );
        assert_eq!(batch.stats().waiters_total, 3);
        assert_eq!(log.fsync_count(), 1);
    });
}

#[test]
fn one_batch_starts_every_dirty_logs_fsync() {
    const LOGS: usize = 8;
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut logs = Vec::new();
        for p in 0..LOGS {
            logs.push(open(root.path(), &format!("t-{p}")).await);
        }
        let batch = SyncBatch::with_passes(PASSES);
        let tasks: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(p, log)| {
                let (log, batch) = (log.clone(), batch.clone());
                compio::runtime::spawn(async move {
                    for _ in 0..p % 3 {
                        yield_now().await;
                    }
                    let last = log
                        .append(batch_of(p as u32), opts(1_000))
                        .await
                        .unwrap()
                        .last_offset;
                    let durable = batch.wait_durable(&log, last).await.unwrap();
                    assert!(durable > last && log.durable_end_offset() > last);
                })
            })
            .collect();
        // Right after the batch closed, every log's fsync is in flight at once.
        let probe = {
            let (logs, batch) = (logs.clone(), batch.clone());
            compio::runtime::spawn(async move {
                // Bounded: a broken batch must fail this test, not hang it.
                for _ in 0..100_000 {
                    if batch.stats().batches_total > 0 {
                        break;
                    }
                    yield_now().await;
                }
                logs.iter()
                    .filter(|l| l.fsync_in_flight().is_some() || l.fsync_count() > 0)
                    .count()
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            probe.await.unwrap(),
            LOGS,
            "fsyncs started by the batch's close"
        );
        let stats = batch.stats();
        assert_eq!(stats.batches_total, 1);
        assert_eq!(stats.waiters_total, LOGS as u64);
        assert_eq!(stats.logs_synced_total, LOGS as u64);
        for log in &logs {
            assert_eq!(log.fsync_count(), 1);
            assert_eq!(log.durable_end_offset(), Offset(3));
        }
    });
}

#[test]
fn waiters_across_batches_never_see_a_shorter_durable_end() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = open(root.path(), "t-0").await;
        let batch = SyncBatch::with_passes(PASSES);
        let answers = Rc::new(std::cell::RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..24u32)
            .map(|i| {
                let (log, batch, answers) = (log.clone(), batch.clone(), answers.clone());
                compio::runtime::spawn(async move {
                    // Spread over several batches (each closes after <= BATCH_PASSES_MAX).
                    for _ in 0..(i * 2) {
                        yield_now().await;
                    }
                    let last = log
                        .append(batch_of(i), opts(1_000))
                        .await
                        .unwrap()
                        .last_offset;
                    batch.wait_durable(&log, last).await.unwrap();
                    answers.borrow_mut().push((last, log.durable_end_offset()));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let answers = answers.borrow();
        assert_eq!(answers.len(), 24);
        for w in answers.windows(2) {
            assert!(w[1].1 >= w[0].1, "durable end went back: {answers:?}");
        }
        for (last, durable) in answers.iter() {
            assert!(durable > last, "answered before durable: {answers:?}");
        }
        assert!(batch.stats().batches_total >= 2, "{:?}", batch.stats());
        assert_eq!(log.durable_end_offset(), log.log_end_offset());
    });
}

#[test]
fn the_default_batch_closes_in_its_turn_and_answers_only_durable_offsets() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = open(root.path(), "t-0").await;
        let batch = SyncBatch::new();
        // Four appenders of one turn, and a fifth that comes many turns later.
        let tasks: Vec<_> = [0u32, 0, 0, 0, 50]
            .into_iter()
            .enumerate()
            .map(|(i, yields)| {
                let (log, batch) = (log.clone(), batch.clone());
                compio::runtime::spawn(async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                    let last = log
                        .append(batch_of(i as u32), opts(1_000))
                        .await
                        .unwrap()
                        .last_offset;
                    let durable = batch.wait_durable(&log, last).await.unwrap();
                    assert!(durable > last && log.durable_end_offset() > last);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // The late appender came after the first batch closed: a batch of its own. (How many
        // fsyncs the four of the first turn need depends on whether their writes completed
        // inline before the batch's task ran: that is what `with_passes` is for.)
        assert!(batch.stats().batches_total >= 2, "{:?}", batch.stats());
        assert!(log.fsync_count() >= 2);
        assert_eq!(log.durable_end_offset(), Offset(15));
    });
}

#[test]
fn appends_still_being_written_when_the_batch_closes_share_its_fsync() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = open(root.path(), "inflight-0").await;
        let batch = SyncBatch::new();
        // Four producers of one loop turn: the first append is written alone, the other three
        // queue behind it and land one pass later, after the first producer has joined the
        // batch. The batch waits for them, so one fsync covers all four.
        let producers = (0..4).map(|i| {
            let (log, batch) = (&log, &batch);
            async move {
                let last = log
                    .append(batch_of(i), opts(1_000))
                    .await
                    .unwrap()
                    .last_offset;
                let durable = batch.wait_durable(log, last).await.unwrap();
                assert!(durable > last);
                assert!(log.durable_end_offset() > last);
                last
            }
        });
        let lasts = futures_util::future::join_all(producers).await;
        assert_eq!(lasts, vec![Offset(2), Offset(5), Offset(8), Offset(11)]);
        assert!(
            log.segment_write_count() < 4,
            "the three queued appends were one write"
        );
        assert_eq!(
            log.fsync_count(),
            1,
            "one fsync for the turn's four appends"
        );
        assert_eq!(batch.stats().batches_total, 1);
    });
}

/// Waits (bounded) until every early-writeback op the log started has completed.
async fn writeback_settled(log: &Log) {
    for _ in 0..5_000 {
        let s = log.writeback_stats();
        if s.completed_total == s.started_total {
            return;
        }
        compio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("writeback never completed: {:?}", log.writeback_stats());
}

#[test]
fn early_writeback_starts_at_its_threshold_and_never_counts_as_durable() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let one = batch_of(0).len() as u64;
        let cfg = LogConfig {
            writeback_start_bytes: 3 * one,
            ..config()
        };
        let log = Log::open(root.path().join("wb-0"), cfg).await.unwrap();
        let mut last = Offset(0);
        for i in 0..2 {
            last = log
                .append(batch_of(i), opts(1_000))
                .await
                .unwrap()
                .last_offset;
        }
        assert_eq!(
            log.writeback_stats().started_total,
            0,
            "below the threshold"
        );
        for i in 2..7 {
            last = log
                .append(batch_of(i), opts(1_000))
                .await
                .unwrap()
                .last_offset;
            writeback_settled(&log).await;
        }
        let stats = log.writeback_stats();
        // Started at 3 and 6 batches: each op covers what was appended since the last one.
        assert_eq!(
            (stats.started_total, stats.failed_total),
            (2, 0),
            "{stats:?}"
        );
        assert_eq!(stats.bytes_total, 6 * one, "{stats:?}");
        // Writeback is no fsync: nothing is durable until an fdatasync says so.
        assert_eq!(log.fsync_count(), 0);
        assert_eq!(log.durable_end_offset(), Offset(0));
        let durable = SyncBatch::new().wait_durable(&log, last).await.unwrap();
        assert!(durable > last && log.durable_end_offset() > last);
        assert_eq!(log.fsync_count(), 1);
    });
}

#[test]
fn with_early_writeback_acks_all_waiters_are_answered_only_once_durable() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Every write starts writeback (one op in flight at most; later ranges wait for it).
        let cfg = LogConfig {
            writeback_start_bytes: 1,
            ..config()
        };
        let log = Rc::new(Log::open(root.path().join("wb-1"), cfg).await.unwrap());
        let batch = SyncBatch::new();
        let appended = std::cell::Cell::new(0u64);
        let producers = (0..4).map(|p| {
            let (log, batch, appended) = (&log, &batch, &appended);
            async move {
                let mut seen = Offset(-1);
                for i in 0..5 {
                    let info = log.append(batch_of(p * 10 + i), opts(1_000)).await.unwrap();
                    appended.set(appended.get() + u64::from(info.bytes));
                    let last = info.last_offset;
                    let durable = batch.wait_durable(log, last).await.unwrap();
                    assert!(durable > last && log.durable_end_offset() > last);
                    // A producer's answers never go back.
                    assert!(durable >= seen);
                    seen = durable;
                }
            }
        });
        futures_util::future::join_all(producers).await;
        writeback_settled(&log).await;
        let stats = log.writeback_stats();
        assert!(stats.started_total >= 1, "{stats:?}");
        assert!(stats.bytes_total <= appended.get(), "{stats:?}");
        assert_eq!(log.durable_end_offset(), Offset(60));
    });
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
