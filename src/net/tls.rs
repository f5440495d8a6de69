//! TLS on a connection: rustls's sans-I/O `ServerConnection` driven over the compio socket.
//! compio-tls (0.10, for compio 0.19) hides the rustls connection, so it cannot give the peer
//! certificate a principal comes from, and needs `&mut` for both directions; this glue lets
//! the connection's reader and writer tasks share one session (docs/decisions/0011).
//!
//! Invariants: the rustls session is only borrowed between awaits (never across one); every
//! socket write of TLS records happens under `write_lock` and takes its bytes from the session
//! under that lock, so records leave in the order rustls produced them; plaintext is drained
//! before more ciphertext is fed (rustls bounds its plaintext buffer); a TLS error sends the
//! alert rustls queued and closes the connection. Record bytes of fetches are read into memory
//! and encrypted (no splice through user-space TLS).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;

use crate::handlers::BodyPart;

/// Ciphertext read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Plaintext handed to rustls per call when writing.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;

/// Ciphertext received but not yet fed to rustls.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    start: usize,
}

pub struct TlsStream {
    tcp: TcpStream,
    session: RefCell<rustls::ServerConnection>,
    incoming: RefCell<Incoming>,
    write_lock: futures_util::lock::Mutex<()>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// Runs the server handshake to completion (the caller bounds it with a timeout).
    pub async fn accept(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let session = rustls::ServerConnection::new(config).map_err(tls_error)?;
        let stream = Self {
            tcp,
            session: RefCell::new(session),
            incoming: RefCell::new(Incoming::default()),
            write_lock: futures_util::lock::Mutex::new(()),
        };
        loop {
            stream.flush().await?;
            if !stream.session.borrow().is_handshaking() {
                return Ok(stream);
            }
            if stream.incoming_is_empty() && !stream.read_ciphertext().await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
            stream.feed().await?;
        }
    }

    /// The verified client certificate chain's end-entity certificate, if the client sent one.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let session = self.session.borrow();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.as_ref().to_vec())
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn incoming_is_empty(&self) -> bool {
        let incoming = self.incoming.borrow();
        incoming.start >= incoming.buf.len()
    }

    /// Reads ciphertext from the socket into `incoming` (which must be empty); false at EOF.
    async fn read_ciphertext(&self) -> io::Result<bool> {
        let mut buf = std::mem::take(&mut self.incoming.borrow_mut().buf);
        buf.clear();
        buf.reserve(READ_CHUNK_BYTES);
        let mut reader = &self.tcp;
        let BufResult(result, buf) = reader.read(buf).await;
        let read = result?;
        *self.incoming.borrow_mut() = Incoming { buf, start: 0 };
        Ok(read > 0)
    }

    /// Feeds buffered ciphertext to rustls and processes it; sends what rustls queued (handshake
    /// messages, alerts).
    async fn feed(&self) -> io::Result<()> {
        let processed = {
            let mut incoming = self.incoming.borrow_mut();
            let mut session = self.session.borrow_mut();
            let Incoming { buf, start } = &mut *incoming;
            let mut slice = buf.get(*start..).unwrap_or_default();
            let before = slice.len();
            let read = session.read_tls(&mut slice);
            *start += before - slice.len();
            read.and_then(|_| session.process_new_packets().map(drop).map_err(tls_error))
        };
        // Only take the write lock when rustls queued something (handshake, alert, key update):
        // the writer may hold it while a large response drains, and reading must not wait.
        let needs_flush = self.session.borrow().wants_write();
        let flushed = if needs_flush {
            self.flush().await
        } else {
            Ok(())
        };
        processed.and(flushed)
    }

    /// Appends decrypted bytes to `buf`; `Ok(0)` at the end of the stream.
    pub async fn read_append(&self, mut buf: BytesMut) -> BufResult<usize, BytesMut> {
        loop {
            match self.take_plaintext(&mut buf) {
                Ok(0) => {}
                other => return BufResult(other, buf),
            }
            if self.incoming_is_empty() {
                match self.read_ciphertext().await {
                    Ok(true) => {}
                    Ok(false) => return BufResult(Ok(0), buf),
                    Err(e) => return BufResult(Err(e), buf),
                }
            }
            if let Err(e) = self.feed().await {
                return BufResult(Err(e), buf);
            }
        }
    }

    /// Moves available plaintext into `buf`. `Ok(0)` = none available yet; a clean close
    /// (close_notify) is reported as an UnexpectedEof error so callers stop reading.
    fn take_plaintext(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut session = self.session.borrow_mut();
        let len = buf.len();
        buf.resize(len + READ_CHUNK_BYTES, 0);
        let target = buf.get_mut(len..).unwrap_or_default();
        let read = session.reader().read(target);
        match read {
            Ok(0) => {
                buf.truncate(len);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS close_notify",
                ))
            }
            Ok(n) => {
                buf.truncate(len + n);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                buf.truncate(len);
                Ok(0)
            }
            Err(e) => {
                buf.truncate(len);
                Err(e)
            }
        }
    }

    /// Sends every TLS record rustls has queued.
    async fn flush(&self) -> io::Result<()> {
        let _ordered = self.write_lock.lock().await;
        self.flush_locked().await
    }

    async fn flush_locked(&self) -> io::Result<()> {
        loop {
            let mut out = Vec::new();
            {
                let mut session = self.session.borrow_mut();
                while session.wants_write() {
                    session.write_tls(&mut out)?;
                }
            }
            if out.is_empty() {
                return Ok(());
            }
            let mut writer = &self.tcp;
            let BufResult(result, _) = writer.write_all(out).await;
            result?;
        }
    }

    /// Encrypts and sends one response; file ranges are read into memory first.
    pub async fn write_parts(&self, parts: Vec<BodyPart>, pool_bytes_max: usize) -> io::Result<()> {
        let _ordered = self.write_lock.lock().await;
        for part in parts {
            match part {
                BodyPart::Bytes(bytes) => self.write_plaintext(&bytes).await?,
                // A piece at a time: a slow reader holds one piece, not the whole response.
                BodyPart::File(range) => {
                    for piece in super::splice::pieces(&range) {
                        let buf = super::splice::read_range(&piece).await?;
                        let written = self.write_plaintext(&buf).await;
                        super::pool::give(buf, pool_bytes_max);
                        written?;
                    }
                }
            }
        }
        self.flush_locked().await
    }

    async fn write_plaintext(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let chunk = data
                .get(..WRITE_CHUNK_BYTES.min(data.len()))
                .unwrap_or(data);
            let accepted = self.session.borrow_mut().writer().write(chunk)?;
            data = data.get(accepted..).unwrap_or_default();
            self.flush_locked().await?;
        }
        Ok(())
    }
}
