//! The controller listener and its peers' clients: openraft's AppendEntries, Vote, PreVote and
//! full-snapshot RPCs over TCP, one request at a time per connection.
//!
//! Frame (both directions): `length u32` (of what follows, at most
//! `controller.quorum.request.max.bytes`), `version u8 (0)`, `kind u8`, postcard payload.
//! A response's kind is [`RESPONSE_OK`] or [`RESPONSE_ERROR`] (payload: a UTF-8 message).
//!
//! Invariants:
//! - Bytes from the network are never trusted: a frame over the bound, an unknown version or
//!   kind, or a payload that does not decode closes that connection (logged); nothing panics.
//!   Frame bodies are read in chunks as they arrive, so a length prefix alone allocates nothing
//!   large.
//! - Every raft RPC passes `validate` before openraft sees it; one that fails closes the
//!   connection (logged).
//! - At most `controller.max.connections` inbound connections are served; more are closed at
//!   once.
//! - An unreachable peer is an `Unreachable` error: openraft backs off (exponentially, from
//!   `controller.quorum.retry.backoff.ms` to `controller.quorum.election.backoff.max.ms`) and
//!   retries, forever; the connection is re-dialled on the next RPC.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use compio::net::TcpListener;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::validate::Validator;
use super::{QuorumTypes, Raft, SnapshotMetaOf, SnapshotOf, VoteOf};
use crate::cluster::controller_listener;
use crate::cluster::secure_stream::SecureStream;

const FRAME_V0: u8 = 0;
const KIND_APPEND_ENTRIES: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_PRE_VOTE: u8 = 3;
const KIND_FULL_SNAPSHOT: u8 = 4;
/// Brokers' RPCs to the active controller (`lifecycle`): Kafka's BrokerRegistration,
/// BrokerHeartbeat, AllocateProducerIds, and the committed image for broker-only nodes.
pub const KIND_BROKER_REGISTRATION: u8 = 5;
pub const KIND_BROKER_HEARTBEAT: u8 = 6;
pub const KIND_ALLOCATE_PRODUCER_IDS: u8 = 7;
pub const KIND_FETCH_IMAGE: u8 = 8;
pub const KIND_AUTO_CREATE_TOPICS: u8 = 9;
/// AlterPartition from a partition leader (`cluster::alter_partition_rpc`).
pub const KIND_ALTER_PARTITION: u8 = 10;
/// `KIND_FETCH_IMAGE` as a long poll (`lifecycle::FetchImageWaitRequest`).
pub const KIND_FETCH_IMAGE_WAIT: u8 = 11;
/// Kafka's Envelope (KIP-590): a client's admin request forwarded by a broker; the payload is
/// an `EnvelopeRequest` v0 in Kafka's encoding (carried as postcard bytes), the answer
/// `lifecycle::EnvelopeAnswer`.
pub const KIND_ENVELOPE: u8 = 12;
const RESPONSE_OK: u8 = 0;
const RESPONSE_ERROR: u8 = 1;
/// Frame bodies are read in pieces of at most this many bytes.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("frame too short or of unknown version {0}")]
    BadHeader(u8),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame: `(kind, payload)`. Once its length has arrived, the rest must arrive
/// within `body_timeout` (a peer that stalls mid-frame is dropped, not waited on forever).
pub async fn read_frame(
    stream: &mut SecureStream,
    max_bytes: usize,
    body_timeout: Duration,
) -> Result<(u8, Vec<u8>), FrameError> {
    let len_buf = read_frame_len(stream).await?;
    read_frame_rest(stream, len_buf, max_bytes, body_timeout).await
}

/// A frame's 4-byte length, however long it takes to come.
async fn read_frame_len(stream: &mut SecureStream) -> Result<[u8; 4], FrameError> {
    match stream.read_exact(4).await {
        Ok(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
            .map_err(|_| FrameError::Io(io::Error::other("short read"))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// The rest of a frame whose length `len_buf` has arrived, within `body_timeout`.
async fn read_frame_rest(
    stream: &mut SecureStream,
    len_buf: [u8; 4],
    max_bytes: usize,
    body_timeout: Duration,
) -> Result<(u8, Vec<u8>), FrameError> {
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > max_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_bytes,
        });
    }
    if len < 2 {
        return Err(FrameError::BadHeader(0xFF));
    }
    let mut body = compio::time::timeout(body_timeout, read_body(stream, len))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "frame body timed out"))??;
    let (version, kind) = match body.as_slice() {
        [version, kind, ..] => (*version, *kind),
        _ => return Err(FrameError::BadHeader(0xFF)),
    };
    if version != FRAME_V0 {
        return Err(FrameError::BadHeader(version));
    }
    body.drain(..2);
    Ok((kind, body))
}

