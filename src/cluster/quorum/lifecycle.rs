//! The active controller's side of the brokers' lifecycle (Kafka's `ClusterControlManager` and
//! `BrokerHeartbeatManager`), on the quorum thread: BrokerRegistration, BrokerHeartbeat,
//! AllocateProducerIds, and fencing brokers whose session expired; plus the committed image
//! for broker-only nodes (`FetchImage`).
//!
//! Semantics (Kafka's): a broker registers fenced with a new broker epoch; it is unfenced by
//! the first heartbeat that shows it caught up with the metadata log (its applied offset at
//! least the offset of its registration); a broker that has not heartbeated for
//! `broker.session.timeout.ms` is fenced, and the partitions it led get another in-sync
//! unfenced leader or none (-1) until it returns. A registration for a node id whose
//! registration of another incarnation still has a live session is refused
//! (DUPLICATE_BROKER_REGISTRATION). A newly active controller gives every registered broker a
//! fresh session (it cannot know when they last heartbeated its predecessor).
//!
//! Invariants: only the leader answers (others: NOT_CONTROLLER with the leader they know);
//! every change it makes is a proposal committed through raft, serialised by `propose_lock` and
//! computed from the image after the previous one was applied, so two changes never start from
//! the same image (producer-id blocks never overlap).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::shared_image::SharedImage;
use super::{Raft, RecordBatch, Voter, NO_LEADER};
use crate::cluster::image::MetadataImage;
use crate::cluster::records::{
    BrokerEndpoint, FenceBrokerRecord, MetadataRecord, RegisterBrokerRecord, UnfenceBrokerRecord,
    NO_LEADER as NO_PARTITION_LEADER,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// The broker's `cluster.id` (Kafka's BrokerRegistration `ClusterId`).
    pub cluster_id: String,
    pub broker_id: i32,
    pub incarnation_id: u128,
    pub end_points: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The metadata offset the broker applied (Kafka's `CurrentMetadataOffset`).
    pub metadata_offset: u64,
    /// Kafka's `WantShutDown`: the broker is stopping; fence it now (controlled shutdown),
    /// so its partitions move or go offline at once and its next start registers at once.
    pub want_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub is_fenced: bool,
    pub is_caught_up: bool,
    /// The controller's committed metadata offset.
    pub metadata_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub start: i64,
    pub end: i64,
}

/// Auto-creation of topics (`auto.create.topics.enable`) asked by a broker that is not the
/// active controller (Kafka's brokers forward it as CreateTopics): the broker's default
/// partition count, no configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoCreateRequest {
    pub names: Vec<String>,
    pub partitions: i32,
    /// The broker's `default.replication.factor`.
    #[serde(default = "one_replica")]
    pub replication_factor: i16,
}

fn one_replica() -> i16 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoCreateOutcome {
    Created,
    AlreadyExists,
    Invalid(String),
    /// The replicas cannot be placed (Kafka's INVALID_REPLICATION_FACTOR message).
    InvalidReplicationFactor(String),
}

/// Per name, what happened; and the metadata offset that created them (0: nothing created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoCreateResponse {
    pub outcomes: Vec<AutoCreateOutcome>,
    pub offset: u64,
}

/// The most partitions an auto-created topic may have (the broker's `num.partitions` is bounded
/// by its own `max.partitions.per.topic`; this bounds what a peer may ask).
const AUTO_CREATE_PARTITIONS_MAX: i32 = 100_000;

/// What a broker-only node at `known_offset` needs: nothing, the committed entries after it,
/// or the whole committed image (`SharedImage::encode` bytes) when it is too far behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchImageResponse {
    Unchanged,
    Image(Vec<u8>),
    Entries {
        offset: u64,
        entries: Vec<(u64, Vec<MetadataRecord>)>,
    },
}

/// A broker-only node's long poll for committed metadata (Kafka's broker fetches the metadata
/// log with a max wait the same way): the entries after `known_offset`, once there are any,
/// or `Unchanged` after `max_wait_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchImageWaitRequest {
    pub known_offset: u64,
    pub max_wait_ms: u32,
}

/// The longest a controller holds a metadata long poll, whatever a peer asks (it holds that
/// connection meanwhile; Kafka's KafkaRaftClient waits at most 500 ms per fetch).
pub const FETCH_IMAGE_WAIT_MAX: Duration = Duration::from_millis(500);

