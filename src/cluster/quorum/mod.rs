//! The controller quorum: the cluster's metadata log, replicated with openraft (KRaft's role in
//! Kafka). See `docs/decisions/0015-controller-quorum-openraft.md`.
//!
//! Each node runs its quorum member on a dedicated thread with its own compio runtime (openraft
//! 0.10 in single-threaded mode): the controller is off the data path, and shards talk to it
//! only through the [`QuorumHandle`]'s channels. The voters are static
//! (`controller.quorum.voters`); every voter initializes the same membership on first start.
//!
//! - `records`: the metadata records and their versioned codec (one raft entry = one batch).
//! - `applier`: the trait the metadata image implements, and a test applier.
//! - `log_store`, `state_machine`: openraft's storage, on disk under `metadata.log.dir`.
//! - `network`: the controller listener and the peer clients.
//!
//! Invariants:
//! - A proposal is answered with its metadata offset only once it is committed (on a majority's
//!   disks) and applied on this node; a node that is not the leader answers
//!   [`QuorumError::NotController`] with the leader it knows.
//! - Every node applies the same records in the same order (raft), each exactly once per life
//!   of its applier (after a restart: snapshot, then the log after it).
//! - Every queue is bounded: proposals (`controller.quorum.proposals.in.flight.max` in flight,
//!   as many queued), subscriber channels (`metadata.subscriber.queue.capacity`).

pub mod applier;
pub mod config;
pub mod lifecycle;
pub mod log_store;
pub mod network;
pub mod records;
pub mod shared_image;
pub mod state_machine;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::BasicNode;

pub use applier::{MetadataApplier, RecordHistory};
pub use config::{parse_voters, QuorumConfig, QuorumConfigError, Voter};
pub use records::{BrokerEndpoint, MetadataRecord, RecordBatch, RecordError, NO_LEADER_CHANGE};
pub use state_machine::MetadataEvent;

use log_store::LogStore;
use state_machine::{StateMachine, Subscribers};

openraft::declare_raft_types!(
    /// openraft's types for the metadata log: an entry's payload is a batch of records.
    pub QuorumTypes:
        D = RecordBatch,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        AsyncRuntime = openraft_rt_compio::CompioRuntime,
);

pub(crate) type LogIdOf = openraft::alias::LogIdOf<QuorumTypes>;
pub(crate) type VoteOf = openraft::alias::VoteOf<QuorumTypes>;
pub(crate) type EntryOf = openraft::alias::EntryOf<QuorumTypes>;
pub(crate) type StoredMembershipOf = openraft::alias::StoredMembershipOf<QuorumTypes>;
pub(crate) type SnapshotMetaOf = openraft::alias::SnapshotMetaOf<QuorumTypes>;
pub(crate) type SnapshotOf = openraft::alias::SnapshotOf<QuorumTypes, Vec<u8>>;
pub(crate) type Raft = openraft::Raft<QuorumTypes, StateMachine>;

/// `leader` value while no leader is known.
pub(crate) const NO_LEADER: u64 = u64::MAX;

/// What a proposal or the start can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Kafka's NOT_CONTROLLER: this node is not the active controller; `leader_id` is the one it
    /// knows of, if any. The proposal was not appended.
    #[error("not the controller (leader: {leader_id:?})")]
    NotController { leader_id: Option<u64> },
    /// Leadership changed after the proposal was appended: it may or may not commit. Kafka's
    /// controller answers such requests with NOT_CONTROLLER too; the caller re-reads the image
    /// before retrying.
    #[error("leadership changed, proposal outcome unknown (leader: {leader_id:?})")]
    OutcomeUnknown { leader_id: Option<u64> },
    /// openraft refused the proposal for another reason.
    #[error("proposal rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    Config(#[from] QuorumConfigError),
    #[error("controller quorum cannot start: {0}")]
    Start(String),
    /// The quorum thread stopped (shut down, or a fatal storage error).
    #[error("controller quorum stopped")]
    Stopped,
}

type ProposeReply = futures_channel::oneshot::Sender<Result<u64, QuorumError>>;

struct Proposal {
    batch: RecordBatch,
    reply: ProposeReply,
}

/// The broker's side of the quorum: propose, subscribe, ask who leads, shut down. Dropping it
/// shuts the member down.
pub struct QuorumHandle {
    node_id: u64,
    local_addr: SocketAddr,
    proposals: flume::Sender<Proposal>,
    shutdown: Option<flume::Sender<()>>,
    leader: Arc<AtomicU64>,
    subscribers: Subscribers,
    subscriber_capacity: usize,
    thread: Option<JoinHandle<()>>,
}

