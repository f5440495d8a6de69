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
//!
//! Security (`security::session`): on TLS listeners the handshake completes before the first
//! request is read, within `authentication.timeout.ms`, and TLS connections always take the
//! copy path (records are encrypted in user space). On SASL listeners, until authentication
//! succeeds only ApiVersions, SaslHandshake and SaslAuthenticate are served (anything else
//! closes the connection), frames are capped at `sasl.server.max.receive.size`, and a failed
//! authentication is answered after `connection.failed.authentication.delay.ms`, then closed.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use kafka_protocol::messages::ApiKey;

use super::frame::{self, FrameError, SIZE_PREFIX_BYTES};
use super::idle::Activity;
use super::splice::{write_parts_copied, Splicer};
use super::tls::TlsStream;
use crate::handlers::{self, BodyPart, HandlerError, Outcome, Request, Route};
use crate::security::session::{AuthStep, ListenerContext, Session, AUDIT_TARGET};
use crate::shard::Shard;

/// Read granularity when no large frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Frames up to this size whose parts are all in memory are copied into the connection's
/// write buffer and sent with one plain write: no per-response iovec or part lists (the
/// produce hot path's answers are ~100 bytes). Larger frames keep vectored writes / splice.
const SMALL_FRAME_BYTES_MAX: usize = 16 * 1024;

/// A response ready for the writer: its prefix (size and header, inline) and body parts.
enum Ready {
    Frame(frame::ResponsePrefix, Vec<BodyPart>),
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
    #[error("authentication did not complete within authentication.timeout.ms")]
    AuthenticationTimeout,
    #[error("idle for connections.max.idle.ms")]
    Idle,
}

/// The connection's byte stream: the socket itself, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    async fn read_append(&self, buf: BytesMut) -> BufResult<usize, BytesMut> {
        match self {
            Self::Plain(stream) => {
                let mut reader = stream;
                reader.append(buf).await
            }
            Self::Tls(tls) => tls.read_append(buf).await,
        }
    }
}

/// Completes the TLS handshake (TLS listeners) and builds the connection's session; `None`
/// when the handshake failed, timed out or the client certificate is unusable (all logged).
async fn establish(
    shard: &Shard,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Arc<ListenerContext>,
) -> Option<(Transport, Rc<Session>)> {
    let Some(config) = &listener.tls else {
        let reauth_ms = shard.config.sasl.connections_max_reauth_ms;
        let session = Session::new(listener.clone(), peer, None, reauth_ms);
        return Some((Transport::Plain(stream), Rc::new(session)));
    };
    let timeout = Duration::from_millis(shard.config.sasl.authentication_timeout_ms);
    let tls = match compio::time::timeout(timeout, TlsStream::accept(stream, config.current()))
        .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!(target: AUDIT_TARGET, %peer, listener = %listener.name, "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            tracing::warn!(target: AUDIT_TARGET, %peer, listener = %listener.name, "TLS handshake timed out");
            return None;
        }
    };
    let principal = match tls.peer_certificate() {
        None => None,
        Some(der) => match crate::security::principal::subject_dn(&der) {
            Ok(dn) => Some(listener.principal_mapper.map(&dn)),
            Err(e) => {
                tracing::warn!(target: AUDIT_TARGET, %peer, listener = %listener.name, "client certificate refused: {e}");
                return None;
            }
        },
    };
    let reauth_ms = shard.config.sasl.connections_max_reauth_ms;
    let session = Session::new(listener.clone(), peer, principal, reauth_ms);
    Some((Transport::Tls(Box::new(tls)), Rc::new(session)))
}

pub async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
) {
    let _nodelay_is_best_effort = stream.set_nodelay(true);
    let socket = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let Some((stream, session)) = establish(&shard, stream, peer, &listener).await else {
        return;
    };
    // The writer holds one request besides the queue, hence one less than the limit.
    let in_flight = shard.config.socket.queued_max_requests.saturating_sub(1);
    let (tx, rx) = flume::bounded::<Ready>(in_flight.max(1));
    // `stream` (holding `socket`) outlives `activity`.
    let activity = Activity::new(shard.config.socket.connections_max_idle_ms).with_socket(socket);
    let handling = Cell::new(false);
    let reader = Box::pin(async {
        let result = read_loop(&shard, &stream, tx, &session, (&activity, &handling)).await;
        if let Err(e) = &result {
            if !matches!(e, ConnError::Eof) {
                tracing::debug!(%peer, error = %e, "closing connection");
            }
        }
        !matches!(result, Err(ConnError::Idle))
    });
    let writer = Box::pin(write_loop(&shard, &stream, rx, &activity));
    run_halves(reader, writer, &handling).await;
}

