//! Log cleaner: a model test (random keyed produce with tombstones, several codecs and
//! segments, random cleans, restarts and crashes; after each clean the log must equal "the
//! latest record per key below the clean end, plus everything above it", offsets preserved),
//! crash tests at every step of the swap, tombstone horizons, min lag and a corrupt batch.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use bytes::BytesMut;
use common::*;
use proptest::prelude::*;
use storage::cleaner::records::{
    check_stored, compress_batch, delete_horizon, parse_records, records_section,
};
use storage::cleaner::{CleanOptions, CleanStats, CleanerLimits, CompactionConfig, CrashPoint};
use storage::{BatchBuilder, BatchHeader, Log, LogConfig, StorageError};

/// A record as a consumer sees it: (offset, key, value, timestamp).
type Rec = (i64, Vec<u8>, Option<Vec<u8>>, i64);

fn log_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max: segment_bytes,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn compaction(min_lag_ms: i64, delete_retention_ms: i64) -> CompactionConfig {
    CompactionConfig {
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms,
        min_compaction_lag_ms: min_lag_ms,
        max_compaction_lag_ms: i64::MAX,
    }
}

fn options(now_ms: i64, config: CompactionConfig, dedupe_bytes: usize) -> CleanOptions<'static> {
    CleanOptions {
        now_ms,
        config,
        limits: CleanerLimits {
            dedupe_buffer_bytes: dedupe_bytes,
            io_buffer_bytes: 4096,
            ..CleanerLimits::default()
        },
        pace: None,
        crash_at: None,
        is_last_producer_batch: None,
        is_aborted_batch: None,
        force: false,
    }
}

/// One producer batch: records (key, value or tombstone) at `ts`, compressed with `codec`.
fn keyed_batch(recs: &[(u8, Option<u16>)], ts: i64, codec: i16) -> BytesMut {
    let mut b = BatchBuilder::new(ts).producer(1000, 0, 0);
    for (i, (k, v)) in recs.iter().enumerate() {
        let key = format!("key-{k}");
        let val = v.map(|v| format!("value-{v}-{}", "x".repeat(usize::from(v % 40))));
        b = b.record_at(
            ts + i as i64,
            Some(key.as_bytes()),
            val.as_deref().map(str::as_bytes),
            &[],
        );
    }
    let plain = b.build();
    if codec == 0 {
        return plain;
    }
    BytesMut::from(&compress_batch(&plain, codec).unwrap()[..])
}

/// Every record in the log, decoding (and checking) every batch of every codec.
async fn read_records(log: &Log) -> Vec<Rec> {
    let bytes = read_all(log).await;
    let mut out = Vec::new();
    let mut prev_last = -1;
    for b in storage::split_batches(&bytes) {
        let b = b.unwrap();
        let info = check_stored(b).unwrap();
        let h = info.header;
        assert!(h.base_offset > prev_last, "batches in offset order");
        prev_last = h.last_offset();
        let section = records_section(b, &h, 1 << 26).unwrap();
        for r in parse_records(&section, &h).unwrap() {
            out.push((
                h.base_offset + i64::from(r.offset_delta),
                r.key.unwrap().to_vec(),
                r.value.map(<[u8]>::to_vec),
                h.base_timestamp + r.timestamp_delta,
            ));
        }
    }
    out
}

