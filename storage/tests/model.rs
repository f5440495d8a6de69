//! Model test: random operation sequences against an in-memory model of the log.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::BytesMut;
use proptest::prelude::*;
use storage::batch::{set_base_offset, set_leader_epoch, BatchHeader};
use storage::{AppendOptions, BatchBuilder, Log, LogConfig, Offset, StorageError};

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(u8, u16)>),
    Read {
        at: u16,
        max_bytes: u16,
        min_one: bool,
    },
    Roll,
    Retention(u16),
    DeleteBefore(u16),
    TruncateTo(u16),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1u8..5, 0u16..200), 1..4).prop_map(Op::Append),
        5 => (any::<u16>(), 0u16..1500, any::<bool>())
            .prop_map(|(at, max_bytes, min_one)| Op::Read { at, max_bytes, min_one }),
        1 => Just(Op::Roll),
        1 => (0u16..3000).prop_map(Op::Retention),
        1 => any::<u16>().prop_map(Op::DeleteBefore),
        1 => any::<u16>().prop_map(Op::TruncateTo),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Clone, Debug)]
struct Stored {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
}

#[derive(Default, Debug)]
struct Model {
    batches: Vec<Stored>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn pick(&self, n: u16) -> i64 {
        let span = (self.log_end - self.log_start + 1).max(1);
        self.log_start + i64::from(n) % span
    }

