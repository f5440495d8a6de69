//! Client quotas (Kafka's `ClientQuotaManager`s): `producer_byte_rate`, `consumer_byte_rate`
//! and `request_percentage` per user / client id and their defaults, `controller_mutation_rate`
//! (KIP-599, `mutation`) and `connection_creation_rate` per IP (KIP-612, `connections`, with
//! the broker-wide `max.connection.creation.rate`), managed with
//! DescribeClientQuotas / AlterClientQuotas, stored as `ClientQuotaRecord`s in the metadata image
//! (`cluster::quota_image`, so every broker of a cluster enforces the same quotas), and
//! measured per broker: one `QuotaManager` is shared by every shard (docs/decisions/0013).
//!
//! Invariants: the quotas in force are the image's: AlterClientQuotas only validates here
//! (`validate`, `apply_valid`) and commits records through the controller; shard 0 hands each
//! image change to `set_quotas`. Recording never waits on disk: it takes the
//! read side of the quota map and one mutex per quota type for a few hash look-ups and the
//! rate arithmetic. With no quota of a type configured nothing is recorded for it (Kafka's
//! `quotasEnabled`). Memory is bounded: a rate is a fixed array of `quota.window.num` samples,
//! rates idle for an hour are dropped (Kafka's `InactiveSensorExpirationTimeSeconds`), and at
//! most `quota.sensors.max` rates exist per quota type (the least recently used goes first).

pub mod connections;
pub mod entity;
pub mod mutation;
pub mod rate;
pub mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::connections::{ConnectionRates, IpLimits};
use self::entity::{EntityName, QuotaEntity, QuotaError, QuotaMap};
use self::mutation::{Mutation, MutationBuckets};
use self::rate::{Rate, WindowConfig};
use self::resolve::{MetricTags, Overrides};

/// File name of the single-node store under `__cluster/` before quotas were image records;
/// read once at start by `cluster::security_store::migrate_legacy`.
pub const STORE_FILE: &str = "client_quotas.toml";

/// Kafka drops a client's sensors after an hour without traffic.
pub(crate) const INACTIVE_SENSOR_EXPIRATION_MS: u64 = 3_600_000;

/// Kafka's quota types; the index into the per-type tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaType {
    Produce = 0,
    Fetch = 1,
    Request = 2,
}

impl QuotaType {
    const ALL: [Self; 3] = [Self::Produce, Self::Fetch, Self::Request];