/// Starts quorum members.
pub struct Quorum;

impl Quorum {
    /// Binds this node's controller listener (its address in `controller.quorum.voters`) and
    /// starts its member.
    pub fn start(
        config: QuorumConfig,
        applier: Box<dyn MetadataApplier + Send>,
    ) -> Result<QuorumHandle, QuorumError> {
        config.validate()?;
        let addr = config
            .local_voter()
            .map(|v| v.addr)
            .ok_or(QuorumError::Stopped)?;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            QuorumError::Start(format!("cannot bind controller listener {addr}: {e}"))
        })?;
        Self::start_with_listener(config, applier, listener)
    }

    /// Starts a broker's controller member: its applier is the node's shared image, and its
    /// listener also serves the brokers' lifecycle RPCs (`lifecycle`), fencing brokers whose
    /// heartbeats stop for `session_timeout`.
    pub fn start_controller(
        config: QuorumConfig,
        image: Arc<shared_image::SharedImage>,
        session_timeout: Duration,
        forwarded: flume::Sender<lifecycle::ForwardedCall>,
    ) -> Result<QuorumHandle, QuorumError> {
        config.validate()?;
        let addr = config
            .local_voter()
            .map(|v| v.addr)
            .ok_or(QuorumError::Stopped)?;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            QuorumError::Start(format!("cannot bind controller listener {addr}: {e}"))
        })?;
        let applier = Box::new(shared_image::ImageApplier(image.clone()));
        Self::start_member(
            config,
            applier,
            listener,
            Some((image, session_timeout, forwarded)),
        )
    }

    /// Starts a member on an already bound listener (port 0 reserved by the caller).
    pub fn start_with_listener(
        config: QuorumConfig,
        applier: Box<dyn MetadataApplier + Send>,
        listener: std::net::TcpListener,
    ) -> Result<QuorumHandle, QuorumError> {
        Self::start_member(config, applier, listener, None)
    }

    fn start_member(
        config: QuorumConfig,
        applier: Box<dyn MetadataApplier + Send>,
        listener: std::net::TcpListener,
        lifecycle: Option<LifecycleSetup>,
    ) -> Result<QuorumHandle, QuorumError> {
        config.validate()?;
        let raft_config = Arc::new(config.raft_config()?);
        let local_addr = listener
            .local_addr()
            .map_err(|e| QuorumError::Start(format!("controller listener address: {e}")))?;
        let (proposals_tx, proposals_rx) = flume::bounded(config.proposals_in_flight_max);
        let (shutdown_tx, shutdown_rx) = flume::bounded(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let leader = Arc::new(AtomicU64::new(NO_LEADER));
        let subscribers: Subscribers = Arc::new(Mutex::new(Vec::new()));
        let member = Member {
            config: config.clone(),
            raft_config,
            applier,
            listener,
            proposals: proposals_rx,
            shutdown: shutdown_rx,
            leader: leader.clone(),
            subscribers: subscribers.clone(),
            lifecycle,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-quorum-{}", config.node_id))
            .spawn(move || member.run(ready_tx))
            .map_err(|e| QuorumError::Start(format!("cannot spawn the quorum thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = thread.join();
                return Err(QuorumError::Start(reason));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(QuorumError::Start(
                    "the quorum thread died while starting".into(),
                ));
            }
        }
        tracing::info!(node_id = config.node_id, %local_addr, "controller quorum member started");
        Ok(QuorumHandle {
            node_id: config.node_id,
            local_addr,
            proposals: proposals_tx,
            shutdown: Some(shutdown_tx),
            leader,
            subscribers,
            subscriber_capacity: config.subscriber_capacity,
            thread: Some(thread),
        })
    }
}

impl QuorumHandle {
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The controller listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The leader (active controller) this node knows of.
    pub fn leader(&self) -> Option<u64> {
        match self.leader.load(Ordering::Acquire) {
            NO_LEADER => None,
            id => Some(id),
        }
    }

    /// Appends `records` as one batch; resolves with its metadata offset once committed and
    /// applied here. Waits while `controller.quorum.proposals.in.flight.max` proposals queue.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        let (reply, answer) = futures_channel::oneshot::channel();
        let proposal = Proposal {
            batch: RecordBatch(records),
            reply,
        };
        self.proposals
            .send_async(proposal)
            .await
            .map_err(|_| QuorumError::Stopped)?;
        answer.await.map_err(|_| QuorumError::Stopped)?
    }

    /// Every record applied from now on, in order, through a bounded channel (a full channel
    /// holds the state machine back; drop the receiver to unsubscribe).
    pub fn subscribe(&self) -> flume::Receiver<MetadataEvent> {
        let (tx, rx) = flume::bounded(self.subscriber_capacity);
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Stops the member (raft, listener, connections) and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(node_id = self.node_id, "the quorum thread panicked");
            }
        }
    }
}

