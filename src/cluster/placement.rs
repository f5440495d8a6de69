//! Where the replicas of new partitions go: Kafka's `StripedReplicaPlacer` (rack-aware,
//! striped over brokers, leaders on unfenced brokers) and the controller's checks of a manual
//! replica assignment (`ReplicationControlManager.validateManualPartitionAssignment`), as pure
//! functions of the metadata image.
//!
//! Invariants: a placed partition never names a broker twice and its first replica (its
//! leader) is an unfenced broker; the ISR of a new partition is its unfenced replicas, in
//! replica order, and its leader the first of them (Kafka's `buildPartitionRegistration`);
//! placement fails (INVALID_REPLICATION_FACTOR) rather than place more replicas than there
//! are registered brokers or place anything when every broker is fenced. The placer is
//! deterministic for a seed (Kafka draws its starting offsets at random; the controller seeds
//! with the topic id, so topics still start on different brokers).

use std::collections::BTreeMap;

use super::image::{MetadataImage, PartitionRegistration};

/// Why replicas could not be placed; the message is Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    ReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    Assignment(String),
}

/// A broker replicas may be placed on (Kafka's `UsableBroker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Every registered broker of the image (fenced ones too: they may hold followers).
pub fn usable_brokers(image: &MetadataImage) -> Vec<UsableBroker> {
    image
        .brokers()
        .map(|b| UsableBroker {
            id: b.broker_id,
            rack: b.rack.clone(),
            fenced: b.fenced,
        })
        .collect()
}

/// A tiny deterministic generator (splitmix64) standing in for Kafka's `Random`.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..bound` (bound > 0).
    fn below(&mut self, bound: usize) -> usize {
        let bound64 = u64::try_from(bound).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next_u64() % bound64).unwrap_or(0)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Kafka's `BrokerList`: round robin from an offset, one pass per iteration epoch.
#[derive(Default)]
struct BrokerList {
    brokers: Vec<i32>,
    index: usize,
    offset: usize,
    epoch: u64,
}

impl BrokerList {
    fn initialize(&mut self, rng: &mut SplitMix, previous: Option<usize>) {
        if self.brokers.is_empty() {
            return;
        }
        self.brokers.sort_unstable();
        self.offset = match previous {
            Some(p) => (p + 1) % self.brokers.len(),
            None => rng.below(self.brokers.len()),
        };
    }

    fn next(&mut self, epoch: u64) -> Option<i32> {
        let len = self.brokers.len();
        if len == 0 {
            return None;
        }
        if self.epoch != epoch {
            self.epoch = epoch;
            self.index = 0;
            self.offset = (self.offset + 1) % len;
        }
        if self.index >= len {
            return None;
        }
        let broker = self.brokers.get((self.index + self.offset) % len).copied();
        self.index += 1;
        broker
    }
}

#[derive(Default)]
struct Rack {
    fenced: BrokerList,
    unfenced: BrokerList,
}

impl Rack {
    fn next(&mut self, epoch: u64) -> Option<i32> {
        self.unfenced
            .next(epoch)
            .or_else(|| self.fenced.next(epoch))
    }
}

/// Kafka's `RackList`: racks (sorted, the unnamed rack first) placed round robin.
struct RackList {
    rng: SplitMix,
    racks: BTreeMap<Option<String>, Rack>,
    names: Vec<Option<String>>,
    total: usize,
    unfenced: usize,
    epoch: u64,
    offset: usize,
}

impl RackList {
    fn new(seed: u64, brokers: &[UsableBroker], existing: &[Vec<i32>]) -> Self {
        let mut rng = SplitMix(seed);
        let mut racks: BTreeMap<Option<String>, Rack> = BTreeMap::new();
        let rack_of: BTreeMap<i32, Option<String>> =
            brokers.iter().map(|b| (b.id, b.rack.clone())).collect();
        for b in brokers {
            let rack = racks.entry(b.rack.clone()).or_default();
            if b.fenced {
                rack.fenced.brokers.push(b.id);
            } else {
                rack.unfenced.brokers.push(b.id);
            }
        }
        for (name, rack) in racks.iter_mut() {
            rack.fenced.initialize(&mut rng, None);
            let mut sorted = rack.unfenced.brokers.clone();
            sorted.sort_unstable();
            let previous = previous_broker_offset(&rack_of, existing, name, &sorted);
            rack.unfenced.initialize(&mut rng, previous);
        }
        // BTreeMap order is Kafka's OptionalStringComparator order (empty first, then sorted).
        let names: Vec<Option<String>> = racks.keys().cloned().collect();
        let offset = match previous_rack_offset(&rack_of, existing, &names) {
            Some(p) => (p + 1) % names.len().max(1),
            None if names.is_empty() => 0,
            None => rng.below(names.len()),
        };
        Self {
            rng,
            racks,
            names,
            total: brokers.len(),
            unfenced: brokers.iter().filter(|b| !b.fenced).count(),
            epoch: 0,
            offset,
        }
    }

    fn rack(&mut self, index: usize) -> Option<&mut Rack> {
        let name = self.names.get(index)?;
        self.racks.get_mut(name)
    }