    /// Greedy whole batches from the one holding `offset`.
    fn read(&self, offset: i64, max_bytes: u32, min_one: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.last >= offset) {
            if out.len() + b.bytes.len() > max_bytes as usize && !(min_one && out.is_empty()) {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out
    }

    fn drop_below(&mut self, start: i64) {
        self.batches.retain(|b| b.last >= start);
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 900,
        index_interval_bytes: 120,
        segment_index_bytes_max: 64,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

const EPOCH: i32 = 3;

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = Log::open(path.clone(), config()).await.unwrap();
    let mut model = Model::default();
    let mut ts = 1_000i64;
    for op in ops {
        match op {
            Op::Append(spec) => {
                let mut buf = BytesMut::new();
                let mut expected = Vec::new();
                let mut next = model.log_end;
                for (count, len) in spec {
                    let mut b = BatchBuilder::new(ts);
                    for i in 0..count {
                        let value = vec![i; len as usize];
                        b = b.record_at(ts + i64::from(i), Some(b"key"), Some(&value), &[]);
                    }
                    ts += 10;
                    let mut bytes = b.build().to_vec();
                    buf.extend_from_slice(&bytes);
                    set_base_offset(&mut bytes, next);
                    set_leader_epoch(&mut bytes, EPOCH);
                    let last = next + i64::from(count) - 1;
                    expected.push(Stored {
                        base: next,
                        last,
                        bytes,
                    });
                    next = last + 1;
                }
                let info = log
                    .append(
                        buf,
                        AppendOptions {
                            leader_epoch: EPOCH,
                            now_ms: ts,
                        },
                    )
                    .await
                    .unwrap();
                prop_assert_eq!(info.base_offset, Offset(model.log_end));
                prop_assert_eq!(info.last_offset, Offset(next - 1));
                model.batches.extend(expected);
                model.log_end = next;
            }
            Op::Read {
                at,
                max_bytes,
                min_one,
            } => {
                let offset = model.pick(at);
                let slice = log
                    .read(Offset(offset), max_bytes.into(), min_one, Offset(i64::MAX))
                    .await
                    .unwrap();
                let got = slice.read_bytes().await.unwrap();
                let want = model.read(offset, max_bytes.into(), min_one);
                prop_assert_eq!(slice.total_bytes as usize, got.len());
                prop_assert!(
                    got.as_ref() == want.as_slice(),
                    "read at {} max {} min_one {}: got {} bytes, want {}",
                    offset,
                    max_bytes,
                    min_one,
                    got.len(),
                    want.len()
                );
                // Offsets in the result are contiguous.
                let mut expect_next = None;
                for b in storage::split_batches(&got) {
                    let h = BatchHeader::parse(b.unwrap()).unwrap();
                    if let Some(n) = expect_next {
                        prop_assert_eq!(h.base_offset, n);
                    }
                    prop_assert_eq!(h.partition_leader_epoch, EPOCH);
                    expect_next = Some(h.last_offset() + 1);
                }
                if model.log_end > model.log_start {
                    let below = log
                        .read(Offset(model.log_start - 1), 100, true, Offset(i64::MAX))
                        .await;
                    let out_of_range = matches!(below, Err(StorageError::OffsetOutOfRange { .. }));
                    prop_assert!(model.log_start == 0 || out_of_range, "read below start");
                }
                let beyond = log
                    .read(Offset(model.log_end + 1), 100, true, Offset(i64::MAX))
                    .await;
                prop_assert!(
                    matches!(beyond, Err(StorageError::OffsetOutOfRange { .. })),
                    "read beyond end"
                );
            }
            Op::Roll => log.roll().await.unwrap(),
            Op::Retention(bytes) => {
                let mut cfg = config();
                cfg.retention_bytes = i64::from(bytes);
                log.set_config(cfg);
                let before = log.size_bytes();
                let deleted = log.apply_retention(ts).await.unwrap();
                log.set_config(config());
                let start = log.log_start_offset().0;
                prop_assert!(start >= model.log_start);
                if deleted > 0 {
                    prop_assert!(log.size_bytes() < before);
                    prop_assert!(
                        model.batches.iter().any(|b| b.base == start) || start == model.log_end,
                        "retention moved the start to a non-boundary {}",
                        start
                    );
                    model.log_start = start;
                    model.drop_below(start);
                } else {
                    prop_assert_eq!(start, model.log_start);
                }
            }
            Op::DeleteBefore(n) => {
                log.flush().await.unwrap();
                let target = model.pick(n);
                let got = log.delete_records_before(Offset(target)).await.unwrap();
                if target > model.log_start {
                    model.log_start = target;
                    model.drop_below(target);
                }
                prop_assert_eq!(got, Offset(model.log_start));
            }
            Op::TruncateTo(n) => {
                if model.log_end > model.log_start {
                    let span = model.log_end - model.log_start;
                    let target = model.log_start + 1 + i64::from(n) % span;
                    log.truncate_to(Offset(target)).await.unwrap();
                    let new_end = model
                        .batches
                        .iter()
                        .find(|b| b.last >= target)
                        .map_or(target, |b| b.base);
                    model.batches.retain(|b| b.last < new_end);
                    model.log_end = new_end;
                    model.log_start = model.log_start.min(new_end);
                }
            }
            Op::Flush => {
                let durable = log.flush().await.unwrap();
                prop_assert_eq!(durable, Offset(model.log_end));
                prop_assert_eq!(log.high_watermark(), Offset(model.log_end));
            }
            Op::Reopen => {
                log.close().await.unwrap();
                let closed = matches!(
                    log.read(Offset(model.log_start), 10, true, Offset(i64::MAX))
                        .await,
                    Err(StorageError::Closed)
                );
                prop_assert!(closed, "read after close");
                log = Log::open(path.clone(), config()).await.unwrap();
            }
        }
        prop_assert_eq!(
            log.log_start_offset(),
            Offset(model.log_start),
            "log start after op"
        );
        prop_assert_eq!(
            log.log_end_offset(),
            Offset(model.log_end),
            "log end after op"
        );
    }
    // A final full read returns exactly the model.
    let all = log
        .read(Offset(model.log_start), u32::MAX, true, Offset(i64::MAX))
        .await
        .unwrap()
        .read_bytes()
        .await
        .unwrap();
    let want = model.read(model.log_start, u32::MAX, true);
    prop_assert!(all.as_ref() == want.as_slice(), "final read differs");
    log.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = compio::runtime::Runtime::new().unwrap();
        rt.block_on(run(ops))?;
    }
}