/// An Envelope handed from the quorum thread to shard 0 (`Lifecycle::envelope`).
pub struct ForwardedCall {
    /// `EnvelopeRequest` v0 bytes.
    pub envelope: Vec<u8>,
    pub reply: flume::Sender<EnvelopeAnswer>,
}

/// The controller's answer to an Envelope: an `EnvelopeResponse` v0 (the response body for the
/// client, or an error), and the metadata offset the controller had committed once it was
/// handled: the broker answers its client only once it applied that far, so the client's next
/// request to it sees the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeAnswer {
    pub response: Vec<u8>,
    pub metadata_offset: u64,
}

/// Kafka's error codes of these RPCs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LifecycleError {
    #[error("not the active controller (leader: {leader_id:?} at {leader_addr:?})")]
    NotController {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    #[error("node id {0} is already registered by a live broker")]
    DuplicateBrokerRegistration(i32),
    #[error("stale broker epoch: register again")]
    StaleBrokerEpoch,
    /// Kafka's INCONSISTENT_CLUSTER_ID: the broker's `cluster.id` is not the quorum's.
    #[error("INCONSISTENT_CLUSTER_ID: the broker's cluster.id `{broker}` is not the controller's `{controller}`")]
    InconsistentClusterId { broker: String, controller: String },
    #[error("producer id space exhausted")]
    ProducerIdsExhausted,
    #[error("{0}")]
    Rejected(String),
}

pub type Answer<T> = Result<T, LifecycleError>;

/// See the module documentation.
pub struct Lifecycle {
    node_id: u64,
    /// This quorum's `cluster.id`: registrations naming another are refused.
    cluster_id: String,
    voters: Vec<Voter>,
    raft: Raft,
    leader: Arc<AtomicU64>,
    image: Arc<SharedImage>,
    session: Duration,
    /// Last heartbeat (or registration) of each broker, as this controller saw it.
    contacts: RefCell<HashMap<i32, Instant>>,
    /// The metadata offset of each broker's registration: caught up once it applied it.
    registered_at: RefCell<HashMap<i32, u64>>,
    /// Broker epochs that asked for a controlled shutdown: a heartbeat of theirs still in
    /// flight never unfences them again (one per broker id; a new registration clears it).
    shut_down: RefCell<HashMap<i32, i64>>,
    propose_lock: futures_util::lock::Mutex<()>,
    /// Envelopes (KIP-590) for this node's shard 0, which runs the Kafka handlers
    /// (`handlers::forward`); bounded by `forwarded.requests.max.in.flight`.
    forwarded: flume::Sender<ForwardedCall>,
}

