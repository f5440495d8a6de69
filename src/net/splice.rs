//! Writing segment-file ranges to a socket, the two ways `fetch.zero.copy` selects:
//! - zero-copy: splice(2) file -> pipe -> socket, never through user space, through one pipe
//!   per connection (`Splicer`) created on first use and reused for every later response.
//!   The splices are made inline on the shard thread (io_uring would run every splice in an
//!   io-wq worker thread): file -> pipe only when cachestat(2) says the range is in the page
//!   cache, else through io_uring; pipe -> socket nonblocking, waiting for room with an
//!   io_uring poll;
//! - copy: the ranges are read into pooled buffers (`pool`) and the whole frame goes out with
//!   vectored writes.
//!
//! Invariants: exactly the parts' bytes are written, in order, or an error is returned (the
//! connection is then closed, since a partial response cannot be recovered; the pipe, which may
//! then hold stray bytes, goes with it). The pipe is empty between file ranges: each fill is
//! drained fully before the next. Every loop makes progress, waits for the socket, or fails:
//! a zero-length splice or read is an error (the file shrank under us, or the peer left).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::driver::op::{Interest, PollOnce};
use compio::driver::ToSharedFd;
use compio::fs::pipe::{anonymous, splice, Receiver, Sender};
use compio::io::{AsyncReadAtExt, AsyncWriteExt};
use compio::net::TcpStream;

use super::pool;
use crate::handlers::BodyPart;

/// iovecs per vectored write; Linux rejects more than IOV_MAX (1024) with EINVAL.
const IOVECS_PER_WRITE_MAX: usize = 512;

/// Record bytes the copy paths (plain copy and TLS) read into memory at once: a file range
/// longer than this is read and written piece by piece, so a connection whose client reads
/// slowly (or not at all) holds at most about this much of its response in memory. Reading
/// whole ranges held a whole fetch response (up to `fetch.max.bytes`) per stalled connection,
/// where Kafka's transport reads a file a buffer at a time.
pub(crate) const COPY_PIECE_BYTES_MAX: u32 = 1 << 20;

/// A dup of the range's file as a compio file (the range keeps its own `Arc<OwnedFd>`).
fn file_of(range: &storage::FileRange) -> io::Result<compio::fs::File> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = range.fd.try_clone()?;
    // SAFETY: `fd` is a fresh dup we own; ownership moves into the compio file, which closes it.
    Ok(unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) })
}

/// The zero-copy writer of one connection: owns its pipe between responses, and counts how
/// its splices were served.
pub struct Splicer {
    pipe: Option<Pipe>,
    pipe_bytes: usize,
    stats: SpliceStats,
}

/// A connection's pipe and its actual capacity (what F_SETPIPE_SZ granted).
struct Pipe {
    rx: Receiver,
    tx: Sender,
    capacity_bytes: usize,
}

/// How a `Splicer`'s splices were served since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpliceStats {
    /// file -> pipe splices done inline on the shard thread (the range was in the page cache).
    pub inline_fills: u64,
    /// file -> pipe splices handed to io_uring (not cached, or the kernel could not tell),
    /// which runs them in an io-wq worker thread.
    pub ring_fills: u64,
    /// pipe -> socket splices done inline (each may move part of the pipe).
    pub inline_sends: u64,
    /// Times the socket's send buffer was full and the writer waited (io_uring poll) for room.
    pub socket_waits: u64,
}

impl Splicer {
    /// `pipe_bytes`: requested pipe capacity (`fetch.splice.pipe.bytes`); the kernel may cap it
    /// at /proc/sys/fs/pipe-max-size, in which case the default capacity is kept.
    pub fn new(pipe_bytes: usize) -> Self {
        Self {
            pipe: None,
            pipe_bytes,
            stats: SpliceStats::default(),
        }
    }

    pub fn stats(&self) -> SpliceStats {
        self.stats
    }