    /// One partition's replicas (Kafka's `RackList.place`); the checks ran in [`place`].
    fn place(&mut self, replication_factor: usize) -> Vec<i32> {
        let unfenced = u64::try_from(self.unfenced).unwrap_or(u64::MAX);
        if self.epoch == unfenced && self.unfenced > 1 {
            self.shuffle();
            self.epoch = 0;
        }
        if self.offset == self.names.len() {
            self.offset = 0;
        }
        let racks = self.names.len();
        let epoch = self.epoch;
        let mut brokers = Vec::with_capacity(replication_factor);
        // The leader: the first unfenced broker from the offset's rack on (one exists).
        let mut first_rack = Some(self.offset);
        let mut index = self.offset;
        for _ in 0..racks {
            if let Some(b) = self.rack(index).and_then(|r| r.unfenced.next(epoch)) {
                brokers.push(b);
                first_rack = Some(index);
                break;
            }
            index = (index + 1) % racks;
        }
        let mut rack_index = self.offset;
        // Bounded: each rack yields each of its brokers at most once per epoch and
        // replication_factor <= total brokers, so every replica is found within racks * total
        // steps.
        let mut steps = racks
            .saturating_mul(self.total.max(1))
            .saturating_add(racks);
        while brokers.len() < replication_factor && steps > 0 {
            steps -= 1;
            let mut found = None;
            if first_rack == Some(rack_index) {
                first_rack = None;
            } else {
                found = self.rack(rack_index).and_then(|r| r.next(epoch));
            }
            rack_index = (rack_index + 1) % racks;
            if let Some(b) = found {
                brokers.push(b);
            }
        }
        self.epoch += 1;
        self.offset += 1;
        brokers
    }

    fn shuffle(&mut self) {
        self.rng.shuffle(&mut self.names);
        for rack in self.racks.values_mut() {
            self.rng.shuffle(&mut rack.fenced.brokers);
            self.rng.shuffle(&mut rack.unfenced.brokers);
        }
    }
}

/// Kafka's `tryGetPreviousRackOffset`: the rack of the last existing partition's leader.
fn previous_rack_offset(
    rack_of: &BTreeMap<i32, Option<String>>,
    existing: &[Vec<i32>],
    names: &[Option<String>],
) -> Option<usize> {
    let leader = existing.last()?.first()?;
    let rack = rack_of.get(leader)?;
    names.iter().position(|n| n == rack)
}

/// Kafka's `tryGetPreviousBrokerOffset`: where in `rack` the newest existing partition that
/// has a replica there put it.
fn previous_broker_offset(
    rack_of: &BTreeMap<i32, Option<String>>,
    existing: &[Vec<i32>],
    rack: &Option<String>,
    unfenced_sorted: &[i32],
) -> Option<usize> {
    for replicas in existing.iter().rev() {
        for broker in replicas {
            if rack_of.get(broker) == Some(rack) {
                return unfenced_sorted.iter().position(|b| b == broker);
            }
        }
    }
    None
}

/// Replicas for `partitions` new partitions of `replication_factor` (Kafka's
/// `StripedReplicaPlacer.place`); `existing` are the topic's current partitions' replicas
/// (CreatePartitions continues the stripe after them).
pub fn place(
    brokers: &[UsableBroker],
    existing: &[Vec<i32>],
    partitions: u32,
    replication_factor: i32,
    seed: u64,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let unreachable = |why: String| {
        PlacementError::ReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): {why}"
        ))
    };
    if replication_factor <= 0 {
        return Err(unreachable(format!(
            "Invalid replication factor {replication_factor}: the replication factor must be \
             positive."
        )));
    }
    if brokers.iter().all(|b| b.fenced) {
        return Err(unreachable("All brokers are currently fenced.".into()));
    }
    let factor = usize::try_from(replication_factor).unwrap_or(usize::MAX);
    if factor > brokers.len() {
        return Err(unreachable(format!(
            "The target replication factor of {replication_factor} cannot be reached because \
             only {} broker(s) are registered.",
            brokers.len()
        )));
    }
    let mut racks = RackList::new(seed, brokers, existing);
    Ok((0..partitions).map(|_| racks.place(factor)).collect())
}

/// Kafka's `validateManualPartitionAssignment`: replicas not empty, every one a registered
/// broker, none twice, and (when given) as many as the other partitions have.
pub fn check_manual(
    image: &MetadataImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), PlacementError> {
    let refuse = |m: String| Err(PlacementError::Assignment(m));
    if replicas.is_empty() {
        return refuse("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if image.broker(broker).is_none() {
            return refuse(format!(
                "The manual partition assignment includes broker {broker}, but no such broker \
                 is registered."
            ));
        }
        if previous == Some(broker) {
            return refuse(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    match replication_factor {
        Some(expected) if replicas.len() != expected => refuse(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this \
             is not consistent with previous partitions, which have {expected} replica(s).",
            replicas.len()
        )),
        _ => Ok(()),
    }
}

/// A new partition on `replicas` (Kafka's `buildPartitionRegistration`): the ISR is the
/// unfenced replicas, the leader the first of them, epochs 0. None when every replica is
/// fenced (the caller answers with its API's error).
pub fn new_registration(
    image: &MetadataImage,
    replicas: Vec<i32>,
) -> Option<PartitionRegistration> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.broker(*b).is_some_and(|r| !r.fenced))
        .collect();
    let leader = *isr.first()?;
    Some(PartitionRegistration {
        replicas,
        isr,
        leader,
        leader_epoch: crate::partition::INITIAL_LEADER_EPOCH,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

/// The seed of a topic's placement: its id's bits, so the stripe starts somewhere else for
/// each topic (Kafka: a random offset) yet replays the same for the same topic.
pub fn seed_of(id: super::records::TopicId) -> u64 {
    let bits = id.0;
    (bits as u64) ^ ((bits >> 64) as u64)
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