/// Reads `len` bytes in chunks as they arrive (memory grows with what was received).
async fn read_body(stream: &mut SecureStream, len: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
    while body.len() < len {
        let want = (len - body.len()).min(READ_CHUNK_BYTES);
        let chunk = stream.read_exact(want).await?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Writes one frame.
pub async fn write_frame(stream: &mut SecureStream, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 2).map_err(|_| io::Error::other("frame over 4 GiB"))?;
    let mut frame = Vec::with_capacity(payload.len() + 6);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.push(FRAME_V0);
    frame.push(kind);
    frame.extend_from_slice(payload);
    stream.write_all(frame).await
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(io::Error::other)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ----- server side -----

/// Limits of the controller listener.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    pub request_max_bytes: usize,
    pub connections_max: usize,
    /// A frame that started must finish within this (`controller.quorum.request.timeout.ms`).
    pub frame_timeout: Duration,
    /// A connection with no request for this long is closed (`connections.max.idle.ms`).
    pub idle_timeout: Duration,
}

/// Serves the controller listener until this future is dropped; dropping it also drops (and
/// so cancels) every connection task.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    settings: ServerSettings,
    lifecycle: Option<std::rc::Rc<super::lifecycle::Lifecycle>>,
    validator: std::rc::Rc<Validator>,
) {
    let mut connections: Vec<compio::runtime::JoinHandle<()>> = Vec::new();
    let mut failures = shards::AcceptFailures::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                let (wait, log) = failures.failed(std::time::Instant::now());
                if let Some(unlogged) = log {
                    tracing::warn!(error = %e, unlogged, "controller listener: accept failed (retrying with backoff)");
                }
                compio::time::sleep(wait).await;
                continue;
            }
        };
        failures.accepted();
        connections.retain(|c| !c.is_finished());
        if connections.len() >= settings.connections_max {
            tracing::warn!(
                %peer,
                connections_max = settings.connections_max,
                "controller listener: too many connections, closing"
            );
            drop(stream);
            continue;
        }
        let raft = raft.clone();
        let lifecycle = lifecycle.clone();
        let validator = validator.clone();
        connections.push(compio::runtime::spawn(async move {
            // The controller listener's TLS handshake (`controller_listener`), bounded like a
            // frame: a peer that stalls in it holds no slot for long.
            let tls = controller_listener::server_tls();
            let accepted =
                compio::time::timeout(settings.frame_timeout, SecureStream::accept(stream, tls))
                    .await;
            let stream = match accepted {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "controller listener: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "controller listener: TLS handshake timed out");
                    return;
                }
            };
            let served =
                serve_connection(stream, &raft, lifecycle.as_deref(), &validator, settings);
            if let Err(e) = served.await {
                tracing::info!(%peer, error = %e, "controller connection closed");
            }
        }));
    }
}

async fn serve_connection(
    mut stream: SecureStream,
    raft: &Raft,
    lifecycle: Option<&super::lifecycle::Lifecycle>,
    validator: &Validator,
    settings: ServerSettings,
) -> io::Result<()> {
    // A peer writes its first request right after connecting, so a connection whose first
    // frame has not started within a frame timeout is no peer: closing it then keeps idle
    // sockets from holding the `controller.max.connections` slots (locking real peers and
    // brokers out) for the whole `connections.max.idle.ms`.
    let mut wait = settings.frame_timeout.min(settings.idle_timeout);
    loop {
        let frame = match compio::time::timeout(wait, read_frame_len(&mut stream)).await {
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
            Ok(Ok(len_buf)) => {
                read_frame_rest(
                    &mut stream,
                    len_buf,
                    settings.request_max_bytes,
                    settings.frame_timeout,
                )
                .await
            }
            Ok(Err(e)) => Err(e),
        };
        let (kind, payload) = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Ok(()),
            Err(FrameError::Io(e)) => return Err(e),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        };
        wait = settings.idle_timeout;
        let response = match (kind, lifecycle) {
            (KIND_BROKER_REGISTRATION..=KIND_ENVELOPE, Some(lifecycle)) => {
                Ok(handle_broker_request(lifecycle, kind, &payload).await?)
            }
            _ => handle_request(raft, validator, kind, &payload).await?,
        };
        match response {
            Ok(bytes) => write_frame(&mut stream, RESPONSE_OK, &bytes).await?,
            Err(message) => write_frame(&mut stream, RESPONSE_ERROR, message.as_bytes()).await?,
        }
    }
}

