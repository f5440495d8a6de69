//! `storage_bench`: single-shard throughput of the partition log (run by
//! `perf/bench-storage.sh`, which puts `dd` numbers for the same disk next to it).
//!
//! Appends 1 KiB records in 16 KiB or 1 MiB batches (`--batch-kib` for others), fsynced
//! every MiB (flush.messages = records per MiB), once at the end (`fsync-at-end`: the
//! policy of `dd conv=fdatasync`, timed until the final flush) or never, then reads the whole log back
//! through `Log::read` + `ReadSlice::read_bytes`, once from disk (page cache dropped for the
//! segment files with `posix_fadvise(DONTNEED)`, which only touches our own clean pages) and
//! once warm.
//! Appends only start the policy's fsyncs (group commit); fsynced runs are timed until a
//! final `flush` made everything durable, like `dd conv=fdatasync`, and report how many data
//! fsyncs ran. With `--wait-durable` every appender awaits durability of each append
//! through the shard's sync batch (`storage::sync::wait_durable`, the broker's acks=all path)
//! (what a producer with acks=all waits for). Building the input batches is not timed.
//! Output: one `RESULT <name> <MB/s>` line per measurement (MB = 10^6 bytes, like dd) and
//! one `FSYNCS <name> <count> <MiB per fsync>` line per fsynced run, and one `STALL <name>
//! <ms>` line per append run (the longest a 1 ms timer task on the same shard was kept
//! waiting: blocking syscalls and CPU work on the shard thread), after human-readable lines.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use storage::{AppendOptions, BatchBuilder, Log, LogConfig, Offset, StorageError};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Distinct pre-built batches cycled through, so values are not one repeated buffer.
const BATCH_POOL_LEN: usize = 8;
/// Period of the shard-stall probe that runs next to the appenders.
const STALL_TICK: Duration = Duration::from_millis(1);
/// Bytes asked of `Log::read` per call while reading back (a large fetch).
const READ_BYTES: u32 = MIB as u32;

#[derive(thiserror::Error, Debug)]
enum BenchError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Check(String),
}

#[derive(Parser, Debug)]
#[command(
    name = "storage_bench",
    about = "Single-shard append/read throughput of the log"
)]
struct Args {
    /// Scratch directory (its filesystem is what is measured); partitions are created inside.
    #[arg(long)]
    dir: PathBuf,
    /// Bytes appended per run, in MiB.
    #[arg(long, default_value_t = 512)]
    total_mib: usize,
    /// Batch sizes to run, in KiB (each fsynced per MiB and not fsynced).
    #[arg(long, value_delimiter = ',', default_values_t = [16, 1024])]
    batch_kib: Vec<usize>,
    /// Value size of one record.
    #[arg(long, default_value_t = KIB)]
    record_bytes: usize,
    /// Only the append runs whose name contains this (e.g. `16KiB-no-fsync`, for profiling).
    #[arg(long)]
    only: Option<String>,
    /// Appends in flight at once on the shard (concurrent producers; > 1 lets appends
    /// proceed while an fsync runs, i.e. group commit).
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// index.interval.bytes (Kafka's default 4096 indexes every batch of 4 KiB or more).
    #[arg(long, default_value_t = 4096)]
    index_interval_bytes: u32,
    /// Each appender awaits durability (`wait_durable`) of every append before the next.
    #[arg(long)]
    wait_durable: bool,
    /// log.write.inline.max.bytes: appends up to this size are a `pwrite` on the shard
    /// thread, larger ones an io_uring WRITE; 0 = always io_uring (default: LogConfig's).
    #[arg(long)]
    write_inline_max_bytes: Option<u32>,
    /// log.writeback.start.bytes, in KiB: start writeback (sync_file_range WRITE, not
    /// awaited) of every this many appended KiB; 0 = never (default: LogConfig's).
    #[arg(long)]
    writeback_kib: Option<u64>,
    /// log.zero.ahead.bytes, in KiB: keep this many KiB past the active segment's end
    /// written with zeros; 0 = off (default: LogConfig's).
    #[arg(long)]
    zero_ahead_kib: Option<u64>,
    /// Restart measurement instead of the append runs: write a log of this many MiB (1 MiB
    /// batches, default 1 GiB segments), close it, then time `Log::open` after a clean close
    /// and after an unclean stop (page cache of the files dropped before each open). The log
    /// is deleted afterwards.
    #[arg(long)]
    restart_mib: Option<usize>,
}