/// The model: what the log must hold after a clean that ended at `end`.
fn expected(all: &[Rec], end: i64) -> Vec<Rec> {
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    for (o, k, _, _) in all.iter().filter(|r| r.0 < end) {
        latest.insert(k, *o);
    }
    all.iter()
        .filter(|(o, k, _, _)| *o >= end || latest.get(k.as_slice()) == Some(o))
        .cloned()
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Produce(Vec<(u8, Option<u16>)>, i16),
    Roll,
    Clean,
    Reopen { graceful: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let rec = (0u8..24, prop::option::weighted(0.8, any::<u16>()));
    prop_oneof![
        8 => (prop::collection::vec(rec, 1..6), 0i16..5).prop_map(|(r, c)| Op::Produce(r, c)),
        2 => Just(Op::Roll),
        3 => Just(Op::Clean),
        1 => any::<bool>().prop_map(|graceful| Op::Reopen { graceful }),
    ]
}

fn check_clean(all: &[Rec], got: &[Rec], stats: &CleanStats, now: i64, min_lag: i64) {
    assert_eq!(
        got,
        expected(all, stats.end_offset).as_slice(),
        "after clean {stats:?}"
    );
    for r in all.iter().filter(|r| r.3 > now - min_lag) {
        assert!(
            r.0 >= stats.end_offset,
            "record {r:?} newer than the lag was in the cleaned range"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn cleaned_log_equals_latest_per_key(
        ops in prop::collection::vec(op(), 1..60),
        small_map in any::<bool>(),
        min_lag in prop_oneof![Just(0i64), Just(30i64)],
    ) {
        let root = tempfile::tempdir().unwrap();
        let dir = part_dir(root.path());
        let dedupe = if small_map { 12 * 32 } else { 1 << 20 };
        rt().block_on(async {
            let mut log = Log::open(dir.clone(), log_config(700)).await.unwrap();
            let mut all: Vec<Rec> = Vec::new();
            let mut visible: Vec<Rec> = Vec::new();
            let mut now = 10_000i64;
            for op in ops {
                match op {
                    Op::Produce(recs, codec) => {
                        now += 10;
                        let info = log.append(keyed_batch(&recs, now, codec), opts(now)).await.unwrap();
                        for (i, (k, v)) in recs.iter().enumerate() {
                            let r: Rec = (
                                info.base_offset.0 + i as i64,
                                format!("key-{k}").into_bytes(),
                                v.map(|v| format!("value-{v}-{}", "x".repeat(usize::from(v % 40))).into_bytes()),
                                now + i as i64,
                            );
                            all.push(r.clone());
                            visible.push(r);
                        }
                    }
                    Op::Roll => log.roll().await.unwrap(),
                    Op::Clean => {
                        now += 5;
                        let stats = log.clean(options(now, compaction(min_lag, i64::MAX / 4), dedupe)).await.unwrap();
                        let got = read_records(&log).await;
                        check_clean(&all, &got, &stats, now, min_lag);
                        visible = got;
                    }
                    Op::Reopen { graceful } => {
                        if graceful {
                            log.close().await.unwrap();
                        }
                        drop(log);
                        log = Log::open(dir.clone(), log_config(700)).await.unwrap();
                        assert_eq!(read_records(&log).await, visible, "after reopen");
                    }
                }
            }
            // A final full clean (everything sealed) reaches the model's end state.
            log.roll().await.unwrap();
            loop {
                now += 5;
                let stats = log.clean(options(now + min_lag, compaction(min_lag, i64::MAX / 4), dedupe)).await.unwrap();
                let got = read_records(&log).await;
                check_clean(&all, &got, &stats, now + min_lag, min_lag);
                if !stats.map_full {
                    break;
                }
            }
        });
    }
}

/// Fills a log with many overwrites across several segments; returns the records.
async fn fill_overwrites(log: &Log, batches: u32, codec: i16) -> Vec<Rec> {
    let mut all = Vec::new();
    for i in 0..batches {
        let recs: Vec<(u8, Option<u16>)> = (0..4)
            .map(|j| {
                (
                    ((i * 4 + j) % 10) as u8,
                    if (i + j) % 7 == 0 {
                        None
                    } else {
                        Some((i * 4 + j) as u16)
                    },
                )
            })
            .collect();
        let ts = 1_000 + i64::from(i);
        let info = log
            .append(keyed_batch(&recs, ts, codec), opts(ts))
            .await
            .unwrap();
        for (n, (k, v)) in recs.iter().enumerate() {
            all.push((
                info.base_offset.0 + n as i64,
                format!("key-{k}").into_bytes(),
                v.map(|v| format!("value-{v}-{}", "x".repeat(usize::from(v % 40))).into_bytes()),
                ts + n as i64,
            ));
        }
    }
    log.roll().await.unwrap();
    all
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_crash_at_any_step_of_the_swap_leaves_before_or_after() {
    let steps = [
        CrashPoint::CleanedWritten,
        CrashPoint::IndexSwapRenamed,
        CrashPoint::SwapCommitted,
        CrashPoint::OldDeleted,
        CrashPoint::IndexInstalled,
        CrashPoint::Installed,
    ];
    for (i, step) in steps.into_iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let dir = part_dir(root.path());
        rt().block_on(async {
            let log = Log::open(dir.clone(), log_config(900)).await.unwrap();
            fill_overwrites(&log, 40, (i % 5) as i16).await;
            assert!(log.segment_count() > 3);
            // Large segments from now on: every sealed segment is one cleaning group.
            log.set_config(log_config(1 << 30));
            let before = read_records(&log).await;
            log.close().await.unwrap();
            drop(log);
            // The same clean, uninterrupted, on a copy: the "after" state.
            let copy = root.path().join("copy-0");
            copy_dir(&dir, &copy);
            let other = Log::open(copy, log_config(1 << 30)).await.unwrap();
            other
                .clean(options(5_000, compaction(0, i64::MAX / 4), 1 << 20))
                .await
                .unwrap();
            let after = read_records(&other).await;
            assert_ne!(before, after, "the clean changes something");

            let log = Log::open(dir.clone(), log_config(1 << 30)).await.unwrap();
            let mut o = options(5_000, compaction(0, i64::MAX / 4), 1 << 20);
            o.crash_at = Some(step);
            let err = log.clean(o).await.unwrap_err();
            assert!(err.to_string().contains("simulated crash"), "{err}");
            drop(log); // the process dies: no close
            let log = Log::open(dir.clone(), log_config(1 << 30)).await.unwrap();
            let got = read_records(&log).await;
            let committed = !matches!(
                step,
                CrashPoint::CleanedWritten | CrashPoint::IndexSwapRenamed
            );
            assert_eq!(
                got,
                if committed {
                    after.clone()
                } else {
                    before.clone()
                },
                "crash after {step:?}"
            );
            for suffix in [".cleaned", ".swap"] {
                assert!(
                    files_with(&dir, suffix).is_empty(),
                    "{suffix} files left after {step:?}"
                );
            }
            // Cleaning again converges to the same state.
            log.clean(options(5_000, compaction(0, i64::MAX / 4), 1 << 20))
                .await
                .unwrap();
            assert_eq!(read_records(&log).await, after, "re-clean after {step:?}");
            log.append(keyed_batch(&[(1, Some(1))], 9_000, 0), opts(9_000))
                .await
                .unwrap();
        });
    }
}

#[test]
fn tombstones_stay_until_their_delete_horizon_then_go() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(1 << 20))
            .await
            .unwrap();
        log.append(
            keyed_batch(&[(1, Some(1)), (2, Some(2))], 100, 0),
            opts(100),
        )
        .await
        .unwrap();
        log.append(keyed_batch(&[(1, None)], 200, 3), opts(200))
            .await
            .unwrap();
        log.roll().await.unwrap();
        let cfg = compaction(0, 500);
        let stats = log
            .clean(options(1_000, cfg.clone(), 1 << 20))
            .await
            .unwrap();
        assert_eq!(stats.next_delete_horizon_ms, Some(1_500));
        let got = read_records(&log).await;
        assert_eq!(
            got.iter().map(|r| (r.0, r.2.is_some())).collect::<Vec<_>>(),
            vec![(1, true), (2, false)]
        );
        assert_eq!(
            got[1].3, 200,
            "record timestamps survive the re-based horizon"
        );
        let bytes = read_all(&log).await;
        let last = storage::split_batches(&bytes).last().unwrap().unwrap();
        let h = BatchHeader::parse(last).unwrap();
        assert_eq!((delete_horizon(&h), h.compression()), (Some(1_500), 3));
        // Before the horizon a forced pass keeps it; after, it goes.
        let mut o = options(1_400, cfg.clone(), 1 << 20);
        o.force = true;
        log.clean(o).await.unwrap();
        assert_eq!(read_records(&log).await.len(), 2);
        let mut o = options(1_600, cfg, 1 << 20);
        o.force = true;
        let stats = log.clean(o).await.unwrap();
        assert_eq!(stats.tombstones_removed, 1);
        let got = read_records(&log).await;
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1]);
        // The emptied batch stays as an empty batch: the log's offsets still end at 3.
        let bytes = read_all(&log).await;
        let last = storage::split_batches(&bytes).last().unwrap().unwrap();
        let h = BatchHeader::parse(last).unwrap();
        assert_eq!((h.record_count, h.last_offset()), (0, 2));
        assert_eq!(log.log_end_offset().0, 3);
    });
}

