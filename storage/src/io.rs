//! Thin io_uring file helpers over `Arc<OwnedFd>` (through compio's runtime on the current
//! thread). Segment files are kept as shared fds so read results can carry them to other
//! shards; every operation here is submitted to the calling thread's compio runtime, except
//! the small append writes that `write_segment_vectored` does with `pwritev` on the shard
//! thread.

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
use futures_util::future::{FutureExt, LocalBoxFuture};

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

    /// Writes all of `bufs` (several appends' iovecs, back to back) at `pos` of a segment's
    /// `.log` file with one vectored write: `pwritev(2)` inline, else an io_uring WRITEV,
    /// which keeps `bufs` (and so the received buffers they point into) until it completes.
    /// The one write the fault-injection test hook can fail (`fault.rs`), whichever path.
    ///
    /// `inline`: a plain `pwritev` on the calling thread instead of an io_uring WRITEV. ext4
    /// refuses IOCB_NOWAIT for buffered writes (`pwritev2(RWF_NOWAIT)` fails with
    /// EOPNOTSUPP), so io_uring punts every such write to an io-wq worker: a wake-up and two
    /// context switches per append, which dominate small appends. A `pwritev` is a copy into
    /// the page cache, but when it blocks (ext4's block-mapping lock held by writeback of
    /// the same file, journal, dirty-page throttling) the whole shard waits: the caller
    /// picks it only for small appends with no fsync of the file in flight.
    pub async fn write_segment_vectored<T: IoVectoredBuf>(
        &self,
        bufs: T,
        pos: u64,
        inline: bool,
    ) -> io::Result<T> {
        crate::fault::check(crate::fault::Op::SegmentWrite)?;
        if !inline {
            let mut fd = self.clone();
            let BufResult(res, bufs) = fd.write_vectored_all_at(bufs, pos).await;
            return res.map(|()| bufs);
        }
        self.pwritev_all(&bufs, pos)?;
        // An io_uring write always suspends the append; keep that, so an appender looping
        // on the shard cannot starve its other tasks and timers while its appends complete
        // inline (measured: 36 ms timer stalls without it).
        yield_now().await;
        Ok(bufs)
    }

    /// Writes all of `bufs`' slices, back to back from `pos`, with `pwritev(2)` on the
    /// calling thread, continuing short writes where they stopped and retrying EINTR. The
    /// iovecs live on the stack, at most `IOVECS_PER_CALL` per call (a longer list continues
    /// in the next call like a short write), so an inline append allocates nothing here.
    fn pwritev_all<T: IoVectoredBuf>(&self, bufs: &T, pos: u64) -> io::Result<()> {
        let total = bufs.total_len();
        let mut done = 0usize;
        while done < total {
            let mut iovs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; IOVECS_PER_CALL];
            let count = fill_iovecs(bufs.iter_slice(), done, &mut iovs);
            let at = pos
                .checked_add(done as u64)
                .and_then(|p| libc::off_t::try_from(p).ok())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
            let count_c = libc::c_int::try_from(count)
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: the first `count` iovecs point into live, initialised slices borrowed
            // for the duration of the call; the kernel only reads them. The fd is kept open
            // by the `Arc<OwnedFd>` we hold.
            let n = unsafe { libc::pwritev(self.0.as_raw_fd(), iovs.as_ptr(), count_c, at) };
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

    /// An fdatasync of the segment whose SQE is already in the ring when this returns: its
    /// future is polled once here, so the op is pushed now rather than when the executor
    /// reaches the task that awaits it. [`submit_pushed`] then hands it to the kernel.
    pub fn start_sync_segment_data(&self) -> LocalBoxFuture<'static, io::Result<()>> {
        let fd = self.clone();
        let mut sync = async move { fd.sync_segment_data().await }.boxed_local();
        let waker = futures_util::task::noop_waker();
        match sync.as_mut().poll(&mut Context::from_waker(&waker)) {
            // A fault-injected failure (or an op completed at push): nothing in flight.
            Poll::Ready(res) => std::future::ready(res).boxed_local(),
            // Pushed; the awaiting task's first poll registers its own waker in place of
            // the no-op one before any completion is reaped (same thread, later poll).
            Poll::Pending => sync,
        }
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

/// Most iovecs one inline `pwritev` takes: a whole append write (`APPEND_IOVECS_MAX`, under
/// `IOV_MAX`) in one call.
const IOVECS_PER_CALL: usize = crate::stamp::APPEND_IOVECS_MAX;

/// Fills `iovs` with what is left of `slices` after the first `done` bytes (whole slices
/// skipped, the first one cut, empty ones left out); returns how many it filled.
fn fill_iovecs<'a>(
    slices: impl Iterator<Item = &'a [u8]>,
    done: usize,
    iovs: &mut [libc::iovec],
) -> usize {
    let mut skip = done;
    let mut count = 0usize;
    for s in slices {
        if skip >= s.len() {
            skip -= s.len();
            continue;
        }
        let Some(rest) = s.get(skip..) else { continue };
        skip = 0;
        let Some(slot) = iovs.get_mut(count) else {
            break;
        };
        *slot = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        count += 1;
    }
    count
}

/// fsyncs a directory so renames / creations / unlinks in it are durable.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    Fd::open_ro(dir).await?.sync(true).await
}

/// Hands the SQEs pushed so far (the fsyncs a sync batch just started) to the kernel now, in
/// one `io_uring_enter` that does not wait, instead of at the end of the loop turn, after
/// every other runnable task of the turn has run (compio submits only when its driver polls).
/// That wait sat between an acks=all append's write and the start of its fdatasync
/// (BENCHMARKS.md, "Issue 16, session 10: the write-to-fdatasync hand-off").
///
/// compio's flush resets the driver's wake flag; a wake from another thread that it
/// consumed is re-raised, so the loop's next poll does not sleep with a task queued.
pub(crate) fn submit_pushed() {
    compio::runtime::Runtime::with_current(|rt| {
        if rt.flush() {
            rt.waker().wake();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More slices than one call takes, empty ones among them: the file holds all of them
    /// back to back at `pos`, as one buffer written the same way would.
    #[test]
    fn pwritev_all_writes_every_slice_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let fd = Fd(Arc::new(OwnedFd::from(file)));
        let owned: Vec<Vec<u8>> = (0..(IOVECS_PER_CALL as u32 * 2 + 50))
            .map(|i| vec![(i % 251) as u8; (i % 7) as usize * 3])
            .collect();
        fd.pwritev_all(&owned, 5).expect("pwritev");
        fd.pwritev_all(&[b"head".to_vec()], 1).expect("one slice");
        let got = std::fs::read(&path).expect("read");
        let mut want = vec![0u8; 5];
        want.splice(1..5, *b"head");
        want.extend(owned.concat());
        assert_eq!(got, want);
    }

    #[test]
    fn fill_iovecs_resumes_inside_a_slice_and_stops_when_full() {
        let a = [1u8; 10];
        let b = [2u8; 0];
        let c = [3u8; 5];
        let slices: [&[u8]; 3] = [&a, &b, &c];
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 1];
        assert_eq!(fill_iovecs(slices.into_iter(), 4, &mut iovs), 1);
        assert_eq!(iovs[0].iov_len, 6);
        assert_eq!(fill_iovecs(slices.into_iter(), 10, &mut iovs), 1);
        assert_eq!(iovs[0].iov_len, 5);
        assert_eq!(fill_iovecs(slices.into_iter(), 15, &mut iovs), 0);
    }
}
