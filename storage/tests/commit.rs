//! Group commit and the flush policy under concurrent appends: fsyncs are shared, appends
//! do not wait for them, and `flush.messages` counts messages, not fsync opportunities.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use futures_util::future::join_all;
use storage::{Log, LogConfig, Offset, StorageError};

/// Large segments: no roll (and no seal fsync) gets in the way of counting fsyncs.
fn config(flush_messages: u64) -> LogConfig {
    LogConfig {
        flush_messages,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Waits until no fsync is in flight (a finishing fsync may chain the next one).
async fn settle(log: &Log) {
    while let Some(end) = log.fsync_in_flight() {
        log.wait_durable(Offset(end.0 - 1)).await.unwrap();
    }
}

#[test]
fn flush_messages_counts_messages_with_concurrent_appenders() {
    const APPENDERS: u32 = 4;
    const APPENDS_EACH: u32 = 64;
    const RECORDS: u32 = 16;
    const FLUSH_MESSAGES: u64 = 256;
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), config(FLUSH_MESSAGES))
            .await
            .unwrap();
        let appender = |k: u32| {
            let log = &log;
            async move {
                for i in 0..APPENDS_EACH {
                    log.append(batch(k * 1000 + i, RECORDS, 1_000), opts(1_000))
                        .await
                        .unwrap();
                }
            }
        };
        join_all((0..APPENDERS).map(appender)).await;
        settle(&log).await;
        let messages = u64::from(APPENDERS * APPENDS_EACH * RECORDS);
        assert_eq!(log.log_end_offset(), Offset(messages as i64));
        let fsyncs = log.fsync_count();
        // Each policy fsync covers at least flush.messages new messages; the bug this
        // guards against made it one fsync per append (256 here).
        assert!(
            (1..=messages / FLUSH_MESSAGES).contains(&fsyncs),
            "{fsyncs} fsyncs for {messages} messages at flush.messages={FLUSH_MESSAGES}"
        );
        let unflushed = log.log_end_offset().0 - log.durable_end_offset().0;
        assert!(
            (unflushed as u64) < FLUSH_MESSAGES,
            "the policy left {unflushed} messages unflushed"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_waiters_share_one_fsync() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), config(u64::MAX))
            .await
            .unwrap();
        let mut lasts = Vec::new();
        for i in 0..8 {
            let info = log.append(batch(i, 3, 1_000), opts(1_000)).await.unwrap();
            lasts.push(info.last_offset);
        }
        assert_eq!(log.fsync_count(), 0, "no policy fsync");
        let ends = join_all(lasts.iter().map(|&o| log.wait_durable(o))).await;
        for end in ends {
            assert_eq!(end.unwrap(), Offset(24));
        }
        assert_eq!(log.fsync_count(), 1, "eight waiters, one fsync");
        // Already durable: no new fsync.
        assert_eq!(log.wait_durable(Offset(3)).await.unwrap(), Offset(24));
        assert_eq!(log.flush().await.unwrap(), Offset(24));
        assert_eq!(log.fsync_count(), 1);
        assert!(matches!(
            log.wait_durable(Offset(24)).await,
            Err(StorageError::OffsetOutOfRange { offset: 24, .. })
        ));
    });
}

#[test]
fn a_waiter_past_the_fsync_in_flight_gets_the_next_one() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), config(u64::MAX))
            .await
            .unwrap();
        let a = log.append(batch(1, 3, 1_000), opts(1_000)).await.unwrap();
        let first = log.wait_durable(a.last_offset);
        let second = async {
            let b = log.append(batch(2, 3, 1_000), opts(1_000)).await.unwrap();
            (b.last_offset, log.wait_durable(b.last_offset).await)
        };
        let (first, (b_last, second)) = futures_util::join!(first, second);
        assert!(first.unwrap() > a.last_offset);
        assert_eq!(second.unwrap(), Offset(b_last.0 + 1));
        assert_eq!(log.durable_end_offset(), Offset(6));
        assert_eq!(
            log.fsync_count(),
            2,
            "the first fsync did not cover the second append"
        );
    });
}

#[test]
fn appends_do_not_wait_for_the_policy_fsync() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), config(1)).await.unwrap();
        let a = log.append(batch(1, 3, 1_000), opts(1_000)).await.unwrap();
        assert_eq!(log.fsync_in_flight(), Some(Offset(3)));
        // The next append lands while that fsync is in flight and asks for another one.
        let b = log.append(batch(2, 3, 1_000), opts(1_000)).await.unwrap();
        assert!(b.base_offset > a.last_offset);
        settle(&log).await;
        assert_eq!(
            log.durable_end_offset(),
            Offset(6),
            "the finishing fsync chained the next"
        );
        assert!(log.fsync_count() <= 2);
        // Index entries written behind are on disk after close and reload identically.
        let before = read_all(&log).await;
        log.close().await.unwrap();
        let log = Log::open(part_dir(root.path()), config(1)).await.unwrap();
        assert!(log.recovery_report().clean_shutdown);
        assert!(log.recovery_report().rebuilt_indexes.is_empty());
        assert_eq!(read_all(&log).await, before);
    });
}