#[test]
fn a_fetch_into_a_gap_returns_the_next_batch() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(400))
            .await
            .unwrap();
        let all = fill_overwrites(&log, 30, 0).await;
        log.clean(options(5_000, compaction(0, i64::MAX / 4), 1 << 20))
            .await
            .unwrap();
        let got = read_records(&log).await;
        assert!(got.len() < all.len());
        let kept: Vec<i64> = got.iter().map(|r| r.0).collect();
        let gap = (0..*kept.last().unwrap())
            .find(|o| !kept.contains(o))
            .unwrap();
        let slice = log
            .read(
                storage::Offset(gap),
                1 << 20,
                true,
                storage::Offset(i64::MAX),
            )
            .await
            .unwrap();
        let bytes = slice.read_bytes().await.unwrap();
        let first = BatchHeader::parse(&bytes).unwrap();
        assert!(
            first.last_offset() >= gap,
            "batch {first:?} for offset {gap}"
        );
        // Groups are sized by the segments' sizes before cleaning (as Kafka's), so the
        // shrunk segments merge on the next pass.
        let count = log.segment_count();
        let mut o = options(5_001, compaction(0, i64::MAX / 4), 1 << 20);
        o.force = true;
        log.clean(o).await.unwrap();
        assert!(
            log.segment_count() < count,
            "{} segments, {count} before",
            log.segment_count()
        );
        assert_eq!(read_records(&log).await, got);
    });
}