/// Runs a connection's reader and writer. The reader ending (EOF, bad frame, shutdown) lets
/// the writer drain what is queued, unless the connection went idle (`false`: a write the
/// client stopped reading would never end). The writer ending (a failed write, a request that
/// must close) stops the reader, but a request the reader is handling (`handling`) first runs
/// to its end: Kafka handles a received request whatever becomes of its connection (only the
/// response is dropped), and an append dropped half-way fails the other clients' appends
/// written with it (B23). The reader then ends at its next wait: the response queue is closed.
async fn run_halves(
    reader: impl Future<Output = bool> + Unpin,
    writer: impl Future<Output = ()> + Unpin,
    handling: &Cell<bool>,
) {
    match select(reader, writer).await {
        Either::Left((true, writer)) => writer.await,
        Either::Left((false, _)) => {}
        Either::Right(((), reader)) if handling.get() => {
            reader.await;
        }
        Either::Right(_) => {}
    }
}

async fn read_loop(
    shard: &Rc<Shard>,
    stream: &Transport,
    tx: flume::Sender<Ready>,
    session: &Rc<Session>,
    // `handling`: set while a request is being handled (`run_halves`).
    (activity, handling): (&Activity, &Cell<bool>),
) -> Result<(), ConnError> {
    let auth_deadline =
        Instant::now() + Duration::from_millis(shard.config.sasl.authentication_timeout_ms);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // One shutdown listener for the connection's life instead of one per request (with its
    // box, two heap allocations on the produce hot path): `select` below borrows it, and a
    // future that lost a `select` may be polled again.
    // `stop_serving`, not `shutdown`: a KRaft broker keeps serving through its controlled
    // shutdown (Kafka's socket server stops after it), so clients are redirected by
    // NOT_LEADER_OR_FOLLOWER instead of finding their connections closed.
    let mut shutdown = pin!(shard.stop_serving.wait());
    // Idle past `connections.max.idle.ms` while waiting for a request (or the rest of one):
    // closed, as Kafka's selector does. One future for the connection's life.
    let mut idle = pin!(activity.expired());
    loop {
        let authenticated = session.is_authenticated();
        let max = if authenticated {
            shard.config.socket.socket_request_max_bytes
        } else {
            let sasl_max = u32::try_from(shard.config.sasl.sasl_server_max_receive_size);
            shard
                .config
                .socket
                .socket_request_max_bytes
                .min(sasl_max.unwrap_or(u32::MAX))
        };
        // Shutdown stops the connection only while no request is being handled, so a request
        // being handled (an append, say) always runs to completion and gets its response.
        let filled = pin!(fill(stream, buf, SIZE_PREFIX_BYTES, activity));
        let next = select(filled, select(shutdown.as_mut(), idle.as_mut()));
        let next = async {
            if authenticated {
                return Ok(next.await);
            }
            let left = auth_deadline.saturating_duration_since(Instant::now());
            compio::time::timeout(left, next)
                .await
                .map_err(|_| ConnError::AuthenticationTimeout)
        };
        buf = match next.await? {
            Either::Left((filled, _)) => filled?,
            Either::Right((Either::Left(_), _)) => return Ok(()),
            Either::Right((Either::Right(_), _)) => return Err(ConnError::Idle),
        };
        let prefix: [u8; 4] = buf
            .get(..SIZE_PREFIX_BYTES)
            .and_then(|p| p.try_into().ok())
            .ok_or(ConnError::Eof)?;
        let len = frame::frame_len(prefix, max)?;
        // A request not wholly received is not in flight: shutdown drops it with the
        // connection, as Kafka's SocketServer closes every channel (a client that stops
        // mid-frame must not hold the shard's shutdown until `shutdown.timeout.ms`).
        let body = pin!(fill(stream, buf, SIZE_PREFIX_BYTES + len, activity));
        buf = match select(body, select(shutdown.as_mut(), idle.as_mut())).await {
            Either::Left((filled, _)) => filled?,
            Either::Right((Either::Left(_), _)) => return Ok(()),
            Either::Right((Either::Right(_), _)) => return Err(ConnError::Idle),
        };
        let mut frame = buf.split_to(SIZE_PREFIX_BYTES + len).freeze();
        let body = frame.split_off(SIZE_PREFIX_BYTES);
        shard.metrics.add_received_bytes(SIZE_PREFIX_BYTES + len);
        handling.set(true);
        let ready = if session.expects_raw_token() {
            raw_token(shard, session, &body).await
        } else {
            handle_request(shard, body, session).await?
        };
        handling.set(false);
        // However long the request took (a long poll), the connection was busy, not idle.
        activity.touch();
        if session.failed() {
            // Kafka delays the answer to a failed authentication, then closes.
            let delay = shard.config.sasl.connection_failed_authentication_delay_ms;
            compio::time::sleep(Duration::from_millis(delay)).await;
            let _ = tx.send_async(ready).await;
            return Ok(());
        }
        // The writer may be stuck on a client that stopped reading: idle expiry still applies.
        match select(pin!(tx.send_async(ready)), idle.as_mut()).await {
            Either::Left((Ok(()), _)) => {}
            Either::Left((Err(_), _)) => return Ok(()),
            Either::Right(_) => return Err(ConnError::Idle),
        }
        if let Some(mute) = session.take_throttle() {
            // KIP-219: a throttled client was answered at once; now stop reading for the
            // throttle time (Kafka mutes the channel). Shutdown still ends the wait.
            let sleep = pin!(compio::time::sleep(mute));
            if let Either::Right(_) = select(sleep, shutdown.as_mut()).await {
                return Ok(());
            }
        }
    }
}