impl Drop for QuorumHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shared image and `broker.session.timeout.ms` of a broker's controller member.
type LifecycleSetup = (
    Arc<shared_image::SharedImage>,
    Duration,
    flume::Sender<lifecycle::ForwardedCall>,
);

/// Everything the quorum thread owns.
struct Member {
    lifecycle: Option<LifecycleSetup>,
    config: QuorumConfig,
    raft_config: Arc<openraft::Config>,
    applier: Box<dyn MetadataApplier + Send>,
    listener: std::net::TcpListener,
    proposals: flume::Receiver<Proposal>,
    shutdown: flume::Receiver<()>,
    leader: Arc<AtomicU64>,
    subscribers: Subscribers,
}

impl Member {
    fn run(self, ready: std::sync::mpsc::SyncSender<Result<(), String>>) {
        block_stop_signals();
        let runtime = match compio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot build the quorum runtime: {e}")));
                return;
            }
        };
        let node_id = self.config.node_id;
        runtime.block_on(async move {
            let shutdown = self.shutdown.clone();
            let (raft, tasks) = match self.start_raft().await {
                Ok(started) => started,
                Err(reason) => {
                    let _ = ready.send(Err(reason));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            // Runs until the handle asks to stop or goes away.
            let _ = shutdown.recv_async().await;
            tracing::info!(node_id, "controller quorum member stopping");
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(node_id, error = %e, "raft shutdown");
            }
            // Cancel the listener (and with it every connection), the workers and the watch.
            drop(tasks);
            // A cancelled io_uring operation (the pending accept) releases its socket only when
            // its cancellation completes: let the driver run once more so the controller port
            // is closed when `shutdown` returns, not at some later point (or never: the
            // runtime does not drain pending operations when dropped).
            compio::time::sleep(Duration::from_millis(20)).await;
        });
    }

    /// Opens storage, starts raft, the listener, the leader watch and the proposal workers;
    /// returns raft and the tasks to cancel at shutdown.
    async fn start_raft(self) -> Result<(Raft, Vec<compio::runtime::JoinHandle<()>>), String> {
        let config = &self.config;
        let dir = &config.metadata_dir;
        let log_store = LogStore::open(dir, config.segment_bytes)
            .map_err(|e| format!("metadata log in {}: {e}", dir.display()))?;
        let applier: Box<dyn MetadataApplier> = self.applier;
        let state_machine = StateMachine::open(dir, applier, self.subscribers.clone())
            .map_err(|e| format!("metadata snapshot in {}: {e}", dir.display()))?;
        let network = network::Network {
            settings: network::NetworkSettings {
                request_max_bytes: config.request_max_bytes,
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                retry_backoff: Duration::from_millis(config.retry_backoff_ms),
                retry_backoff_max: Duration::from_millis(config.retry_backoff_max_ms),
            },
            voter_addrs: std::sync::Arc::new(
                config
                    .voters
                    .iter()
                    .map(|v| (v.node_id, v.addr.to_string()))
                    .collect(),
            ),
        };
        let listener = compio::net::TcpListener::from_std(self.listener)
            .map_err(|e| format!("controller listener: {e}"))?;
        let raft = Raft::new(
            config.node_id,
            self.raft_config.clone(),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| format!("raft: {e}"))?;
        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|v| (v.node_id, BasicNode::new(v.addr.to_string())))
            .collect();
        // Every voter proposes the same static membership; one already initialized (by an
        // earlier life or by a peer's replication) refuses, which is expected.
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(node_id = config.node_id, error = %e, "quorum already initialized");
        }
        let server = network::ServerSettings {
            request_max_bytes: config.request_max_bytes,
            connections_max: config.connections_max,
            frame_timeout: Duration::from_millis(config.request_timeout_ms),
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
        };
        // A broker's controller restores snapshots into the shared image: check them as such.
        let snapshot_check = self
            .lifecycle
            .as_ref()
            .map(|_| shared_image::check_snapshot as validate::SnapshotCheck);
        let lifecycle = self.lifecycle.map(|(image, session, forwarded)| {
            std::rc::Rc::new(lifecycle::Lifecycle::new(
                config.node_id,
                config.cluster_id.clone(),
                config.voters.clone(),
                raft.clone(),
                self.leader.clone(),
                image,
                session,
                forwarded,
            ))
        });
        let validator =
            validate::Validator::new(config.voters.iter().map(|v| v.node_id), snapshot_check);
        let mut tasks = vec![
            compio::runtime::spawn(network::serve(
                listener,
                raft.clone(),
                server,
                lifecycle.clone(),
                std::rc::Rc::new(validator),
            )),
            compio::runtime::spawn(watch_leader(raft.clone(), self.leader.clone())),
        ];
        if let Some(lifecycle) = lifecycle {
            tasks.push(compio::runtime::spawn(lifecycle.run_sessions()));
        }
        for _ in 0..config.proposals_in_flight_max {
            tasks.push(compio::runtime::spawn(propose_worker(
                raft.clone(),
                self.proposals.clone(),
            )));
        }
        Ok((raft, tasks))
    }
}

