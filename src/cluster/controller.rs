//! The single-node controller on shard 0 (the registry shard): topic creation and deletion,
//! partition growth, topic config changes, dynamic broker configs and producer-id blocks.
//!
//! Invariants: every change is serialised by the registry lock, from reading the image to
//! persisting it; a change is expressed as metadata records, applied to a copy of the image
//! (a record that does not apply refuses the whole change), persisted, and only then applied
//! by every shard to its own image (`adopt_records`: new partitions opened, new configs applied
//! to live logs with `Log::set_config`, leader epochs given to the partitions); the answer
//! comes after every shard adopted it. Deleted topics leave through `deletion` (data first).
//! Placement: Kafka's striped placer (`placement`), or a manual assignment checked as Kafka's
//! controller checks it; stored per partition in the image, never recomputed.
//! On a KRaft node (`process.roles` set) only the active controller changes anything (others
//! answer NOT_CONTROLLER, decision 0016) and "persist, then broadcast" becomes "propose to the
//! quorum, then wait until this node's shards applied it" (`commit_to_quorum`; every node's
//! shards follow the committed image, `follow`); producer-id blocks come from the active
//! controller (`heartbeat::allocate_producer_ids`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::broadcast::{self, Broadcast};
use super::image::{self, MetadataImage, PartitionRegistration};
use super::open as local;
use super::placement::{self, PlacementError};
use super::records::{
    ConfigRecord, MetadataRecord, PartitionRecord, CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC,
};
use super::store;
use super::topics::alter::{self, AlterError, IncrementalEntry};
use super::topics::dynamic::{BrokerChange, Scope};
use super::topics::{self, TopicError, TopicId, TopicMeta};
use crate::producers::{IdBlock, IdError};

/// What the controller uses of its shard (built by the shard, `shard::contexts_cluster`).
#[derive(Clone, Copy)]
pub struct ControllerContext<'a> {
    pub shard_id: shards::ShardId,
    /// This process as a KRaft node; None for the single node of old.
    pub cluster: Option<&'a std::sync::Arc<super::node::ClusterNode>>,
    pub config: &'a crate::config::BrokerConfig,
    pub default_log: &'a storage::LogConfig,
    /// This shard's metadata image (the controller's on shard 0).
    pub image: &'a RefCell<MetadataImage>,
    pub dynamic_configs: &'a RefCell<topics::dynamic::DynamicConfigs>,
    /// Held while a change is read, planned and committed (see the module invariant).
    pub registry_lock: &'a futures_util::lock::Mutex<()>,
    /// The metadata offset this node's shards applied (kept by `follow`).
    pub cluster_synced: &'a Cell<u64>,
    /// Every shard, to adopt a change or remove deleted topics (single node).
    pub broadcast: Broadcast<'a>,
}

/// What the controller's entry points take: a context, or what builds one (the shard,
/// `shard::contexts_cluster`), so their callers need not build it.
pub trait ControllerSource {
    fn controller_context(&self) -> ControllerContext<'_>;
}

impl ControllerSource for ControllerContext<'_> {
    fn controller_context(&self) -> ControllerContext<'_> {
        *self
    }
}

impl<T: ControllerSource + ?Sized> ControllerSource for std::rc::Rc<T> {
    fn controller_context(&self) -> ControllerContext<'_> {
        T::controller_context(self)
    }
}

/// What adopting committed records uses of a shard (built by the shard,
/// `shard::contexts_cluster`).
pub struct AdoptContext<'a> {
    pub shard_id: shards::ShardId,
    pub node_id: i32,
    pub image: &'a RefCell<MetadataImage>,
    pub dynamic_configs: &'a RefCell<topics::dynamic::DynamicConfigs>,
    /// The broker's client quotas (shared by its shards; shard 0 publishes the image's).
    pub quotas: &'a crate::quotas::QuotaManager,
    /// Opening the partitions the records add (and applying their configs, epochs, roles).
    pub open: local::OpenContext<'a>,
}

/// A topic to create (already name-checked by the handler or not: shard 0 re-validates).
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: crate::topics::config::TopicOverrides,
    /// CreateTopics' manual replica assignment: one broker list per partition.
    pub assignments: Option<Vec<Vec<i32>>>,
}

pub type CreateResult = Result<TopicMeta, TopicError>;

/// The shard that owns the topic registry.
pub const REGISTRY_SHARD: shards::ShardId = shards::ShardId(0);

