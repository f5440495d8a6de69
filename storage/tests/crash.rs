//! Crash tests with a real child process (`sluice-logtool append-loop`):
//!
//! 1. SIGKILL while appending with an fsync per append, at a random moment: every ACKed batch
//!    must come back byte-identical (values CRC), nothing partial may be visible and the next
//!    append continues at the recovered end. Repeated on the same directory.
//! 2. to 5. Damage a cleanly written log (flipped bytes in the last batch, a torn last batch,
//!    deleted indexes, garbage indexes): the log keeps everything before the damage and the
//!    recovery says what it cut or rebuilt, both in `Log::recovery_report` and in the
//!    `tracing` events (captured with a per-thread subscriber).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{files_with, rt};
use storage::batch::{self, BATCH_HEADER_LEN};
use storage::{AppendOptions, BatchBuilder, BatchHeader, Log, LogConfig, Offset};

const LOGTOOL: &str = env!("CARGO_BIN_EXE_sluice-logtool");
/// Small segments so that kills also land around rolls and damage hits a multi-segment log.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Generous: a debug build fsyncing on a shared VM.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines buffered between the reader thread and the test.
const LINE_QUEUE_MAX: usize = 1024;

/// One `ACK <base> <last> <crc>` line: a batch the child reported durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    base: i64,
    last: i64,
    crc: u32,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut it = line.strip_prefix("ACK ")?.split(' ');
    let ack = Ack {
        base: it.next()?.parse().ok()?,
        last: it.next()?.parse().ok()?,
        crc: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(ack)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: SEGMENT_BYTES,
        ..LogConfig::default()
    }
}

/// The child process plus a thread forwarding its stdout lines; killed and reaped on drop.
struct Appender {
    child: Child,
    lines: Receiver<String>,
}

impl Appender {
    fn spawn(dir: &Path, batch_bytes: u32, count: Option<u32>) -> Appender {
        Self::spawn_with(dir, batch_bytes, count, &[])
    }

    /// `spawn` with more `append-loop` arguments.
    fn spawn_with(dir: &Path, batch_bytes: u32, count: Option<u32>, extra: &[&str]) -> Appender {
        let mut cmd = Command::new(LOGTOOL);
        cmd.arg("append-loop")
            .arg("--dir")
            .arg(dir)
            .args(["--batch-bytes", &batch_bytes.to_string()])
            .args(["--records-per-batch", "8"])
            .args(["--segment-bytes", &SEGMENT_BYTES.to_string()])
            .arg("--fsync-every-append")
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(n) = count {
            cmd.args(["--count", &n.to_string()]);
        }
        let mut child = cmd.spawn().expect("spawn sluice-logtool");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::sync_channel(LINE_QUEUE_MAX);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Appender { child, lines }
    }

    /// The next line, or `None` at end of output; panics if the child stalls.
    fn next_line(&self) -> Option<String> {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("sluice-logtool printed nothing for {LINE_TIMEOUT:?}")
            }
        }
    }

    /// Collects ACKs until `n` more were seen.
    fn acks_until(&self, n: usize, acks: &mut Vec<Ack>) {
        let mut seen = 0;
        while seen < n {
            let line = self.next_line().expect("child exited early");
            if let Some(a) = parse_ack(&line) {
                acks.push(a);
                seen += 1;
            }
        }
    }

    /// SIGKILL, then every ACK the child printed before it died.
    fn kill9(mut self, acks: &mut Vec<Ack>) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
        while let Some(line) = self.next_line() {
            acks.extend(parse_ack(&line));
        }
    }

    /// Waits for a `--count` run to end; returns its ACKs.
    fn finish(mut self) -> Vec<Ack> {
        let mut acks = Vec::new();
        let mut closed = false;
        while let Some(line) = self.next_line() {
            acks.extend(parse_ack(&line));
            closed |= line.starts_with("CLOSED ");
        }
        let status = self.child.wait().expect("reap");
        assert!(status.success() && closed, "append-loop failed: {status}");
        acks
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        // Already reaped on the normal paths; this covers a panicking test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CRC-32C of a batch's record values in order (the ACK line's checksum).
fn values_crc(b: &[u8]) -> u32 {
    let mut crc = 0u32;
    for rec in batch::records(b).expect("uncompressed batch") {
        if let Some(v) = rec.expect("valid record").value {
            crc = crc32c::crc32c_append(crc, v);
        }
    }
    crc
}

/// Reads the whole log; asserts every batch is whole, CRC-valid and contiguous; returns
/// base offset -> (last offset, values CRC).
async fn read_checked(log: &Log) -> BTreeMap<i64, (i64, u32)> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mut seen = BTreeMap::new();
    let mut next = start.0;
    while next < end.0 {
        let slice = log.read(Offset(next), 256 * 1024, true, end).await.unwrap();
        assert!(!slice.is_empty(), "nothing readable at {next} (end {end})");
        let bytes = slice.read_bytes().await.unwrap();
        for b in batch::split_batches(&bytes) {
            let b = b.expect("whole batch");
            let info = batch::validate_batch(b, u32::MAX).expect("valid batch");
            assert_eq!(info.header.base_offset, next, "offsets are contiguous");
            seen.insert(next, (info.header.last_offset(), values_crc(b)));
            next = info.header.last_offset() + 1;
        }
    }
    assert_eq!(next, end.0);
    seen
}