/// When a run's data is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FsyncPolicy {
    /// flush.messages = records per MiB (group commit), plus a final flush (timed).
    PerMib,
    /// No policy fsync; one flush at the end, timed (what `dd conv=fdatasync` does).
    AtEnd,
    /// No fsync timed (page-cache speed).
    Never,
}

/// One append configuration.
#[derive(Clone, Copy, Debug)]
struct Run {
    batch_bytes: usize,
    sync: FsyncPolicy,
}

impl Run {
    fn name(self) -> String {
        let batch = if self.batch_bytes >= MIB && self.batch_bytes % MIB == 0 {
            format!("{}MiB", self.batch_bytes / MIB)
        } else {
            format!("{}KiB", self.batch_bytes / KIB)
        };
        let sync = match self.sync {
            FsyncPolicy::PerMib => "fsync-per-MiB",
            FsyncPolicy::AtEnd => "fsync-at-end",
            FsyncPolicy::Never => "no-fsync",
        };
        format!("append-{batch}-{sync}")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = compio::runtime::Runtime::new()
        .map_err(BenchError::from)
        .and_then(|rt| rt.block_on(bench(&args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &Args) -> Result<(), BenchError> {
    if let Some(mib) = args.restart_mib {
        let dir = args.dir.join("restart-0");
        remove_dir_if_exists(&dir)?;
        let result = restart_run(&dir, mib).await;
        remove_dir_if_exists(&dir)?;
        return result;
    }
    let total_bytes = args.total_mib * MIB;
    let runs = args.batch_kib.iter().flat_map(|&kib| {
        [FsyncPolicy::PerMib, FsyncPolicy::AtEnd, FsyncPolicy::Never].map(|sync| Run {
            batch_bytes: kib * KIB,
            sync,
        })
    });
    let mut kept: Option<PathBuf> = None;
    let wanted = |r: &Run| {
        args.only
            .as_ref()
            .is_none_or(|o| r.name().contains(o.as_str()))
    };
    for run in runs.filter(wanted) {
        let dir = args.dir.join(format!("{}-0", run.name()));
        remove_dir_if_exists(&dir)?;
        let (bytes, elapsed, fsyncs, stall) = append_run(&dir, run, args, total_bytes).await?;
        let mut name = match args.inflight {
            1 => run.name(),
            n => format!("{}-inflight{n}", run.name()),
        };
        if args.wait_durable {
            name.push_str("-wait");
        }
        report(&name, bytes, elapsed);
        let stall_ms = stall.as_secs_f64() * 1e3;
        println!("{name:<28} longest shard stall {stall_ms:.2} ms");
        println!("STALL {name} {stall_ms:.2}");
        if run.sync != FsyncPolicy::Never {
            let per = bytes as f64 / MIB as f64 / (fsyncs.max(1) as f64);
            println!("{name:<28} {fsyncs} data fsyncs, {per:.2} MiB per fsync");
            println!("FSYNCS {name} {fsyncs} {per:.2}");
        }
        // The fsynced 1 MiB log is read back below; the others only take disk space.
        if run.batch_bytes == MIB
            && run.sync == FsyncPolicy::PerMib
            && args.inflight == 1
            && !args.wait_durable
        {
            kept = Some(dir);
        } else {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    if let Some(dir) = kept {
        drop_page_cache(&dir)?;
        let (bytes, elapsed) = read_run(&dir).await?;
        report("read-cold", bytes, elapsed);
        let (bytes, elapsed) = read_run(&dir).await?;
        report("read-warm", bytes, elapsed);
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn report(name: &str, bytes: u64, elapsed: Duration) {
    let mbps = bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
    println!(
        "{name:<28} {:>8.1} MiB in {:>7.3} s = {mbps:>8.1} MB/s",
        bytes as f64 / MIB as f64,
        elapsed.as_secs_f64()
    );
    println!("RESULT {name} {mbps:.1}");
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), BenchError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Pre-built batches of `records` values of `record_bytes` each.
fn batch_pool(records: usize, record_bytes: usize) -> Vec<BytesMut> {
    (0..BATCH_POOL_LEN)
        .map(|i| {
            let mut b = BatchBuilder::new(1_700_000_000_000);
            for r in 0..records {
                let fill = (i * 31 + r) as u8;
                b = b.record(None, Some(&vec![fill; record_bytes]), &[]);
            }
            b.build()
        })
        .collect()
}

/// Appends until `total_bytes` are stored, with `inflight` appenders sharing the log;
/// returns (bytes, wall time of the appends plus, when fsyncing, the final flush, data
/// fsyncs until then, longest shard stall seen by `stall_probe` while appending).
async fn append_run(
    dir: &Path,
    run: Run,
    args: &Args,
    total_bytes: usize,
) -> Result<(u64, Duration, u64, Duration), BenchError> {
    let (record_bytes, inflight) = (args.record_bytes, args.inflight);
    let records = (run.batch_bytes / record_bytes).max(1);
    let pool = batch_pool(records, record_bytes);
    let config = LogConfig {
        flush_messages: match run.sync {
            FsyncPolicy::PerMib => (MIB / record_bytes).max(1) as u64,
            FsyncPolicy::AtEnd | FsyncPolicy::Never => u64::MAX,
        },
        // A "1 MiB" batch of 1 KiB records is a little over 1 MiB with its overheads.
        max_message_bytes: (2 * run.batch_bytes).max(MIB) as u32,
        index_interval_bytes: args.index_interval_bytes,
        write_inline_max_bytes: args
            .write_inline_max_bytes
            .unwrap_or(LogConfig::default().write_inline_max_bytes),
        writeback_start_bytes: args
            .writeback_kib
            .map_or(LogConfig::default().writeback_start_bytes, |k| {
                k * KIB as u64
            }),
        zero_ahead_bytes: args
            .zero_ahead_kib
            .map_or(LogConfig::default().zero_ahead_bytes, |k| k * KIB as u64),
        ..LogConfig::default()
    };
    let log = Log::open(dir.to_path_buf(), config).await?;
    let written = Cell::new(0u64);
    let t = Instant::now();
    let wait = args.wait_durable;
    let appenders =
        (0..inflight.max(1)).map(|k| appender(&log, &pool, k, &written, total_bytes, wait));
    let done = Cell::new(false);
    let appending = async {
        let results = futures_util::future::join_all(appenders).await;
        done.set(true);
        results
    };
    let (results, stall_max) = futures_util::future::join(appending, stall_probe(&done)).await;
    for r in results {
        r?;
    }
    if run.sync != FsyncPolicy::Never {
        // Like dd conv=fdatasync: done when everything is on disk.
        log.flush().await?;
    }
    let elapsed = t.elapsed();
    let fsyncs = log.fsync_count();
    // Not timed for no-fsync (page-cache speed is what that run shows); close fsyncs the tail.
    log.close().await?;
    Ok((written.get(), elapsed, fsyncs, stall_max))
}

/// A task on the same shard that wants to run every `STALL_TICK`: returns the longest it
/// was kept waiting past that while `done` is unset (what a blocking syscall or CPU work on
/// the shard costs every other connection and partition of it).
async fn stall_probe(done: &Cell<bool>) -> Duration {
    let mut worst = Duration::ZERO;
    while !done.get() {
        let t = Instant::now();
        compio::time::sleep(STALL_TICK).await;
        worst = worst.max(t.elapsed().saturating_sub(STALL_TICK));
    }
    worst
}

/// One producer: appends pool batches (cloning one is the producer's cost, as receiving
/// it from the network would be) until the shared byte count reaches `total_bytes`.
async fn appender(
    log: &Log,
    pool: &[BytesMut],
    k: usize,
    written: &Cell<u64>,
    total_bytes: usize,
    wait_durable: bool,
) -> Result<(), BenchError> {
    let opts = AppendOptions {
        leader_epoch: 0,
        now_ms: 1_700_000_000_000,
    };
    let mut i = k;
    while written.get() < total_bytes as u64 {
        let batch = pool.get(i % BATCH_POOL_LEN).cloned().unwrap_or_default();
        i += 1;
        let info = log.append(batch, opts).await?;
        if wait_durable {
            storage::sync::wait_durable(log, info.last_offset).await?;
        }
        written.set(written.get() + u64::from(info.bytes));
    }
    Ok(())
}

/// `posix_fadvise(DONTNEED)` on every file of `dir`, so the next read comes from the disk.
fn drop_page_cache(dir: &Path) -> Result<(), BenchError> {
    for entry in std::fs::read_dir(dir)? {
        let f = std::fs::File::open(entry?.path())?;
        f.sync_all()?;
        // SAFETY: a plain advisory syscall on an fd we own for the duration of the call.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc).into());
        }
    }
    Ok(())
}

/// Reads the whole log back in `READ_BYTES` fetches; returns (bytes, time).
async fn read_run(dir: &Path) -> Result<(u64, Duration), BenchError> {
    let log = Log::open(dir.to_path_buf(), LogConfig::default()).await?;
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut bytes_read = 0u64;
    let t = Instant::now();
    while next < end {
        let slice = log.read(next, READ_BYTES, true, end).await?;
        let bytes = slice.read_bytes().await?;
        let mut last = None;
        for b in storage::split_batches(&bytes) {
            last = Some(storage::BatchHeader::parse(b?)?.last_offset());
        }
        next = match last {
            Some(l) => Offset(l + 1),
            None => {
                return Err(BenchError::Check(format!(
                    "empty read at {next} before {end}"
                )))
            }
        };
        bytes_read += bytes.len() as u64;
    }
    let elapsed = t.elapsed();
    log.close().await?;
    Ok((bytes_read, elapsed))
}

/// `--restart-mib`: writes `mib` MiB, then times a clean and an unclean reopen.
async fn restart_run(dir: &Path, mib: usize) -> Result<(), BenchError> {
    let pool = batch_pool(MIB / KIB, KIB);
    let config = LogConfig {
        max_message_bytes: (2 * MIB) as u32,
        ..LogConfig::default()
    };
    let opts = AppendOptions {
        leader_epoch: 0,
        now_ms: 1_700_000_000_000,
    };
    let t = Instant::now();
    let log = Log::open(dir.to_path_buf(), config.clone()).await?;
    let mut written = 0u64;
    let mut i = 0usize;
    while written < (mib * MIB) as u64 {
        let batch = pool.get(i % BATCH_POOL_LEN).cloned().unwrap_or_default();
        i += 1;
        written += u64::from(log.append(batch, opts).await?.bytes);
    }
    log.close().await?;
    let segments = std::fs::read_dir(dir)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    println!(
        "wrote {:.1} MiB in {segments} segments in {:.2} s",
        written as f64 / MIB as f64,
        t.elapsed().as_secs_f64()
    );
    // Clean restart: the checkpoint says clean, only the active segment's tail is checked.
    drop_page_cache(dir)?;
    let t = Instant::now();
    let log = Log::open(dir.to_path_buf(), config.clone()).await?;
    let clean = t.elapsed();
    let report = log.recovery_report().clone();
    println!(
        "restart after clean close: {:.1} ms (clean flag {}, segments scanned {})",
        clean.as_secs_f64() * 1e3,
        report.clean_shutdown,
        report.scanned_segments.len()
    );
    println!("RESTART clean {:.1}", clean.as_secs_f64() * 1e3);
    // Unclean stop (kill -9): one more append made durable, then the log is dropped without
    // `close`, so the checkpoint keeps the clean flag cleared at open.
    let batch = pool.first().cloned().unwrap_or_default();
    log.append(batch, opts).await?;
    log.flush().await?;
    drop(log);
    drop_page_cache(dir)?;
    let t = Instant::now();
    let log = Log::open(dir.to_path_buf(), config).await?;
    let unclean = t.elapsed();
    let report = log.recovery_report().clone();
    let active_bytes = log.segment_bases().last().map_or(0, |b| {
        std::fs::metadata(dir.join(format!("{}.log", storage::file_stem(b.0))))
            .map_or(0, |m| m.len())
    });
    println!(
        "restart after unclean stop: {:.1} ms (clean flag {}, segments scanned {}, active segment {:.1} MiB)",
        unclean.as_secs_f64() * 1e3,
        report.clean_shutdown,
        report.scanned_segments.len(),
        active_bytes as f64 / MIB as f64
    );
    println!("RESTART unclean {:.1}", unclean.as_secs_f64() * 1e3);
    log.close().await?;
    Ok(())
}
