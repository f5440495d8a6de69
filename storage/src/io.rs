//! Thin io_uring file helpers over `Arc<OwnedFd>` (through compio's runtime on the current
//! thread). Segment files are kept as shared fds so read results can carry them to other
//! shards; every operation here is submitted to the calling thread's compio runtime, except
//! the small append writes that `write_segment_data` does with `pwrite` on the shard thread.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use compio::buf::IntoInner;
use compio::buf::{IoBuf, IoBufMut, IoVectoredBuf};
use compio::driver::op::{
    BufResultExt, FileStat, ReadAt, Sync, TruncateFile, WriteAt, WriteVectoredAt,
};
use compio::io::{AsyncReadAt, AsyncReadAtExt, AsyncWriteAt, AsyncWriteAtExt};
use compio::BufResult;

/// A shared file descriptor usable with compio's positional read/write traits.
#[derive(Clone, Debug)]
pub(crate) struct Fd(pub Arc<OwnedFd>);

impl AsyncReadAt for Fd {
    async fn read_at<T: IoBufMut>(&self, buf: T, pos: u64) -> BufResult<usize, T> {
        let op = ReadAt::new(self.0.clone(), pos, buf);
        let res = compio::runtime::submit(op).await.into_inner();
        // SAFETY: the kernel wrote `n` bytes into the buffer's uninitialised tail.
        unsafe { res.map_advanced() }
    }
}

impl AsyncWriteAt for Fd {
    async fn write_at<T: IoBuf>(&mut self, buf: T, pos: u64) -> BufResult<usize, T> {
        let op = WriteAt::new(self.0.clone(), pos, buf);
        compio::runtime::submit(op).await.into_inner()
    }

    /// One io_uring WRITEV (the trait's default writes only the first buffer per call).
    async fn write_vectored_at<T: IoVectoredBuf>(
        &mut self,
        buf: T,
        pos: u64,
    ) -> BufResult<usize, T> {
        let op = WriteVectoredAt::new(self.0.clone(), pos, buf);
        compio::runtime::submit(op).await.into_inner()
    }
}