/// Decodes and runs one request. `Err` (io) closes the connection: the bytes were garbage.
/// `Ok(Err(message))` is an error answer: this node could not serve it (it is stopping).
async fn handle_request(
    raft: &Raft,
    validator: &Validator,
    kind: u8,
    payload: &[u8],
) -> io::Result<Result<Vec<u8>, String>> {
    Ok(match kind {
        KIND_APPEND_ENTRIES => {
            let req: AppendEntriesRequest<QuorumTypes> = decode(payload)?;
            validator.append_entries(&req).map_err(refused)?;
            match raft.append_entries(req).await {
                Ok(resp) => Ok(encode(&resp)?),
                Err(e) => Err(e.to_string()),
            }
        }
        KIND_VOTE | KIND_PRE_VOTE => {
            let req: VoteRequest<QuorumTypes> = decode(payload)?;
            validator.vote(&req).map_err(refused)?;
            let result = if kind == KIND_VOTE {
                raft.vote(req).await
            } else {
                raft.pre_vote(req).await
            };
            match result {
                Ok(resp) => Ok(encode(&resp)?),
                Err(e) => Err(e.to_string()),
            }
        }
        KIND_FULL_SNAPSHOT => {
            let (vote, meta, data): (VoteOf, SnapshotMetaOf, Vec<u8>) = decode(payload)?;
            let committed = local_committed(raft);
            validator
                .full_snapshot(&vote, &meta, &data, committed.as_ref())
                .map_err(refused)?;
            let snapshot = SnapshotOf {
                meta,
                snapshot: data,
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(resp) => Ok(encode(&resp)?),
                Err(e) => Err(e.to_string()),
            }
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown controller request kind {other}"),
            ))
        }
    })
}

/// A raft RPC the validator refused: the connection is closed (a peer that follows the
/// protocol never sends one), and the refusal logged.
fn refused(e: super::validate::InvalidRpc) -> io::Error {
    tracing::warn!(error = %e, "controller listener: refused a malformed raft request");
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("refused raft request: {e}"),
    )
}

/// What this node has committed, as its raft metrics last said.
fn local_committed(raft: &Raft) -> Option<super::LogIdOf> {
    use openraft::async_runtime::watch::WatchReceiver;
    raft.metrics().borrow_watched().local_committed
}

/// Decodes and answers one broker RPC (`Answer<T>` postcard); `Err` closes the connection.
async fn handle_broker_request(
    lifecycle: &super::lifecycle::Lifecycle,
    kind: u8,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    match kind {
        KIND_BROKER_REGISTRATION => encode(&lifecycle.register(decode(payload)?).await),
        KIND_BROKER_HEARTBEAT => encode(&lifecycle.heartbeat(decode(payload)?).await),
        KIND_ALLOCATE_PRODUCER_IDS => {
            encode(&lifecycle.allocate_producer_ids(decode(payload)?).await)
        }
        KIND_AUTO_CREATE_TOPICS => encode(&lifecycle.auto_create(decode(payload)?).await),
        KIND_ALTER_PARTITION => encode(&lifecycle.alter_partition(decode(payload)?).await),
        KIND_FETCH_IMAGE => {
            let known: u64 = decode(payload)?;
            let answer: super::lifecycle::Answer<_> = Ok(lifecycle.fetch_image(known));
            encode(&answer)
        }
        KIND_ENVELOPE => encode(&lifecycle.envelope(decode(payload)?).await),
        KIND_FETCH_IMAGE_WAIT => {
            let request = decode(payload)?;
            let answer: super::lifecycle::Answer<_> = Ok(lifecycle.fetch_image_wait(request).await);
            encode(&answer)
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown controller request kind {other}"),
        )),
    }
}

/// A broker's call to a controller: one request frame, one answer (`Answer<T>` postcard).
/// Err: the connection failed, timed out or the answer did not decode (reconnect).
pub async fn call_controller<Req: Serialize, Resp: DeserializeOwned>(
    stream: &mut SecureStream,
    kind: u8,
    request: &Req,
    max_bytes: usize,
    timeout: Duration,
) -> io::Result<Resp> {
    let payload = encode(request)?;
    let exchange = async {
        write_frame(stream, kind, &payload).await?;
        match read_frame(stream, max_bytes, timeout).await {
            Ok((RESPONSE_OK, body)) => decode(&body),
            Ok((_, body)) => Err(io::Error::other(
                String::from_utf8_lossy(&body).into_owned(),
            )),
            Err(FrameError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    };
    compio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "controller call timed out"))?
}

// ----- client side -----

/// Settings every peer client shares.
#[derive(Clone, Debug)]
pub struct NetworkSettings {
    pub request_max_bytes: usize,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
}

/// Makes one client per peer (openraft asks for them per replication stream).
#[derive(Clone, Debug)]
pub struct Network {
    pub settings: NetworkSettings,
    /// Where this node reaches each static voter: its own `controller.quorum.voters`, as
    /// Kafka's KRaft does (the membership in the log carries the addresses of the node that
    /// bootstrapped it, which may not be this node's way to the peer).
    pub voter_addrs: std::sync::Arc<std::collections::HashMap<u64, String>>,
}

impl RaftNetworkFactory<QuorumTypes> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let addr = self
            .voter_addrs
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        PeerClient {
            target,
            addr,
            stream: None,
            settings: self.settings.clone(),
            failing: false,
        }
    }
}