impl Lifecycle {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        node_id: u64,
        cluster_id: String,
        voters: Vec<Voter>,
        raft: Raft,
        leader: Arc<AtomicU64>,
        image: Arc<SharedImage>,
        session: Duration,
        forwarded: flume::Sender<ForwardedCall>,
    ) -> Self {
        Self {
            node_id,
            cluster_id,
            voters,
            raft,
            leader,
            image,
            session,
            contacts: RefCell::new(HashMap::new()),
            registered_at: RefCell::new(HashMap::new()),
            shut_down: RefCell::new(HashMap::new()),
            propose_lock: futures_util::lock::Mutex::new(()),
            forwarded,
        }
    }

    fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire) == self.node_id
    }

    fn not_controller(&self) -> LifecycleError {
        let leader = self.leader.load(Ordering::Acquire);
        let leader_id = (leader != NO_LEADER).then_some(leader);
        let leader_addr = leader_id.and_then(|id| {
            self.voters
                .iter()
                .find(|v| v.node_id == id)
                .map(|v| v.addr.to_string())
        });
        LifecycleError::NotController {
            leader_id,
            leader_addr,
        }
    }

    fn check_leader(&self) -> Answer<()> {
        match self.is_leader() {
            true => Ok(()),
            false => Err(self.not_controller()),
        }
    }

    async fn propose(&self, records: Vec<MetadataRecord>) -> Answer<u64> {
        use openraft::errors::{ClientWriteError, RaftError};
        match self.raft.client_write(RecordBatch(records)).await {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(self.not_controller())
            }
            Err(e) => Err(LifecycleError::Rejected(e.to_string())),
        }
    }

    fn alive(&self, broker: i32) -> bool {
        self.contacts
            .borrow()
            .get(&broker)
            .is_some_and(|t| t.elapsed() < self.session)
    }

    /// Kafka's BrokerRegistration: answers the broker epoch.
    pub async fn register(&self, request: RegistrationRequest) -> Answer<i64> {
        self.check_leader()?;
        if request.cluster_id != self.cluster_id {
            return Err(LifecycleError::InconsistentClusterId {
                broker: request.cluster_id,
                controller: self.cluster_id.clone(),
            });
        }
        let _guard = self.propose_lock.lock().await;
        let existing = self.image.lock().image.broker(request.broker_id).cloned();
        if let Some(existing) = &existing {
            if existing.incarnation_id == request.incarnation_id {
                // The same process asking again (its answer was lost): same epoch.
                self.contacts
                    .borrow_mut()
                    .insert(request.broker_id, Instant::now());
                return Ok(existing.broker_epoch);
            }
            // Kafka's `hasValidSession`: a fenced broker (after a controlled shutdown, or
            // whose session expired) has none, so its next process registers at once.
            if !existing.fenced && self.alive(request.broker_id) {
                return Err(LifecycleError::DuplicateBrokerRegistration(
                    request.broker_id,
                ));
            }
        }
        // The old registration's leadership ends with it (as if fenced), so the new one is
        // elected again, with a new leader epoch, once caught up.
        let mut records = match existing.filter(|b| !b.fenced) {
            Some(old) => fence_records(&self.image.lock().image, old.broker_id, old.broker_epoch),
            None => Vec::new(),
        };
        records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: request.broker_id,
            incarnation_id: request.incarnation_id,
            // Set to the entry's offset when it commits (Kafka's broker epoch).
            broker_epoch: crate::cluster::records::BROKER_EPOCH_AT_COMMIT,
            end_points: request.end_points,
            rack: request.rack,
            fenced: true,
        }));
        let offset = self.propose(records).await?;
        let broker_epoch = i64::try_from(offset).unwrap_or(i64::MAX);
        tracing::info!(
            broker = request.broker_id,
            broker_epoch,
            offset,
            "broker registered (fenced until caught up)"
        );
        self.contacts
            .borrow_mut()
            .insert(request.broker_id, Instant::now());
        self.registered_at
            .borrow_mut()
            .insert(request.broker_id, offset);
        Ok(broker_epoch)
    }

    /// Kafka's BrokerHeartbeat.
    pub async fn heartbeat(&self, request: HeartbeatRequest) -> Answer<HeartbeatResponse> {
        self.check_leader()?;
        let current = |image: &MetadataImage| {
            image
                .broker(request.broker_id)
                .filter(|b| b.broker_epoch == request.broker_epoch)
                .map(|b| b.fenced)
        };
        let fenced = current(&self.image.lock().image).ok_or(LifecycleError::StaleBrokerEpoch)?;
        let shut_down =
            self.shut_down.borrow().get(&request.broker_id) == Some(&request.broker_epoch);
        if shut_down && !request.want_shutdown {
            // A heartbeat sent before the controlled shutdown, answered after it.
            return Ok(HeartbeatResponse {
                is_fenced: true,
                is_caught_up: false,
                metadata_offset: self.image.offset(),
            });
        }
        self.contacts
            .borrow_mut()
            .insert(request.broker_id, Instant::now());
        let registered_at = self
            .registered_at
            .borrow()
            .get(&request.broker_id)
            .copied()
            .unwrap_or(0);
        let caught_up = request.metadata_offset >= registered_at;
        let mut is_fenced = fenced;
        if request.want_shutdown {
            self.shut_down
                .borrow_mut()
                .insert(request.broker_id, request.broker_epoch);
            let _guard = self.propose_lock.lock().await;
            let records = {
                let state = self.image.lock();
                match current(&state.image) {
                    Some(false) => {
                        fence_records(&state.image, request.broker_id, request.broker_epoch)
                    }
                    _ => Vec::new(),
                }
            };
            if !records.is_empty() {
                self.propose(records).await?;
                tracing::info!(
                    broker = request.broker_id,
                    "broker fenced: controlled shutdown"
                );
            }
            self.contacts.borrow_mut().remove(&request.broker_id);
            return Ok(HeartbeatResponse {
                is_fenced: true,
                is_caught_up: caught_up,
                metadata_offset: self.image.offset(),
            });
        }
        if fenced && caught_up {
            let _guard = self.propose_lock.lock().await;
            let records = {
                let state = self.image.lock();
                match current(&state.image) {
                    Some(true) => {
                        unfence_records(&state.image, request.broker_id, request.broker_epoch)
                    }
                    _ => Vec::new(),
                }
            };
            if !records.is_empty() {
                self.propose(records).await?;
                tracing::info!(broker = request.broker_id, "broker unfenced");
            }
            is_fenced = false;
        }
        Ok(HeartbeatResponse {
            is_fenced,
            is_caught_up: caught_up,
            metadata_offset: self.image.offset(),
        })
    }

    /// Kafka's AllocateProducerIds: the next block, committed before it is answered.
    pub async fn allocate_producer_ids(
        &self,
        request: AllocateProducerIdsRequest,
    ) -> Answer<ProducerIdBlock> {
        self.check_leader()?;
        let _guard = self.propose_lock.lock().await;
        let (record, start) = {
            let state = self.image.lock();
            if state
                .image
                .broker(request.broker_id)
                .is_none_or(|b| b.broker_epoch != request.broker_epoch)
            {
                return Err(LifecycleError::StaleBrokerEpoch);
            }
            crate::cluster::image::producer_ids_record(
                &state.image,
                request.broker_id,
                request.broker_epoch,
                crate::cluster::PRODUCER_ID_BLOCK_SIZE,
            )
            .ok_or(LifecycleError::ProducerIdsExhausted)?
        };
        let end = record.next_producer_id;
        self.propose(vec![MetadataRecord::ProducerIds(record)])
            .await?;
        Ok(ProducerIdBlock { start, end })
    }

    /// Auto-creates topics for a broker (see `AutoCreateRequest`).
    pub async fn auto_create(&self, request: AutoCreateRequest) -> Answer<AutoCreateResponse> {
        self.check_leader()?;
        if !(1..=AUTO_CREATE_PARTITIONS_MAX).contains(&request.partitions) {
            return Err(LifecycleError::Rejected(format!(
                "invalid partition count {}",
                request.partitions
            )));
        }
        let _guard = self.propose_lock.lock().await;
        let (outcomes, records) = plan_auto_create(&self.image.lock().image, &request);
        let offset = match records.is_empty() {
            true => 0,
            false => self.propose(records).await?,
        };
        Ok(AutoCreateResponse { outcomes, offset })
    }

    /// Kafka's AlterPartition: validated against the committed image, the accepted changes
    /// committed before the answer (`cluster::alter_partition_rpc`).
    pub async fn alter_partition(
        &self,
        call: crate::cluster::alter_partition_rpc::AlterPartitionCall,
    ) -> Answer<crate::cluster::alter_partition_rpc::AlterPartitionAnswer> {
        self.check_leader()?;
        let _guard = self.propose_lock.lock().await;
        let planned = crate::cluster::alter_partition_rpc::plan(&self.image.lock().image, &call);
        let (records, answer) = planned.map_err(|_| LifecycleError::StaleBrokerEpoch)?;
        if !records.is_empty() {
            self.propose(records).await?;
        }
        Ok(answer)
    }

    /// The committed image, for a broker-only node behind `known_offset`.
    pub fn fetch_image(&self, known_offset: u64) -> FetchImageResponse {
        use super::shared_image::CatchUp;
        match self.image.catch_up(known_offset) {
            CatchUp::Nothing => FetchImageResponse::Unchanged,
            CatchUp::Entries { offset, entries } => FetchImageResponse::Entries { offset, entries },
            CatchUp::Image(bytes) => FetchImageResponse::Image(bytes),
        }
    }

    /// `fetch_image` as a long poll: when nothing is newer than `known`, the answer waits
    /// until something is committed or `max_wait` (capped at [`FETCH_IMAGE_WAIT_MAX`]) passed.
    pub async fn fetch_image_wait(&self, request: FetchImageWaitRequest) -> FetchImageResponse {
        let wait = Duration::from_millis(u64::from(request.max_wait_ms)).min(FETCH_IMAGE_WAIT_MAX);
        self.image.wait_newer(request.known_offset, wait).await;
        self.fetch_image(request.known_offset)
    }

    /// Kafka's Envelope (KIP-590) from a broker: `envelope` is an `EnvelopeRequest` v0 (the
    /// client's request bytes and principal), run by this node's shard 0 as if the client had
    /// sent it here. Only the active controller takes one; a full queue is refused (the broker
    /// then answers the client itself: NOT_CONTROLLER, retriable).
    pub async fn envelope(&self, envelope: Vec<u8>) -> Answer<EnvelopeAnswer> {
        self.check_leader()?;
        let (reply, answer) = flume::bounded(1);
        self.forwarded
            .try_send(ForwardedCall { envelope, reply })
            .map_err(|e| match e {
                flume::TrySendError::Full(_) => {
                    LifecycleError::Rejected("too many forwarded requests in flight".into())
                }
                flume::TrySendError::Disconnected(_) => {
                    LifecycleError::Rejected("this controller serves no forwarded requests".into())
                }
            })?;
        answer
            .recv_async()
            .await
            .map_err(|_| LifecycleError::Rejected("the forwarded request was dropped".into()))
    }

    /// Fences brokers whose session expired, while this node is the active controller.
    pub async fn run_sessions(self: Rc<Self>) {
        let tick = (self.session / 8).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut was_leader = false;
        loop {
            compio::time::sleep(tick).await;
            if !self.is_leader() {
                was_leader = false;
                continue;
            }
            let brokers: Vec<(i32, i64, bool)> = self
                .image
                .lock()
                .image
                .brokers()
                .map(|b| (b.broker_id, b.broker_epoch, b.fenced))
                .collect();
            if !was_leader {
                // Newly active: every broker gets a fresh session.
                let now = Instant::now();
                let mut contacts = self.contacts.borrow_mut();
                for (id, _, _) in &brokers {
                    contacts.insert(*id, now);
                }
                was_leader = true;
                continue;
            }
            for (id, epoch, fenced) in brokers {
                if fenced || self.alive(id) {
                    continue;
                }
                let _guard = self.propose_lock.lock().await;
                let records = {
                    let state = self.image.lock();
                    let still = state
                        .image
                        .broker(id)
                        .is_some_and(|b| b.broker_epoch == epoch && !b.fenced);
                    match still && !self.alive(id) {
                        true => fence_records(&state.image, id, epoch),
                        false => Vec::new(),
                    }
                };
                if records.is_empty() {
                    continue;
                }
                match self.propose(records).await {
                    Ok(offset) => tracing::warn!(
                        broker = id,
                        offset,
                        session_timeout_ms = self.session.as_millis() as u64,
                        "broker fenced: no heartbeat within broker.session.timeout.ms"
                    ),
                    Err(e) => tracing::warn!(broker = id, error = %e, "fencing a broker failed"),
                }
            }
        }
    }
}

