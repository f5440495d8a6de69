//! One client connection: a reader that frames requests and starts each one as its own task,
//! and a writer that writes the responses strictly in request order.
//!
//! Invariants: at most `queued.max.requests` requests are in flight per connection (the reader
//! stops reading while the queue is full, which pushes back on the client through TCP); a frame
//! above `socket.request.max.bytes`, an unparseable header, an unknown API or an unsupported
//! version closes the connection (after writing the responses already queued); a request that
//! waits on another shard never blocks this shard, it only holds its own task.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;
use futures_util::future::{select, Either};
use kafka_protocol::messages::ApiKey;

use super::frame::{self, FrameError, SIZE_PREFIX_BYTES};
use crate::handlers::{self, BodyPart, HandlerError, Outcome, Request, Route};
use crate::shard::Shard;

/// Read granularity when no large frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A response ready for the writer.
enum Ready {
    Frame(Vec<BodyPart>),
    Nothing,
    Close,
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("peer closed the connection")]
    Eof,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Rejected(&'static str),
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _nodelay_is_best_effort = stream.set_nodelay(true);
    // The writer holds one request besides the queue, hence one less than the limit.
    let in_flight = shard.config.queued_max_requests.saturating_sub(1);
    let (tx, rx) = flume::bounded::<JoinHandle<Ready>>(in_flight);
    let reader = Box::pin(async {
        let stop = Box::pin(shard.shutdown.wait());
        let read = Box::pin(read_loop(&shard, &stream, tx));
        match select(read, stop).await {
            Either::Left((Err(ConnError::Eof), _)) | Either::Right(_) => {}
            Either::Left((Err(e), _)) => tracing::debug!(%peer, error = %e, "closing connection"),
            Either::Left((Ok(()), _)) => {}
        }
    });
    let writer = Box::pin(write_loop(&shard, &stream, rx));
    // The reader ending (EOF, bad frame, shutdown) lets the writer drain what is queued; the
    // writer ending (write error, a request that must close) drops the reader.
    if let Either::Left(((), writer)) = select(reader, writer).await {
        writer.await;
    }
}

async fn read_loop(
    shard: &Rc<Shard>,
    stream: &TcpStream,
    tx: flume::Sender<JoinHandle<Ready>>,
) -> Result<(), ConnError> {
    let max = shard.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        buf = fill(stream, buf, SIZE_PREFIX_BYTES).await?;
        let prefix: [u8; 4] = buf
            .get(..SIZE_PREFIX_BYTES)
            .and_then(|p| p.try_into().ok())
            .ok_or(ConnError::Eof)?;
        let len = frame::frame_len(prefix, max)?;
        buf = fill(stream, buf, SIZE_PREFIX_BYTES + len).await?;
        let mut frame = buf.split_to(SIZE_PREFIX_BYTES + len).freeze();
        let body = frame.split_off(SIZE_PREFIX_BYTES);
        let task = start_request(shard, body)?;
        if tx.send_async(task).await.is_err() {
            return Ok(());
        }
    }
}

/// Reads until `buf` holds at least `need` bytes.
async fn fill(stream: &TcpStream, mut buf: BytesMut, need: usize) -> Result<BytesMut, ConnError> {
    while buf.len() < need {
        buf.reserve((need - buf.len()).max(READ_CHUNK_BYTES));
        let mut reader = stream;
        let BufResult(result, returned) = reader.append(buf).await;
        buf = returned;
        if result? == 0 {
            return Err(ConnError::Eof);
        }
    }
    Ok(buf)
}

/// Parses the header and starts the handler as a task; errors close the connection.
fn start_request(shard: &Rc<Shard>, frame: Bytes) -> Result<JoinHandle<Ready>, ConnError> {
    let parsed = frame::parse_request(frame)?;
    let key = parsed.api_key;
    let version = parsed.header.request_api_version;
    let correlation_id = parsed.header.correlation_id;
    let task = match handlers::route(key, version) {
        Route::Reject(why) => {
            tracing::debug!(api = ?key, version, "{why}");
            return Err(ConnError::Rejected(why));
        }
        Route::ApiVersionsFallback => compio::runtime::spawn(async move {
            let outcome = handlers::api_versions::unsupported_version_body();
            finish(ApiKey::ApiVersions, 0, correlation_id, outcome)
        }),
        Route::Handle(handler) => {
            let request = Request {
                api_key: key,
                header: parsed.header,
                body: parsed.body,
            };
            let shard = shard.clone();
            compio::runtime::spawn(async move {
                let outcome = handler(shard, request).await;
                finish(key, version, correlation_id, outcome)
            })
        }
    };
    Ok(task)
}

fn finish(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    outcome: Result<Outcome, HandlerError>,
) -> Ready {
    match outcome {
        Ok(Outcome::Silent) => Ready::Nothing,
        Ok(Outcome::Body(mut parts)) => {
            let body_len = parts.iter().map(BodyPart::len).sum();
            match frame::response_prefix(key, version, correlation_id, body_len) {
                Some(prefix) => {
                    parts.insert(0, BodyPart::Bytes(prefix));
                    Ready::Frame(parts)
                }
                None => Ready::Close,
            }
        }
        Err(e) => {
            tracing::debug!(api = ?key, version, error = %e, "closing connection");
            Ready::Close
        }
    }
}

async fn write_loop(shard: &Shard, stream: &TcpStream, rx: flume::Receiver<JoinHandle<Ready>>) {
    while let Ok(task) = rx.recv_async().await {
        let parts = match task.await {
            Ok(Ready::Frame(parts)) => parts,
            Ok(Ready::Nothing) => continue,
            Ok(Ready::Close) | Err(_) => return,
        };
        if let Err(e) = write_parts(shard, stream, parts).await {
            tracing::debug!(error = %e, "write failed");
            return;
        }
    }
}

/// Writes the parts in order: runs of in-memory bytes with one vectored write each, file ranges
/// spliced (zero-copy) or read and copied.
async fn write_parts(
    shard: &Shard,
    stream: &TcpStream,
    parts: Vec<BodyPart>,
) -> std::io::Result<()> {
    let mut run: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            BodyPart::Bytes(bytes) => run.push(bytes),
            BodyPart::File(range) => {
                write_run(stream, std::mem::take(&mut run)).await?;
                super::splice::write_file_range(stream, &range, shard.config.fetch_zero_copy)
                    .await?;
            }
        }
    }
    write_run(stream, run).await
}

async fn write_run(stream: &TcpStream, run: Vec<Bytes>) -> std::io::Result<()> {
    let mut writer = stream;
    match run.len() {
        0 => Ok(()),
        1 => {
            let Some(only) = run.into_iter().next() else {
                return Ok(());
            };
            writer.write_all(only).await.0
        }
        _ => writer.write_vectored_all(run).await.0,
    }
}
