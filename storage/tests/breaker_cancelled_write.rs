//! B22 (session 10 breaker): an append holder dropped while its io_uring write is in flight
//! (the broker drops a connection's request when the connection fails mid-request) must not
//! let that write land over the next holder's committed bytes. The next holder writes at the
//! same position (nothing of the dropped write was committed), here inline with `pwritev`;
//! dropping a compio op only queues an io_uring cancel, and a write an io-wq worker has picked
//! up completes anyway, possibly after the inline one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use std::time::Duration;

use storage::{BatchBuilder, BatchHeader, Log, LogConfig};

/// Attempts: each drops the holder at another moment after its write was queued (0-39 µs).
/// Before the fix 17 of 400 attempts lost the acknowledged append on the test VM.
const ATTEMPTS: u64 = 600;

/// A ~260 KB batch (written through io_uring), tagged by its base timestamp.
fn big(ts: i64) -> bytes::BytesMut {
    let mut b = BatchBuilder::new(ts);
    let value = vec![b'x'; 1024];
    for i in 0..256 {
        b = b.record_at(ts + i, None, Some(&value), &[]);
    }
    b.build()
}

#[test]
fn a_dropped_holders_write_never_lands_over_the_next_append() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let config = LogConfig {
            // The big batch goes through io_uring, the small one inline.
            write_inline_max_bytes: 64 * 1024,
            ..LogConfig::default()
        };
        let dir = root.path().join("cancel-0");
        let log = Log::open(dir.clone(), config).await.unwrap();
        let mut overwritten = Vec::new();
        let mut position = 0u64;
        for i in 0..ATTEMPTS {
            let tag = i as i64;
            let mut holder = Box::pin(log.append(big(1_000_000 + tag), opts(5_000)));
            assert!(futures_util::poll!(&mut holder).is_pending());
            let mut next = Box::pin(log.append(batch(0, 1, 2_000 + tag), opts(5_000)));
            assert!(futures_util::poll!(&mut next).is_pending());
            // Let the driver submit the holder's write (or not), then drop the holder.
            let wait_us = (i * 7_919) % 40;
            if wait_us > 0 {
                compio::time::sleep(Duration::from_micros(wait_us)).await;
            }
            drop(holder);
            let info = next.await.unwrap();
            // Time for a late write to land.
            compio::time::sleep(Duration::from_millis(3)).await;
            let file = std::fs::read(dir.join("00000000000000000000.log")).unwrap();
            let header = BatchHeader::parse(&file[position as usize..]).unwrap();
            if header.base_timestamp != 2_000 + tag {
                overwritten.push((i, wait_us, info.base_offset.0));
            }
            position += u64::from(info.bytes);
        }
        assert_eq!(
            overwritten,
            vec![],
            "(attempt, µs before the drop, acknowledged offset) whose bytes the dropped write \
             replaced"
        );
        // Everything acknowledged reads back, in order.
        assert_eq!(log.log_end_offset().0, ATTEMPTS as i64);
    });
}