/// The records creating each new, valid name of `request` (placed as the controller places a
/// CreateTopics with replication factor -1: Kafka's striped placer, `cluster::placement`), and
/// each name's outcome.
fn plan_auto_create(
    image: &MetadataImage,
    request: &AutoCreateRequest,
) -> (Vec<AutoCreateOutcome>, Vec<MetadataRecord>) {
    use crate::cluster::placement;
    use crate::cluster::topics::{self, TopicId, TopicMeta};
    let brokers = placement::usable_brokers(image);
    let mut records = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let outcomes = request
        .names
        .iter()
        .map(|name| {
            if let Err(e) = topics::validate_name(name) {
                return AutoCreateOutcome::Invalid(e.to_string());
            }
            if image.get(name).is_some() || created.contains(name) {
                return AutoCreateOutcome::AlreadyExists;
            }
            if let Some(existing) = image.collision(name) {
                return AutoCreateOutcome::Invalid(format!(
                    "Topic '{name}' collides with existing topic: {existing}"
                ));
            }
            let count = request.partitions.unsigned_abs();
            let id = TopicId::generate(name);
            let factor = i32::from(request.replication_factor);
            let placed =
                match placement::place(&brokers, &[], count, factor, placement::seed_of(id)) {
                    Ok(placed) => placed,
                    Err(e) => return AutoCreateOutcome::InvalidReplicationFactor(e.to_string()),
                };
            let registrations: Option<Vec<_>> = placed
                .into_iter()
                .map(|replicas| placement::new_registration(image, replicas))
                .collect();
            let Some(registrations) = registrations else {
                return AutoCreateOutcome::InvalidReplicationFactor(
                    "All brokers are currently fenced.".into(),
                );
            };
            let meta = TopicMeta {
                name: name.clone(),
                id,
                partitions: count,
                configs: Default::default(),
                registrations,
            };
            records.extend(crate::cluster::image::topic_records(
                &meta,
                NO_PARTITION_LEADER,
            ));
            created.push(name.clone());
            AutoCreateOutcome::Created
        })
        .collect();
    (outcomes, records)
}

