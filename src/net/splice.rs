//! Writing segment-file ranges to a socket, the two ways `fetch.zero.copy` selects:
//! - zero-copy: splice(2) file -> pipe -> socket, never through user space, through one pipe
//!   per connection (`Splicer`) created on first use and reused for every later response;
//! - copy: the ranges are read into pooled buffers (`pool`) and the whole frame goes out with
//!   vectored writes.
//!
//! Invariants: exactly the parts' bytes are written, in order, or an error is returned (the
//! connection is then closed, since a partial response cannot be recovered; the pipe, which may
//! then hold stray bytes, goes with it). Every loop makes progress or fails: a zero-length
//! splice or read is an error (the file shrank under us).

use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::pipe::{anonymous, splice, Receiver, Sender};
use compio::io::{AsyncReadAtExt, AsyncWriteExt};
use compio::net::TcpStream;

use super::pool;
use crate::handlers::BodyPart;

/// iovecs per vectored write; Linux rejects more than IOV_MAX (1024) with EINVAL.
const IOVECS_PER_WRITE_MAX: usize = 512;

/// A dup of the range's file as a compio file (the range keeps its own `Arc<OwnedFd>`).
fn file_of(range: &storage::FileRange) -> io::Result<compio::fs::File> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = range.fd.try_clone()?;
    // SAFETY: `fd` is a fresh dup we own; ownership moves into the compio file, which closes it.
    Ok(unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) })
}

/// The zero-copy writer of one connection: owns its pipe between responses.
pub struct Splicer {
    pipe: Option<(Receiver, Sender)>,
    pipe_bytes: usize,
}

impl Splicer {
    /// `pipe_bytes`: requested pipe capacity (`fetch.splice.pipe.bytes`); the kernel may cap it
    /// at /proc/sys/fs/pipe-max-size, in which case the default capacity is kept.
    pub fn new(pipe_bytes: usize) -> Self {
        Self {
            pipe: None,
            pipe_bytes,
        }
    }

    async fn pipe(&mut self) -> io::Result<&(Receiver, Sender)> {
        if self.pipe.is_none() {
            let (rx, tx) = anonymous().await?;
            let want = libc::c_int::try_from(self.pipe_bytes).unwrap_or(libc::c_int::MAX);
            // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure only leaves the default size.
            let _best_effort = unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
            self.pipe = Some((rx, tx));
        }
        self.pipe
            .as_ref()
            .ok_or_else(|| io::Error::other("pipe missing after creation"))
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

    pub async fn splice_range(
        &mut self,
        stream: &TcpStream,
        range: &storage::FileRange,
    ) -> io::Result<()> {
        if range.len == 0 {
            return Ok(());
        }
        let file = file_of(range)?;
        let (pipe_rx, pipe_tx) = self.pipe().await?;
        let mut position = range.position;
        let mut left = range.len as usize;
        while left > 0 {
            let offset =
                i64::try_from(position).map_err(|_| io::Error::other("file offset too large"))?;
            let mut in_pipe = splice(&file, pipe_tx, left).offset_in(offset).await?;
            if in_pipe == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the range",
                ));
            }
            position += in_pipe as u64;
            left -= in_pipe;
            while in_pipe > 0 {
                let sent = splice(pipe_rx, stream, in_pipe).await?;
                if sent == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ));
                }
                in_pipe -= sent;
            }
        }
        Ok(())
    }
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

/// Copy path: reads every file range into a pooled buffer, then writes the frame with
/// vectored writes; the buffers go back to the shard's pool (`pool_bytes_max` in total).
pub async fn write_parts_copied(
    stream: &TcpStream,
    parts: Vec<BodyPart>,
    pool_bytes_max: usize,
) -> io::Result<()> {
    let mut chunks: Vec<Chunk> = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            BodyPart::Bytes(bytes) => chunks.push(Chunk::Bytes(bytes)),
            BodyPart::File(range) => match read_range(&range).await {
                Ok(buf) => chunks.push(Chunk::Pooled(buf)),
                Err(e) => {
                    recycle(chunks, pool_bytes_max);
                    return Err(e);
                }
            },
        }
    }
    write_chunks(stream, chunks, pool_bytes_max).await
}

fn recycle(chunks: Vec<Chunk>, pool_bytes_max: usize) {
    for chunk in chunks {
        if let Chunk::Pooled(buf) = chunk {
            pool::give(buf, pool_bytes_max);
        }
    }
}

async fn read_range(range: &storage::FileRange) -> io::Result<Vec<u8>> {
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

    use compio::io::AsyncReadExt;

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