/// Why one item of an admin change failed (crosses shards, so plain data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("This server does not host this topic ID")]
    UnknownTopicId,
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic registry: {0}")]
    Storage(String),
    /// The authorizer refused the operation on the topic (handlers::authz).
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    #[error("Cluster authorization failed.")]
    ClusterAuthorizationFailed,
    /// Kafka's NOT_CONTROLLER: this broker is not the active controller (KRaft node).
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    /// KIP-599: the request's controller mutation quota is exhausted (handlers).
    #[error("The throttling quota has been exceeded.")]
    ThrottlingQuotaExceeded,
    /// Kafka's REQUEST_TIMED_OUT ([`CommitError::TimedOut`]).
    #[error("{0}")]
    TimedOut(String),
}

/// Why a commit did not happen (nothing changed anywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    /// The controller could not finish in time: its quorum stopped (it is shutting down), or
    /// its shards did not apply what was committed in time. Kafka's controller answers a
    /// TimeoutException for both (`EventHandlerExceptionInfo`: a closed event queue is "The
    /// controller is shutting down."; an operation past its deadline), REQUEST_TIMED_OUT, which
    /// a client may retry; not a storage error.
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    Failed(String),
}

impl From<CommitError> for AdminError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::NotController => Self::NotController,
            CommitError::TimedOut(m) => Self::TimedOut(m),
            CommitError::Failed(m) => Self::Storage(m),
        }
    }
}

impl From<CommitError> for TopicError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::NotController => Self::NotController,
            CommitError::TimedOut(m) => Self::TimedOut(m),
            CommitError::Failed(m) => Self::Io(m),
        }
    }
}

/// A KRaft node that is not the active controller refuses controller operations up front.
fn check_controller(shard: &ControllerContext<'_>) -> Result<(), CommitError> {
    match &shard.cluster {
        Some(node) if !node.is_active_controller() => Err(CommitError::NotController),
        _ => Ok(()),
    }
}

impl From<AlterError> for AdminError {
    fn from(error: AlterError) -> Self {
        match error {
            AlterError::InvalidRequest(m) => Self::InvalidRequest(m),
            AlterError::InvalidConfig(m) => Self::InvalidConfig(m),
        }
    }
}

/// A topic named in DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicRef {
    Name(String),
    Id(TopicId),
}

/// CreatePartitions for one topic: the new total, and the optional manual assignment of the
/// added partitions (one broker list per new partition).
#[derive(Debug, Clone)]
pub struct PartitionGrowth {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// How a topic's overrides change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// AlterConfigs: the pairs become the whole override set.
    Replace(Vec<(String, Option<String>)>),
    IncrementalAlter(Vec<IncrementalEntry>),
}

/// A registry change, executed on shard 0.
#[derive(Debug, Clone)]
pub enum RegistryChange {
    DeleteTopics(Vec<TopicRef>),
    CreatePartitions {
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
    },
    AlterConfigs {
        topics: Vec<(String, ConfigChange)>,
        validate_only: bool,
    },
}

