//! `uring_levers`: sizes the io_uring levers issue 16 lists that compio 0.19.2 does not use
//! (decision 0039), with the `io-uring` crate directly, outside the broker:
//! - `files`: N writes of one size to a file, with and without a registered file
//!   (IOSQE_FIXED_FILE: no fget/fput per op) and a registered buffer (WRITE_FIXED);
//! - `send`: N sends of one size on a loopback TCP connection to a thread that reads them:
//!   plain SEND, SEND on a registered file, SEND_ZC (zero-copy; on loopback the receive side
//!   copies the pages anyway), SEND_ZC from a registered buffer, `write(2)`, `pread` + SEND
//!   (the broker's copy path for fetches) and splice(2) file -> pipe -> socket (the broker's
//!   `fetch.zero.copy` path);
//! - `link`: appends of one size each followed by `fdatasync`, the FSYNC submitted after the
//!   write's completion (the broker today) or linked to it (IOSQE_IO_LINK, one submission);
//!   the `-nop` variants put a NOP in the fdatasync's place, which isolates the hand-off.
//!
//! Variants alternate within each round, so the ratios come from legs run next to each other.
//! CPU time is the process's `getrusage(RUSAGE_SELF)` (it includes the io-wq workers, which
//! are threads of the process); for `send` the reader thread's own `RUSAGE_THREAD` is printed
//! too (on loopback the sender also runs the receiver's TCP input in its softirq).
//! Output: one `LEG <mode> <variant> <KiB> ...` line per leg (CPU s per GB, ns of CPU per op,
//! MB/s; for `link` the latency percentiles in microseconds).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// File bytes the `files` and `send`/splice legs cycle through: written once before the
/// legs, so every leg overwrites (or reads) page-cache pages and no leg grows the file.
const WRAP_BYTES: u64 = 64 * MIB as u64;
const RING_ENTRIES: u32 = 64;
/// `IORING_SEND_ZC_REPORT_USAGE` (linux/io_uring.h; the crate does not export it): the
/// notification's result says whether the kernel copied after all.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`: set in a notification's result when the data was copied.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// The one registered file and buffer.
const FIXED_INDEX: u32 = 0;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Files,
    Send,
    Link,
}

#[derive(Parser, Debug)]
#[command(
    name = "uring_levers",
    about = "io_uring levers (fixed files/buffers, SEND_ZC, linked write+fdatasync), measured"
)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Scratch directory for the files (its filesystem is what `files` and `link` measure).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Op sizes, in KiB.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 128])]
    size_kib: Vec<usize>,
    /// Bytes per leg (`files`, `send`), in MiB.
    #[arg(long, default_value_t = 512)]
    total_mib: usize,
    /// Appends per leg (`link`).
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Ops submitted per `io_uring_enter` (`files`).
    #[arg(long, default_value_t = 8)]
    qd: usize,
    /// Rounds; each runs every variant once, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only the variants whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(thiserror::Error, Debug)]
enum LeverError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Check(String),
}

type Result<T> = std::result::Result<T, LeverError>;

fn check(msg: impl Into<String>) -> LeverError {
    LeverError::Check(msg.into())
}

/// CPU seconds (user + system) of the process, or of the calling thread.
fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage; `who` is RUSAGE_SELF or RUSAGE_THREAD.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A page-aligned buffer with varying bytes.
fn buffer(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Pushes one entry; the rings are sized so that the queue has room.
fn push(ring: &mut IoUring, sqe: squeue::Entry) -> Result<()> {
    // SAFETY: every buffer and fd an entry names outlives the ring's wait for its completion
    // (each leg waits for all of its completions before returning).
    unsafe { ring.submission().push(&sqe) }.map_err(|_| check("submission queue full"))
}

/// Completions: (user_data, result, flags).
fn reap(ring: &mut IoUring, want: usize) -> Result<Vec<(u64, i32, u32)>> {
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        ring.submit_and_wait(want - out.len())?;
        out.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
    }
    Ok(out)
}

