//! The group state machine's JoinGroup path (Kafka 4's `GroupMetadataManager.classicGroupJoin`
//! and the classic group's join phase): new, known and static members joining, protocol
//! checks, preparing a rebalance (with `group.initial.rebalance.delay.ms` for a new group) and
//! completing the join phase (the next generation, its protocol and leader). SyncGroup is in
//! `sync`, heartbeats and expiry in `liveness`, the states and member checks in the parent.
//!
//! Invariants (those of the parent): a member is in `members` or in `pending`, never both; a
//! static instance id maps to exactly one member; every parked join waiter is answered exactly
//! once; the generation only grows. Pure, like the parent: time comes in as `Instant`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Effect, Group, GroupCode, GroupState, InitialDelay, JoinArgs, JoinMember, JoinReply, Limits,
    Member, SyncReply, WaiterId,
};

impl Group {
    pub fn join(
        &mut self,
        args: JoinArgs,
        waiter: WaiterId,
        limits: &Limits,
        now: Instant,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        let reject = |error: GroupCode, fx: &mut Vec<Effect>| {
            fx.push(Effect::Join(
                waiter,
                JoinReply::error(error, &args.member_id),
            ));
        };
        if args.session_timeout_ms < limits.session_timeout_min_ms
            || args.session_timeout_ms > limits.session_timeout_max_ms
        {
            reject(GroupCode::InvalidSessionTimeout, &mut fx);
            return fx;
        }
        if self.state == GroupState::Dead {
            reject(GroupCode::CoordinatorNotAvailable, &mut fx);
            return fx;
        }
        if !self.accepts_protocols(&args) {
            reject(GroupCode::InconsistentGroupProtocol, &mut fx);
            return fx;
        }
        if args.member_id.is_empty() {
            self.join_unknown(args, waiter, limits, now, &mut fx);
        } else {
            self.join_known(args, waiter, limits, now, &mut fx);
        }
        fx
    }