/// SIGINT/SIGTERM belong to the process's signal thread (`shards::run` blocks them in every
/// thread it starts); a broker's quorum thread starts before it, so it blocks them itself, or
/// the kernel could deliver a stop signal here and kill the process without a clean shutdown.
fn block_stop_signals() {
    // SAFETY: sigemptyset/sigaddset/pthread_sigmask only write the local set and this
    // thread's own signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Mirrors openraft's view of the leader into the handle's atomic. A raft core that stopped on
/// a fatal error (a failed disk write, a panic) ends the process (`shards::fatal`, exit 70), as
/// Kafka's `KafkaRaftClientDriver` hands any raft thread error to its process-terminating fault
/// handler: a node serving on with a dead quorum member learns no metadata and cannot be fenced.
/// A requested shutdown (`Fatal::Stopped`) only reports "no leader".
async fn watch_leader(raft: Raft, leader: Arc<AtomicU64>) {
    use openraft::async_runtime::watch::WatchReceiver;
    let mut metrics = raft.metrics();
    loop {
        let (current, state) = {
            let m = metrics.borrow_watched();
            (m.current_leader, m.running_state.clone())
        };
        if let Err(stopped) = state {
            leader.store(NO_LEADER, Ordering::Release);
            return end_of_core(Some(stopped));
        }
        leader.store(current.unwrap_or(NO_LEADER), Ordering::Release);
        if metrics.changed().await.is_err() {
            // The core's task ended: its last metrics say why (a core that ended without
            // saying is as fatal as one that failed).
            leader.store(NO_LEADER, Ordering::Release);
            let last = metrics.borrow_watched().running_state.clone();
            return end_of_core(last.err());
        }
    }
}

/// A requested shutdown returns; anything else ends the process.
fn end_of_core(stopped: Option<openraft::errors::Fatal<QuorumTypes>>) {
    match stopped {
        Some(openraft::errors::Fatal::Stopped) => {}
        Some(fatal) => shards::fatal(format!(
            "controller quorum member stopped on a fatal error: {fatal}"
        )),
        None => {
            shards::fatal("controller quorum member stopped on a fatal error: its raft core ended")
        }
    }
}

/// One of `controller.quorum.proposals.in.flight.max` workers: takes a proposal, writes it
/// through raft, answers.
async fn propose_worker(raft: Raft, proposals: flume::Receiver<Proposal>) {
    while let Ok(Proposal { batch, reply }) = proposals.recv_async().await {
        let result = match raft.client_write(batch).await {
            Ok(response) => Ok(response.log_id.index),
            Err(e) => Err(propose_error(e)),
        };
        let _ = reply.send(result);
    }
}

fn propose_error(
    e: openraft::errors::RaftError<QuorumTypes, openraft::errors::ClientWriteError<QuorumTypes>>,
) -> QuorumError {
    use openraft::errors::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => QuorumError::NotController {
            leader_id: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            QuorumError::OutcomeUnknown {
                leader_id: f.leader_id,
            }
        }
        RaftError::APIError(other) => QuorumError::Rejected(other.to_string()),
        RaftError::Fatal(_) => QuorumError::Stopped,
    }
}

/// A big-endian `u32` at `at` of bytes read from disk or a peer; `None` past the end.
pub(crate) fn be_u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

/// A big-endian `u64` at `at` of bytes read from disk or a peer; `None` past the end.
pub(crate) fn be_u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}
