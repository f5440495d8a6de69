//! Writing a segment-file range to a socket: zero-copy through a pipe with splice(2) (file ->
//! pipe -> socket, never through user space), or by reading it into memory and writing it.
//!
//! Invariant: exactly `range.len` bytes are written, or an error is returned (the connection is
//! then closed, since a partial response cannot be recovered). Every loop makes progress or
//! fails: a zero-length splice is an error (the file shrank under us).

use std::io;

use compio::buf::BufResult;
use compio::fs::pipe::{anonymous, splice};
use compio::io::{AsyncReadAtExt, AsyncWriteExt};
use compio::net::TcpStream;

/// A dup of the range's file as a compio file (the range keeps its own `Arc<OwnedFd>`).
fn file_of(range: &storage::FileRange) -> io::Result<compio::fs::File> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = range.fd.try_clone()?;
    // SAFETY: `fd` is a fresh dup we own; ownership moves into the compio file, which closes it.
    Ok(unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) })
}

pub async fn write_file_range(
    stream: &TcpStream,
    range: &storage::FileRange,
    zero_copy: bool,
) -> io::Result<()> {
    if range.len == 0 {
        return Ok(());
    }
    if zero_copy {
        splice_range(stream, range).await
    } else {
        copy_range(stream, range).await
    }
}

async fn copy_range(stream: &TcpStream, range: &storage::FileRange) -> io::Result<()> {
    let file = file_of(range)?;
    let buf = Vec::with_capacity(range.len as usize);
    let BufResult(result, buf) = file.read_exact_at(buf, range.position).await;
    result?;
    let mut writer = stream;
    writer.write_all(buf).await.0
}

async fn splice_range(stream: &TcpStream, range: &storage::FileRange) -> io::Result<()> {
    let file = file_of(range)?;
    let (pipe_rx, pipe_tx) = anonymous().await?;
    let mut position = range.position;
    let mut left = range.len as usize;
    while left > 0 {
        let offset =
            i64::try_from(position).map_err(|_| io::Error::other("file offset too large"))?;
        let mut in_pipe = splice(&file, &pipe_tx, left).offset_in(offset).await?;
        if in_pipe == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than the range",
            ));
        }
        position += in_pipe as u64;
        left -= in_pipe;
        while in_pipe > 0 {
            let sent = splice(&pipe_rx, stream, in_pipe).await?;
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

    async fn roundtrip(zero_copy: bool) -> Vec<u8> {
        let contents: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (_keep, range) = range_of(&contents, 1000, 150_000);
        let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = compio::runtime::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let (result, buf) = stream.read_exact(Vec::with_capacity(150_000)).await.into();
            result.unwrap();
            buf
        });
        let (server, _) = listener.accept().await.unwrap();
        write_file_range(&server, &range, zero_copy).await.unwrap();
        let received = client.await.unwrap();
        assert_eq!(&received[..], &contents[1000..151_000]);
        received
    }

    #[compio::test]
    async fn splice_writes_the_exact_range() {
        assert_eq!(roundtrip(true).await.len(), 150_000);
    }

    #[compio::test]
    async fn copy_writes_the_exact_range() {
        assert_eq!(roundtrip(false).await.len(), 150_000);
    }
}