fn expect_len(res: i32, len: usize, what: &str) -> Result<()> {
    if res < 0 {
        return Err(io::Error::from_raw_os_error(-res).into());
    }
    if res as usize != len {
        return Err(check(format!("{what}: short op {res} of {len}")));
    }
    Ok(())
}

struct Leg {
    cpu_s: f64,
    wall_s: f64,
    bytes: u64,
    ops: u64,
}

impl Leg {
    fn print(&self, mode: &str, variant: &str, kib: usize, extra: &str) {
        let gb = self.bytes as f64 / 1e9;
        println!(
            "LEG {mode} {variant} {kib} cpu_s_per_gb {:.3} cpu_ns_per_op {:.0} mb_s {:.0}{extra}",
            self.cpu_s / gb,
            self.cpu_s * 1e9 / self.ops as f64,
            self.bytes as f64 / 1e6 / self.wall_s,
        );
    }
}

fn selected(args: &Args, variant: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| variant.contains(o.as_str()))
}

/// `files`: writes of `len` bytes at the next offset (mod `WRAP_BYTES`), `qd` per submission.
fn files_leg(file: &File, len: usize, total: u64, qd: usize, variant: &str) -> Result<Leg> {
    let fixed_file = variant.contains("fixed-file") || variant.contains("fixed-both");
    let fixed_buf = variant.contains("fixed-buf") || variant.contains("fixed-both");
    let mut ring = IoUring::new(RING_ENTRIES)?;
    let bufs: Vec<Vec<u8>> = (0..qd).map(|_| buffer(len)).collect();
    if fixed_file {
        ring.submitter().register_files(&[file.as_raw_fd()])?;
    }
    if fixed_buf {
        let iovecs: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: the buffers outlive the ring (dropped after it, at the end of this fn).
        unsafe { ring.submitter().register_buffers(&iovecs)? };
    }
    let ops = total / len as u64;
    let (cpu0, t0) = (cpu_s(libc::RUSAGE_SELF), Instant::now());
    let mut pos = 0u64;
    let mut done = 0u64;
    while done < ops {
        let n = qd.min((ops - done) as usize);
        for (i, buf) in bufs.iter().take(n).enumerate() {
            let off = pos % WRAP_BYTES;
            pos += len as u64;
            let sqe = match (fixed_file, fixed_buf) {
                (false, false) => {
                    opcode::Write::new(types::Fd(file.as_raw_fd()), buf.as_ptr(), len as u32)
                        .offset(off)
                        .build()
                }
                (true, false) => {
                    opcode::Write::new(types::Fixed(FIXED_INDEX), buf.as_ptr(), len as u32)
                        .offset(off)
                        .build()
                }
                (false, true) => opcode::WriteFixed::new(
                    types::Fd(file.as_raw_fd()),
                    buf.as_ptr(),
                    len as u32,
                    i as u16,
                )
                .offset(off)
                .build(),
                (true, true) => opcode::WriteFixed::new(
                    types::Fixed(FIXED_INDEX),
                    buf.as_ptr(),
                    len as u32,
                    i as u16,
                )
                .offset(off)
                .build(),
            };
            push(&mut ring, sqe.user_data(i as u64))?;
        }
        for (_, res, _) in reap(&mut ring, n)? {
            expect_len(res, len, "write")?;
        }
        done += n as u64;
    }
    let leg = Leg {
        cpu_s: cpu_s(libc::RUSAGE_SELF) - cpu0,
        wall_s: t0.elapsed().as_secs_f64(),
        bytes: ops * len as u64,
        ops,
    };
    drop(ring);
    drop(bufs);
    Ok(leg)
}