/// A SASL token framed without a Kafka header (after SaslHandshake v0); answered the same way.
async fn raw_token(shard: &Shard, session: &Session, token: &[u8]) -> Ready {
    match session
        .authenticate(token, &|user, m| shard.scram_credential(user, m))
        .await
    {
        AuthStep::Challenge(bytes) | AuthStep::Done(bytes) => {
            let Ok(len) = u32::try_from(bytes.len()) else {
                return Ready::Close;
            };
            let mut framed = BytesMut::with_capacity(SIZE_PREFIX_BYTES + bytes.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&bytes);
            Ready::Frame(
                frame::ResponsePrefix::NONE,
                vec![BodyPart::Bytes(framed.freeze())],
            )
        }
        // v0 has no way to carry an error: the connection is closed.
        AuthStep::Failed(_) | AuthStep::IllegalState(_) => Ready::Close,
    }
}

/// Reads until `buf` holds at least `need` bytes.
async fn fill(
    stream: &Transport,
    mut buf: BytesMut,
    need: usize,
    activity: &Activity,
) -> Result<BytesMut, ConnError> {
    while buf.len() < need {
        buf.reserve((need - buf.len()).max(READ_CHUNK_BYTES));
        let BufResult(result, returned) = stream.read_append(buf).await;
        buf = returned;
        if result? == 0 {
            return Err(ConnError::Eof);
        }
        activity.touch();
    }
    Ok(buf)
}

/// Parses the header and runs the handler to completion; errors close the connection. Waiting on
/// other shards only suspends this connection's task, never the shard.
async fn handle_request(
    shard: &Rc<Shard>,
    frame: Bytes,
    session: &Rc<Session>,
) -> Result<Ready, ConnError> {
    let frame_len = frame.len();
    let parsed = frame::parse_request(frame)?;
    let key = parsed.api_key;
    let version = parsed.header.request_api_version;
    let correlation_id = parsed.header.correlation_id;
    let sasl_or_versions = matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if session.expired() && !sasl_or_versions {
        // KIP-368: a session past connections.max.reauth.ms is closed, not served.
        tracing::info!(target: AUDIT_TARGET, peer = %session.peer, principal = %session.principal(), "SASL session expired without re-authentication, closing");
        return Err(ConnError::Rejected("SASL session expired"));
    }
    if !session.is_authenticated() && !sasl_or_versions {
        // Kafka's SaslServerAuthenticator: any other request before authentication is an
        // illegal SASL state and the connection is closed.
        session.fail(&format!("{key:?} request before SASL authentication"));
        return Err(ConnError::Rejected("request before SASL authentication"));
    }
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
            // Inter-broker requests are exempt from client quotas (decoded only when quotas
            // are in force: a follower's Fetch carries its replica id in the body).
            let quota_exempt = shard.quotas.active()
                && handlers::throttle::is_cluster_action(key, version, &parsed.body);
            let request = Request {
                api_key: key,
                header: parsed.header,
                body: parsed.body,
                peer: session.peer,
                session: session.clone(),
            };
            let client_id = request.header.client_id.clone();
            let started = std::time::Instant::now();
            let (mut outcome, busy) = handlers::throttle::timed(handlers::forward::handle(
                handler,
                shard.clone(),
                request,
            ))
            .await;
            shard
                .metrics
                .record_request(key, started.elapsed(), outcome.is_err());
            let client_id = client_id.as_deref();
            if !quota_exempt {
                handlers::throttle::apply_quotas(
                    shard,
                    session,
                    key,
                    version,
                    client_id,
                    frame_len,
                    busy,
                    &mut outcome,
                );
            }
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
        Ok(Outcome::Body(parts)) => {
            let body_len = parts.iter().map(BodyPart::len).sum();
            match frame::response_prefix(key, version, correlation_id, body_len) {
                Some(prefix) => Ready::Frame(prefix, parts),
                None => Ready::Close,
            }
        }
        Err(e) => {
            tracing::debug!(api = ?key, version, error = %e, "closing connection");
            Ready::Close
        }
    }
}

