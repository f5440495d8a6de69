//! `cleaner_bench`: log cleaner throughput on one shard, next to the sequential write and
//! read throughput of the same disk measured in the same run, and append latency on the same
//! thread with and without the cleaner running.
//!
//! 1. Sequential write / read of a scratch file as large as the log (1 MiB writes, fdatasync
//!    at the end, like `dd conv=fdatasync`; read after `posix_fadvise(DONTNEED)`).
//! 2. Fills a log with `--size-mib` of 1 KiB-record batches (`--codec`), keys drawn so that
//!    `--live-pct` percent of the records are the latest of their key, rolls it, drops its
//!    pages from the cache, and times one `Log::clean` (unthrottled; it yields to the other
//!    tasks every 64 KiB as the broker's cleaner does): MB/s = log bytes before / time.
//! 3. Append latency: a task appending one 1 KiB batch per `--append-interval-us` on the same
//!    compio runtime, first alone, then while a second log of `--latency-log-mib` is cleaned;
//!    prints p50/p99/max of each append call.
//!
//! Output: `RESULT <name> <value> <unit>` lines (MB = 10^6 bytes).

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use futures_util::future::LocalBoxFuture;
use storage::cleaner::records::compress_batch;
use storage::cleaner::{CleanOptions, CleanerLimits, CompactionConfig};
use storage::{AppendOptions, BatchBuilder, Log, LogConfig, StorageError};

const MIB: u64 = 1024 * 1024;
const RECORD_BYTES: usize = 1000;
const RECORDS_PER_BATCH: usize = 16;

#[derive(Parser, Debug)]
#[command(
    name = "cleaner_bench",
    about = "Log cleaner throughput and its effect on appends"
)]
struct Args {
    /// Scratch directory on the disk to measure.
    #[arg(long)]
    dir: PathBuf,
    /// Size of the log to clean, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Percent of records that are the latest of their key.
    #[arg(long, default_value_t = 10)]
    live_pct: u64,
    /// Codec of the batches: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    #[arg(long, default_value_t = 0)]
    codec: i16,
    /// Log cleaned during the latency measurement, in MiB.
    #[arg(long, default_value_t = 256)]
    latency_log_mib: u64,
    /// Interval between two timed appends, in microseconds.
    #[arg(long, default_value_t = 1000)]
    append_interval_us: u64,
    /// Cleaner I/O limit during the latency run, MB/s (0 = unthrottled), paced as the
    /// broker's `log.cleaner.io.max.bytes.per.second` is.
    #[arg(long, default_value_t = 0)]
    throttle_mbps: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match compio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cleaner_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.dir)?;
    let bytes = args.size_mib * MIB;
    let (w, r) = disk_baseline(&args.dir, bytes)?;
    println!("RESULT disk_seq_write {w:.0} MB/s");
    println!("RESULT disk_seq_read {r:.0} MB/s");

    let dir = args.dir.join("clean-0");
    let _ = std::fs::remove_dir_all(&dir);
    let log = fill(&dir, bytes, args.live_pct, args.codec).await?;
    let size = log.size_bytes();
    drop_page_cache(&dir)?;
    let t = Instant::now();
    let stats = log.clean(options(None)).await?;
    let elapsed = t.elapsed();
    println!(
        "cleaned {} -> {} bytes, records {} -> {}, {:.1} s",
        size,
        log.size_bytes(),
        stats.records_read,
        stats.records_kept,
        elapsed.as_secs_f64()
    );
    println!("RESULT cleaner_throughput {:.0} MB/s", mbps(size, elapsed));
    log.close().await?;
    std::fs::remove_dir_all(&dir)?;

    latency(args).await?;
    Ok(())
}