    /// This type's entry of a per-type array (no indexing: the three are named).
    fn of<T>(self, per_type: &[T; 3]) -> &T {
        let [produce, fetch, request] = per_type;
        match self {
            Self::Produce => produce,
            Self::Fetch => fetch,
            Self::Request => request,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Produce => entity::PRODUCER_BYTE_RATE,
            Self::Fetch => entity::CONSUMER_BYTE_RATE,
            Self::Request => entity::REQUEST_PERCENTAGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaStoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// `quota.window.num` and `quota.window.size.seconds`, checked as Kafka does (at least 1 each).
pub fn window_config(
    config: &crate::config::BrokerConfig,
) -> Result<WindowConfig, crate::config::ConfigError> {
    let invalid = |key: &'static str| crate::config::ConfigError::Invalid {
        key,
        reason: "must be at least 1".into(),
    };
    if config.quota.quota_window_num == 0 {
        return Err(invalid("quota.window.num"));
    }
    if config.quota.quota_window_size_seconds == 0 || config.quota.quota_window_size_seconds > 3600
    {
        return Err(crate::config::ConfigError::Invalid {
            key: "quota.window.size.seconds",
            reason: "must be in [1, 3600]".into(),
        });
    }
    if config.quota.quota_window_num > 1000 {
        return Err(crate::config::ConfigError::Invalid {
            key: "quota.window.num",
            reason: "must be in [1, 1000]".into(),
        });
    }
    Ok(WindowConfig {
        samples: config.quota.quota_window_num,
        window_ms: config.quota.quota_window_size_seconds * 1000,
    })
}

/// What one request did, for the quotas (filled in by the connection).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Produce: the request's size (Kafka's `request.sizeInBytes`).
    pub produced_bytes: Option<usize>,
    /// Fetch: the response's size.
    pub fetched_bytes: Option<usize>,
    /// Time the request's handler ran on the shard (Kafka's request-handler thread time);
    /// `None` for requests exempt from the request quota.
    pub handler_time: Option<Duration>,
}

/// One AlterClientQuotas entry after decoding: the entity parts and the ops (key, value, remove).
pub struct AlterEntry<'a> {
    pub entity: Vec<(&'a str, Option<&'a str>)>,
    pub ops: Vec<(&'a str, f64, bool)>,
}

/// The quotas in force, derived from the stored map.
#[derive(Debug, Default)]
struct Live {
    map: QuotaMap,
    by_type: [Overrides; 3],
    /// `controller_mutation_rate` overrides.
    mutation: Overrides,
    /// `connection_creation_rate` of IP entities.
    ips: IpLimits,
}

impl Live {
    fn new(map: QuotaMap) -> Self {
        let overrides = |key: &str| -> Overrides {
            map.iter()
                .filter(|(e, _)| e.ip.is_none())
                .filter_map(|(e, values)| values.get(key).map(|v| (e.clone(), *v)))
                .collect()
        };
        let by_type = QuotaType::ALL.map(|t| overrides(t.key()));
        let mutation = overrides(entity::CONTROLLER_MUTATION_RATE);
        let mut ips = IpLimits::default();
        for (e, values) in &map {
            let Some(rate) = values.get(entity::CONNECTION_CREATION_RATE) else {
                continue;
            };
            match &e.ip {
                Some(EntityName::Default) => ips.default = Some(*rate),
                Some(EntityName::Named(name)) => {
                    if let Ok(ip) = name.parse() {
                        ips.named.insert(ip, *rate);
                    }
                }
                None => {}
            }
        }
        Self {
            map,
            by_type,
            mutation,
            ips,
        }
    }
}

#[derive(Debug, Default)]
struct Sensors {
    rates: HashMap<MetricTags, Rate>,
}

/// The broker's client quotas and the rates they are measured in, shared by every shard.
#[derive(Debug)]
pub struct QuotaManager {
    window: WindowConfig,
    sensors_max: usize,
    live: RwLock<Arc<Live>>,
    /// Whether any quota exists (read on every request without a lock).
    active: std::sync::atomic::AtomicBool,
    sensors: [Mutex<Sensors>; 3],
    connections: ConnectionRates,
    mutations: MutationBuckets,
    epoch: Instant,
}

impl QuotaManager {
    /// A table without quotas; the image's come with `set_quotas`.
    pub fn new(window: WindowConfig, sensors_max: usize) -> Self {
        Self {
            window,
            sensors_max: sensors_max.max(1),
            active: std::sync::atomic::AtomicBool::new(false),
            live: RwLock::new(Arc::new(Live::new(QuotaMap::new()))),
            sensors: Default::default(),
            connections: ConnectionRates::default(),
            mutations: MutationBuckets::new(window, sensors_max.max(1)),
            epoch: Instant::now(),
        }
    }