    async fn ensure_pipe(&mut self) -> io::Result<()> {
        if self.pipe.is_none() {
            let (rx, tx) = anonymous().await?;
            let want = libc::c_int::try_from(self.pipe_bytes).unwrap_or(libc::c_int::MAX);
            // SAFETY: F_SETPIPE_SZ / F_GETPIPE_SZ on a pipe fd we own; a failed resize only
            // leaves the default size, which F_GETPIPE_SZ then reports.
            let capacity = unsafe {
                let _best_effort = libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, want);
                libc::fcntl(tx.as_raw_fd(), libc::F_GETPIPE_SZ)
            };
            let capacity_bytes = usize::try_from(capacity)
                .ok()
                .filter(|&c| c > 0)
                .unwrap_or(PIPE_DEFAULT_BYTES);
            self.pipe = Some(Pipe {
                rx,
                tx,
                capacity_bytes,
            });
        }
        Ok(())
    }

    /// Writes the parts in order: runs of bytes with vectored writes, file ranges spliced.
    /// The socket is corked for the frame so framing and records leave in full segments.
    pub async fn write_parts(
        &mut self,
        stream: &TcpStream,
        parts: Vec<BodyPart>,
    ) -> io::Result<()> {
        let has_files = parts.iter().any(|p| matches!(p, BodyPart::File(_)));
        if has_files {
            set_cork(stream, true);
        }
        let result = self.write_parts_corked(stream, parts).await;
        if has_files {
            set_cork(stream, false);
        }
        result
    }

    async fn write_parts_corked(
        &mut self,
        stream: &TcpStream,
        parts: Vec<BodyPart>,
    ) -> io::Result<()> {
        let mut run: Vec<Chunk> = Vec::new();
        for part in parts {
            match part {
                BodyPart::Bytes(bytes) => run.push(Chunk::Bytes(bytes)),
                BodyPart::File(range) => {
                    write_chunks(stream, std::mem::take(&mut run), 0).await?;
                    self.splice_range(stream, &range).await?;
                }
            }
        }
        write_chunks(stream, run, 0).await
    }

    /// Splices the range through the pipe, one pipeful at a time, draining the pipe fully
    /// before the next fill, so the pipe is empty whenever this returns `Ok`.
    pub async fn splice_range(
        &mut self,
        stream: &TcpStream,
        range: &storage::FileRange,
    ) -> io::Result<()> {
        if range.len == 0 {
            return Ok(());
        }
        self.ensure_pipe().await?;
        let Some(pipe) = self.pipe.as_ref() else {
            return Err(io::Error::other("pipe missing after creation"));
        };
        let stats = &mut self.stats;
        // The dup that io_uring fills need, made on the first one only.
        let mut ring_file = None;
        let mut position = range.position;
        let mut left = range.len as usize;
        while left > 0 {
            let len = left.min(pipe.capacity_bytes);
            let in_pipe = fill_pipe(pipe, range, &mut ring_file, position, len, stats).await?;
            if in_pipe == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the range",
                ));
            }
            assert!(in_pipe <= len, "splice moved more than asked");
            position += in_pipe as u64;
            left -= in_pipe;
            drain_pipe(pipe, stream, in_pipe, stats).await?;
        }
        Ok(())
    }
}

/// A pipe's capacity when F_GETPIPE_SZ cannot say (the Linux default).
const PIPE_DEFAULT_BYTES: usize = 65_536;