/// A connection to one peer, dialled on demand.
pub struct PeerClient {
    target: u64,
    addr: String,
    stream: Option<SecureStream>,
    settings: NetworkSettings,
    /// Whether the last call failed: failures are logged once per outage, not per retry.
    failing: bool,
}

/// How one RPC failed, before mapping to openraft's error types.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("unreachable: {0}")]
    Unreachable(io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Network(io::Error),
}

impl PeerClient {
    async fn call(
        &mut self,
        kind: u8,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let result = match compio::time::timeout(ttl, self.call_inner(kind, payload)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(ttl)),
        };
        match &result {
            Ok(_) if self.failing => {
                self.failing = false;
                tracing::info!(target_node = self.target, addr = %self.addr, "controller peer reachable again");
            }
            Ok(_) => {}
            Err(e) => {
                // The connection may hold half a response: never reuse it.
                self.stream = None;
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        target_node = self.target,
                        addr = %self.addr,
                        error = %e,
                        "controller peer unreachable; retrying with backoff"
                    );
                }
            }
        }
        result
    }

    async fn call_inner(&mut self, kind: u8, payload: Vec<u8>) -> Result<Vec<u8>, CallError> {
        if self.stream.is_none() {
            let addr: SocketAddr = self.addr.parse().map_err(|_| {
                CallError::Unreachable(io::Error::other(format!("bad peer address {}", self.addr)))
            })?;
            // TLS when the controller listener is SSL (`controller_listener`).
            let stream = SecureStream::connect(addr, controller_listener::client_tls())
                .await
                .map_err(CallError::Unreachable)?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(CallError::Network(io::Error::other("not connected")));
        };
        write_frame(stream, kind, &payload)
            .await
            .map_err(CallError::Network)?;
        let (status, body) = read_frame(
            stream,
            self.settings.request_max_bytes,
            self.settings.request_timeout,
        )
        .await
        .map_err(|e| CallError::Network(io::Error::other(e.to_string())))?;
        match status {
            RESPONSE_OK => Ok(body),
            _ => Err(CallError::Unreachable(io::Error::other(format!(
                "peer refused: {}",
                String::from_utf8_lossy(&body)
            )))),
        }
    }

    fn rpc_error(&self, e: CallError, action: RPCTypes, id: u64) -> RPCError<QuorumTypes> {
        match e {
            CallError::Unreachable(e) => {
                tracing::debug!(target_node = self.target, addr = %self.addr, error = %e, "controller peer unreachable");
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id,
                target: self.target,
                timeout,
            }),
        }
    }

    async fn typed<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        kind: u8,
        req: &Req,
        option: &RPCOption,
        action: RPCTypes,
        from: u64,
    ) -> Result<Resp, RPCError<QuorumTypes>> {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let bytes = self
            .call(
                kind,
                payload,
                option.hard_ttl().min(self.settings.request_timeout),
            )
            .await
            .map_err(|e| self.rpc_error(e, action, from))?;
        decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<QuorumTypes> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        let from = rpc.vote.leader_id.node_id;
        self.typed(
            KIND_APPEND_ENTRIES,
            &rpc,
            &option,
            RPCTypes::AppendEntries,
            from,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        let from = rpc.vote.leader_id.node_id;
        self.typed(KIND_VOTE, &rpc, &option, RPCTypes::Vote, from)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        let from = rpc.vote.leader_id.node_id;
        self.typed(KIND_PRE_VOTE, &rpc, &option, RPCTypes::Vote, from)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf,
        snapshot: SnapshotOf,
        _cancel: impl Future<Output = ReplicationClosed> + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<QuorumTypes>, StreamingError<QuorumTypes>> {
        let from = vote.leader_id.node_id;
        let req = (vote, snapshot.meta, snapshot.snapshot);
        let payload = encode(&req).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let ttl = option.hard_ttl().max(self.settings.request_timeout);
        let bytes = match self.call(KIND_FULL_SNAPSHOT, payload, ttl).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Err(match self.rpc_error(e, RPCTypes::InstallSnapshot, from) {
                    RPCError::Unreachable(e) => StreamingError::Unreachable(e),
                    RPCError::Timeout(e) => StreamingError::Timeout(e),
                    RPCError::Network(e) => StreamingError::Network(e),
                    RPCError::RemoteError(e) => StreamingError::Network(NetworkError::new(&e)),
                })
            }
        };
        decode(&bytes).map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }

    fn backoff(&self) -> Option<Backoff> {
        let (base, max) = (self.settings.retry_backoff, self.settings.retry_backoff_max);
        let mut next = base;
        Some(Backoff::new(std::iter::from_fn(move || {
            let now = next;
            next = (next * 2).min(max);
            Some(now)
        })))
    }
}