    /// Puts `map` (the metadata image's quotas) in force; the rates measured so far are kept,
    /// as Kafka's `updateQuota` keeps a sensor's samples and only changes its bound.
    pub fn set_quotas(&self, map: QuotaMap) {
        if self.live().map == map {
            return;
        }
        let active = !map.is_empty();
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Live::new(map));
        self.active
            .store(active, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether any quota is configured (else nothing needs recording).
    pub fn active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every entity and its configs.
    pub fn snapshot(&self) -> QuotaMap {
        self.live().map.clone()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records one request's usage for `user` (the principal's name) and `client_id`, and
    /// returns the throttle time in ms: the largest of the violated quotas' (Kafka takes the
    /// max of the bandwidth and request throttles), 0 within every quota.
    pub fn record(&self, user: &str, client_id: &str, usage: &Usage) -> u64 {
        let live = self.live();
        if live.map.is_empty() {
            return 0;
        }
        let now = self.now_ms();
        let mut throttle = 0;
        if let Some(bytes) = usage.produced_bytes {
            let t = self.record_one(
                &live,
                QuotaType::Produce,
                user,
                client_id,
                bytes as f64,
                now,
            );
            throttle = throttle.max(t);
        }
        if let Some(bytes) = usage.fetched_bytes {
            let t = self.record_one(&live, QuotaType::Fetch, user, client_id, bytes as f64, now);
            throttle = throttle.max(t);
        }
        if let Some(time) = usage.handler_time {
            // Kafka's nanosToPercentage: percent of one thread, per second.
            let percent = time.as_nanos() as f64 * 100.0 / 1e9;
            let t = self.record_one(&live, QuotaType::Request, user, client_id, percent, now);
            throttle = throttle.max(t);
        }
        throttle
    }

    fn record_one(
        &self,
        live: &Live,
        quota_type: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now: u64,
    ) -> u64 {
        let overrides = quota_type.of(&live.by_type);
        if overrides.is_empty() {
            return 0;
        }
        let tags = resolve::metric_tags(user, client_id, overrides);
        let Some(bound) = resolve::limit(&tags, overrides) else {
            return 0;
        };
        // The request quota's throttle is capped at one window (ClientRequestQuotaManager).
        let max_throttle = match quota_type {
            QuotaType::Request => self.window.window_ms,
            _ => u64::MAX,
        };
        let mut sensors = quota_type
            .of(&self.sensors)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !sensors.rates.contains_key(&tags) {
            self.make_room(&mut sensors, now);
        }
        let rate = sensors.rates.entry(tags).or_default();
        rate::record_and_throttle_ms(rate, &self.window, value, bound, now, max_throttle)
    }

    /// Kafka's `unrecordQuotaSensor`: takes a fetch's bytes back out of its rate, without a
    /// quota check. A throttled fetch is answered without records, so its bytes must not count.
    pub fn unrecord_fetch(&self, user: &str, client_id: &str, bytes: usize) {
        let live = self.live();
        let overrides = QuotaType::Fetch.of(&live.by_type);
        if overrides.is_empty() {
            return;
        }
        let tags = resolve::metric_tags(user, client_id, overrides);
        let now = self.now_ms();
        let mut sensors = QuotaType::Fetch
            .of(&self.sensors)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(rate) = sensors.rates.get_mut(&tags) {
            rate.record(&self.window, -(bytes as f64), now);
        }
    }

    /// Kafka's `getMaxValueInQuotaWindow` for the fetch quota: the most bytes a consumer may
    /// fetch in one response, `consumer_byte_rate * (quota.window.num - 1) *
    /// quota.window.size.seconds`; `None` without a fetch quota for `user` / `client_id`.
    pub fn max_fetch_bytes_in_window(&self, user: &str, client_id: &str) -> Option<f64> {
        let live = self.live();
        let overrides = QuotaType::Fetch.of(&live.by_type);
        if overrides.is_empty() {
            return None;
        }
        let tags = resolve::metric_tags(user, client_id, overrides);
        let bound = resolve::limit(&tags, overrides)?;
        let full_windows = self.window.samples.saturating_sub(1) as f64;
        Some(bound * full_windows * (self.window.window_ms as f64 / 1000.0))
    }

    /// KIP-612: records a new connection on `listener` against the listener's and the broker's
    /// `max.connection.creation.rate`; returns how long to wait before serving it.
    pub fn record_listener_connection(
        &self,
        listener: &str,
        listener_max: i32,
        broker_max: i32,
    ) -> u64 {
        self.connections.record_listener(
            listener,
            listener_max,
            broker_max,
            &self.window,
            self.now_ms(),
        )
    }

    /// KIP-612: records a new connection from `ip` against its `connection_creation_rate`;
    /// `Some(close_after_ms)`: over it, refuse the connection (see `connections`).
    pub fn record_ip_connection(&self, ip: std::net::IpAddr) -> Option<u64> {
        let live = self.live();
        if live.ips.is_empty() {
            return None;
        }
        self.connections
            .record_ip(&live.ips, ip, &self.window, self.sensors_max, self.now_ms())
    }

    /// KIP-599: records `partitions` created or deleted by `user` / `client_id` against their
    /// `controller_mutation_rate` (`strict`: refuse once exhausted); see `mutation`.
    pub fn record_mutation(
        &self,
        user: &str,
        client_id: &str,
        partitions: u32,
        strict: bool,
    ) -> Mutation {
        let live = self.live();
        if live.mutation.is_empty() {
            return Mutation::Recorded { throttle_ms: 0 };
        }
        let tags = resolve::metric_tags(user, client_id, &live.mutation);
        let Some(quota) = resolve::limit(&tags, &live.mutation) else {
            return Mutation::Recorded { throttle_ms: 0 };
        };
        self.mutations
            .record(tags, quota, f64::from(partitions), strict, self.now_ms())
    }

    /// Drops rates idle for an hour; at the cap, also the least recently used one.
    fn make_room(&self, sensors: &mut Sensors, now: u64) {
        if sensors.rates.len() < self.sensors_max {
            return;
        }
        sensors
            .rates
            .retain(|_, r| now.saturating_sub(r.last_start_ms()) < INACTIVE_SENSOR_EXPIRATION_MS);
        if sensors.rates.len() >= self.sensors_max {
            let oldest = sensors
                .rates
                .iter()
                .min_by_key(|(_, r)| r.last_start_ms())
                .map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                sensors.rates.remove(&key);
            }
        }
    }

