//! Heap allocations per Produce request on the broker's hot path (issue 16: "no per-request
//! allocation on the hot path (count them in a benchmark)").
//!
//! Runs a one-shard broker in this process (`sluice::run`) under a counting global allocator,
//! and a blocking client on another thread whose own allocations are not counted (a
//! thread-local flag). The client sends Produce v9 requests one at a time, each carrying one
//! uncompressed record batch of `RECORDS` 1 KiB records for one of 16 partitions (round robin),
//! and checks every answer. Broker allocations per request = (allocations during the produce
//! window - the broker's idle allocation rate x the window) / requests; the idle rate is
//! measured over a window of the same length just before (timers, metrics, retention checks).
//!
//! ```sh
//! cargo build --release --example produce_allocs
//! taskset -c 0 target/release/examples/produce_allocs [REQUESTS] [RECORDS...] [--acks all]
//! ```
//!
//! Defaults: 20,000 requests, batches of 1, 16 and 128 records, acks=1. The harness is shared
//! with `tests/produce_allocs.rs`, which pins an upper bound per request.

// A benchmark tool, not the broker: a failed setup step or an error answer should stop it loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice::cli::client::Conn;
use sluice::config::{BrokerConfig, Overrides};

/// Counts every allocation (and reallocation) made outside threads that opted out.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the client thread: its allocations are the client's, not the broker's.
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count(bytes: usize) {
    if !UNCOUNTED.try_with(Cell::get).unwrap_or(true) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PARTITIONS: i32 = 16;
const RECORD_BYTES: usize = 1024;
const TOPIC: &str = "allocs";

fn snapshot() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One produce request per partition, each with one batch of `records` records.
fn requests(records: usize, acks: i16) -> Vec<ProduceRequest> {
    (0..PARTITIONS)
        .map(|partition| {
            let batch: Vec<Record> = (0..records)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    // The encoder starts a new batch when offset - sequence changes; -1 keeps the
                    // base sequence at -1 (no producer id).
                    sequence: i as i32 - 1,
                    timestamp: 0,
                    key: None,
                    value: Some(vec![b'x'; RECORD_BYTES].into()),
                    headers: Default::default(),
                })
                .collect();
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &batch,
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .expect("encode a record batch");
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(buf.freeze()))])])
        })
        .collect()
}

/// Sends `n` requests round robin, one at a time; panics on any error answer.
fn produce(conn: &mut Conn, reqs: &[ProduceRequest], n: usize) {
    for i in 0..n {
        let req = &reqs[i % reqs.len()];
        let resp = conn.send(req, 9).expect("produce answered");
        for t in &resp.responses {
            for p in &t.partition_responses {
                assert_eq!(
                    p.error_code, 0,
                    "partition {} error: {:?}",
                    p.index, p.error_message
                );
            }
        }
    }
}

/// One measurement: broker allocations (and bytes) per request, and the idle rate subtracted.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub allocs_per_request: f64,
    pub bytes_per_request: f64,
    pub idle_allocs_per_s: f64,
}

/// Starts a one-shard broker in this process on a free loopback port; returns its address and
/// its data dir (removed when dropped).
pub fn start_broker() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary data dir");
    let port = free_port();
    let overrides = Overrides {
        listen: Some(format!("127.0.0.1:{port}")),
        advertise: None,
        admin_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        cores: Some(1),
    };
    let config = BrokerConfig::load(None, overrides).expect("broker config");
    std::thread::spawn(move || {
        if let Err(e) = sluice::run(config) {
            eprintln!("broker: {e}");
            std::process::exit(1);
        }
    });
    (format!("127.0.0.1:{port}"), dir)
}

/// Connects (waiting for the broker to listen) and creates the topic; call on an uncounted
/// thread.
pub fn connect_and_create(addr: &str) -> Conn {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match Conn::connect(addr) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("broker not ready: {e}"),
        }
    };
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    let resp = conn.send(&create, 5).expect("create topic");
    assert!(resp.topics.iter().all(|t| t.error_code == 0));
    conn
}

/// Broker allocations per Produce request of `records` records, over `n` requests after a
/// warm-up; call on an uncounted thread.
pub fn measure(conn: &mut Conn, records: usize, acks: i16, n: usize) -> Measured {
    let reqs = requests(records, acks);
    // Warm-up: the partitions' first segments, buffers and pools are created here.
    produce(conn, &reqs, (n / 10).max(2 * reqs.len()));
    let started = Instant::now();
    let before = snapshot();
    produce(conn, &reqs, n);
    let window = started.elapsed();
    let after = snapshot();
    // The broker's background allocation rate over a window of the same length.
    let idle_before = snapshot();
    std::thread::sleep(window);
    let idle_after = snapshot();
    let idle_allocs_per_s = (idle_after.0 - idle_before.0) as f64 / window.as_secs_f64();
    let background = idle_allocs_per_s * window.as_secs_f64();
    Measured {
        allocs_per_request: ((after.0 - before.0) as f64 - background).max(0.0) / n as f64,
        bytes_per_request: (after.1 - before.1) as f64 / n as f64,
        idle_allocs_per_s,
    }
}

/// Marks the calling thread's allocations as the client's (not counted).
pub fn uncounted() {
    UNCOUNTED.with(|u| u.set(true));
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let acks: i16 = match args.iter().position(|a| a == "--acks") {
        Some(i) => {
            let v = args.get(i + 1).map(String::as_str) == Some("all");
            args.drain(i..(i + 2).min(args.len()));
            if v {
                -1
            } else {
                1
            }
        }
        None => 1,
    };
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![1, 16, 128]
    };

    let (addr, dir) = start_broker();
    let client = std::thread::spawn(move || {
        uncounted();
        let mut conn = connect_and_create(&addr);
        println!(
            "| records per request | request KiB | acks | requests | broker allocations per request | broker bytes allocated per request | idle allocations per s |"
        );
        println!("|--:|--:|--:|--:|--:|--:|--:|");
        for &records in &sizes {
            let m = measure(&mut conn, records, acks, n);
            println!(
                "| {records} | {} | {} | {n} | {:.2} | {:.0} | {:.0} |",
                records * RECORD_BYTES / 1024,
                if acks == -1 { "all" } else { "1" },
                m.allocs_per_request,
                m.bytes_per_request,
                m.idle_allocs_per_s,
            );
        }
    });
    let failed = client.join().is_err();
    drop(dir);
    std::process::exit(i32::from(failed));
}