#[test]
fn a_corrupt_batch_stops_the_clean_and_touches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = part_dir(root.path());
    rt().block_on(async {
        let log = Log::open(dir.clone(), log_config(600)).await.unwrap();
        fill_overwrites(&log, 20, 2).await;
        log.close().await.unwrap();
    });
    // Flip a byte inside the records of the second segment's first batch.
    let logs = files_with(&dir, ".log");
    let victim = &logs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[70] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    let snapshot: Vec<(std::path::PathBuf, Vec<u8>)> = files_with(&dir, ".log")
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    rt().block_on(async {
        let log = Log::open(dir.clone(), log_config(600)).await.unwrap();
        let err = log
            .clean(options(5_000, compaction(0, i64::MAX / 4), 1 << 20))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::CorruptBatch(ref m) if m.contains("position 0")),
            "{err}"
        );
        assert!(files_with(&dir, ".cleaned").is_empty());
        log.close().await.unwrap();
    });
    for (p, b) in snapshot {
        assert_eq!(std::fs::read(&p).unwrap(), b, "{} untouched", p.display());
    }
}

#[test]
fn min_compaction_lag_protects_recent_segments() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(500))
            .await
            .unwrap();
        let all = fill_overwrites(&log, 30, 0).await;
        // Records are stamped 1000..1033; at now=1030 with lag 15, ts > 1015 is protected.
        let stats = log
            .clean(options(1_030, compaction(15, i64::MAX / 4), 1 << 20))
            .await
            .unwrap();
        assert!(stats.end_offset > 0);
        let got = read_records(&log).await;
        for r in all.iter().filter(|r| r.3 > 1_015) {
            assert!(got.contains(r), "{r:?} is newer than the lag");
        }
        assert_eq!(got, expected(&all, stats.end_offset));
    });
}

#[test]
fn max_compaction_lag_makes_a_barely_dirty_log_due() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(500))
            .await
            .unwrap();
        fill_overwrites(&log, 40, 0).await;
        log.clean(options(5_000, compaction(0, i64::MAX / 4), 1 << 20))
            .await
            .unwrap();
        // A little new dirty data, then a large clean section: a low dirty ratio.
        let distinct: Vec<(u8, Option<u16>)> = (0..6).map(|k| (100 + k, Some(1))).collect();
        log.append(keyed_batch(&distinct, 6_000, 0), opts(6_000))
            .await
            .unwrap();
        log.roll().await.unwrap();
        let mut cfg = compaction(0, i64::MAX / 4);
        cfg.min_cleanable_dirty_ratio = 0.9;
        let info = log.dirty_info(&cfg, 7_000).await.unwrap();
        assert!(info.dirty_bytes > 0 && info.dirty_ratio < 0.9, "{info:?}");
        assert!(!info.is_due(&cfg));
        cfg.max_compaction_lag_ms = 500;
        let info = log.dirty_info(&cfg, 7_000).await.unwrap();
        assert!(info.max_lag_exceeded && info.is_due(&cfg), "{info:?}");
        // Not yet past the lag: not forced.
        let info = log.dirty_info(&cfg, 6_100).await.unwrap();
        assert!(!info.is_due(&cfg), "{info:?}");
    });
}