    /// AlterClientQuotas applied to this table directly (unit tests of the arithmetic).
    #[cfg(test)]
    fn alter_here(
        &self,
        entries: &[AlterEntry<'_>],
        validate_only: bool,
    ) -> Vec<Result<(), QuotaError>> {
        let valid = validate(entries);
        if !validate_only {
            let mut map = self.snapshot();
            apply_valid(&mut map, &valid);
            self.set_quotas(map);
        }
        valid.into_iter().map(|v| v.map(|_| ())).collect()
    }
}

/// One AlterClientQuotas entry that passed validation: the entity and its ops (key, value or
/// None to remove).
#[derive(Debug, Clone)]
pub struct ValidEntry {
    entity: QuotaEntity,
    ops: Ops,
}

/// AlterClientQuotas: validates every entry on its own, as Kafka's `ClientQuotaControlManager`
/// answers each (owned, so the valid ones can travel to the controller).
pub fn validate(entries: &[AlterEntry<'_>]) -> Vec<Result<ValidEntry, QuotaError>> {
    entries
        .iter()
        .map(|e| validate_entry(e).map(|(entity, ops)| ValidEntry { entity, ops }))
        .collect()
}

/// Applies the valid entries of `validate` to `map`; returns whether anything changed.
pub fn apply_valid(map: &mut QuotaMap, entries: &[Result<ValidEntry, QuotaError>]) -> bool {
    let mut changed = false;
    for entry in entries.iter().flatten() {
        changed |= apply(map, entry.entity.clone(), &entry.ops);
    }
    changed
}

/// The quotas of a data directory's `__cluster/client_quotas.toml` (None when absent), checked
/// as AlterClientQuotas checks them. Blocking: read once at start for the migration into the
/// image.
pub fn load_legacy(data_dir: &Path) -> Result<Option<QuotaMap>, QuotaStoreError> {
    let path = data_dir.join("__cluster").join(STORE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|reason| QuotaStoreError::Parse { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(QuotaStoreError::Read { path, source }),
    }
}

type Ops = Vec<(String, Option<f64>)>;

fn validate_entry(entry: &AlterEntry<'_>) -> Result<(QuotaEntity, Ops), QuotaError> {
    let entity = entity::entity_from_wire(entry.entity.iter().copied())?;
    let mut ops = Vec::with_capacity(entry.ops.len());
    for &(key, value, remove) in &entry.ops {
        entity::validate_op(&entity, key, value, remove)?;
        ops.push((key.to_owned(), (!remove).then_some(value)));
    }
    Ok((entity, ops))
}

/// Applies one entry's ops; returns whether anything changed.
fn apply(map: &mut QuotaMap, entity: QuotaEntity, ops: &Ops) -> bool {
    let values = map.entry(entity.clone()).or_default();
    let mut changed = false;
    for (key, value) in ops {
        changed |= match value {
            Some(v) => values.insert(key.clone(), *v) != Some(*v),
            None => values.remove(key).is_some(),
        };
    }
    if values.is_empty() {
        map.remove(&entity);
    }
    changed
}

/// On-disk form of one entity: each part absent, the default, or a name.
#[derive(Debug, Serialize, Deserialize)]
struct StoredQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default)]
    user_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default)]
    client_id_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ip_default: bool,
    values: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    quota: Vec<StoredQuota>,
}