/// Every ACK is present and identical, also when looked up from one of its own offsets.
async fn check_acks(log: &Log, acks: &[Ack]) {
    let seen = read_checked(log).await;
    for a in acks {
        assert!(
            a.last < log.log_end_offset().0,
            "ACKed {a:?} beyond end {}",
            log.log_end_offset()
        );
        assert_eq!(
            seen.get(&a.base),
            Some(&(a.last, a.crc)),
            "ACKed batch {a:?}"
        );
        let mid = a.base + (a.last - a.base) / 2;
        let one = log
            .read(Offset(mid), 1, true, Offset(i64::MAX))
            .await
            .unwrap();
        let bytes = one.read_bytes().await.unwrap();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!((h.base_offset, bytes.len()), (a.base, h.total_size()));
    }
}

/// Appends one batch in-process and checks it lands at `expected`; returns its ACK.
async fn append_at(log: &Log, expected: Offset) -> Ack {
    let b = BatchBuilder::new(1_000)
        .record(None, Some(b"after-recovery-1"), &[])
        .record(None, Some(b"after-recovery-2"), &[])
        .build();
    let crc = values_crc(&b);
    let info = log
        .append(
            b,
            AppendOptions {
                leader_epoch: 0,
                now_ms: 1_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        info.base_offset, expected,
        "appends continue at the recovered end"
    );
    log.flush().await.unwrap();
    Ack {
        base: info.base_offset.0,
        last: info.last_offset.0,
        crc,
    }
}

/// A seed that differs per run (the kill moment is random), printed for reproduction.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = nanos | 1;
    eprintln!("crash test seed {seed}");
    seed
}

fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Lets `child` print `target` more ACKs, SIGKILLs it a random moment later (anywhere in an
/// append / fsync / roll, not just after a print); returns the last ACK it printed.
fn kill_after(child: Appender, target: usize, rng: &mut u64, acks: &mut Vec<Ack>) -> Ack {
    child.acks_until(target, acks);
    std::thread::sleep(Duration::from_micros(next_rand(rng) % 3_000));
    child.kill9(acks);
    acks.last().copied().expect("acks")
}

#[test]
fn kill_9_during_fsynced_appends_loses_no_acked_batch() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut rng = seed();
    let mut acks: Vec<Ack> = Vec::new();
    for round in 0..5 {
        let child = Appender::spawn(&dir, 8 * 1024, None);
        let target = 50 + (next_rand(&mut rng) % 100) as usize;
        let last_ack = kill_after(child, target, &mut rng, &mut acks);
        rt().block_on(async {
            let log = Log::open(dir.clone(), config()).await.unwrap();
            assert!(!log.recovery_report().clean_shutdown, "killed, not closed");
            assert!(!log.recovery_report().scanned_segments.is_empty());
            let end = log.log_end_offset();
            assert!(
                end.0 > last_ack.last,
                "round {round}: end {end} below ACK {last_ack:?}"
            );
            check_acks(&log, &acks).await;
            eprintln!(
                "round {round}: {} ACKs so far, recovered end {end}",
                acks.len()
            );
            acks.push(append_at(&log, end).await);
            // Dropped without close: the next child recovers from an unclean shutdown too.
        });
    }
    assert!(
        files_with(&dir, ".log").len() > 1,
        "kills should span several segments"
    );
}