/// A loopback TCP connection whose far end is read (and discarded) by a thread, which
/// returns its own CPU seconds once it has read `expect` bytes.
fn loopback(expect: u64) -> Result<(TcpStream, thread::JoinHandle<io::Result<f64>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = thread::spawn(move || -> io::Result<f64> {
        let (mut conn, _) = listener.accept()?;
        let cpu0 = cpu_s(libc::RUSAGE_THREAD);
        let mut buf = vec![0u8; MIB];
        let mut got = 0u64;
        while got < expect {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n as u64;
        }
        Ok(cpu_s(libc::RUSAGE_THREAD) - cpu0)
    });
    let conn = TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    Ok((conn, reader))
}

/// One send of `len` bytes at `buf` through the ring, resubmitting the rest after a short
/// send; SEND_ZC waits for the notification as well (the buffer may be reused only then).
/// Returns how many zero-copy notifications said the kernel copied.
fn ring_send(
    ring: &mut IoUring,
    fd: RawFd,
    buf: &[u8],
    fixed_file: bool,
    zc: bool,
    fixed_buf: bool,
) -> Result<u64> {
    let mut sent = 0usize;
    let mut copied = 0u64;
    while sent < buf.len() {
        let rest = buf.get(sent..).unwrap_or_default();
        let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
        let sqe = match (zc, fixed_file) {
            (false, false) => opcode::Send::new(types::Fd(fd), ptr, len).build(),
            (false, true) => opcode::Send::new(types::Fixed(FIXED_INDEX), ptr, len).build(),
            (true, _) => {
                let op = if fixed_file {
                    opcode::SendZc::new(types::Fixed(FIXED_INDEX), ptr, len)
                } else {
                    opcode::SendZc::new(types::Fd(fd), ptr, len)
                };
                op.buf_index(fixed_buf.then_some(0))
                    .zc_flags(SEND_ZC_REPORT_USAGE)
                    .build()
            }
        };
        push(ring, sqe)?;
        // SEND_ZC: the result (flagged MORE while a notification follows), then the
        // notification.
        let mut pending = 1;
        while pending > 0 {
            for (_, res, flags) in reap(ring, 1)? {
                if zc && cqueue::notif(flags) {
                    if res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                        copied += 1;
                    }
                    pending -= 1;
                    continue;
                }
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res).into());
                }
                sent += res as usize;
                if !(zc && cqueue::more(flags)) {
                    pending -= 1;
                } else {
                    // The result; its notification is still to come.
                }
            }
        }
    }
    Ok(copied)
}

/// splice(2) of `len` bytes from `file` at `off` to the socket through `pipe`, inline and
/// blocking (the broker's `fetch.zero.copy` path, on a page-cache file).
fn splice_send(file: RawFd, off: u64, pipe: (RawFd, RawFd), sock: RawFd, len: usize) -> Result<()> {
    let mut off = off as libc::loff_t;
    let mut left = len;
    while left > 0 {
        // SAFETY: plain syscalls on fds this process owns; `off` is ours.
        let n = unsafe { libc::splice(file, &mut off, pipe.1, std::ptr::null_mut(), left, 0) };
        if n <= 0 {
            return Err(io::Error::last_os_error().into());
        }
        let mut in_pipe = n as usize;
        while in_pipe > 0 {
            // SAFETY: as above.
            let m = unsafe {
                libc::splice(
                    pipe.0,
                    std::ptr::null_mut(),
                    sock,
                    std::ptr::null_mut(),
                    in_pipe,
                    0,
                )
            };
            if m <= 0 {
                return Err(io::Error::last_os_error().into());
            }
            in_pipe -= m as usize;
        }
        left -= n as usize;
    }
    Ok(())
}