/// `FenceBrokerRecord` and the partition changes of `cluster::election::on_broker_fenced`
/// (Kafka's `handleBrokerFenced`): `broker` leaves every ISR (never the last member, so it
/// can lead again without data loss) and the partitions it led get another in-sync leader
/// among the active brokers, or none (-1).
pub fn fence_records(image: &MetadataImage, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::FenceBroker(FenceBrokerRecord {
        id: broker,
        epoch,
    })];
    let unclean =
        |name: &str| crate::cluster::alter_partition_rpc::unclean_election_enabled(image, name);
    records.extend(crate::cluster::election::on_broker_fenced(
        image, broker, unclean,
    ));
    records
}

/// `UnfenceBrokerRecord` and the partition changes of `cluster::election::on_broker_unfenced`
/// (Kafka's `handleBrokerUnfenced`): leaderless partitions `broker` can lead get it.
pub fn unfence_records(image: &MetadataImage, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
        id: broker,
        epoch,
    })];
    let unclean =
        |name: &str| crate::cluster::alter_partition_rpc::unclean_election_enabled(image, name);
    records.extend(crate::cluster::election::on_broker_unfenced(
        image, broker, unclean,
    ));
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::image::topic_records;
    use crate::cluster::topics::{TopicId, TopicMeta};

    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in [1, 2] {
            image
                .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: id,
                    incarnation_id: 1,
                    broker_epoch: 10,
                    end_points: Vec::new(),
                    rack: None,
                    fenced: false,
                }))
                .unwrap();
        }
        let meta = TopicMeta {
            name: "t".into(),
            id: TopicId(5),
            partitions: 0,
            configs: Default::default(),
            registrations: Vec::new(),
        };
        image.apply_all(&topic_records(&meta, 1)).unwrap();
        for (index, leader) in [(0u32, 1), (1, 2)] {
            image
                .apply(&MetadataRecord::Partition(
                    crate::cluster::records::PartitionRecord {
                        partition_id: index,
                        topic_id: TopicId(5),
                        replicas: vec![leader],
                        isr: vec![leader],
                        leader,
                        leader_epoch: 0,
                        partition_epoch: 0,
                        adding_replicas: Vec::new(),
                        removing_replicas: Vec::new(),
                    },
                ))
                .unwrap();
        }
        image
    }

    #[test]
    fn fencing_takes_leadership_away_and_unfencing_gives_it_back() {
        let mut image = image();
        image
            .apply_all(&fence_records(&image.clone(), 1, 10))
            .unwrap();
        assert!(image.broker(1).is_some_and(|b| b.fenced));
        let p0 = image.partition("t", 0).unwrap().clone();
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (-1, vec![1], 1)
        );
        assert_eq!(
            image.partition("t", 1).unwrap().leader,
            2,
            "others untouched"
        );
        image
            .apply_all(&unfence_records(&image.clone(), 1, 10))
            .unwrap();
        assert!(image.broker(1).is_some_and(|b| !b.fenced));
        let p0 = image.partition("t", 0).unwrap();
        assert_eq!((p0.leader, p0.leader_epoch), (1, 2));
    }

    #[test]
    fn records_of_another_epoch_change_nothing() {
        let mut image = image();
        image
            .apply(&MetadataRecord::FenceBroker(FenceBrokerRecord {
                id: 1,
                epoch: 9,
            }))
            .unwrap();
        assert!(image.broker(1).is_some_and(|b| !b.fenced));
    }

    #[test]
    fn auto_created_topics_are_placed_like_created_ones() {
        let mut image = image();
        let request = AutoCreateRequest {
            names: vec!["auto".into(), "t".into()],
            partitions: 4,
            replication_factor: 2,
        };
        let (outcomes, records) = plan_auto_create(&image, &request);
        assert_eq!(
            outcomes,
            vec![AutoCreateOutcome::Created, AutoCreateOutcome::AlreadyExists]
        );
        image.apply_all(&records).unwrap();
        let meta = image.get("auto").unwrap();
        let mut leaders: Vec<i32> = meta.registrations.iter().map(|r| r.leader).collect();
        leaders.sort_unstable();
        assert_eq!(
            leaders,
            vec![1, 1, 2, 2],
            "leaders spread over both brokers"
        );
        assert!(meta
            .registrations
            .iter()
            .all(|r| r.replicas.len() == 2 && r.isr == r.replicas));
        let too_many = AutoCreateRequest {
            names: vec!["big".into()],
            partitions: 1,
            replication_factor: 3,
        };
        let (outcomes, records) = plan_auto_create(&image, &too_many);
        assert!(records.is_empty());
        assert!(matches!(
            outcomes.as_slice(),
            [AutoCreateOutcome::InvalidReplicationFactor(_)]
        ));
    }
}
