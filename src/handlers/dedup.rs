//! Per-request lists without amplification: de-duplication with Kafka's rules, and yielding
//! inside long per-item loops.
//!
//! A request of `socket.request.max.bytes` can name the same topic or partition millions of
//! times. Kafka collapses repeated entries where its handler keys them by name or partition
//! (Metadata: a set of topics; Produce, Fetch, DeleteRecords, OffsetForLeaderEpoch: maps keyed
//! by topic-partition, the last entry winning in the first entry's place; DeleteGroups: a set),
//! and refuses them with INVALID_REQUEST where duplicates are ambiguous (CreateTopics,
//! DeleteTopics, CreatePartitions, ListOffsets, AlterConfigs). The helpers here do the same, so
//! the work and the answer grow with the distinct items, not with the request's repetitions.
//!
//! Invariant: no handler loop over request items runs more than [`YIELD_EVERY`] items without
//! letting the shard's other tasks run, so one request cannot stall every connection of its
//! shard.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

/// Items a handler loop handles between two yields to the shard's other tasks.
pub const YIELD_EVERY: usize = 1024;

/// Per-item operations of one request (group look-ups, deletions) in flight at once.
pub const ITEMS_IN_FLIGHT_MAX: usize = 64;

/// Runs one future per request item, at most [`ITEMS_IN_FLIGHT_MAX`] at a time, and answers in
/// item order: a request naming a million groups does not start a million operations at once.
pub async fn in_order<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use futures_util::stream::{self, StreamExt};
    stream::iter(futures)
        .buffered(ITEMS_IN_FLIGHT_MAX)
        .collect()
        .await
}

/// Counts loop iterations and yields to the executor every [`YIELD_EVERY`] of them.
#[derive(Debug, Default)]
pub struct Budget {
    items: usize,
}

impl Budget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call once per item; awaits a yield on every [`YIELD_EVERY`]-th call.
    pub async fn tick(&mut self) {
        self.items += 1;
        if self.items % YIELD_EVERY == 0 {
            yield_now().await;
        }
    }
}

/// Lets the shard's other ready tasks run once before continuing.
pub use storage::yield_now;

/// Keeps one item per key: the last one, in the place where the key first appeared (Kafka's
/// `LinkedHashMap.put` / `mutable.Map` semantics for requests keyed by topic-partition).
pub fn last_wins<T, K: Hash + Eq>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut slots: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<T> = Vec::new();
    for item in items {
        match slots.get(&key(&item)) {
            Some(&slot) => {
                if let Some(place) = out.get_mut(slot) {
                    *place = item;
                }
            }
            None => {
                slots.insert(key(&item), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// Groups `(key, value)` pairs by key, keys in order of first appearance (a response's topics
/// around their partitions).
pub fn group_in_order<K: Hash + Eq + Clone, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, Vec<V>)> {
    let mut slots: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    for (key, value) in pairs {
        let slot = match slots.get(&key) {
            Some(&slot) => slot,
            None => {
                slots.insert(key.clone(), groups.len());
                groups.push((key, Vec::new()));
                groups.len() - 1
            }
        };
        if let Some((_, values)) = groups.get_mut(slot) {
            values.push(value);
        }
    }
    groups
}

/// Keeps the first item per key, in request order (a set of names, as Kafka's Metadata uses).
pub fn first_wins<T, K: Hash + Eq>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut seen: std::collections::HashSet<K> = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

/// The keys that occur more than once (answered INVALID_REQUEST where Kafka does).
pub fn repeated<'a, K: Hash + Eq + 'a>(
    keys: impl IntoIterator<Item = K>,
) -> std::collections::HashSet<K> {
    let mut counts: HashMap<K, bool> = HashMap::new();
    for key in keys {
        counts
            .entry(key)
            .and_modify(|again| *again = true)
            .or_insert(false);
    }
    counts
        .into_iter()
        .filter_map(|(key, again)| again.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_wins_keeps_the_first_place_and_the_last_value() {
        let items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        assert_eq!(
            last_wins(items, |&(k, _)| k),
            vec![("a", 3), ("b", 5), ("c", 4)]
        );
    }

    #[test]
    fn first_wins_is_a_set_in_request_order() {
        let names = vec!["x", "y", "x", "x", "z", "y"];
        assert_eq!(first_wins(names, |n| *n), vec!["x", "y", "z"]);
        let many = std::iter::repeat_n("t", 100_000);
        assert_eq!(first_wins(many, |n| *n).len(), 1);
    }

    #[test]
    fn group_in_order_keeps_first_appearance() {
        let pairs = vec![("t", 1), ("u", 2), ("t", 3)];
        assert_eq!(
            group_in_order(pairs),
            vec![("t", vec![1, 3]), ("u", vec![2])]
        );
    }

    #[test]
    fn repeated_finds_only_keys_seen_twice() {
        let keys = repeated(vec![1, 2, 1, 3, 3, 3]);
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_unstable();
        assert_eq!(keys, vec![1, 3]);
    }

    #[test]
    fn budget_yields_every_so_often_and_completes() {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let mut budget = Budget::new();
                for _ in 0..(3 * YIELD_EVERY + 1) {
                    budget.tick().await;
                }
                assert_eq!(budget.items, 3 * YIELD_EVERY + 1);
            });
    }
}
