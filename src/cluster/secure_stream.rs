//! A byte stream between cluster nodes, plaintext or TLS (rustls, sans-I/O, over a compio
//! socket): what the inter-broker connections (`inter_broker`) and the controller listener's
//! connections (`quorum::network`, both sides) read and write through.
//!
//! Invariants: a TLS stream is used only after its handshake completed (and, on the client
//! side, the peer's certificate verified for the dialled address); one task uses a stream, one
//! request at a time (the rustls session is never shared); ciphertext read ahead is kept for
//! the next read; every read is bounded by what the caller asks (`read_exact`) plus one
//! TLS record.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;

/// Ciphertext read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A connection between cluster nodes: plaintext or TLS.
pub struct SecureStream {
    inner: Inner,
    /// An operation started and has not finished: its future was dropped (a caller's timeout)
    /// mid-way, so a frame or a TLS record may be half written or read. Every later operation
    /// fails, and the caller dials again (a TLS session would otherwise send records the peer
    /// rejects with `bad_record_mac`).
    busy: bool,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
}

fn cancelled() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "an earlier operation on this connection was cancelled mid-way",
    )
}

impl SecureStream {
    /// Dials `addr`; with `tls`, runs the client handshake (the peer verified for `addr`'s IP).
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let inner = match tls {
            None => Inner::Plain(tcp),
            Some(config) => Inner::Tls(Box::new(
                TlsConn::client_handshake(tcp, config, addr).await?,
            )),
        };
        Ok(Self { inner, busy: false })
    }

    /// An accepted connection; with `tls`, runs the server handshake (the caller bounds it).
    pub async fn accept(
        tcp: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let _ = tcp.set_nodelay(true);
        let inner = match tls {
            None => Inner::Plain(tcp),
            Some(config) => Inner::Tls(Box::new(TlsConn::server_handshake(tcp, config).await?)),
        };
        Ok(Self { inner, busy: false })
    }

    pub async fn write_all(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if self.busy {
            return Err(cancelled());
        }
        self.busy = true;
        let result = match &mut self.inner {
            Inner::Plain(tcp) => {
                let BufResult(res, _) = tcp.write_all(bytes).await;
                res
            }
            Inner::Tls(tls) => tls.write_all(&bytes).await,
        };
        self.busy = false;
        result
    }

    /// Reads exactly `len` bytes (`UnexpectedEof` when the peer closed first).
    pub async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        if self.busy {
            return Err(cancelled());
        }
        self.busy = true;
        let result = match &mut self.inner {
            Inner::Plain(tcp) => {
                let BufResult(res, buf) =
                    tcp.read_exact(Vec::with_capacity(len).slice(..len)).await;
                res.map(|()| buf.into_inner())
            }
            Inner::Tls(tls) => tls.read_exact(len).await,
        };
        self.busy = false;
        result
    }
}

/// rustls's sans-I/O session (client or server) over a compio socket, used by one task.
pub struct TlsConn {
    tcp: TcpStream,
    session: rustls::Connection,
    /// Ciphertext received but not yet taken by rustls.
    pending: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsConn {
    /// Runs the client handshake, verifying the peer's certificate for `addr`'s IP address.
    async fn client_handshake(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
    ) -> io::Result<Self> {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let session = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
        Self::handshake(tcp, session.into()).await
    }

    /// Runs the server handshake (client certificates as the config requires them).
    async fn server_handshake(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<Self> {
        let session = rustls::ServerConnection::new(config).map_err(tls_error)?;
        Self::handshake(tcp, session.into()).await
    }

    async fn handshake(tcp: TcpStream, session: rustls::Connection) -> io::Result<Self> {
        let mut conn = Self {
            tcp,
            session,
            pending: Vec::new(),
        };
        while conn.session.is_handshaking() {
            conn.flush().await?;
            if conn.session.is_handshaking() {
                conn.receive().await?;
            }
        }
        conn.flush().await?;
        Ok(conn)
    }

    /// Sends every TLS record rustls has queued.
    async fn flush(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            let mut out = Vec::new();
            self.session.write_tls(&mut out)?;
            let BufResult(res, _) = self.tcp.write_all(out).await;
            res?;
        }
        Ok(())
    }

    /// Reads ciphertext (unless some is pending) and feeds it to rustls; a TLS error sends
    /// rustls's alert before failing.
    async fn receive(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            let BufResult(res, buf) = self.tcp.read(Vec::with_capacity(READ_CHUNK_BYTES)).await;
            if res? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the other node closed the connection",
                ));
            }
            self.pending = buf;
        }
        let mut rest: &[u8] = &self.pending;
        let taken = self.session.read_tls(&mut rest)?;
        self.pending.drain(..taken);
        if let Err(e) = self.session.process_new_packets() {
            let _ = self.flush().await;
            return Err(tls_error(e));
        }
        Ok(())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.session.writer().write_all(bytes)?;
        self.flush().await
    }

    async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self
                .session
                .reader()
                .read(out.get_mut(filled..).unwrap_or_default())
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the other node closed the TLS session",
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.receive().await?;
                    self.flush().await?; // e.g. a KeyUpdate answer
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