fn part(name: Option<String>, default: bool) -> Result<Option<EntityName>, String> {
    match (name, default) {
        (Some(_), true) => Err("an entity part is both named and the default".into()),
        (Some(n), false) => Ok(Some(EntityName::Named(n))),
        (None, true) => Ok(Some(EntityName::Default)),
        (None, false) => Ok(None),
    }
}

fn parse(text: &str) -> Result<QuotaMap, String> {
    let file: StoreFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut map = QuotaMap::new();
    for q in file.quota {
        let entity = QuotaEntity {
            user: part(q.user, q.user_default)?,
            client_id: part(q.client_id, q.client_id_default)?,
            ip: part(q.ip, q.ip_default)?,
        };
        // The same checks as AlterClientQuotas (parts, IP alone and an address).
        let wire: Vec<(&str, Option<&str>)> = entity::parts(&entity)
            .into_iter()
            .map(|(t, name)| (t, name.to_wire()))
            .collect();
        entity::entity_from_wire(wire).map_err(|e| e.message)?;
        for (key, value) in &q.values {
            entity::validate_op(&entity, key, *value, false).map_err(|e| e.message)?;
        }
        map.insert(entity, q.values);
    }
    Ok(map)
}

#[cfg(test)]
fn unpart(part: &Option<EntityName>) -> (Option<String>, bool) {
    match part {
        None => (None, false),
        Some(EntityName::Default) => (None, true),
        Some(EntityName::Named(n)) => (Some(n.clone()), false),
    }
}

