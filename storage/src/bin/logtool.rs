//! `sluice-logtool`: drive and inspect one partition directory from the command line.
//!
//! - `append-loop` appends generated batches and, for every append that is durable (fsynced)
//!   when it returns, prints `ACK <base_offset> <last_offset> <crc32c of the record values>`
//!   and flushes stdout. The crash tests kill it with SIGKILL and check that every ACKed
//!   batch survived byte for byte, so a line is printed only after the fsync completed.
//! - `dump` walks the raw `.log` files without opening the log (no recovery, nothing
//!   written) and prints every batch with its position and CRC status.
//! - `verify` opens the log (which runs recovery and reports, on stderr, what it cut), reads
//!   everything back through `Log::read` and checks that batches are valid and contiguous.
//!   Exit status 1 means an inconsistency.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::BytesMut;
use clap::{Parser, Subcommand};
use storage::batch::{self, BATCH_HEADER_LEN};
use storage::{AppendOptions, BatchBuilder, BatchHeader, Log, LogConfig, Offset, StorageError};

/// Largest batch `dump` will load into memory; a header claiming more is reported as corrupt.
const DUMP_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes `verify` asks `Log::read` for at once.
const VERIFY_READ_BYTES: u32 = 4 * 1024 * 1024;
/// Per-record overhead in an uncompressed batch (length, attributes, deltas, key/value
/// lengths, header count), so `--batch-bytes` lands close to the requested size.
const RECORD_OVERHEAD_BYTES: usize = 12;

#[derive(thiserror::Error, Debug)]
enum ToolError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("usage: {0}")]
    Usage(String),
    #[error("inconsistent log: {0}")]
    Inconsistent(String),
}

