//! A failed fsync in a sync batch fails the waiters of that log only, and never reports its
//! offsets durable, with early writeback on (it must neither mask the failure nor count as
//! durable) (own test binary: the fault hook is armed once per process).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::rc::Rc;

use common::*;
use storage::fault::FSYNC_EIO_AFTER_VAR;
use storage::sync::SyncBatch;
use storage::{Log, LogConfig, Offset};

#[test]
fn a_failed_fsync_fails_only_its_logs_waiters() {
    // The first segment data fsync of this process fails with EIO (read at the first open).
    std::env::set_var(FSYNC_EIO_AFTER_VAR, "0");
    const LOGS: usize = 3;
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let config = LogConfig {
            flush_messages: u64::MAX,
            writeback_start_bytes: 1,
            ..LogConfig::default()
        };
        let mut logs = Vec::new();
        for p in 0..LOGS {
            let log = Log::open(root.path().join(format!("t-{p}")), config.clone())
                .await
                .unwrap();
            logs.push(Rc::new(log));
        }
        let sync_batch = SyncBatch::new();
        let tasks: Vec<_> = logs
            .iter()
            .map(|log| {
                let (log, sync) = (log.clone(), sync_batch.clone());
                compio::runtime::spawn(async move {
                    let last = log.append(batch(1, 3, 1_000), opts(1_000)).await.unwrap();
                    sync.wait_durable(&log, last.last_offset).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(sync_batch.stats().batches_total, 1);
        let failed: Vec<usize> = (0..LOGS).filter(|&p| results[p].is_err()).collect();
        assert_eq!(failed.len(), 1, "{results:?}");
        for (p, log) in logs.iter().enumerate() {
            if p == failed[0] {
                assert_eq!(log.durable_end_offset(), Offset(0), "nothing made durable");
                // Sticky: a later wait fails too instead of being answered.
                assert!(sync_batch.wait_durable(log, Offset(2)).await.is_err());
            } else {
                assert_eq!(results[p].as_ref().unwrap(), &Offset(3));
                assert_eq!(log.durable_end_offset(), Offset(3));
            }
        }
    });
}
