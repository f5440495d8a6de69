//! The partition-level plumbing shared by handlers that route per-partition work: resolving a
//! requested (topic, partition) against the topic table, sending the known ones to the router
//! in one call, and putting the answers back in request order.
//!
//! Invariant: every entry gets exactly one answer, at its index: a failure decided before
//! routing (unknown topic or partition, or a check of the caller's) stays in place, a routed
//! entry gets the router's answer, and an answer the router never gave is `Unavailable`.

use std::future::Future;

use crate::partition::TopicPartition;
use crate::router::PartitionError;
use crate::shard::Shard;

/// The partition when the topic table knows the topic and the index is in range.
pub fn resolve(
    shard: &Shard,
    topic: String,
    partition: i32,
) -> Result<TopicPartition, PartitionError> {
    let count = shard.topics.borrow().get(&topic).map(|m| m.partitions);
    match (count, u32::try_from(partition)) {
        (Some(count), Ok(index)) if index < count => Ok(TopicPartition::new(topic, index)),
        _ => Err(PartitionError::UnknownTopicOrPartition),
    }
}

/// Routes the `Ok` entries in one `route` call and answers every entry in order; `Err` entries
/// answer their own error.
pub async fn route_in_order<I, T, F>(
    entries: Vec<Result<I, PartitionError>>,
    route: impl FnOnce(Vec<I>) -> F,
) -> Vec<Result<T, PartitionError>>
where
    F: Future<Output = Vec<Result<T, PartitionError>>>,
{
    if entries.iter().all(Result::is_ok) {
        // Nothing failed before routing (the hot path): the router's answers are the answers,
        // one per entry (fewer answers than entries leave `Unavailable` at the end).
        let count = entries.len();
        let mut answers = route(entries.into_iter().flatten().collect()).await;
        answers.resize_with(count, || Err(PartitionError::Unavailable));
        return answers;
    }
    let mut slots: Vec<Option<Result<T, PartitionError>>> = Vec::with_capacity(entries.len());
    let mut routed = Vec::new();
    let mut routed_slots = Vec::new();
    for entry in entries {
        match entry {
            Ok(item) => {
                routed_slots.push(slots.len());
                slots.push(None);
                routed.push(item);
            }
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let answers = route(routed).await;
    for (slot, answer) in routed_slots.into_iter().zip(answers) {
        if let Some(s) = slots.get_mut(slot) {
            *s = Some(answer);
        }
    }
    slots
        .into_iter()
        .map(|s| s.unwrap_or(Err(PartitionError::Unavailable)))
        .collect()
}

/// Resolves each (topic, partition, payload), fails the unknown ones with
/// `UnknownTopicOrPartition`, routes the rest as `make_item(tp, payload)` and answers in order.
pub async fn route_known<P, I, T, F>(
    shard: &Shard,
    wanted: Vec<(String, i32, P)>,
    mut make_item: impl FnMut(TopicPartition, P) -> I,
    route: impl FnOnce(Vec<I>) -> F,
) -> Vec<Result<T, PartitionError>>
where
    F: Future<Output = Vec<Result<T, PartitionError>>>,
{
    let entries = wanted
        .into_iter()
        .map(|(topic, partition, payload)| {
            resolve(shard, topic, partition).map(|tp| make_item(tp, payload))
        })
        .collect();
    route_in_order(entries, route).await
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER names its current leader (from the
/// request version that carries it), and the response carries the endpoints of the leaders
/// named, for the request's listener, so the client re-routes without a Metadata round trip
/// (Kafka's `KafkaApis.getCurrentLeader`).
pub struct LeaderHints<'a> {
    shard: &'a Shard,
    listener: &'a str,
    enabled: bool,
    nodes: std::collections::BTreeMap<i32, crate::cluster::view::Node>,
}

impl<'a> LeaderHints<'a> {
    pub fn new(shard: &'a Shard, request: &'a super::Request, from_version: i16) -> Self {
        Self {
            shard,
            listener: &request.session.listener.name,
            enabled: request.version() >= from_version,
            nodes: Default::default(),
        }
    }

    /// The (leader id, leader epoch) to report for a partition; None before the version.
    pub fn current(&mut self, topic: &str, index: i32) -> Option<(i32, i32)> {
        if !self.enabled {
            return None;
        }
        let image = self.shard.topics.borrow();
        let (leader, epoch, node) = match u32::try_from(index) {
            Ok(p) => crate::cluster::view::current_leader(&image, topic, p, self.listener),
            Err(_) => (-1, -1, None),
        };
        if let Some(node) = node {
            self.nodes.insert(node.id, node);
        }
        Some((leader, epoch))
    }

    /// The named leaders' endpoints, by id.
    pub fn into_nodes(self) -> Vec<crate::cluster::view::Node> {
        self.nodes.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[compio::test]
    async fn failures_stay_in_place_and_routed_answers_fill_the_rest() {
        let entries = vec![
            Ok(1),
            Err(PartitionError::UnknownTopicOrPartition),
            Ok(2),
            Err(PartitionError::InvalidRequiredAcks(5)),
        ];
        let answers = route_in_order(entries, |items: Vec<i32>| async move {
            items.into_iter().map(|i| Ok(i * 10)).collect()
        })
        .await;
        assert_eq!(
            answers,
            vec![
                Ok(10),
                Err(PartitionError::UnknownTopicOrPartition),
                Ok(20),
                Err(PartitionError::InvalidRequiredAcks(5)),
            ]
        );
    }

    #[compio::test]
    async fn answers_the_router_never_gave_are_unavailable() {
        let answers =
            route_in_order(vec![Ok(1), Ok(2)], |_: Vec<i32>| async move { vec![Ok(7)] }).await;
        assert_eq!(answers, vec![Ok(7), Err(PartitionError::Unavailable)]);
        // Surplus answers are dropped: one answer per entry, with or without failures.
        let surplus = |_: Vec<i32>| async move { vec![Ok(7), Ok(8), Ok(9)] };
        let answers = route_in_order(vec![Ok(1), Ok(2)], surplus).await;
        assert_eq!(answers, vec![Ok(7), Ok(8)]);
        let mixed = vec![Ok(1), Err(PartitionError::UnknownTopicOrPartition)];
        let answers = route_in_order(mixed, surplus).await;
        assert_eq!(
            answers,
            vec![Ok(7), Err(PartitionError::UnknownTopicOrPartition)]
        );
    }
}