impl Fd {
    /// Opens (optionally creating) a file read-write.
    pub async fn open_rw(path: &Path, create: bool) -> io::Result<Fd> {
        let f = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)
            .await?;
        Ok(Fd(Arc::new(f.as_fd().try_clone_to_owned()?)))
    }

    /// Opens a file or directory read-only.
    pub async fn open_ro(path: &Path) -> io::Result<Fd> {
        let f = compio::fs::OpenOptions::new().read(true).open(path).await?;
        Ok(Fd(Arc::new(f.as_fd().try_clone_to_owned()?)))
    }

    /// Reads exactly `len` bytes at `pos` (UnexpectedEof if the file is shorter).
    pub async fn read_exact(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let BufResult(res, buf) = self.read_exact_at(Vec::with_capacity(len), pos).await;
        res.map(|()| buf)
    }

    /// Reads exactly `len` bytes at `pos` into the spare capacity of `buf`, after its
    /// current contents (no intermediate buffer; `buf` grows only if it is too small).
    pub async fn read_exact_append(
        &self,
        mut buf: BytesMut,
        pos: u64,
        len: usize,
    ) -> io::Result<BytesMut> {
        buf.reserve(len);
        let start = buf.len();
        let BufResult(res, slice) = self.read_exact_at(buf.slice(start..start + len), pos).await;
        let buf = slice.into_inner();
        res.map(|()| buf)
    }

    /// Reads up to `len` bytes at `pos`, fewer only at end of file.
    pub async fn read_upto(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(len);
        while out.len() < len {
            let want = len - out.len();
            let BufResult(res, chunk) = self
                .read_at(Vec::with_capacity(want), pos + out.len() as u64)
                .await;
            let n = res?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Writes all of `buf` at `pos`.
    pub async fn write_all<T: IoBuf>(&self, buf: T, pos: u64) -> io::Result<T> {
        let mut fd = self.clone();
        let BufResult(res, buf) = fd.write_all_at(buf, pos).await;
        res.map(|()| buf)
    }

    /// Writes all of an append's `buf` at `pos` of a segment's `.log` file (the one write
    /// the fault-injection test hook can fail, see `fault.rs`, whichever path it takes).
    ///
    /// `inline`: a plain `pwrite` on the calling thread instead of an io_uring WRITE. ext4
    /// refuses IOCB_NOWAIT for buffered writes (`pwritev2(RWF_NOWAIT)` fails with
    /// EOPNOTSUPP), so io_uring punts every such WRITE to an io-wq worker: a wake-up and two
    /// context switches per append, which dominate small appends. A `pwrite` is a copy into
    /// the page cache, but when it blocks (ext4's block-mapping lock held by writeback of
    /// the same file, journal, dirty-page throttling) the whole shard waits: the caller
    /// picks it only for small appends with no fsync of the file in flight.
    pub async fn write_segment_data<T: IoBuf>(
        &self,
        buf: T,
        pos: u64,
        inline: bool,
    ) -> io::Result<T> {
        crate::fault::check(crate::fault::Op::SegmentWrite)?;
        if !inline {
            return self.write_all(buf, pos).await;
        }
        self.pwrite_all(buf.as_init(), pos)?;
        // An io_uring write always suspends the append; keep that, so an appender looping
        // on the shard cannot starve its other tasks and timers while its appends complete
        // inline (measured: 36 ms timer stalls without it).
        yield_now().await;
        Ok(buf)
    }

    /// `write_segment_data` for several appends' buffers written back to back from `pos`
    /// in one vectored write (`pwritev(2)` inline, else an io_uring WRITEV); a single buffer
    /// takes the plain path.
    pub async fn write_segment_vectored(
        &self,
        mut bufs: Vec<BytesMut>,
        pos: u64,
        inline: bool,
    ) -> io::Result<Vec<BytesMut>> {
        if bufs.len() == 1 {
            if let Some(buf) = bufs.pop() {
                let buf = self.write_segment_data(buf, pos, inline).await?;
                bufs.push(buf);
                return Ok(bufs);
            }
        }
        crate::fault::check(crate::fault::Op::SegmentWrite)?;
        if !inline {
            let mut fd = self.clone();
            let BufResult(res, bufs) = fd.write_vectored_all_at(bufs, pos).await;
            return res.map(|()| bufs);
        }
        let slices: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.pwritev_all(&slices, pos)?;
        yield_now().await;
        Ok(bufs)
    }

    /// Writes all of `slices`, back to back from `pos`, with `pwritev(2)` on the calling
    /// thread, continuing short writes where they stopped and retrying EINTR.
    fn pwritev_all(&self, slices: &[&[u8]], pos: u64) -> io::Result<()> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let mut done = 0usize;
        while done < total {
            // The iovecs of what is left: skip whole slices already written, cut the first.
            let mut skip = done;
            let iovs: Vec<libc::iovec> = slices
                .iter()
                .filter_map(|s| {
                    if skip >= s.len() {
                        skip -= s.len();
                        return None;
                    }
                    let rest = s.get(skip..)?;
                    skip = 0;
                    Some(libc::iovec {
                        iov_base: rest.as_ptr() as *mut libc::c_void,
                        iov_len: rest.len(),
                    })
                })
                .collect();
            let at = pos
                .checked_add(done as u64)
                .and_then(|p| libc::off_t::try_from(p).ok())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
            let count = libc::c_int::try_from(iovs.len())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: every iovec points into a live, initialised slice borrowed for the
            // duration of the call; the kernel only reads them. The fd is kept open by the
            // `Arc<OwnedFd>` we hold.
            let n = unsafe { libc::pwritev(self.0.as_raw_fd(), iovs.as_ptr(), count, at) };
            match usize::try_from(n) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `pos` with `pwrite(2)` on the calling thread, continuing
    /// short writes at the right offset and retrying EINTR.
    fn pwrite_all(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut done = 0usize;
        while let Some(rest) = buf.get(done..).filter(|r| !<[u8]>::is_empty(r)) {
            let at = pos
                .checked_add(done as u64)
                .and_then(|p| libc::off_t::try_from(p).ok())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
            // SAFETY: `rest` is a live, initialised slice for the duration of the call, and
            // the fd is kept open by the `Arc<OwnedFd>` we hold.
            let n =
                unsafe { libc::pwrite(self.0.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at) };
            match usize::try_from(n) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Tells the kernel `[pos, pos + len)` will be read soon (`posix_fadvise` WILLNEED:
    /// readahead of the range starts now, so the reads that follow find it in the page cache
    /// instead of waiting for the disk one at a time). Advisory: a refusal is ignored.
    pub fn advise_will_read(&self, pos: u64, len: u64) {
        let (Ok(pos), Ok(len)) = (libc::off_t::try_from(pos), libc::off_t::try_from(len)) else {
            return;
        };
        // SAFETY: an advisory syscall on an fd kept open by the `Arc<OwnedFd>` we hold.
        let rc =
            unsafe { libc::posix_fadvise(self.0.as_raw_fd(), pos, len, libc::POSIX_FADV_WILLNEED) };
        if rc != 0 {
            tracing::debug!(rc, "posix_fadvise(WILLNEED) refused");
        }
    }

    /// fdatasync of a segment's `.log` file (the one fsync the fault-injection test hook can
    /// fail, see `fault.rs`).
    pub async fn sync_segment_data(&self) -> io::Result<()> {
        crate::fault::check(crate::fault::Op::SegmentFsync)?;
        self.sync(false).await
    }

    /// fdatasync (or fsync with `all`).
    pub async fn sync(&self, all: bool) -> io::Result<()> {
        let op = Sync::new(self.0.clone(), !all);
        compio::runtime::submit(op).await.0.map(|_| ())
    }

    /// ftruncate.
    pub async fn truncate(&self, len: u64) -> io::Result<()> {
        let op = TruncateFile::new(self.0.clone(), len);
        compio::runtime::submit(op).await.0.map(|_| ())
    }

    /// File size and modification time in ms since the epoch (fstat through io_uring).
    pub async fn stat(&self) -> io::Result<(u64, i64)> {
        let op = FileStat::new(self.0.clone());
        let BufResult(res, op) = compio::runtime::submit(op).await;
        res?;
        let meta = compio::fs::Metadata::from_stat(op.into_inner());
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        Ok((meta.len(), mtime_ms))
    }
}

/// Suspends the current task once (wakes itself at once), so the runtime runs its other
/// ready tasks and polls its driver and timers before this one continues. The one yield of
/// the workspace: the cleaner, the handlers' long loops and the benches use it too.
pub fn yield_now() -> impl Future<Output = ()> {
    YieldNow(false)
}

struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// fsyncs a directory so renames / creations / unlinks in it are durable.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    Fd::open_ro(dir).await?.sync(true).await
}
