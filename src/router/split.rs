//! Splitting a multi-partition request by owning shard and merging the answers back into the
//! request's order. Pure functions, so the bookkeeping is unit-tested without shards.
//!
//! Invariant: `merge(split(items))` yields exactly one answer per item, at the item's index.

use shards::ShardId;
use smallvec::SmallVec;

/// The original indices of a group's items (inline for a one-partition request).
pub type Indices = SmallVec<[usize; 1]>;

/// Each owner's items with their original indices, owners in order of first appearance;
/// inline for one owner (the common case: no map node, issue 16).
pub type OwnerGroups<T> = SmallVec<[(ShardId, (Indices, Vec<T>)); 1]>;

/// Items grouped by owner; each group keeps the original indices of its items.
pub struct Groups<T> {
    pub len: usize,
    pub groups: OwnerGroups<T>,
}

impl<T> Groups<T> {
    /// The group of `owner`, if any item has it.
    pub fn of(&self, owner: ShardId) -> Option<&(Indices, Vec<T>)> {
        self.groups
            .iter()
            .find(|(o, _)| *o == owner)
            .map(|(_, group)| group)
    }
}

pub fn split<T>(items: Vec<T>, mut owner: impl FnMut(&T) -> ShardId) -> Groups<T> {
    let len = items.len();
    let mut groups: OwnerGroups<T> = SmallVec::new();
    // The common case (one shard, or every partition of the request on one): the request's
    // own list is the group, without a list of its own grown item by item (issue 16).
    if let Some(first) = items.first().map(&mut owner) {
        if items.iter().skip(1).all(|item| owner(item) == first) {
            groups.push((first, ((0..len).collect(), items)));
            return Groups { len, groups };
        }
    }
    for (index, item) in items.into_iter().enumerate() {
        let shard = owner(&item);
        // Owners are shards (at most one per core): a linear look-up.
        let at = match groups.iter().position(|(o, _)| *o == shard) {
            Some(at) => at,
            None => {
                groups.push((shard, Default::default()));
                groups.len() - 1
            }
        };
        if let Some((_, group)) = groups.get_mut(at) {
            group.0.push(index);
            group.1.push(item);
        }
    }
    Groups { len, groups }
}

/// Puts each group's answers back at their items' indices. A group whose answer list is short
/// (a shard that failed as a whole) is filled with `missing()`.
pub fn merge<R>(
    len: usize,
    answers: impl IntoIterator<Item = (Indices, Vec<R>)>,
    mut missing: impl FnMut() -> R,
) -> Vec<R> {
    let mut answers = answers.into_iter().peekable();
    let first = answers.next();
    // One group answering every item in order (what `split`'s common case makes): its list
    // is the answer, without slots to fill (issue 16).
    if let Some((indices, results)) = &first {
        let whole = results.len() == len && indices.iter().copied().eq(0..len);
        if whole && answers.peek().is_none() {
            if let Some((_, results)) = first {
                return results;
            }
        }
    }
    let answers = first.into_iter().chain(answers);
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
        assert_eq!(
            groups.of(ShardId(1)).map(|g| g.1.clone()),
            Some(vec![1, 4, 7])
        );
        assert_eq!(
            groups.of(ShardId(1)).map(|g| g.0.to_vec()),
            Some(vec![1, 4, 7])
        );
        let answers = groups
            .groups
            .into_iter()
            .map(|(_, group)| group)
            .map(|(idx, items)| (idx, items.into_iter().map(|i| i * 10).collect::<Vec<_>>()));
        let merged = merge(groups.len, answers, || u32::MAX);
        assert_eq!(merged, (0..10).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn one_owner_keeps_the_list_and_its_order() {
        let groups = split(vec!['a', 'b', 'c'], |_| ShardId(2));
        assert_eq!(groups.groups.len(), 1);
        assert_eq!(
            groups
                .of(ShardId(2))
                .map(|(i, items)| (i.to_vec(), items.clone())),
            Some((vec![0, 1, 2], vec!['a', 'b', 'c']))
        );
        let answers = groups
            .groups
            .into_iter()
            .map(|(_, group)| group)
            .map(|(idx, items)| (idx, items.into_iter().map(u32::from).collect::<Vec<_>>()));
        assert_eq!(merge(3, answers, || 0), vec![97, 98, 99]);
        let empty = split(Vec::<u8>::new(), |_| ShardId(0));
        assert!(empty.groups.is_empty());
        assert_eq!(
            merge(
                0,
                empty.groups.into_iter().map(|(_, (i, _))| (i, vec![1])),
                || 0
            ),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn one_group_out_of_order_or_with_extra_answers_goes_by_indices() {
        // Indices not 0..len: placed by index, not taken as they come.
        assert_eq!(
            merge(
                2,
                vec![(Indices::from_slice(&[1, 0]), vec!['x', 'y'])],
                || '-'
            ),
            vec!['y', 'x']
        );
        // Two groups, the first covering the length on its own (cannot happen from `split`,
        // but the slots decide): the second group's answer lands at its index.
        let two = vec![
            (Indices::from_slice(&[0, 1]), vec![1, 2]),
            (Indices::from_slice(&[1]), vec![9]),
        ];
        assert_eq!(merge(2, two, || -1), vec![1, 9]);
    }

    #[test]
    fn short_answers_are_filled() {
        let groups = split(vec!['a', 'b', 'c'], |_| ShardId(0));
        let answers = groups
            .groups
            .into_iter()
            .map(|(_, (idx, _))| (idx, vec![1]));
        assert_eq!(merge(groups.len, answers, || -1), vec![1, -1, -1]);
    }
}