#[test]
fn an_idempotent_producers_last_batch_stays_as_an_empty_batch() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(1 << 20))
            .await
            .unwrap();
        let by = |pid: i64, seq: i32, ts: i64| {
            BatchBuilder::new(ts)
                .producer(pid, 0, seq)
                .record(Some(b"k"), Some(b"v"), &[])
                .build()
        };
        let a = log.append(by(7, 0, 100), opts(100)).await.unwrap();
        log.append(by(8, 0, 101), opts(101)).await.unwrap();
        log.append(by(9, 0, 102), opts(102)).await.unwrap();
        log.roll().await.unwrap();
        let is_last = |pid: i64, last: i64| pid == 7 && last == a.last_offset.0;
        let mut o = options(1_000, compaction(0, i64::MAX / 4), 1 << 20);
        o.is_last_producer_batch = Some(&is_last);
        log.clean(o).await.unwrap();
        let bytes = read_all(&log).await;
        let headers: Vec<(i64, i64, i32)> = storage::split_batches(&bytes)
            .map(|b| BatchHeader::parse(b.unwrap()).unwrap())
            .map(|h| (h.producer_id, h.base_offset, h.record_count))
            .collect();
        // Producer 7's batch is kept empty; producer 8's (not its last per the state) goes;
        // producer 9's holds the surviving record.
        assert_eq!(headers, vec![(7, 0, 0), (9, 2, 1)]);
    });
}

/// An aborted transaction's value does not supersede the committed one for its key, and its
/// records are removed; control batches are kept.
#[test]
fn aborted_transactional_values_are_discarded_not_kept_as_latest() {
    let root = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let log = Log::open(part_dir(root.path()), log_config(1 << 20))
            .await
            .unwrap();
        let value = |pid: i64, v: &[u8], ts: i64| {
            BatchBuilder::new(ts)
                .producer(pid, 0, 0)
                .transactional()
                .record(Some(b"k"), Some(v), &[])
                .build()
        };
        let marker = |pid: i64, commit: u8, ts: i64| {
            BatchBuilder::new(ts)
                .producer(pid, 0, -1)
                .transactional()
                .control()
                .record(Some(&[0, 0, 0, commit]), Some(&[0, 0, 0, 0, 0, 0]), &[])
                .build()
        };
        log.append(value(7, b"committed", 100), opts(100))
            .await
            .unwrap(); // 0
        log.append_control(marker(7, 1, 101), opts(101))
            .await
            .unwrap(); // 1
        log.append(value(8, b"aborted", 102), opts(102))
            .await
            .unwrap(); // 2
        log.append_control(marker(8, 0, 103), opts(103))
            .await
            .unwrap(); // 3
        log.roll().await.unwrap();
        let is_aborted = |pid: i64, base: i64| pid == 8 && base == 2;
        let mut o = options(1_000, compaction(0, i64::MAX / 4), 1 << 20);
        o.is_aborted_batch = Some(&is_aborted);
        log.clean(o).await.unwrap();
        let bytes = read_all(&log).await;
        let mut values = Vec::new();
        let mut controls = Vec::new();
        for b in storage::split_batches(&bytes) {
            let b = b.unwrap();
            let h = BatchHeader::parse(b).unwrap();
            if h.is_control() {
                controls.push(h.base_offset);
                continue;
            }
            for r in storage::batch::records(b).unwrap() {
                values.push(r.unwrap().value.unwrap().to_vec());
            }
        }
        assert_eq!(values, vec![b"committed".to_vec()]);
        assert_eq!(controls, vec![1, 3]);
    });
}