    fn accepts_protocols(&self, args: &JoinArgs) -> bool {
        if args.protocol_type.is_empty() || args.protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(args.protocol_type.as_str()) {
            return false;
        }
        // Some protocol every other member supports must be offered by this one too.
        args.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != args.member_id)
                .all(|m| m.metadata_for(name).is_some())
        })
    }

    fn join_unknown(
        &mut self,
        args: JoinArgs,
        waiter: WaiterId,
        limits: &Limits,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(instance) = &args.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                self.replace_static_member(&old_id, args, waiter, now, fx);
                return;
            }
        }
        if self.members.len() >= limits.members_max {
            fx.push(Effect::Join(
                waiter,
                JoinReply::error(GroupCode::GroupMaxSizeReached, ""),
            ));
            return;
        }
        let member_id = args.fresh_member_id.clone();
        if args.require_known_member && args.instance_id.is_none() {
            let session = Duration::from_millis(u64::from(args.session_timeout_ms.unsigned_abs()));
            self.pending.insert(member_id.clone(), now + session);
            fx.push(Effect::Join(
                waiter,
                JoinReply::error(GroupCode::MemberIdRequired, &member_id),
            ));
            return;
        }
        self.add_member(member_id, args, waiter, limits, now, fx);
    }

    fn join_known(
        &mut self,
        args: JoinArgs,
        waiter: WaiterId,
        limits: &Limits,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let member_id = args.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            if self.members.len() >= limits.members_max {
                fx.push(Effect::Join(
                    waiter,
                    JoinReply::error(GroupCode::GroupMaxSizeReached, &member_id),
                ));
                self.try_complete_join(now, fx);
                return;
            }
            self.add_member(member_id, args, waiter, limits, now, fx);
            return;
        }
        if let Err(error) = self.check_member(&member_id, args.instance_id.as_deref()) {
            fx.push(Effect::Join(waiter, JoinReply::error(error, &member_id)));
            return;
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols == args.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&member_id, args, waiter, fx);
                self.try_complete_join(now, fx);
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member lost the join answer: send the current generation again.
                let reply = self.current_join_reply(&member_id, is_leader, false);
                fx.push(Effect::Join(waiter, reply));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let reply = self.current_join_reply(&member_id, false, false);
                fx.push(Effect::Join(waiter, reply));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&member_id, args, waiter, fx);
                self.prepare_rebalance(limits, now, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                fx.push(Effect::Join(
                    waiter,
                    JoinReply::error(GroupCode::UnknownMemberId, &member_id),
                ));
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        args: JoinArgs,
        waiter: WaiterId,
        limits: &Limits,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(instance) = &args.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        let session = Duration::from_millis(u64::from(args.session_timeout_ms.unsigned_abs()));
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: args.instance_id,
                client_id: args.client_id,
                client_host: args.client_host,
                session_timeout_ms: args.session_timeout_ms,
                rebalance_timeout_ms: args.rebalance_timeout_ms,
                protocols: args.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(waiter),
                sync_waiter: None,
                heartbeat_deadline: now + session,
            },
        );
        if let Some(delay) = &mut self.initial_delay {
            delay.new_member_added = true;
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            _ => self.prepare_rebalance(limits, now, fx),
        }
    }

    fn update_member(
        &mut self,
        member_id: &str,
        args: JoinArgs,
        waiter: WaiterId,
        fx: &mut Vec<Effect>,
    ) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if let Some(old) = member.join_waiter.replace(waiter) {
            // A second join from the same member supersedes the first.
            fx.push(Effect::Join(
                old,
                JoinReply::error(GroupCode::UnknownMemberId, member_id),
            ));
        }
        member.protocols = args.protocols;
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.client_id = args.client_id;
        member.client_host = args.client_host;
    }

    /// A static member came back with a new member id: fence the old id, and rebalance unless
    /// the group is stable and the member's protocol metadata did not change.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        args: JoinArgs,
        waiter: WaiterId,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        let new_id = args.fresh_member_id.clone();
        if let Some(old) = member.join_waiter.take() {
            fx.push(Effect::Join(
                old,
                JoinReply::error(GroupCode::FencedInstanceId, old_id),
            ));
        }
        if let Some(old) = member.sync_waiter.take() {
            fx.push(Effect::Sync(
                old,
                SyncReply::error(GroupCode::FencedInstanceId),
            ));
        }
        let selected = self.protocol_name.clone().unwrap_or_default();
        let metadata_unchanged = member.metadata_for(&selected)
            == args
                .protocols
                .iter()
                .find(|(n, _)| *n == selected)
                .map(|(_, m)| m);
        let old_leader = self.leader.clone().unwrap_or_default();
        let was_leader = old_leader == old_id;
        member.id = new_id.clone();
        member.protocols = args.protocols;
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.client_id = args.client_id;
        member.client_host = args.client_host;
        member.heartbeat_deadline = now + member.session();
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if metadata_unchanged => {
                // Kafka answers with the old leader id so a rejoining leader does not
                // re-assign; v9+ clients are told to skip the assignment explicitly.
                let skip = was_leader && args.supports_skip_assignment;
                let mut reply = self.current_join_reply(&new_id, skip, skip);
                reply.leader = old_leader;
                fx.push(Effect::Persist);
                fx.push(Effect::Join(waiter, reply));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(waiter);
                }
                self.try_complete_join(now, fx);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(waiter);
                }
                let limits = Limits {
                    session_timeout_min_ms: 0,
                    session_timeout_max_ms: i32::MAX,
                    initial_rebalance_delay_ms: 0,
                    members_max: usize::MAX,
                };
                self.prepare_rebalance(&limits, now, fx);
            }
        }
    }

    fn current_join_reply(&self, member_id: &str, with_members: bool, skip: bool) -> JoinReply {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinReply {
            error: GroupCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: skip,
            members,
        }
    }

    fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(u64::from(ms.unsigned_abs()))
    }

    pub(super) fn prepare_rebalance(
        &mut self,
        limits: &Limits,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        self.clear_pending_sync();
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(w) = member.sync_waiter.take() {
                    fx.push(Effect::Sync(
                        w,
                        SyncReply::error(GroupCode::RebalanceInProgress),
                    ));
                }
            }
        }
        let timeout = self.rebalance_timeout();
        if self.state == GroupState::Empty && limits.initial_rebalance_delay_ms > 0 {
            let delay = Duration::from_millis(limits.initial_rebalance_delay_ms);
            self.initial_delay = Some(InitialDelay {
                deadline: now + delay.min(timeout),
                end: now + timeout,
                new_member_added: false,
            });
            self.rebalance_deadline = None;
        } else {
            self.rebalance_deadline = Some(now + timeout);
        }
        self.transition(GroupState::PreparingRebalance);
        self.try_complete_join(now, fx);
    }

    pub(super) fn try_complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && all_joined
            && self.pending.is_empty()
        {
            self.complete_join(now, fx);
        }
    }

    /// The join phase ends: drop dynamic members that did not rejoin, start the next
    /// generation and answer every waiting member (the leader with the member list).
    pub(super) fn complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member_entry(&id, fx);
        }
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation = self.generation.saturating_add(1);
        self.clear_pending_sync();
        if self.members.is_empty() {
            // Kafka (ClassicGroup.initNextGeneration) clears the protocol name but keeps the
            // protocol type: an emptied consumer group is still described as `consumer`, and
            // its offsets expire by the empty-group rule, not the standalone-commit rule.
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty);
            fx.push(Effect::Persist);
            return;
        }
        self.protocol_name = self.select_protocol();
        let leader_ok = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.join_waiter.is_some());
        if !leader_ok {
            self.leader = self
                .members
                .values()
                .find(|m| m.join_waiter.is_some())
                .map(|m| m.id.clone());
        }
        self.transition(GroupState::CompletingRebalance);
        // Kafka's schedulePendingSync: every member must sync within the rebalance timeout.
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        let leader = self.leader.clone().unwrap_or_default();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = id == leader;
            let reply = self.current_join_reply(&id, is_leader, false);
            if let Some(member) = self.members.get_mut(&id) {
                member.heartbeat_deadline = now + member.session();
                if let Some(w) = member.join_waiter.take() {
                    fx.push(Effect::Join(w, reply));
                }
            }
        }
    }

    /// Kafka's vote: among protocols every member supports, each member votes for the first
    /// of its own preference list; the most votes wins (ties: the earliest preferred).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.metadata_for(name).is_some())
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n));
            if let Some((name, _)) = choice {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(c, _)| c.clone())
    }
}
