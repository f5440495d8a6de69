//! The group state machine's SyncGroup path (Kafka 4's `GroupMetadataManager.classicGroupSync`):
//! the leader's assignment completes the rebalance (the group is then persisted and Stable),
//! the other members' SyncGroups wait for it. The join phase is in `join`, the states in the
//! parent.
//!
//! Invariants (those of the parent): a member has at most one parked sync waiter, answered
//! exactly once (the assignment, an error, or its removal). Pure: time comes in as `Instant`.

use std::time::Instant;

use bytes::Bytes;

use super::{Effect, Group, GroupCode, GroupState, SyncArgs, SyncReply, WaiterId};

impl Group {
    pub fn sync(&mut self, args: SyncArgs, waiter: WaiterId, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        let fail = |error: GroupCode, fx: &mut Vec<Effect>| {
            fx.push(Effect::Sync(waiter, SyncReply::error(error)))
        };
        if self.state == GroupState::Dead {
            fail(GroupCode::CoordinatorNotAvailable, &mut fx);
            return fx;
        }
        if let Err(error) = self.check_generation(
            &args.member_id,
            args.instance_id.as_deref(),
            args.generation,
        ) {
            fail(error, &mut fx);
            return fx;
        }
        let type_ok = args.protocol_type.is_none() || args.protocol_type == self.protocol_type;
        let name_ok = args.protocol_name.is_none() || args.protocol_name == self.protocol_name;
        if !type_ok || !name_ok {
            fail(GroupCode::InconsistentGroupProtocol, &mut fx);
            return fx;
        }
        match self.state {
            GroupState::Empty => fail(GroupCode::UnknownMemberId, &mut fx),
            GroupState::PreparingRebalance => fail(GroupCode::RebalanceInProgress, &mut fx),
            GroupState::Dead => fail(GroupCode::CoordinatorNotAvailable, &mut fx),
            GroupState::Stable => {
                self.synced(&args.member_id);
                let reply = self.sync_reply(&args.member_id);
                self.touch(&args.member_id, now);
                fx.push(Effect::Sync(waiter, reply));
            }
            GroupState::CompletingRebalance => {
                self.synced(&args.member_id);
                self.touch(&args.member_id, now);
                if let Some(member) = self.members.get_mut(&args.member_id) {
                    if let Some(old) = member.sync_waiter.replace(waiter) {
                        fx.push(Effect::Sync(
                            old,
                            SyncReply::error(GroupCode::UnknownMemberId),
                        ));
                    }
                }
                if self.leader.as_deref() == Some(args.member_id.as_str()) {
                    self.complete_sync(args.assignments, &mut fx);
                }
            }
        }
        fx
    }

    /// The member sent SyncGroup for the current generation: it is no longer pending.
    pub(super) fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    pub(super) fn clear_pending_sync(&mut self) {
        self.pending_sync.clear();
        self.sync_deadline = None;
    }

    fn sync_reply(&self, member_id: &str) -> SyncReply {
        SyncReply {
            error: GroupCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// The leader's assignment arrived: store it, persist the group, answer every syncing
    /// member (members that sync later are answered from the stored assignment).
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, fx: &mut Vec<Effect>) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        for (id, assignment) in assignments {
            if let Some(member) = self.members.get_mut(&id) {
                member.assignment = assignment;
            }
        }
        self.transition(GroupState::Stable);
        fx.push(Effect::Persist);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let reply = self.sync_reply(&id);
            if let Some(w) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                fx.push(Effect::Sync(w, reply));
            }
        }
    }
}
