//! Splitting a multi-partition request by owning shard and merging the answers back into the
//! request's order. Pure functions, so the bookkeeping is unit-tested without shards.
//!
//! Invariant: `merge(split(items))` yields exactly one answer per item, at the item's index.

use std::collections::BTreeMap;

use shards::ShardId;

/// Items grouped by owner; each group keeps the original indices of its items.
pub struct Groups<T> {
    pub len: usize,
    pub groups: BTreeMap<ShardId, (Vec<usize>, Vec<T>)>,
}

pub fn split<T>(items: Vec<T>, mut owner: impl FnMut(&T) -> ShardId) -> Groups<T> {
    let len = items.len();
    let mut groups: BTreeMap<ShardId, (Vec<usize>, Vec<T>)> = BTreeMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let group = groups.entry(owner(&item)).or_default();
        group.0.push(index);
        group.1.push(item);
    }
    Groups { len, groups }
}

/// Puts each group's answers back at their items' indices. A group whose answer list is short
/// (a shard that failed as a whole) is filled with `missing()`.
pub fn merge<R>(
    len: usize,
    answers: impl IntoIterator<Item = (Vec<usize>, Vec<R>)>,
    mut missing: impl FnMut() -> R,
) -> Vec<R> {
    let mut slots: Vec<Option<R>> = (0..len).map(|_| None).collect();
    for (indices, results) in answers {
        let mut results = results.into_iter();
        for index in indices {
            let answer = results.next().unwrap_or_else(&mut missing);
            if let Some(slot) = slots.get_mut(index) {
                *slot = Some(answer);
            }
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or_else(&mut missing))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_merge_restores_order() {
        let items: Vec<u32> = (0..10).collect();
        let groups = split(items, |i| ShardId((*i % 3) as u16));
        assert_eq!(groups.groups.len(), 3);
        assert_eq!(groups.groups[&ShardId(1)].1, vec![1, 4, 7]);
        let answers = groups
            .groups
            .into_values()
            .map(|(idx, items)| (idx, items.into_iter().map(|i| i * 10).collect::<Vec<_>>()));
        let merged = merge(groups.len, answers, || u32::MAX);
        assert_eq!(merged, (0..10).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn short_answers_are_filled() {
        let groups = split(vec!['a', 'b', 'c'], |_| ShardId(0));
        let answers = groups.groups.into_values().map(|(idx, _)| (idx, vec![1]));
        assert_eq!(merge(groups.len, answers, || -1), vec![1, -1, -1]);
    }
}