#[derive(Parser, Debug)]
#[command(
    name = "sluice-logtool",
    about = "Append to, dump and verify a Sluice partition log"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Append generated batches; print `ACK base last crc32c` per durable append.
    AppendLoop {
        #[arg(long)]
        dir: PathBuf,
        /// Approximate size of one batch.
        #[arg(long, default_value_t = 16 * 1024)]
        batch_bytes: usize,
        #[arg(long, default_value_t = 16)]
        records_per_batch: u32,
        /// flush.messages=1: every append is fsynced before it returns.
        #[arg(long)]
        fsync_every_append: bool,
        /// Stop (and close the log cleanly) after this many appends; default: forever.
        #[arg(long)]
        count: Option<u64>,
        /// segment.bytes of the log (default: Kafka's 1 GiB).
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// log.zero.ahead.bytes of the log (default: off).
        #[arg(long, default_value_t = 0)]
        zero_ahead_bytes: u64,
    },
    /// Print every batch of the raw segment files (no recovery, read-only).
    Dump {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Open the log (running recovery), read it all back, check it; exit 1 if inconsistent.
    Verify {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match compio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run(cli.cmd)),
        Err(e) => Err(ToolError::Io(e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-logtool: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> Result<(), ToolError> {
    match cmd {
        Cmd::AppendLoop {
            dir,
            batch_bytes,
            records_per_batch,
            fsync_every_append,
            count,
            segment_bytes,
            zero_ahead_bytes,
        } => {
            let spec = BatchSpec::new(batch_bytes, records_per_batch)?;
            let mut config = LogConfig {
                flush_messages: if fsync_every_append { 1 } else { u64::MAX },
                zero_ahead_bytes,
                ..LogConfig::default()
            };
            if let Some(b) = segment_bytes {
                config.segment_bytes_max = b;
            }
            append_loop(dir, config, spec, count).await
        }
        Cmd::Dump { dir } => dump(&dir),
        Cmd::Verify { dir } => verify(dir).await,
    }
}

/// Shape of the generated batches.
#[derive(Clone, Copy, Debug)]
struct BatchSpec {
    records: u32,
    value_bytes: usize,
}

impl BatchSpec {
    fn new(batch_bytes: usize, records: u32) -> Result<BatchSpec, ToolError> {
        if records == 0 {
            return Err(ToolError::Usage("--records-per-batch must be >= 1".into()));
        }
        let max = LogConfig::default().max_message_bytes as usize;
        if batch_bytes > max {
            return Err(ToolError::Usage(format!(
                "--batch-bytes {batch_bytes} exceeds max.message.bytes {max}"
            )));
        }
        let per_record = batch_bytes.saturating_sub(BATCH_HEADER_LEN) / records as usize;
        Ok(BatchSpec {
            records,
            value_bytes: per_record.saturating_sub(RECORD_OVERHEAD_BYTES).max(1),
        })
    }
}

/// xorshift64*: cheap, dependency-free filler for record values.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(v.get(..n).unwrap_or(&[]));
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One batch of random values and the CRC-32C of its values concatenated in order.
fn make_batch(rng: &mut Rng, spec: BatchSpec, ts_ms: i64) -> (BytesMut, u32) {
    let mut builder = BatchBuilder::new(ts_ms);
    let mut crc = 0u32;
    let mut value = vec![0u8; spec.value_bytes];
    for i in 0..spec.records {
        rng.fill(&mut value);
        crc = crc32c::crc32c_append(crc, &value);
        let key = i.to_be_bytes();
        builder = builder.record(Some(&key), Some(&value), &[]);
    }
    (builder.build(), crc)
}

/// CRC-32C of the record values of one uncompressed batch, concatenated in order (null
/// values contribute nothing). Shared with the crash tests through the ACK line format.
fn values_crc(batch_bytes: &[u8]) -> Result<u32, StorageError> {
    let mut crc = 0u32;
    for rec in batch::records(batch_bytes)? {
        if let Some(v) = rec?.value {
            crc = crc32c::crc32c_append(crc, v);
        }
    }
    Ok(crc)
}

async fn append_loop(
    dir: PathBuf,
    config: LogConfig,
    spec: BatchSpec,
    count: Option<u64>,
) -> Result<(), ToolError> {
    let config_fsyncs = config.flush_messages == 1;
    let log = Log::open(dir, config).await?;
    let mut out = io::stdout().lock();
    writeln!(out, "READY {}", log.log_end_offset())?;
    out.flush()?;
    let mut rng = Rng::seeded();
    let mut appended = 0u64;
    while count.is_none_or(|c| appended < c) {
        let now = now_ms();
        let (batch, crc) = make_batch(&mut rng, spec, now);
        let info = log
            .append(
                batch,
                AppendOptions {
                    leader_epoch: 0,
                    now_ms: now,
                },
            )
            .await?;
        appended += 1;
        // Appends only start the policy's fsync; an ACK needs it done.
        if config_fsyncs {
            log.wait_durable(info.last_offset).await?;
        }
        if log.durable_end_offset() > info.last_offset {
            writeln!(out, "ACK {} {} {crc}", info.base_offset, info.last_offset)?;
            out.flush()?;
        }
    }
    log.close().await?;
    writeln!(out, "CLOSED {}", log.log_end_offset())?;
    out.flush()?;
    Ok(())
}

/// `.log` files of a partition directory, in offset order.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

fn dump(dir: &Path) -> Result<(), ToolError> {
    let mut out = io::stdout().lock();
    for path in segment_files(dir)? {
        writeln!(out, "segment {}", path.display())?;
        dump_segment(&path, &mut out)?;
    }
    Ok(())
}

/// Prints the batches of one segment file; stops at the first unparseable or torn batch.
fn dump_segment(path: &Path, out: &mut impl Write) -> Result<(), ToolError> {
    let file_len = std::fs::metadata(path)?.len();
    let mut reader = BufReader::new(File::open(path)?);
    let mut pos = 0u64;
    let (mut batches, mut bad) = (0u64, 0u64);
    while pos < file_len {
        let left = file_len - pos;
        let mut head = [0u8; BATCH_HEADER_LEN];
        if left < BATCH_HEADER_LEN as u64 {
            writeln!(
                out,
                "  position={pos} TRAILING {left} bytes: partial header"
            )?;
            break;
        }
        reader.read_exact(&mut head)?;
        let header = match BatchHeader::parse(&head) {
            Ok(h) => h,
            Err(e) => {
                writeln!(out, "  position={pos} TRAILING {left} bytes: {e}")?;
                break;
            }
        };
        let size = header.total_size();
        if size as u64 > left || size > DUMP_BATCH_BYTES_MAX {
            writeln!(
                out,
                "  position={pos} TRAILING {left} bytes: torn batch of {size} bytes"
            )?;
            break;
        }
        let mut whole = head.to_vec();
        whole.resize(size, 0);
        reader.read_exact(whole.get_mut(BATCH_HEADER_LEN..).unwrap_or(&mut []))?;
        let status = match batch::validate_batch(&whole, u32::MAX) {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                bad += 1;
                format!("BAD ({e})")
            }
        };
        writeln!(
            out,
            "  offset={}..{} position={pos} size={size} records={} crc={status}",
            header.base_offset,
            header.last_offset(),
            header.record_count
        )?;
        batches += 1;
        pos += size as u64;
    }
    writeln!(out, "  {batches} batches, {bad} bad, {file_len} bytes")?;
    Ok(())
}

/// What `verify` found.
#[derive(Debug, Default)]
struct Summary {
    batches: u64,
    records: u64,
    bytes: u64,
}

async fn verify(dir: PathBuf) -> Result<(), ToolError> {
    let log = Log::open(dir, LogConfig::default()).await?;
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let segments = log.segment_count();
    let result = read_and_check(&log, start, end).await;
    let closed = log.close().await;
    let summary = result?;
    closed?;
    println!(
        "log_start_offset={start} log_end_offset={end} segments={segments} batches={} records={} bytes={}",
        summary.batches,
        summary.records,
        summary.bytes
    );
    Ok(())
}

/// Reads `[start, end)` through `Log::read`, validating every batch and the offset sequence.
async fn read_and_check(log: &Log, start: Offset, end: Offset) -> Result<Summary, ToolError> {
    let mut summary = Summary::default();
    let mut next = start.0;
    while next < end.0 {
        let slice = log.read(Offset(next), VERIFY_READ_BYTES, true, end).await?;
        if slice.is_empty() {
            return Err(ToolError::Inconsistent(format!(
                "read at offset {next} returned nothing before the log end {end}"
            )));
        }
        let bytes = slice.read_bytes().await?;
        for b in batch::split_batches(&bytes) {
            let b = b.map_err(|e| ToolError::Inconsistent(format!("at offset {next}: {e}")))?;
            let info = batch::validate_batch(b, u32::MAX)
                .map_err(|e| ToolError::Inconsistent(format!("batch at offset {next}: {e}")))?;
            let h = info.header;
            // The first batch may start below the log start (DeleteRecords inside a batch).
            let contiguous =
                h.base_offset == next || (summary.batches == 0 && h.base_offset < next);
            if !contiguous || h.last_offset() < next {
                return Err(ToolError::Inconsistent(format!(
                    "batch {}..{} where offset {next} was expected",
                    h.base_offset,
                    h.last_offset()
                )));
            }
            if !h.is_compressed() {
                values_crc(b).map_err(|e| {
                    ToolError::Inconsistent(format!("records of batch {}: {e}", h.base_offset))
                })?;
            }
            summary.batches += 1;
            summary.records += u64::from(h.record_count.unsigned_abs());
            summary.bytes += b.len() as u64;
            next = h.last_offset() + 1;
        }
    }
    if next != end.0 {
        return Err(ToolError::Inconsistent(format!(
            "read ended at {next}, log end is {end}"
        )));
    }
    Ok(summary)
}
