//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use storage::{AppendOptions, BatchBuilder, Log, LogConfig, Offset};

pub fn rt() -> compio::runtime::Runtime {
    compio::runtime::Runtime::new().unwrap()
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 2_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// One batch with `n` records whose values encode `tag`.
pub fn batch(tag: u32, n: u32, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        let v = format!("value-{tag}-{i}-padding-padding");
        b = b.record_at(
            ts + i64::from(i),
            Some(format!("k{i}").as_bytes()),
            Some(v.as_bytes()),
            &[],
        );
    }
    b.build()
}

pub fn opts(now_ms: i64) -> AppendOptions {
    AppendOptions {
        leader_epoch: 1,
        now_ms,
    }
}

/// Appends `count` batches of 3 records; returns (base offset, stored size) of each.
pub async fn fill(log: &Log, count: u32) -> Vec<(i64, u32)> {
    let mut out = Vec::new();
    for i in 0..count {
        let info = log
            .append(batch(i, 3, 1_000 + i64::from(i) * 100), opts(5_000))
            .await
            .unwrap();
        out.push((info.base_offset.0, info.bytes));
    }
    out
}

pub async fn read_all(log: &Log) -> Bytes {
    log.read(log.log_start_offset(), u32::MAX, true, Offset(i64::MAX))
        .await
        .unwrap()
        .read_bytes()
        .await
        .unwrap()
}

pub fn part_dir(root: &Path) -> PathBuf {
    root.join("t-0")
}

pub fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}