async fn write_loop(
    shard: &Shard,
    stream: &Transport,
    rx: flume::Receiver<Ready>,
    activity: &Activity,
) {
    // One pipe per connection, reused by every response it splices.
    let mut splicer = Splicer::new(shard.config.fetch.fetch_splice_pipe_bytes);
    // Reused by every small frame (at most SMALL_FRAME_BYTES_MAX of capacity).
    let mut small = Vec::with_capacity(SMALL_FRAME_BYTES_MAX);
    while let Ok(ready) = rx.recv_async().await {
        let (prefix, parts) = match ready {
            Ready::Frame(prefix, parts) => (prefix, parts),
            Ready::Nothing => continue,
            Ready::Close => return,
        };
        let frame_bytes = prefix.len() + parts.iter().map(BodyPart::len).sum::<usize>();
        let pool_bytes = shard.config.fetch.fetch_copy_pool_bytes;
        let in_memory = parts.iter().all(|p| matches!(p, BodyPart::Bytes(_)));
        activity.set_writing(true);
        let written = match stream {
            Transport::Plain(stream) if in_memory && frame_bytes <= SMALL_FRAME_BYTES_MAX => {
                write_small(stream, &mut small, &prefix, &parts).await
            }
            Transport::Tls(tls) => {
                tls.write_parts(with_prefix(&prefix, parts), pool_bytes)
                    .await
            }
            Transport::Plain(stream) if shard.config.fetch.fetch_zero_copy => {
                splicer
                    .write_parts(stream, with_prefix(&prefix, parts))
                    .await
            }
            Transport::Plain(stream) => {
                write_parts_copied(stream, with_prefix(&prefix, parts), pool_bytes).await
            }
        };
        activity.set_writing(false);
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            return;
        }
        shard.metrics.add_sent_bytes(frame_bytes);
    }
}

/// Copies a small in-memory frame into the connection's reused buffer and writes it whole.
async fn write_small(
    stream: &TcpStream,
    small: &mut Vec<u8>,
    prefix: &frame::ResponsePrefix,
    parts: &[BodyPart],
) -> std::io::Result<()> {
    let mut buf = std::mem::take(small);
    buf.clear();
    buf.extend_from_slice(prefix.as_slice());
    for part in parts {
        if let BodyPart::Bytes(bytes) = part {
            buf.extend_from_slice(bytes);
        }
    }
    let mut writer = stream;
    let BufResult(result, buf) = writer.write_all(buf).await;
    *small = buf;
    result
}

/// The frame as one list of parts, the prefix first (the vectored and splice paths).
fn with_prefix(prefix: &frame::ResponsePrefix, mut parts: Vec<BodyPart>) -> Vec<BodyPart> {
    if !prefix.is_empty() {
        parts.insert(
            0,
            BodyPart::Bytes(Bytes::copy_from_slice(prefix.as_slice())),
        );
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B23: the writer ending (a reset connection's failed write) while the reader handles a
    /// request lets the request finish (an append is never dropped half-way); a reader
    /// waiting for bytes is dropped at once.
    #[test]
    fn the_writer_ending_lets_the_request_being_handled_finish_and_stops_an_idle_reader() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let handling = Cell::new(false);
            let finished = Cell::new(false);
            let reader = Box::pin(async {
                handling.set(true);
                // The request's work, still under way when the writer ends.
                compio::time::sleep(Duration::from_millis(20)).await;
                finished.set(true);
                handling.set(false);
                // The real reader ends here: the response queue is closed.
                true
            });
            // Polled once the reader waits: it ends at once (a failed write).
            run_halves(reader, Box::pin(async {}), &handling).await;
            assert!(finished.get(), "the request was dropped half-way");

            let handling = Cell::new(false);
            let idle = Box::pin(async {
                std::future::pending::<()>().await;
                true
            });
            let stopped = compio::time::timeout(
                Duration::from_secs(5),
                run_halves(idle, Box::pin(async {}), &handling),
            )
            .await;
            assert!(
                stopped.is_ok(),
                "a reader waiting for a request outlived its writer"
            );
        });
    }
}
