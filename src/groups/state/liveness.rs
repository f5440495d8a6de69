//! The group state machine's liveness side: heartbeats, LeaveGroup, the member/generation
//! check behind OffsetCommit, and the timer tick that expires silent members, stale pending
//! member ids and rebalances whose time is up. The join and sync paths are in `join` and `sync`.
//!
//! Invariants (those of the parent): a removed member's parked join and sync waiters are
//! answered (UNKNOWN_MEMBER_ID) as it is removed, and its static instance id is released only
//! when it still maps to that member; a removal from a Stable or CompletingRebalance group
//! starts a rebalance. Pure, like the parent: time comes in as `Instant`.

use std::time::{Duration, Instant};

use super::{Effect, Group, GroupCode, GroupState, InitialDelay, JoinReply, Limits, SyncReply};

impl Group {
    pub(super) fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat_deadline = now + member.session();
        }
    }

    // ---- Heartbeat, LeaveGroup, OffsetCommit validation ---------------------------------------

    /// Returns the heartbeat's error code (0 = none).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> GroupCode {
        if self.state == GroupState::Dead {
            return GroupCode::CoordinatorNotAvailable;
        }
        if let Err(error) = self.check_generation(member_id, instance_id, generation) {
            return error;
        }
        match self.state {
            GroupState::Empty => GroupCode::UnknownMemberId,
            GroupState::Dead => GroupCode::CoordinatorNotAvailable,
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                GroupCode::RebalanceInProgress
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                GroupCode::None
            }
        }
    }

    /// Removes the listed members (member id, instance id); one error code per member.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        limits: &Limits,
        now: Instant,
    ) -> (Vec<GroupCode>, Vec<Effect>) {
        let mut fx = Vec::new();
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match self.static_members.get(instance) {
                    None => Err(GroupCode::UnknownMemberId),
                    Some(owner) if !member_id.is_empty() && owner != member_id => {
                        Err(GroupCode::FencedInstanceId)
                    }
                    Some(owner) => Ok(owner.clone()),
                },
                None if self.pending.remove(member_id).is_some() => {
                    codes.push(GroupCode::None);
                    removed_any = true;
                    continue;
                }
                None if self.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(GroupCode::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    self.remove_member_entry(&id, &mut fx);
                    removed_any = true;
                    codes.push(GroupCode::None);
                }
                Err(error) => codes.push(error),
            }
        }
        if removed_any {
            self.after_removal(limits, now, &mut fx);
        }
        (codes, fx)
    }

    pub(super) fn remove_member_entry(&mut self, member_id: &str, fx: &mut Vec<Effect>) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        self.synced(member_id);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(w) = member.join_waiter {
            fx.push(Effect::Join(
                w,
                JoinReply::error(GroupCode::UnknownMemberId, member_id),
            ));
        }
        if let Some(w) = member.sync_waiter {
            fx.push(Effect::Sync(
                w,
                SyncReply::error(GroupCode::UnknownMemberId),
            ));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    fn after_removal(&mut self, limits: &Limits, now: Instant, fx: &mut Vec<Effect>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(limits, now, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Whether an OffsetCommit from this member/generation may be applied (0 = yes).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> GroupCode {
        if self.state == GroupState::Dead {
            return GroupCode::CoordinatorNotAvailable;
        }
        if generation < 0 && self.state == GroupState::Empty {
            // A commit from a consumer that does not use group management.
            return GroupCode::None;
        }
        if let Err(error) = self.check_generation(member_id, instance_id, generation) {
            return error;
        }
        if self.state == GroupState::CompletingRebalance {
            return GroupCode::RebalanceInProgress;
        }
        self.touch(member_id, now);
        GroupCode::None
    }

    // ---- Timers -------------------------------------------------------------------------------

    /// Kafka's expirePendingSync (KAFKA-12890): members of the current generation that have
    /// not sent SyncGroup within the rebalance timeout are removed, even if they heartbeat, so a
    /// silent leader cannot hold the group in CompletingRebalance forever. True if any went.
    fn expire_pending_sync(&mut self, now: Instant, fx: &mut Vec<Effect>) -> bool {
        let due = self.sync_deadline.is_some_and(|d| d <= now);
        let syncing = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if !due || !syncing {
            return false;
        }
        let pending: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        self.sync_deadline = None;
        for id in &pending {
            self.remove_member_entry(id, fx);
        }
        !pending.is_empty()
    }

    /// Expires silent members and pending member ids, ends rebalances whose time is up.
    pub fn tick(&mut self, limits: &Limits, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let mut changed = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none() && m.sync_waiter.is_none() && m.heartbeat_deadline <= now
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member_entry(id, &mut fx);
            changed = true;
        }
        changed |= self.expire_pending_sync(now, &mut fx);
        if changed {
            self.after_removal(limits, now, &mut fx);
        }
        if let Some(delay) = self.initial_delay {
            if delay.deadline <= now {
                let step = Duration::from_millis(limits.initial_rebalance_delay_ms);
                // Kafka's InitialDelayedJoin: while members keep arriving, wait another
                // delay, capped by what is left of the rebalance timeout.
                if delay.new_member_added && now < delay.end {
                    self.initial_delay = Some(InitialDelay {
                        deadline: (now + step).min(delay.end),
                        end: delay.end,
                        new_member_added: false,
                    });
                } else {
                    self.initial_delay = None;
                    self.rebalance_deadline = Some(delay.end.max(now));
                    self.try_complete_join(now, &mut fx);
                }
            }
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            self.complete_join(now, &mut fx);
        }
        fx
    }
}