/// Moves up to `len` bytes at `position` of the range's file into the (empty) pipe.
///
/// io_uring always runs a splice in an io-wq worker thread (a context switch and a wake-up
/// per op), so when the bytes are in the page cache the splice is made here, on the shard
/// thread, where it cannot wait for the disk. Otherwise (or when the kernel cannot tell) it
/// goes to io_uring, so a cold read never stalls the shard.
async fn fill_pipe(
    pipe: &Pipe,
    range: &storage::FileRange,
    ring_file: &mut Option<compio::fs::File>,
    position: u64,
    len: usize,
    stats: &mut SpliceStats,
) -> io::Result<usize> {
    let offset = i64::try_from(position).map_err(|_| io::Error::other("file offset too large"))?;
    if is_cached(range.fd.as_raw_fd(), position, len) {
        match splice_now(range.fd.as_raw_fd(), Some(offset), pipe.tx.as_raw_fd(), len) {
            Ok(moved) => {
                stats.inline_fills += 1;
                return Ok(moved);
            }
            // The pipe had no room (it is drained before each fill, so this should not
            // happen): let io_uring do it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    stats.ring_fills += 1;
    let file = match ring_file {
        Some(file) => file,
        None => ring_file.insert(file_of(range)?),
    };
    splice(file, &pipe.tx, len).offset_in(offset).await
}

/// Moves the `in_pipe` bytes in the pipe to the socket: inline splices while the socket has
/// room, and an io_uring poll for writability whenever it has none.
async fn drain_pipe(
    pipe: &Pipe,
    stream: &TcpStream,
    mut in_pipe: usize,
    stats: &mut SpliceStats,
) -> io::Result<()> {
    let socket = stream.as_raw_fd();
    // SAFETY: F_GETFL on a socket we own.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    while in_pipe > 0 {
        match send_nonblocking(pipe.rx.as_raw_fd(), socket, flags, in_pipe) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket closed during splice",
                ))
            }
            Ok(sent) => {
                assert!(sent <= in_pipe, "splice sent more than the pipe held");
                stats.inline_sends += 1;
                in_pipe -= sent;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stats.socket_waits += 1;
                wait_writable(stream).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One pipe -> socket splice that returns EAGAIN instead of waiting for send-buffer room.
///
/// SPLICE_F_NONBLOCK covers only the pipe side; the socket side waits unless the socket is
/// O_NONBLOCK. The socket is made so for this one call only (`flags`: its usual flags): with
/// O_NONBLOCK left on, a socket op that io_uring hands to io-wq (which it does when its
/// internal poll gives up) would complete with EAGAIN, which compio reports as an error.
fn send_nonblocking(
    pipe_rx: RawFd,
    socket: RawFd,
    flags: libc::c_int,
    len: usize,
) -> io::Result<usize> {
    if flags & libc::O_NONBLOCK != 0 {
        return splice_now(pipe_rx, None, socket, len);
    }
    // SAFETY: F_SETFL on a socket we own, with its own flags plus or minus O_NONBLOCK.
    if unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let sent = splice_now(pipe_rx, None, socket, len);
    // SAFETY: as above.
    if unsafe { libc::fcntl(socket, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    sent
}

/// Waits until the socket can take more bytes (an io_uring poll, served without io-wq).
async fn wait_writable(stream: &TcpStream) -> io::Result<()> {
    let op = PollOnce::new(stream.to_shared_fd(), Interest::Writable);
    compio::runtime::submit(op).await.0.map(|_| ())
}

/// splice(2) now, on this thread, never waiting for pipe room; retried on EINTR.
/// `offset_in`: where to read `fd_in` (a file), or `None` for a pipe.
fn splice_now(
    fd_in: RawFd,
    offset_in: Option<i64>,
    fd_out: RawFd,
    len: usize,
) -> io::Result<usize> {
    loop {
        let mut offset = offset_in.unwrap_or(0);
        let offset_ptr = if offset_in.is_some() {
            std::ptr::from_mut(&mut offset)
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: both fds are open for the call; the offset pointer is null or points to a
        // local loff_t the kernel may update.
        let moved = unsafe {
            libc::splice(
                fd_in,
                offset_ptr,
                fd_out,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        match usize::try_from(moved) {
            Ok(moved) => return Ok(moved),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// cachestat(2) (Linux 6.5+) has this number on every architecture; the libc crate does not
/// name it for all targets yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of linux/mman.h.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of linux/mman.h (counts in pages).
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `len` (> 0) bytes at `position` of the file is in the page cache,
/// so that splicing them cannot wait for the disk (short of an eviction in between). `false`
/// when the kernel cannot tell (older than 6.5, or cachestat not permitted on the file).
fn is_cached(fd: RawFd, position: u64, len: usize) -> bool {
    assert!(len > 0, "cachestat takes len 0 as 'to the end of the file'");
    // SAFETY: sysconf has no preconditions.
    let page_bytes = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let Some(last_byte) = position.checked_add(len as u64 - 1) else {
        return false;
    };
    let pages = last_byte / page_bytes - position / page_bytes + 1;
    let range = CachestatRange {
        off: position,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live locals of the kernel's
    // layout; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            std::ptr::from_ref(&range),
            std::ptr::from_mut(&mut stat),
            0u32,
        )
    };
    rc == 0 && stat.nr_cache >= pages
}

/// TCP_CORK on or off; best effort (an uncorked socket is only slower).
fn set_cork(stream: &TcpStream, on: bool) {
    let value: libc::c_int = on.into();
    // SAFETY: setsockopt with a valid int option value and its size on a socket we own.
    let _best_effort = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A piece of a copied frame: framing bytes or a pooled buffer of record bytes.
enum Chunk {
    Bytes(Bytes),
    Pooled(Vec<u8>),
}

impl IoBuf for Chunk {
    fn as_init(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            Self::Pooled(v) => v,
        }
    }
}

/// Copy path: reads the file ranges into pooled buffers, at most `COPY_PIECE_BYTES_MAX` of
/// record bytes before writing what it holds with vectored writes; the buffers go back to the
/// shard's pool (`pool_bytes_max` in total).
pub async fn write_parts_copied(
    stream: &TcpStream,
    parts: Vec<BodyPart>,
    pool_bytes_max: usize,
) -> io::Result<()> {
    let mut chunks: Vec<Chunk> = Vec::with_capacity(parts.len());
    let mut held_bytes = 0_usize;
    for part in parts {
        let range = match part {
            BodyPart::Bytes(bytes) => {
                chunks.push(Chunk::Bytes(bytes));
                continue;
            }
            BodyPart::File(range) => range,
        };
        for piece in pieces(&range) {
            let piece_bytes = piece.len as usize;
            if held_bytes > 0 && held_bytes + piece_bytes > COPY_PIECE_BYTES_MAX as usize {
                write_chunks(stream, std::mem::take(&mut chunks), pool_bytes_max).await?;
                held_bytes = 0;
            }
            match read_range(&piece).await {
                Ok(buf) => chunks.push(Chunk::Pooled(buf)),
                Err(e) => {
                    recycle(chunks, pool_bytes_max);
                    return Err(e);
                }
            }
            held_bytes += piece_bytes;
        }
    }
    write_chunks(stream, chunks, pool_bytes_max).await
}

/// The range as consecutive pieces of at most `COPY_PIECE_BYTES_MAX` bytes (none when empty).
pub(crate) fn pieces(range: &storage::FileRange) -> impl Iterator<Item = storage::FileRange> + '_ {
    (0..range.len)
        .step_by(COPY_PIECE_BYTES_MAX as usize)
        .map(move |offset| storage::FileRange {
            fd: range.fd.clone(),
            position: range.position + u64::from(offset),
            len: COPY_PIECE_BYTES_MAX.min(range.len - offset),
        })
}

fn recycle(chunks: Vec<Chunk>, pool_bytes_max: usize) {
    for chunk in chunks {
        if let Chunk::Pooled(buf) = chunk {
            pool::give(buf, pool_bytes_max);
        }
    }
}

pub(crate) async fn read_range(range: &storage::FileRange) -> io::Result<Vec<u8>> {
    let len = range.len as usize;
    let buf = pool::take(len);
    if len == 0 {
        return Ok(buf);
    }
    let file = file_of(range)?;
    // `read_exact_at` fills the whole capacity: read into exactly `len` bytes of it.
    let BufResult(result, slice) = file.read_exact_at(buf.slice(..len), range.position).await;
    let buf = slice.into_inner();
    result?;
    assert_eq!(buf.len(), len, "read_exact_at sets the length it read");
    Ok(buf)
}

/// Writes the chunks in order with at most `IOVECS_PER_WRITE_MAX` iovecs per write, handing
/// pooled buffers back to the pool once written.
async fn write_chunks(
    stream: &TcpStream,
    chunks: Vec<Chunk>,
    pool_bytes_max: usize,
) -> io::Result<()> {
    let mut chunks = chunks.into_iter().peekable();
    let mut writer = stream;
    while chunks.peek().is_some() {
        let group: Vec<Chunk> = chunks.by_ref().take(IOVECS_PER_WRITE_MAX).collect();
        let BufResult(result, group) = writer.write_vectored_all(group).await;
        recycle(group, pool_bytes_max);
        if let Err(e) = result {
            recycle(chunks.collect(), pool_bytes_max);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    use compio::io::{AsyncRead, AsyncReadExt};

    fn range_of(
        contents: &[u8],
        position: u64,
        len: u32,
    ) -> (tempfile::NamedTempFile, storage::FileRange) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        let fd: OwnedFd = std::fs::File::open(file.path()).unwrap().into();
        (
            file,
            storage::FileRange {
                fd: Arc::new(fd),
                position,
                len,
            },
        )
    }

    #[test]
    fn pieces_cover_the_range_in_order_and_none_is_longer_than_the_bound() {
        let (_keep, range) = range_of(b"x", 7, 3 * COPY_PIECE_BYTES_MAX + 5);
        let cut: Vec<(u64, u32)> = pieces(&range).map(|p| (p.position, p.len)).collect();
        let piece = u64::from(COPY_PIECE_BYTES_MAX);
        assert_eq!(
            cut,
            vec![
                (7, COPY_PIECE_BYTES_MAX),
                (7 + piece, COPY_PIECE_BYTES_MAX),
                (7 + 2 * piece, COPY_PIECE_BYTES_MAX),
                (7 + 3 * piece, 5),
            ]
        );
        let (_keep, empty) = range_of(b"x", 0, 0);
        assert_eq!(pieces(&empty).count(), 0);
    }

    /// Sends two frames, each "head" + range + "tail", over one connection; returns what the
    /// peer received.
    async fn roundtrip(zero_copy: bool, parts_per_frame: usize) -> (Vec<u8>, Vec<u8>) {
        let contents: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (_keep, range) = range_of(&contents, 1000, 150_000);
        let mut expected = Vec::new();
        let mut frame = Vec::new();
        for i in 0..parts_per_frame {
            let head = Bytes::from(format!("head{i}"));
            expected.extend_from_slice(&head);
            expected.extend_from_slice(&contents[1000..151_000]);
            frame.push(BodyPart::Bytes(head));
            frame.push(BodyPart::File(range.clone()));
        }
        frame.push(BodyPart::Bytes(Bytes::from_static(b"tail")));
        expected.extend_from_slice(b"tail");
        let total = expected.len() * 2;
        let (server, client) = connected_reader(total).await;
        let mut splicer = Splicer::new(1 << 20);
        for _ in 0..2 {
            let parts = frame
                .iter()
                .map(|p| match p {
                    BodyPart::Bytes(b) => BodyPart::Bytes(b.clone()),
                    BodyPart::File(r) => BodyPart::File(r.clone()),
                })
                .collect();
            if zero_copy {
                splicer.write_parts(&server, parts).await.unwrap();
            } else {
                write_parts_copied(&server, parts, 1 << 26).await.unwrap();
            }
        }
        let received = client.await.unwrap();
        expected.extend_from_within(..);
        (received, expected)
    }

    /// A loopback connection's server side, and a task reading `total` bytes on the client side.
    async fn connected_reader(total: usize) -> (TcpStream, compio::runtime::JoinHandle<Vec<u8>>) {
        let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = compio::runtime::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let (result, buf) = stream.read_exact(Vec::with_capacity(total)).await.into();
            result.unwrap();
            buf
        });
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[compio::test]
    async fn splice_writes_the_exact_parts_with_one_pipe() {
        let (received, expected) = roundtrip(true, 3).await;
        assert_eq!(received.len(), expected.len());
        assert!(received == expected);
    }

    /// Whether this kernel answers cachestat(2) for our files (6.5+).
    fn cachestat_works(fd: RawFd) -> bool {
        let range = CachestatRange { off: 0, len: 1 };
        let mut stat = Cachestat::default();
        // SAFETY: as in `is_cached`.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                fd,
                std::ptr::from_ref(&range),
                std::ptr::from_mut(&mut stat),
                0u32,
            )
        };
        rc == 0
    }

    /// A file of `data` followed by a hole up to `len` bytes, which no page cache holds.
    fn data_then_hole(data: &[u8], len: u64) -> (tempfile::NamedTempFile, storage::FileRange) {
        let (file, mut range) = range_of(data, 0, 0);
        file.as_file().set_len(len).unwrap();
        range.len = u32::try_from(len).unwrap();
        (file, range)
    }

    #[test]
    fn cachestat_sees_written_pages_and_not_holes() {
        let data = vec![7u8; 8192];
        let (_keep, range) = data_then_hole(&data, 1 << 20);
        let fd = range.fd.as_raw_fd();
        if cachestat_works(fd) {
            assert!(is_cached(fd, 0, data.len()));
            assert!(is_cached(fd, 100, 5000));
            assert!(!is_cached(fd, 0, 64 * 1024));
            assert!(!is_cached(fd, 512 * 1024, 4096));
        } else {
            assert!(
                !is_cached(fd, 0, data.len()),
                "no cachestat means never cached"
            );
        }
        assert!(
            !is_cached(fd, u64::MAX - 10, 100),
            "a range past u64 is not cached"
        );
    }

    #[compio::test]
    async fn uncached_ranges_go_through_io_uring() {
        // 64 KiB written (cached) then a 192 KiB hole (not cached), one 64 KiB pipeful at a time.
        let data: Vec<u8> = (0..65_536u32).map(|i| (i % 241) as u8).collect();
        let (_keep, range) = data_then_hole(&data, 256 * 1024);
        let mut expected = data.clone();
        expected.resize(256 * 1024, 0);
        let (server, client) = connected_reader(expected.len()).await;
        let mut splicer = Splicer::new(65_536);
        splicer.splice_range(&server, &range).await.unwrap();
        assert!(client.await.unwrap() == expected);
        let stats = splicer.stats();
        assert_eq!(stats.inline_fills + stats.ring_fills, 4, "{stats:?}");
        if cachestat_works(range.fd.as_raw_fd()) {
            // The data is inline and the first pipeful of hole goes to io_uring; its read may
            // read ahead (zero pages) for the rest, which then counts as cached.
            assert!(stats.inline_fills >= 1, "{stats:?}");
            assert!(stats.ring_fills >= 1, "{stats:?}");
        } else {
            assert_eq!(stats.ring_fills, 4, "{stats:?}");
        }
    }

    /// Caps the socket's send buffer, so a few hundred KiB fill it.
    fn small_send_buffer(stream: &TcpStream) {
        let bytes: libc::c_int = 32 * 1024;
        // SAFETY: setsockopt with an int option value and its size on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                std::ptr::from_ref(&bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }

    #[compio::test]
    async fn a_full_socket_makes_the_writer_wait_for_room() {
        // The reader only runs once the writer waits (one thread), so 4 MiB through a 32 KiB
        // send buffer must hit a full socket many times.
        let contents: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 253) as u8).collect();
        let (_keep, range) = range_of(&contents, 0, 4 << 20);
        let (server, client) = connected_reader(contents.len() + 8).await;
        small_send_buffer(&server);
        let mut splicer = Splicer::new(1 << 20);
        let parts = vec![
            BodyPart::Bytes(Bytes::from_static(b"head")),
            BodyPart::File(range),
            BodyPart::Bytes(Bytes::from_static(b"tail")),
        ];
        splicer.write_parts(&server, parts).await.unwrap();
        let received = client.await.unwrap();
        assert_eq!(received.len(), contents.len() + 8);
        assert!(received.get(..4) == Some(b"head".as_slice()));
        assert!(received.get(4..4 + contents.len()) == Some(contents.as_slice()));
        assert!(received.get(4 + contents.len()..) == Some(b"tail".as_slice()));
        let stats = splicer.stats();
        assert!(stats.socket_waits > 0, "{stats:?}");
        assert!(stats.inline_sends > stats.inline_fills, "{stats:?}");
        // SAFETY: F_GETFL on our socket.
        let flags = unsafe { libc::fcntl(server.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "the socket's own flags are restored"
        );
    }

    #[compio::test]
    async fn a_peer_that_left_fails_the_splice() {
        let contents = vec![5u8; 4 << 20];
        let (_keep, range) = range_of(&contents, 0, 4 << 20);
        let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        small_send_buffer(&server);
        drop(client);
        // Wait for the peer's FIN, so the splices below meet a closed peer.
        let (read, _) = server.read(Vec::with_capacity(1)).await.into();
        assert_eq!(read.unwrap(), 0);
        let mut splicer = Splicer::new(1 << 20);
        assert!(splicer.splice_range(&server, &range).await.is_err());
    }

    #[compio::test]
    async fn copy_writes_the_exact_parts() {
        let (received, expected) = roundtrip(false, 3).await;
        assert_eq!(received.len(), expected.len());
        assert!(received == expected);
    }

    #[compio::test]
    async fn copy_splits_writes_beyond_iov_max() {
        // 700 ranges + 701 byte parts: more iovecs than one writev accepts.
        let contents: Vec<u8> = (0..4096u32).map(|i| (i % 13) as u8).collect();
        let (_keep, range) = range_of(&contents, 0, 100);
        let mut parts = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..700 {
            parts.push(BodyPart::Bytes(Bytes::from_static(b"ab")));
            parts.push(BodyPart::File(range.clone()));
            expected.extend_from_slice(b"ab");
            expected.extend_from_slice(&contents[..100]);
        }
        let total = expected.len();
        let (server, client) = connected_reader(total).await;
        write_parts_copied(&server, parts, 1 << 20).await.unwrap();
        assert_eq!(client.await.unwrap(), expected);
    }

    #[compio::test]
    async fn a_range_past_the_end_of_file_fails() {
        let (_keep, mut range) = range_of(&[1, 2, 3], 0, 3);
        range.len = 10;
        let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts = vec![BodyPart::File(range.clone())];
        assert!(write_parts_copied(&server, parts, 1 << 20).await.is_err());
        let mut splicer = Splicer::new(1 << 16);
        assert!(splicer.splice_range(&server, &range).await.is_err());
    }
}