fn options(pace: Option<storage::cleaner::Pace<'_>>) -> CleanOptions<'_> {
    CleanOptions {
        now_ms: 2_000_000_000_000,
        config: CompactionConfig {
            min_cleanable_dirty_ratio: 0.0,
            ..CompactionConfig::default()
        },
        limits: CleanerLimits::default(),
        pace,
        crash_at: None,
        is_last_producer_batch: None,
        is_aborted_batch: None,
        force: false,
    }
}

/// dd-like sequential write then read of a scratch file of `bytes`.
fn disk_baseline(dir: &Path, bytes: u64) -> Result<(f64, f64), std::io::Error> {
    use std::io::{Read, Write};
    let path = dir.join("seq.bin");
    let buf = vec![0x5au8; MIB as usize];
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..bytes / MIB {
        f.write_all(&buf)?;
    }
    f.sync_data()?;
    let w = mbps(bytes, t.elapsed());
    drop(f);
    drop_page_cache(dir)?;
    let mut f = std::fs::File::open(&path)?;
    let mut rbuf = vec![0u8; MIB as usize];
    let t = Instant::now();
    while f.read(&mut rbuf)? > 0 {}
    let r = mbps(bytes, t.elapsed());
    std::fs::remove_file(&path)?;
    Ok((w, r))
}

/// `posix_fadvise(DONTNEED)` on every file of `dir`.
fn drop_page_cache(dir: &Path) -> Result<(), std::io::Error> {
    for entry in std::fs::read_dir(dir)? {
        let f = std::fs::File::open(entry?.path())?;
        f.sync_all()?;
        // SAFETY: an advisory syscall on an fd we own for the duration of the call.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// A log of about `bytes` where `live_pct`% of records are the latest of their key.
async fn fill(dir: &Path, bytes: u64, live_pct: u64, codec: i16) -> Result<Log, StorageError> {
    let config = LogConfig {
        segment_bytes_max: 128 * MIB,
        ..LogConfig::default()
    };
    let log = Log::open(dir.to_path_buf(), config).await?;
    let records = bytes / (RECORD_BYTES as u64 + 20);
    let keys = (records * live_pct.max(1) / 100).max(1);
    let value = vec![b'v'; RECORD_BYTES - 20];
    let mut n = 0u64;
    // A cheap LCG spreads the keys; every key gets written at least once.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while log.size_bytes() < bytes {
        let mut b = BatchBuilder::new(1_000_000 + n as i64);
        for _ in 0..RECORDS_PER_BATCH {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = if n < keys { n } else { (x >> 33) % keys };
            b = b.record(Some(format!("key-{k:012}").as_bytes()), Some(&value), &[]);
            n += 1;
        }
        let batch = if codec == 0 {
            b.build()
        } else {
            BytesMut::from(&compress_batch(&b.build(), codec)?[..])
        };
        log.append(
            batch,
            AppendOptions {
                leader_epoch: 0,
                now_ms: 1_000_000,
            },
        )
        .await?;
    }
    log.roll().await?;
    log.flush().await?;
    Ok(log)
}

/// Appends one 1 KiB batch every `interval` until `stop`; returns each append's latency.
async fn appender(
    log: &Log,
    interval: Duration,
    stop: &Cell<bool>,
) -> Result<Vec<Duration>, StorageError> {
    let mut out = Vec::new();
    let value = vec![b'p'; 1000];
    let mut next = Instant::now();
    while !stop.get() {
        let b = BatchBuilder::new(1)
            .record(Some(b"k"), Some(&value), &[])
            .build();
        let t = Instant::now();
        log.append(
            b,
            AppendOptions {
                leader_epoch: 0,
                now_ms: 1,
            },
        )
        .await?;
        out.push(t.elapsed());

        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            compio::time::sleep(wait).await;
        }
    }
    Ok(out)
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "RESULT {name}_append_us p50={} p99={} max={} n={}",
        at(0.5).as_micros(),
        at(0.99).as_micros(),
        v.last().copied().unwrap_or_default().as_micros(),
        v.len()
    );
}

async fn latency(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let interval = Duration::from_micros(args.append_interval_us);
    let hot = Log::open(args.dir.join("hot-0"), LogConfig::default()).await?;
    let dir = args.dir.join("cold-0");
    let _ = std::fs::remove_dir_all(&dir);
    let cold = fill(&dir, args.latency_log_mib * MIB, args.live_pct, args.codec).await?;
    drop_page_cache(&dir)?;
    // Alone, for as long as the clean will take (measured first, then the same length).
    let stop = Cell::new(false);
    // Like the broker's Throttle: sleep when ahead of the rate, else yield once.
    let started = Instant::now();
    let done = Rc::new(Cell::new(0u64));
    let rate = args.throttle_mbps as f64 * 1e6;
    let pace = |bytes: u64| -> LocalBoxFuture<'static, ()> {
        done.set(done.get() + bytes);
        let due = if rate > 0.0 {
            done.get() as f64 / rate
        } else {
            0.0
        };
        let ahead = Duration::from_secs_f64(due).saturating_sub(started.elapsed());
        if ahead.is_zero() {
            Box::pin(storage::yield_now())
        } else {
            Box::pin(compio::time::sleep(ahead))
        }
    };
    let clean = async {
        let t = Instant::now();
        let r = cold.clean(options(Some(&pace))).await;
        stop.set(true);
        r.map(|_| t.elapsed())
    };
    let (busy, clean_time) = futures_util::join!(appender(&hot, interval, &stop), clean);
    let clean_time = clean_time?;
    let stop = Rc::new(Cell::new(false));
    let idle = {
        let s = stop.clone();
        let timer = async move {
            compio::time::sleep(clean_time).await;
            s.set(true);
        };
        let (idle, ()) = futures_util::join!(appender(&hot, interval, &stop), timer);
        idle?
    };
    println!(
        "latency: clean of {} MiB took {:.1} s (throttle {} MB/s, 0 = none)",
        args.latency_log_mib,
        clean_time.as_secs_f64(),
        args.throttle_mbps
    );
    percentiles("idle", idle);
    percentiles("cleaning", busy?);
    hot.close().await?;
    cold.close().await?;
    std::fs::remove_dir_all(&dir)?;
    std::fs::remove_dir_all(args.dir.join("hot-0"))?;
    Ok(())
}
