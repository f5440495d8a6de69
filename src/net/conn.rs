//! One client connection: a reader that frames requests and handles them one at a time, in
//! request order, and a writer that writes the responses in that same order (record bytes spliced
//! or copied per `fetch.zero.copy`, see `splice`).
//!
//! Invariants: requests of one connection are handled strictly one after another, as Apache Kafka
//! does (it mutes a connection until its request is answered): a producer pipelining several
//! produce requests must see its batches appended in the order it sent them. Writing a response
//! overlaps with handling the next request; at most `queued.max.requests` responses wait for the
//! writer (the reader stops reading while the queue is full, which pushes back on the client
//! through TCP); a frame
//! above `socket.request.max.bytes`, an unparseable header, an unknown API or an unsupported
//! version closes the connection (after writing the responses already queued); a request that
//! waits on another shard never blocks this shard, it only holds its own task.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::AsyncReadExt;
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use kafka_protocol::messages::ApiKey;

use super::frame::{self, FrameError, SIZE_PREFIX_BYTES};
use super::splice::{write_parts_copied, Splicer};
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
    let (tx, rx) = flume::bounded::<Ready>(in_flight.max(1));
    let reader = Box::pin(async {
        match read_loop(&shard, &stream, tx, peer).await {
            Ok(()) | Err(ConnError::Eof) => {}
            Err(e) => tracing::debug!(%peer, error = %e, "closing connection"),
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
    tx: flume::Sender<Ready>,
    peer: SocketAddr,
) -> Result<(), ConnError> {
    let max = shard.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // Shutdown stops the connection only between requests, so a request being handled (an
        // append, say) always runs to completion and gets its response.
        let next = select(
            Box::pin(fill(stream, buf, SIZE_PREFIX_BYTES)),
            Box::pin(shard.shutdown.wait()),
        );
        buf = match next.await {
            Either::Left((filled, _)) => filled?,
            Either::Right(_) => return Ok(()),
        };
        let prefix: [u8; 4] = buf
            .get(..SIZE_PREFIX_BYTES)
            .and_then(|p| p.try_into().ok())
            .ok_or(ConnError::Eof)?;
        let len = frame::frame_len(prefix, max)?;
        buf = fill(stream, buf, SIZE_PREFIX_BYTES + len).await?;
        let mut frame = buf.split_to(SIZE_PREFIX_BYTES + len).freeze();
        let body = frame.split_off(SIZE_PREFIX_BYTES);
        shard.metrics.add_received_bytes(SIZE_PREFIX_BYTES + len);
        let ready = handle_request(shard, body, peer).await?;
        if tx.send_async(ready).await.is_err() {
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

/// Parses the header and runs the handler to completion; errors close the connection. Waiting on
/// other shards only suspends this connection's task, never the shard.
async fn handle_request(
    shard: &Rc<Shard>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Ready, ConnError> {
    let parsed = frame::parse_request(frame)?;
    let key = parsed.api_key;
    let version = parsed.header.request_api_version;
    let correlation_id = parsed.header.correlation_id;
    let ready = match handlers::route(key, version) {
        Route::Reject(why) => {
            tracing::debug!(api = ?key, version, "{why}");
            return Err(ConnError::Rejected(why));
        }
        Route::ApiVersionsFallback => {
            let outcome = handlers::api_versions::unsupported_version_body();
            finish(ApiKey::ApiVersions, 0, correlation_id, outcome)
        }
        Route::Handle(handler) => {
            let request = Request {
                api_key: key,
                header: parsed.header,
                body: parsed.body,
                peer,
            };
            let started = std::time::Instant::now();
            let outcome = handler(shard.clone(), request).await;
            shard
                .metrics
                .record_request(key, started.elapsed(), outcome.is_err());
            finish(key, version, correlation_id, outcome)
        }
    };
    Ok(ready)
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

async fn write_loop(shard: &Shard, stream: &TcpStream, rx: flume::Receiver<Ready>) {
    // One pipe per connection, reused by every response it splices.
    let mut splicer = Splicer::new(shard.config.fetch_splice_pipe_bytes);
    while let Ok(ready) = rx.recv_async().await {
        let parts = match ready {
            Ready::Frame(parts) => parts,
            Ready::Nothing => continue,
            Ready::Close => return,
        };
        let frame_bytes: usize = parts.iter().map(BodyPart::len).sum();
        let written = if shard.config.fetch_zero_copy {
            splicer.write_parts(stream, parts).await
        } else {
            write_parts_copied(stream, parts, shard.config.fetch_copy_pool_bytes).await
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            return;
        }
        shard.metrics.add_sent_bytes(frame_bytes);
    }
}