/// The old store's text of `map` (tests of the migration write old data directories).
#[cfg(test)]
pub fn render_legacy_for_tests(map: &QuotaMap) -> String {
    let quota = map
        .iter()
        .map(|(e, values)| {
            let (user, user_default) = unpart(&e.user);
            let (client_id, client_id_default) = unpart(&e.client_id);
            let (ip, ip_default) = unpart(&e.ip);
            StoredQuota {
                user,
                user_default,
                client_id,
                client_id_default,
                ip,
                ip_default,
                values: values.clone(),
            }
        })
        .collect();
    toml::to_string(&StoreFile { quota }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(bytes: usize) -> Usage {
        Usage {
            produced_bytes: Some(bytes),
            fetched_bytes: None,
            handler_time: None,
        }
    }

    #[test]
    fn quotas_persist_apply_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let manager = QuotaManager::new(WindowConfig::default(), 100);
        assert_eq!(manager.record("alice", "app", &produce(1 << 20)), 0);
        let entries = [
            AlterEntry {
                entity: vec![("user", Some("alice"))],
                ops: vec![("producer_byte_rate", 1000.0, false)],
            },
            AlterEntry {
                entity: vec![("ip", Some("127.0.0.1"))],
                ops: vec![("connection_creation_rate", 1.0, false)],
            },
        ];
        let results = manager.alter_here(&entries, false);
        assert!(results[0].is_ok());
        assert!(results[1].is_ok(), "KIP-612 IP quota");
        // 10 000 bytes in a fresh 10 s window is 1000/s: allowed; 5000 more is 1500/s.
        assert_eq!(manager.record("alice", "app", &produce(10_000)), 0);
        assert_eq!(manager.record("alice", "other", &produce(5_000)), 5_000);
        assert_eq!(manager.record("bob", "app", &produce(1 << 20)), 0);
        // The old store's file reads back as the same map (what the migration adopts).
        let cluster = dir.path().join("__cluster");
        std::fs::create_dir_all(&cluster).unwrap();
        std::fs::write(
            cluster.join(STORE_FILE),
            render_legacy_for_tests(&manager.snapshot()),
        )
        .unwrap();
        let legacy = load_legacy(dir.path()).unwrap().unwrap();
        assert_eq!(legacy, manager.snapshot());
        let reloaded = QuotaManager::new(WindowConfig::default(), 100);
        reloaded.set_quotas(legacy);
        assert_eq!(reloaded.snapshot(), manager.snapshot());
        assert_eq!(reloaded.snapshot().len(), 2, "the IP quota is kept too");
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // 1 connection/s over a young sensor's 10 s: the 11th within the same instant is refused.
        let verdicts: Vec<_> = (0..11).map(|_| reloaded.record_ip_connection(ip)).collect();
        assert_eq!(verdicts[9], None);
        assert!(verdicts[10].is_some());
        // Removing the only key removes the entity.
        let remove = [
            AlterEntry {
                entity: vec![("user", Some("alice"))],
                ops: vec![("producer_byte_rate", 0.0, true)],
            },
            AlterEntry {
                entity: vec![("ip", Some("127.0.0.1"))],
                ops: vec![("connection_creation_rate", 0.0, true)],
            },
        ];
        manager.alter_here(&remove, false);
        assert!(manager.snapshot().is_empty());
        assert_eq!(manager.record("alice", "app", &produce(1 << 20)), 0);
    }

    #[test]
    fn validate_only_changes_nothing() {
        let manager = QuotaManager::new(WindowConfig::default(), 100);
        let entries = [AlterEntry {
            entity: vec![("client-id", None)],
            ops: vec![("consumer_byte_rate", 10.0, false)],
        }];
        let results = manager.alter_here(&entries, true);
        assert!(results[0].is_ok());
        assert!(manager.snapshot().is_empty());
    }

    #[test]
    fn rates_are_bounded() {
        let manager = QuotaManager::new(WindowConfig::default(), 3);
        let entries = [AlterEntry {
            entity: vec![("client-id", None)],
            ops: vec![("producer_byte_rate", 10.0, false)],
        }];
        manager.alter_here(&entries, false);
        for i in 0..50 {
            manager.record("u", &format!("client-{i}"), &produce(1));
        }
        let count = manager.sensors[QuotaType::Produce as usize]
            .lock()
            .unwrap()
            .rates
            .len();
        assert!(count <= 3, "{count} rates");
    }

    #[test]
    fn a_fetch_can_be_unrecorded_and_is_capped_by_the_window() {
        let manager = QuotaManager::new(WindowConfig::default(), 100);
        assert_eq!(manager.max_fetch_bytes_in_window("u", "c"), None);
        let entries = [AlterEntry {
            entity: vec![("client-id", Some("c"))],
            ops: vec![("consumer_byte_rate", 1000.0, false)],
        }];
        manager.alter_here(&entries, false);
        // 1000 B/s over (11 - 1) windows of 1 s.
        assert_eq!(manager.max_fetch_bytes_in_window("u", "c"), Some(10_000.0));
        assert_eq!(manager.max_fetch_bytes_in_window("u", "other"), None);
        let fetch = |bytes| Usage {
            produced_bytes: None,
            fetched_bytes: Some(bytes),
            handler_time: None,
        };
        assert_eq!(manager.record("u", "c", &fetch(8_000)), 0);
        assert_eq!(manager.record("u", "c", &fetch(4_000)), 2_000);
        manager.unrecord_fetch("u", "c", 4_000);
        // Only the first 8 000 bytes count: 2 000 more are within the quota.
        assert_eq!(manager.record("u", "c", &fetch(2_000)), 0);
    }

    #[test]
    fn request_time_is_a_percentage_capped_at_one_window() {
        let manager = QuotaManager::new(WindowConfig::default(), 100);
        let entries = [AlterEntry {
            entity: vec![("user", None)],
            ops: vec![("request_percentage", 1.0, false)],
        }];
        manager.alter_here(&entries, false);
        let busy = |ms| Usage {
            produced_bytes: None,
            fetched_bytes: None,
            handler_time: Some(Duration::from_millis(ms)),
        };
        // 1 % over 10 s is 100 ms of handler time.
        assert_eq!(manager.record("u", "c", &busy(100)), 0);
        assert_eq!(manager.record("u", "c", &busy(5_000)), 1000);
    }
}