/// `send`: `total` bytes in sends of `len` on a fresh loopback connection.
fn send_leg(src: &File, len: usize, total: u64, variant: &str) -> Result<(Leg, f64, u64)> {
    let ops = total / len as u64;
    let (mut conn, reader) = loopback(ops * len as u64)?;
    let fd = conn.as_raw_fd();
    let buf = buffer(len);
    let mut rbuf = vec![0u8; len];
    let mut ring = IoUring::new(RING_ENTRIES)?;
    let fixed_file = variant.contains("fixed-file");
    let fixed_buf = variant.contains("fixed-buf");
    let zc = variant.starts_with("send-zc");
    if fixed_file {
        ring.submitter().register_files(&[fd])?;
    }
    if fixed_buf {
        let iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut _,
            iov_len: buf.len(),
        };
        // SAFETY: `buf` outlives the ring (dropped after it).
        unsafe { ring.submitter().register_buffers(&[iov])? };
    }
    let mut pipe = [0 as RawFd; 2];
    if variant == "splice" {
        // SAFETY: pipe2 fills the two-element array we own.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: fcntl on the pipe we just made; the broker asks for 1 MiB too.
        unsafe { libc::fcntl(pipe[1], libc::F_SETPIPE_SZ, MIB as libc::c_int) };
    }
    let (cpu0, t0) = (cpu_s(libc::RUSAGE_SELF), Instant::now());
    let mut copied = 0u64;
    for i in 0..ops {
        match variant {
            "write" => conn.write_all(&buf)?,
            // The broker's copy path (`fetch.zero.copy = false`): the range read from the
            // page cache into a buffer, then sent.
            "read-send" => {
                src.read_exact_at(&mut rbuf, (i * len as u64) % WRAP_BYTES)?;
                copied += ring_send(&mut ring, fd, &rbuf, false, false, false)?;
            }
            "splice" => splice_send(
                src.as_raw_fd(),
                (i * len as u64) % WRAP_BYTES,
                (pipe[0], pipe[1]),
                fd,
                len,
            )?,
            _ => copied += ring_send(&mut ring, fd, &buf, fixed_file, zc, fixed_buf)?,
        }
    }
    let reader_cpu_s = reader
        .join()
        .map_err(|_| check("reader thread panicked"))??;
    let leg = Leg {
        cpu_s: cpu_s(libc::RUSAGE_SELF) - cpu0,
        wall_s: t0.elapsed().as_secs_f64(),
        bytes: ops * len as u64,
        ops,
    };
    for p in pipe.into_iter().filter(|&p| p != 0) {
        // SAFETY: closing the pipe fds this leg made.
        unsafe { libc::close(p) };
    }
    drop(ring);
    drop(buf);
    Ok((leg, reader_cpu_s, copied))
}

/// Latency percentiles (µs) of `xs` (sorted here).
fn pct(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs.get(i).copied().unwrap_or(f64::NAN)
}

/// `link`: `count` appends of `len` bytes to a fresh file, each made durable with
/// `fdatasync` before the next: FSYNC after the WRITE's completion (`sep`) or linked to it.
fn link_leg(args: &Args, len: usize, variant: &str, round: usize) -> Result<()> {
    let path = args
        .dir
        .join(format!("uring-levers-link-{round}-{variant}"));
    let file = create(&path)?;
    let fd = types::Fd(file.as_raw_fd());
    let buf = buffer(len);
    let mut ring = IoUring::new(RING_ENTRIES)?;
    let linked = variant.starts_with("linked");
    let nop = variant.ends_with("-nop");
    let mut total_us = Vec::with_capacity(args.count);
    let mut fsync_us = Vec::with_capacity(args.count);
    let (cpu0, t0) = (cpu_s(libc::RUSAGE_SELF), Instant::now());
    for i in 0..args.count {
        let write = opcode::Write::new(fd, buf.as_ptr(), len as u32)
            .offset((i * len) as u64)
            .build();
        // `-nop` variants: a NOP in the fdatasync's place, so the legs differ only by the
        // hand-off from the write's completion to the next op (what a link saves), without
        // the disk's flush and its spread.
        let sync = if nop {
            opcode::Nop::new().build().user_data(1)
        } else {
            opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(1)
        };
        let start = Instant::now();
        if linked {
            push(&mut ring, write.flags(squeue::Flags::IO_LINK))?;
            push(&mut ring, sync)?;
            for (_, res, _) in reap(&mut ring, 2)? {
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res).into());
                }
            }
        } else {
            push(&mut ring, write)?;
            for (_, res, _) in reap(&mut ring, 1)? {
                expect_len(res, len, "write")?;
            }
            let sync_start = Instant::now();
            push(&mut ring, sync)?;
            for (_, res, _) in reap(&mut ring, 1)? {
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res).into());
                }
            }
            fsync_us.push(sync_start.elapsed().as_secs_f64() * 1e6);
        }
        total_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let leg = Leg {
        cpu_s: cpu_s(libc::RUSAGE_SELF) - cpu0,
        wall_s: t0.elapsed().as_secs_f64(),
        bytes: (args.count * len) as u64,
        ops: args.count as u64,
    };
    let mean = total_us.iter().sum::<f64>() / total_us.len().max(1) as f64;
    let fsync_mean = fsync_us.iter().sum::<f64>() / fsync_us.len().max(1) as f64;
    let extra = format!(
        " append_us mean {mean:.0} p50 {:.0} p90 {:.0} p99 {:.0} fsync_us mean {fsync_mean:.0} p50 {:.0}",
        pct(&mut total_us, 0.5),
        pct(&mut total_us, 0.9),
        pct(&mut total_us, 0.99),
        pct(&mut fsync_us, 0.5),
    );
    leg.print("link", variant, len / KIB, &extra);
    drop(ring);
    std::fs::remove_file(&path)?;
    Ok(())
}