impl RegistryChange {
    /// How many items the change has (one answer each).
    pub fn len(&self) -> usize {
        match self {
            Self::DeleteTopics(refs) => refs.len(),
            Self::CreatePartitions { topics, .. } => topics.len(),
            Self::AlterConfigs { topics, .. } => topics.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per item, the topic as it is after the change (as it was, for a deletion).
pub type ChangeResult = Result<TopicMeta, AdminError>;

/// On shard 0 only: validates and applies a registry change.
pub async fn apply_change(
    source: &(impl ControllerSource + ?Sized),
    change: RegistryChange,
) -> Vec<ChangeResult> {
    let shard = &source.controller_context();
    assert_registry_shard(shard);
    if check_controller(shard).is_err() {
        return vec![Err(AdminError::NotController); change.len()];
    }
    let _guard = shard.registry_lock.lock().await;
    match change {
        RegistryChange::DeleteTopics(refs) => delete_topics(shard, refs).await,
        RegistryChange::CreatePartitions {
            topics,
            validate_only,
        } => {
            let planned = topics.iter().map(|g| grow(shard, g)).collect();
            commit_planned(shard, planned, validate_only).await
        }
        RegistryChange::AlterConfigs {
            topics,
            validate_only,
        } => {
            let planned = topics
                .iter()
                .map(|(name, c)| alter_configs(shard, name, c))
                .collect();
            commit_planned(shard, planned, validate_only).await
        }
    }
}

fn assert_registry_shard(shard: &ControllerContext<'_>) {
    assert_eq!(
        shard.shard_id, REGISTRY_SHARD,
        "controller operations run on the registry shard"
    );
}

/// One item of a change: the topic as it will be, and the records that make it so.
type Planned = Result<(TopicMeta, Vec<MetadataRecord>), AdminError>;

/// Commits the records of the successful items (unless `validate_only`); answers per item.
async fn commit_planned(
    shard: &ControllerContext<'_>,
    planned: Vec<Planned>,
    validate_only: bool,
) -> Vec<ChangeResult> {
    let records: Vec<MetadataRecord> = planned
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .flat_map(|(_, records)| records.iter().cloned())
        .collect();
    let results: Vec<ChangeResult> = planned.into_iter().map(|p| p.map(|(m, _)| m)).collect();
    if validate_only || records.is_empty() {
        return results;
    }
    match commit(shard, records).await {
        Ok(()) => results,
        Err(e) => fail_all_with(results, &AdminError::from(e)),
    }
}

/// Applies `records` to a copy of the controller's image, persists it, and has every shard
/// (this one included) adopt the records. Err (nothing changed anywhere) when a record does not
/// apply or the image cannot be persisted.
pub async fn commit(
    shard: &ControllerContext<'_>,
    records: Vec<MetadataRecord>,
) -> Result<(), CommitError> {
    if let Some(node) = shard.cluster {
        // The committed image, not this shard's (which may still be catching up after a
        // start): a change that does not fit what is committed is refused here.
        let mut next = node.image.current().image;
        next.apply_all(&records)
            .map_err(|e| CommitError::Failed(format!("metadata record refused: {e}")))?;
        return commit_to_quorum(shard, node, records).await;
    }
    let mut next: MetadataImage = shard.image.borrow().clone();
    next.apply_all(&records)
        .map_err(|e| CommitError::Failed(format!("metadata record refused: {e}")))?;
    commit_locally(shard, next, records)
        .await
        .map_err(CommitError::Failed)
}

/// Why a proposal failed, as the controller answers it (Kafka's
/// `EventHandlerExceptionInfo.fromInternal`): a lost leadership is NOT_CONTROLLER (the
/// forwarding broker retries it), a stopped quorum (the controller is shutting down) a
/// timeout, anything else a failure.
fn commit_error(error: super::quorum::QuorumError) -> CommitError {
    use super::quorum::QuorumError;
    match error {
        QuorumError::NotController { .. } | QuorumError::OutcomeUnknown { .. } => {
            CommitError::NotController
        }
        QuorumError::Stopped => CommitError::TimedOut("The controller is shutting down.".into()),
        e => CommitError::Failed(e.to_string()),
    }
}

/// A KRaft node: the records become one proposal, committed on a majority of the quorum; the
/// answer waits until this node's shards applied it (`follow`).
async fn commit_to_quorum(
    shard: &ControllerContext<'_>,
    node: &super::node::ClusterNode,
    records: Vec<MetadataRecord>,
) -> Result<(), CommitError> {
    let offset = node.propose(records).await.map_err(commit_error)?;
    let wait = std::time::Duration::from_millis(
        shard.config.controller.controller_quorum_request_timeout_ms,
    )
    .max(std::time::Duration::from_secs(5));
    match wait_synced(shard, offset, wait).await {
        true => Ok(()),
        false => Err(CommitError::TimedOut(format!(
            "committed at metadata offset {offset} but not applied here in time"
        ))),
    }
}

/// Waits until this node's shards applied the committed image up to `offset` (`follow`),
/// bounded by `timeout`.
async fn wait_synced(
    shard: &ControllerContext<'_>,
    offset: u64,
    timeout: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while shard.cluster_synced.get() < offset {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        compio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    true
}

/// The single node of old: persist the image files, then every shard adopts the records.
async fn commit_locally(
    shard: &ControllerContext<'_>,
    next: MetadataImage,
    records: Vec<MetadataRecord>,
) -> Result<(), String> {
    let data_dir = &shard.config.server.data_dir;
    let touches = |wanted: fn(&MetadataRecord) -> bool| records.iter().any(wanted);
    if touches(|r| r.topic_id().is_some() || is_config_of(r, CONFIG_RESOURCE_TOPIC)) {
        store::persist_topics(data_dir, &next, shard.config.server.node_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist topic registry");
                e
            })?;
    }
    if touches(|r| matches!(r, MetadataRecord::ProducerIds(_))) {
        store::persist_producer_ids(data_dir, &next).await?;
    }
    if touches(|r| is_config_of(r, CONFIG_RESOURCE_BROKER)) {
        store::persist_broker_configs(data_dir, &next, shard.config.server.node_id).await?;
    }
    if touches(super::security_image::is_security_record) {
        super::security_store::persist(data_dir, &next).await?;
    }
    broadcast::broadcast_records(&shard.broadcast, records).await;
    Ok(())
}

fn is_config_of(record: &MetadataRecord, resource_type: i8) -> bool {
    matches!(record, MetadataRecord::Config(c) if c.resource_type == resource_type)
}

/// Applies the records to this shard's image, then opens the partitions it now owns, applies
/// changed configs and leader epochs to the open ones, and lets the group coordinator load
/// new offsets partitions. A record that does not apply here after it applied on the
/// controller means the images diverged: the broker stops rather than serve a wrong image.
/// Answers the topics it opened partitions of, for the shard's `on_topics_adopted` hooks
/// (`shard::contexts_cluster`: the group coordinator loads new offsets partitions).
pub async fn adopt_records(
    shard: &AdoptContext<'_>,
    records: Vec<MetadataRecord>,
) -> Vec<TopicMeta> {
    let mut touched: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    {
        let mut image = shard.image.borrow_mut();
        for record in &records {
            if let Err(e) = image.apply(record) {
                shards::fatal(format!(
                    "metadata image diverged on shard {}: {e}",
                    shard.shard_id
                ));
            }
            let name = match record {
                MetadataRecord::Config(c) if c.resource_type == CONFIG_RESOURCE_TOPIC => {
                    Some(c.resource_name.clone())
                }
                other => other
                    .topic_id()
                    .and_then(|id| image.by_id(id))
                    .map(|m| m.name.clone()),
            };
            if let Some(name) = name.filter(|n| seen.insert(n.clone())) {
                touched.push(name);
            }
        }
    }
    // The quota table is the broker's, shared by its shards: shard 0 publishes the image's.
    if shard.shard_id == REGISTRY_SHARD
        && records
            .iter()
            .any(|r| matches!(r, MetadataRecord::ClientQuota(_)))
    {
        let quotas = shard.image.borrow().security().client_quotas().clone();
        shard.quotas.set_quotas(quotas);
    }
    if records
        .iter()
        .any(|r| is_config_of(r, CONFIG_RESOURCE_BROKER))
    {
        let configs = shard.image.borrow().dynamic_configs(shard.node_id);
        *shard.dynamic_configs.borrow_mut() = configs;
        reapply_topic_configs(shard).await;
    }
    let metas: Vec<TopicMeta> = {
        let image = shard.image.borrow();
        touched
            .iter()
            .filter_map(|n| image.get(n).cloned())
            .collect()
    };
    if metas.is_empty() {
        return metas;
    }
    local::open_owned(&shard.open, &metas).await;
    metas
}

fn fail_all(results: Vec<ChangeResult>, message: &str) -> Vec<ChangeResult> {
    fail_all_with(results, &AdminError::Storage(message.to_owned()))
}

fn fail_all_with(results: Vec<ChangeResult>, error: &AdminError) -> Vec<ChangeResult> {
    results
        .into_iter()
        .map(|r| r.and_then(|_| Err(error.clone())))
        .collect()
}

fn existing(shard: &ControllerContext<'_>, name: &str) -> Result<TopicMeta, AdminError> {
    if topics::validate_name(name).is_err() {
        return Err(AdminError::InvalidTopic(format!(
            "Topic name {name:?} is illegal"
        )));
    }
    shard
        .image
        .borrow()
        .get(name)
        .cloned()
        .ok_or_else(|| AdminError::UnknownTopic(name.to_owned()))
}

/// The registered, unfenced brokers (those a new partition's leader may be placed on).
pub(crate) fn usable_brokers(image: &MetadataImage) -> Vec<i32> {
    image
        .brokers()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect()
}

/// Registrations for new partitions after `existing` (the topic's current replicas): the
/// given manual assignment (checked as Kafka's controller checks it), else Kafka's striped
/// placement of `replication_factor` replicas over the registered brokers.
fn place_partitions(
    image: &MetadataImage,
    existing: &[Vec<i32>],
    count: u32,
    replication_factor: i32,
    assignments: Option<&[Vec<i32>]>,
    seed: u64,
) -> Result<Vec<PartitionRegistration>, PlacementError> {
    let first = u32::try_from(existing.len()).unwrap_or(u32::MAX);
    let Some(assignments) = assignments else {
        let placed = placement::place(
            &placement::usable_brokers(image),
            existing,
            count,
            replication_factor,
            seed,
        )?;
        // The placer leads with an unfenced broker, so this holds; Kafka checks it anyway.
        return placed
            .into_iter()
            .map(|replicas| {
                placement::new_registration(image, replicas).ok_or_else(|| {
                    PlacementError::ReplicationFactor(format!(
                        "Unable to replicate the partition {replication_factor} time(s): All \
                         brokers are currently fenced or in controlled shutdown."
                    ))
                })
            })
            .collect();
    };
    let mut factor =
        (!existing.is_empty()).then_some(usize::try_from(replication_factor).unwrap_or(0));
    (first..)
        .zip(assignments)
        .map(|(index, replicas)| {
            placement::check_manual(image, replicas, factor)?;
            factor = Some(replicas.len());
            placement::new_registration(image, replicas.clone()).ok_or_else(|| {
                PlacementError::Assignment(format!(
                    "All brokers specified in the manual partition assignment for partition \
                     {index} are fenced or in controlled shutdown."
                ))
            })
        })
        .collect()
}

fn partition_records(
    id: TopicId,
    from: u32,
    registrations: &[PartitionRegistration],
) -> Vec<MetadataRecord> {
    (from..)
        .zip(registrations)
        .map(|(index, r)| {
            MetadataRecord::Partition(PartitionRecord {
                partition_id: index,
                topic_id: id,
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
                adding_replicas: r.adding_replicas.clone(),
                removing_replicas: r.removing_replicas.clone(),
            })
        })
        .collect()
}

fn grow(shard: &ControllerContext<'_>, growth: &PartitionGrowth) -> Planned {
    let mut meta = existing(shard, &growth.name)?;
    if crate::internal_topics::is_internal(&meta.name) {
        // A group's (transactional id's) coordinator is hash(group) % partitions: growing it would move groups away
        // from their committed offsets.
        return Err(AdminError::InvalidTopic(format!(
            "Cannot add partitions to internal topic {}",
            meta.name
        )));
    }
    let current = i64::from(meta.partitions);
    let wanted = i64::from(growth.count);
    // Kafka's messages (ReplicationControlManager.createPartitions).
    if wanted == current {
        return Err(AdminError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    if wanted < current {
        return Err(AdminError::InvalidPartitions(format!(
            "The topic {} currently has {current} partition(s); {wanted} would not be an \
             increase.",
            meta.name
        )));
    }
    if growth.count > shard.config.topics.max_partitions_per_topic {
        return Err(AdminError::InvalidPartitions(format!(
            "{wanted} partitions exceed max.partitions.per.topic {}",
            shard.config.topics.max_partitions_per_topic
        )));
    }
    if let Some(assignments) = &growth.assignments {
        let added = wanted - current;
        if i64::try_from(assignments.len()).unwrap_or(i64::MAX) != added {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "Attempted to add {added} additional partition(s), but only {} assignment(s) \
                 were specified.",
                assignments.len()
            )));
        }
    }
    let count = growth.count.unsigned_abs();
    let existing: Vec<Vec<i32>> = meta
        .registrations
        .iter()
        .map(|r| r.replicas.clone())
        .collect();
    let factor = existing
        .first()
        .map_or(1, |r| i32::try_from(r.len()).unwrap_or(i32::MAX));
    let added = place_partitions(
        &shard.image.borrow(),
        &existing,
        count - meta.partitions,
        factor,
        growth.assignments.as_deref(),
        placement::seed_of(meta.id) ^ u64::from(meta.partitions),
    )
    .map_err(|e| match e {
        PlacementError::ReplicationFactor(m) => AdminError::InvalidReplicationFactor(m),
        PlacementError::Assignment(m) => AdminError::InvalidReplicaAssignment(m),
    })?;
    let records = partition_records(meta.id, meta.partitions, &added);
    meta.registrations.extend(added);
    meta.partitions = count;
    Ok((meta, records))
}

fn alter_configs(shard: &ControllerContext<'_>, name: &str, change: &ConfigChange) -> Planned {
    if name.is_empty() {
        return Err(AdminError::InvalidRequest(
            "Default topic resources are not allowed.".into(),
        ));
    }
    let mut meta = existing(shard, name)?;
    let overrides = match change {
        ConfigChange::Replace(pairs) => alter::replace_all(pairs)?,
        ConfigChange::IncrementalAlter(entries) => {
            // APPEND/SUBTRACT start from the value in force: the dynamic broker value when
            // there is one and no override.
            let mut layered = shard.dynamic_configs.borrow().topic_layer();
            layered.extend(meta.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
            let effective = |key: &str| {
                topics::config::describe(shard.default_log, &layered)
                    .into_iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, v, _)| v)
            };
            alter::apply_incremental(&meta.configs, entries, effective)?
        }
    };
    let dynamic = shard.dynamic_configs.borrow().clone();
    topics::dynamic::resolve_with(shard.default_log, &dynamic, &overrides)
        .map_err(|e| AdminError::InvalidConfig(e.to_string()))?;
    let records = config_records(&meta, &overrides);
    meta.configs = overrides;
    Ok((meta, records))
}

/// `ConfigRecord`s turning the topic's overrides into `next`: removed keys get a null value.
fn config_records(meta: &TopicMeta, next: &topics::config::TopicOverrides) -> Vec<MetadataRecord> {
    let record = |name: &String, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: meta.name.clone(),
            name: name.clone(),
            value: value.cloned(),
        })
    };
    let removed = meta
        .configs
        .keys()
        .filter(|k| !next.contains_key(*k))
        .map(|k| record(k, None));
    let set = next
        .iter()
        .filter(|(k, v)| meta.configs.get(*k) != Some(*v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// On shard 0 only: validates a dynamic broker config change and commits it as `ConfigRecord`s of
/// the BROKER resource ("" or a node's id); every shard adopts it (and re-applies topic
/// configs to its live logs) before the answer. `target`: the scope and, for `Scope::Node`,
/// the node whose configs change (another broker's when it forwarded the request; its current
/// values then come from the image).
pub async fn alter_broker_configs(
    source: &(impl ControllerSource + ?Sized),
    target: (Scope, i32),
    change: BrokerChange,
    validate_only: bool,
) -> Result<(), AdminError> {
    let shard = &source.controller_context();
    assert_registry_shard(shard);
    check_controller(shard)?;
    let _guard = shard.registry_lock.lock().await;
    let (scope, node_id) = target;
    let current = if scope == Scope::Node && node_id != shard.config.server.node_id {
        shard.image.borrow().dynamic_configs(node_id)
    } else {
        shard.dynamic_configs.borrow().clone()
    };
    let next = current.changed(scope, &change)?;
    if validate_only || next == current {
        return Ok(());
    }
    let resource = match scope {
        Scope::Cluster => String::new(),
        Scope::Node => node_id.to_string(),
    };
    let records = image::broker_config_records(&resource, current.scope(scope), next.scope(scope));
    commit(shard, records).await.map_err(AdminError::from)
}

/// Re-applies every topic's config to the logs this shard owns (the dynamic broker configs
/// under them changed).
async fn reapply_topic_configs(shard: &AdoptContext<'_>) {
    let metas: Vec<TopicMeta> = shard.image.borrow().iter().cloned().collect();
    local::open_owned(&shard.open, &metas).await;
}

async fn delete_topics(shard: &ControllerContext<'_>, refs: Vec<TopicRef>) -> Vec<ChangeResult> {
    let mut doomed: Vec<TopicMeta> = Vec::new();
    let mut doomed_names = std::collections::HashSet::new();
    let mut results: Vec<ChangeResult> = Vec::with_capacity(refs.len());
    // Kafka: every mention of a topic named (or id given) more than once is INVALID_REQUEST,
    // and that topic is not deleted.
    let mut mentions: std::collections::HashMap<&TopicRef, usize> =
        std::collections::HashMap::new();
    for topic in &refs {
        *mentions.entry(topic).or_default() += 1;
    }
    let repeated: std::collections::HashSet<TopicRef> = mentions
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(r, _)| r.clone())
        .collect();
    for topic in refs {
        if repeated.contains(&topic) {
            results.push(Err(AdminError::InvalidRequest(match topic {
                TopicRef::Name(_) => "Duplicate topic name.".into(),
                TopicRef::Id(_) => "Duplicate topic id.".into(),
            })));
            continue;
        }
        let found = {
            let table = shard.image.borrow();
            match &topic {
                TopicRef::Name(name) => table
                    .get(name)
                    .cloned()
                    .ok_or_else(|| AdminError::UnknownTopic(name.clone())),
                TopicRef::Id(id) => table.by_id(*id).cloned().ok_or(AdminError::UnknownTopicId),
            }
        };
        let found = found.and_then(|meta| {
            if crate::internal_topics::is_internal(&meta.name) {
                // Deleting it would drop every group's committed offsets (every transaction).
                Err(AdminError::InvalidTopic(format!(
                    "Cannot delete internal topic {}",
                    meta.name
                )))
            } else if doomed_names.contains(&meta.name) {
                Err(AdminError::InvalidRequest(
                    "Duplicate topic in request.".into(),
                ))
            } else {
                Ok(meta)
            }
        });
        if let Ok(meta) = &found {
            doomed_names.insert(meta.name.clone());
            doomed.push(meta.clone());
        }
        results.push(found);
    }
    if doomed.is_empty() {
        return results;
    }
    if shard.cluster.is_some() {
        // A KRaft node: the RemoveTopicRecords are committed; every broker then removes its
        // data of them as it applies them (`follow`).
        let records = doomed
            .iter()
            .map(|meta| {
                MetadataRecord::RemoveTopic(super::records::RemoveTopicRecord { topic_id: meta.id })
            })
            .collect();
        return match commit(shard, records).await {
            Ok(()) => results,
            Err(e) => fail_all_with(results, &AdminError::from(e)),
        };
    }
    // Data first, registry second: see the module invariant.
    let failed = broadcast::broadcast_removal(&shard.broadcast, &doomed).await;
    let (kept, doomed): (Vec<TopicMeta>, Vec<TopicMeta>) = doomed
        .into_iter()
        .partition(|meta| failed.iter().any(|(name, _)| *name == meta.name));
    if !kept.is_empty() {
        // Some partition's data could not be moved away: the topic stays (its partitions are
        // reopened, the moved ones empty) and the client is told, so it never re-creates the
        // topic on top of old data believing it gone.
        readopt(shard, &kept).await;
        results = results
            .into_iter()
            .map(|r| match r {
                Ok(meta) => match failed.iter().find(|(name, _)| *name == meta.name) {
                    Some((_, why)) => Err(AdminError::Storage(why.clone())),
                    None => Ok(meta),
                },
                Err(e) => Err(e),
            })
            .collect();
    }
    if doomed.is_empty() {
        return results;
    }
    // Every shard applied the RemoveTopicRecords (`deletion::remove_topics`); the controller's
    // image, without the doomed topics, is what the registry file must now say.
    let image = shard.image.borrow().clone();
    if let Err(e) = store::persist_topics(
        &shard.config.server.data_dir,
        &image,
        shard.config.server.node_id,
    )
    .await
    {
        tracing::error!(error = %e, "cannot persist topic registry after deleting topics");
        // The registry still lists them: every shard re-adopts them (empty).
        readopt(shard, &doomed).await;
        return fail_all(results, &e);
    }
    results
}

/// Has every shard adopt `metas` again (a deletion that could not finish): the records that
/// create each topic as it was, with its id, registrations and configs.
async fn readopt(shard: &ControllerContext<'_>, metas: &[TopicMeta]) {
    let records = metas
        .iter()
        .flat_map(|meta| image::topic_records(meta, shard.config.server.node_id))
        .collect();
    broadcast::broadcast_records(&shard.broadcast, records).await;
}

/// On shard 0 only: validates each topic, commits the records creating the valid ones (topic,
/// partitions, configs) unless `validate_only`, then answers per topic.
pub async fn create_topics(
    source: &(impl ControllerSource + ?Sized),
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<CreateResult> {
    let shard = &source.controller_context();
    assert_registry_shard(shard);
    if check_controller(shard).is_err() {
        return topics
            .iter()
            .map(|_| Err(TopicError::NotController))
            .collect();
    }
    let mut results: Vec<CreateResult> = Vec::with_capacity(topics.len());
    let mut records = Vec::new();
    // Names created by this request, keyed by their collision form ('.' and '_' alike).
    let mut created_names: HashMap<String, String> = HashMap::new();
    // The registry lock serialises validate-snapshot-persist, so two concurrent creates never
    // both succeed for one name and an older snapshot never overwrites a newer file.
    let _guard = shard.registry_lock.lock().await;
    for topic in topics {
        let checked = validate_new_topic(shard, &topic);
        let checked = checked.and_then(|meta| {
            let unified = topics::unify_collision_chars(&meta.name);
            match created_names.get(&unified) {
                Some(name) if *name == meta.name => Err(TopicError::AlreadyExists(meta.name)),
                Some(name) => Err(TopicError::Collision {
                    name: meta.name,
                    existing: name.clone(),
                }),
                None => Ok(meta),
            }
        });
        if let Ok(meta) = &checked {
            created_names.insert(topics::unify_collision_chars(&meta.name), meta.name.clone());
            records.extend(image::topic_records(meta, shard.config.server.node_id));
        }
        results.push(checked);
    }
    if validate_only || records.is_empty() {
        return results;
    }
    if let Err(e) = commit(shard, records).await {
        return results
            .into_iter()
            .map(|r| r.and_then(|_| Err(TopicError::from(e.clone()))))
            .collect();
    }
    results
}

fn validate_new_topic(
    shard: &ControllerContext<'_>,
    topic: &NewTopic,
) -> Result<TopicMeta, TopicError> {
    topics::validate_name(&topic.name)?;
    let image = shard.image.borrow();
    if image.get(&topic.name).is_some() {
        return Err(TopicError::AlreadyExists(topic.name.clone()));
    }
    if let Some(existing) = image.collision(&topic.name) {
        return Err(TopicError::Collision {
            name: topic.name.clone(),
            existing: existing.to_owned(),
        });
    }
    // Kafka's order of checks (ReplicationControlManager.createTopic).
    if topic.assignments.is_none()
        && (topic.replication_factor < -1 || topic.replication_factor == 0)
    {
        return Err(TopicError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    let partitions = match &topic.assignments {
        Some(assignments) => i32::try_from(assignments.len()).unwrap_or(i32::MAX),
        None if topic.partitions == -1 => shard.config.topics.num_partitions,
        None => topic.partitions,
    };
    if partitions < 1 || partitions > shard.config.topics.max_partitions_per_topic {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let factor = match topic.replication_factor {
        -1 => i32::from(shard.config.topics.default_replication_factor),
        given => i32::from(given),
    };
    let count = partitions.unsigned_abs();
    let id = TopicId::generate(&topic.name);
    let registrations = place_partitions(
        &image,
        &[],
        count,
        factor,
        topic.assignments.as_deref(),
        placement::seed_of(id),
    )
    .map_err(|e| match e {
        PlacementError::ReplicationFactor(m) => TopicError::InvalidReplicationFactor(m),
        PlacementError::Assignment(m) => TopicError::InvalidReplicaAssignment(m),
    })?;
    let dynamic = shard.dynamic_configs.borrow().clone();
    topics::dynamic::resolve_with(shard.default_log, &dynamic, &topic.configs)?;
    Ok(TopicMeta {
        name: topic.name.clone(),
        id,
        partitions: count,
        configs: topic.configs.clone(),
        registrations,
    })
}

/// On shard 0 only (Kafka's AllocateProducerIds): hands a shard the next block of
/// `PRODUCER_ID_BLOCK_SIZE` producer ids as a `ProducerIdsRecord`, committed (persisted and
/// adopted by every shard) before any id of it is used, so ids are never handed out twice,
/// across shards and restarts (a crash leaves a gap).
pub async fn allocate_producer_ids(
    source: &(impl ControllerSource + ?Sized),
) -> Result<IdBlock, IdError> {
    let shard = &source.controller_context();
    assert_registry_shard(shard);
    if let Some(node) = shard.cluster.cloned() {
        // A KRaft node asks the active controller (Kafka's AllocateProducerIds).
        return match super::heartbeat::allocate_producer_ids(node).await {
            Ok(block) => Ok(IdBlock {
                start: block.start,
                end: block.end,
            }),
            Err(reason) => {
                tracing::warn!(%reason, "no producer id block from the active controller");
                Err(IdError::Unavailable)
            }
        };
    }
    let _guard = shard.registry_lock.lock().await;
    let broker = shard.config.server.node_id;
    let epoch = shard
        .image
        .borrow()
        .broker(broker)
        .map_or(-1, |b| b.broker_epoch);
    let planned = image::producer_ids_record(
        &shard.image.borrow(),
        broker,
        epoch,
        super::PRODUCER_ID_BLOCK_SIZE,
    );
    let (record, start) = planned.ok_or(IdError::Exhausted)?;
    let end = record.next_producer_id;
    commit(shard, vec![MetadataRecord::ProducerIds(record)])
        .await
        .map_err(|e| IdError::Io {
            path: store::producer_ids_path(&shard.config.server.data_dir)
                .display()
                .to_string(),
            reason: e.to_string(),
        })?;
    Ok(IdBlock { start, end })
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