/// The same with zero-ahead on (`log.zero.ahead.bytes`, `storage/src/prealloc.rs`): the
/// active segment's file extends past its data with zeros when the child dies; recovery must
/// read them as the end (every ACK back, no garbage batch, the zeros cut) in every round.
#[test]
fn kill_9_with_zeros_ahead_of_the_active_segment_loses_no_acked_batch() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut rng = seed();
    let mut acks: Vec<Ack> = Vec::new();
    let mut zero_tails = 0;
    let zero_ahead = ["--zero-ahead-bytes", "32768"];
    let cfg = LogConfig {
        zero_ahead_bytes: 32 * 1024,
        ..config()
    };
    for round in 0..3 {
        let child = Appender::spawn_with(&dir, 4 * 1024, None, &zero_ahead);
        let target = 20 + (next_rand(&mut rng) % 40) as usize;
        let last_ack = kill_after(child, target, &mut rng, &mut acks);
        rt().block_on(async {
            let log = Log::open(dir.clone(), cfg.clone()).await.unwrap();
            let report = log.recovery_report().clone();
            zero_tails += report.zero_tails.len();
            let end = log.log_end_offset();
            assert!(
                end.0 > last_ack.last,
                "round {round}: end {end} below {last_ack:?}"
            );
            // Every batch whole and contiguous (no zeros read as data), every ACK there.
            check_acks(&log, &acks).await;
            let on_disk: u64 = files_with(&dir, ".log")
                .iter()
                .map(|f| std::fs::metadata(f).unwrap().len())
                .sum();
            assert_eq!(
                on_disk,
                log.size_bytes(),
                "round {round}: zeros left ({report:?})"
            );
            acks.push(append_at(&log, end).await);
        });
    }
    assert!(
        zero_tails > 0,
        "no round left zeros to cut: the test did not test it"
    );
}

/// Writes a log cleanly with the child; returns its ACKs.
fn populate(dir: &Path) -> Vec<Ack> {
    let acks = Appender::spawn(dir, 4 * 1024, Some(60)).finish();
    assert_eq!(acks.len(), 60);
    assert!(files_with(dir, ".log").len() > 2);
    acks
}

/// A `Write` into a shared buffer, for a capturing `tracing` subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with this thread's `tracing` events captured; returns its result and the text.
fn captured<R>(f: impl FnOnce() -> R) -> (R, String) {
    let buf = Captured::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (r, text)
}

/// Position, size and base offset of the last batch of a segment file.
fn last_batch(path: &Path) -> (u64, u64, i64) {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = 0usize;
    let mut last = None;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).unwrap();
        last = Some((pos as u64, h.total_size() as u64, h.base_offset));
        pos += h.total_size();
    }
    assert_eq!(pos, bytes.len(), "clean log holds whole batches");
    last.expect("active segment is not empty")
}

/// Reopens after tail damage; asserts what was kept, what was cut and what was reported.
fn reopen_after_tail_damage(dir: &Path, acks: &[Ack], cut: (u64, u64, i64), problem: &str) {
    let (pos, bytes, base) = cut;
    let ((), report) = captured(|| {
        rt().block_on(async {
            let log = Log::open(dir.to_path_buf(), config()).await.unwrap();
            assert_eq!(
                log.log_end_offset(),
                Offset(base),
                "cut at the damaged batch"
            );
            let cut_report = log.recovery_report().truncated.clone().expect("a cut");
            assert_eq!(
                (cut_report.offset, cut_report.position, cut_report.bytes),
                (Offset(base), pos, bytes)
            );
            assert!(
                cut_report.reason.contains(problem),
                "{cut_report:?} lacks {problem:?}"
            );
            assert!(log.recovery_report().clean_shutdown);
            assert!(log.recovery_report().removed_segments.is_empty());
            let kept: Vec<Ack> = acks.iter().copied().filter(|a| a.base < base).collect();
            assert_eq!(kept.len(), acks.len() - 1, "only the damaged batch is lost");
            check_acks(&log, &kept).await;
            append_at(&log, Offset(base)).await;
            log.close().await.unwrap();
        })
    });
    assert!(
        report.contains("truncating damaged log tail"),
        "no cut reported:\n{report}"
    );
    for field in [
        format!("offset={base}"),
        format!("position={pos}"),
        format!("bytes={bytes}"),
    ] {
        assert!(report.contains(&field), "report lacks {field}:\n{report}");
    }
    assert!(
        report.contains(problem),
        "report lacks {problem:?}:\n{report}"
    );
}