/// An empty file at `path`, for reading and writing (truncated if it was there).
fn create(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
}

/// A `WRAP_BYTES` file of data in the page cache under `dir`.
fn scratch_file(args: &Args, name: &str) -> Result<(PathBuf, File)> {
    let path = args.dir.join(name);
    let file = create(&path)?;
    let chunk = buffer(MIB);
    for i in 0..WRAP_BYTES / MIB as u64 {
        file.write_all_at(&chunk, i * MIB as u64)?;
    }
    file.sync_data()?;
    Ok((path, file))
}

fn run(args: &Args) -> Result<()> {
    let total = (args.total_mib * MIB) as u64;
    match args.mode {
        Mode::Files => {
            let (path, file) = scratch_file(args, "uring-levers-files")?;
            let variants = ["fd", "fixed-file", "fixed-buf", "fixed-both"];
            for round in 0..args.rounds {
                for &kib in &args.size_kib {
                    for v in variants.iter().filter(|v| selected(args, v)) {
                        let leg = files_leg(&file, kib * KIB, total, args.qd, v)?;
                        leg.print("files", v, kib, &format!(" round {round}"));
                    }
                }
            }
            std::fs::remove_file(path)?;
        }
        Mode::Send => {
            let (path, file) = scratch_file(args, "uring-levers-send")?;
            let variants = [
                "send",
                "send-fixed-file",
                "send-zc",
                "send-zc-fixed-buf",
                "write",
                "read-send",
                "splice",
            ];
            for round in 0..args.rounds {
                for &kib in &args.size_kib {
                    for v in variants.iter().filter(|v| selected(args, v)) {
                        let (leg, reader_s, copied) = send_leg(&file, kib * KIB, total, v)?;
                        let gb = leg.bytes as f64 / 1e9;
                        leg.print(
                            "send",
                            v,
                            kib,
                            &format!(
                                " reader_cpu_s_per_gb {:.3} zc_copied {copied} round {round}",
                                reader_s / gb
                            ),
                        );
                    }
                }
            }
            std::fs::remove_file(path)?;
        }
        Mode::Link => {
            for round in 0..args.rounds {
                for &kib in &args.size_kib {
                    for v in ["sep", "linked", "sep-nop", "linked-nop"]
                        .iter()
                        .filter(|v| selected(args, v))
                    {
                        link_leg(args, kib * KIB, v, round)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.qd == 0 || args.qd > RING_ENTRIES as usize / 2 || args.size_kib.contains(&0) {
        eprintln!("uring_levers: --qd must be 1..=32 and sizes > 0");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uring_levers: {e}");
            ExitCode::FAILURE
        }
    }
}