#[test]
fn flipped_bytes_in_the_last_batch_are_cut() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let acks = populate(&dir);
    let active = files_with(&dir, ".log").pop().unwrap();
    let (pos, size, base) = last_batch(&active);
    let mut f = OpenOptions::new().write(true).open(&active).unwrap();
    f.seek(SeekFrom::Start(pos + size / 2)).unwrap();
    f.write_all(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
    drop(f);
    reopen_after_tail_damage(&dir, &acks, (pos, size, base), "crc mismatch");
}

#[test]
fn torn_last_batch_is_cut() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let acks = populate(&dir);
    let active = files_with(&dir, ".log").pop().unwrap();
    let (pos, size, base) = last_batch(&active);
    let kept_bytes = size / 2;
    assert!(
        kept_bytes > BATCH_HEADER_LEN as u64,
        "tear after the header"
    );
    let f = OpenOptions::new().write(true).open(&active).unwrap();
    f.set_len(pos + kept_bytes).unwrap();
    drop(f);
    reopen_after_tail_damage(&dir, &acks, (pos, kept_bytes, base), "torn batch");
}

/// Reopens after index damage: all data kept, a rebuild reported, `.index` files rebuilt
/// byte-identical to what the appends wrote.
fn reopen_after_index_damage(dir: &Path, acks: &[Ack], originals: &[(PathBuf, Vec<u8>)]) {
    let ((), report) = captured(|| {
        rt().block_on(async {
            let log = Log::open(dir.to_path_buf(), config()).await.unwrap();
            assert_eq!(log.log_end_offset(), Offset(acks.last().unwrap().last + 1));
            let r = log.recovery_report();
            assert!(!r.rebuilt_indexes.is_empty(), "no rebuild in {r:?}");
            assert_eq!(r.truncated, None, "index damage must not cut data");
            check_acks(&log, acks).await;
            log.close().await.unwrap();
        })
    });
    assert!(
        report.contains("rebuilding index"),
        "no rebuild reported:\n{report}"
    );
    assert!(
        !report.contains("truncating"),
        "index damage must not cut data:\n{report}"
    );
    for (path, bytes) in originals {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} rebuilt",
            path.display()
        );
    }
}

fn index_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_with(dir, ".index")
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn deleted_indexes_are_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let acks = populate(&dir);
    let originals = index_files(&dir);
    assert!(
        originals.iter().any(|(_, b)| !b.is_empty()),
        "some index entries were written"
    );
    for p in files_with(&dir, ".index")
        .iter()
        .chain(&files_with(&dir, ".timeindex"))
    {
        std::fs::remove_file(p).unwrap();
    }
    reopen_after_index_damage(&dir, &acks, &originals);
    assert_eq!(files_with(&dir, ".timeindex").len(), originals.len());
}

#[test]
fn garbage_indexes_are_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let acks = populate(&dir);
    let originals = index_files(&dir);
    for (i, (p, _)) in originals.iter().enumerate() {
        // Alternate: a size that is not whole entries, and whole entries that go backwards.
        let garbage: Vec<u8> = if i % 2 == 0 {
            vec![0xEE; 13]
        } else {
            [[0, 0, 0, 9, 0, 0, 1, 0], [0, 0, 0, 2, 0, 0, 0, 64]].concat()
        };
        std::fs::write(p, garbage).unwrap();
    }
    reopen_after_index_damage(&dir, &acks, &originals);
}
