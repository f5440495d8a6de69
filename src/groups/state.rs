//! The classic consumer-group state machine (Kafka's GroupCoordinator, protocol "classic"):
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead once deleted.
//!
//! Pure: no I/O, no clock, no randomness. Time comes in as `Instant`, fresh member ids come in
//! with the request, and answers that must wait (JoinGroup until the rebalance completes,
//! SyncGroup until the leader's assignment) are parked as `WaiterId`s and later returned as
//! `Effect`s, which the coordinator delivers (after persisting the group when asked to).
//! This file holds the states and the join/sync path; `liveness` holds heartbeats, LeaveGroup,
//! the OffsetCommit check and the timer tick.
//!
//! Invariants: a member is in `members` or in `pending`, never both; `static_members` maps each
//! instance id to exactly one member that has it; a member has at most one join and one sync
//! waiter, and every parked waiter is answered exactly once (by completion, error, fencing or
//! removal); the generation only grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::code::GroupCode;

mod liveness;

/// Identifies a parked JoinGroup or SyncGroup answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(pub u64);

/// Kafka's group states (names as DescribeGroups / ListGroups spell them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// Broker limits the state machine enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub session_timeout_min_ms: i32,
    pub session_timeout_max_ms: i32,
    pub initial_rebalance_delay_ms: u64,
    pub members_max: usize,
}

/// A JoinGroup, already decoded.
#[derive(Debug, Clone, Default)]
pub struct JoinArgs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member: bool,
    /// v9+: a static leader rejoining a stable group is told to skip the assignment.
    pub supports_skip_assignment: bool,
    /// The id this member gets if it needs a new one (the coordinator makes it unique).
    pub fresh_member_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinReply {
    pub error: GroupCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinMember>,
}

impl JoinReply {
    fn error(error: GroupCode, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            member_id: member_id.to_owned(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncArgs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReply {
    pub error: GroupCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncReply {
    fn error(error: GroupCode) -> Self {
        Self {
            error,
            ..Self::default()
        }
    }
}

/// What the coordinator must do after a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Join(WaiterId, JoinReply),
    Sync(WaiterId, SyncReply),
    /// Write the group's metadata record (before delivering the answers that follow).
    Persist,
}

/// One member (Kafka's MemberMetadata).
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<WaiterId>,
    sync_waiter: Option<WaiterId>,
    heartbeat_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    fn session(&self) -> Duration {
        Duration::from_millis(u64::from(self.session_timeout_ms.unsigned_abs()))
    }
}

#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    deadline: Instant,
    end: Instant,
    new_member_added: bool,
}

/// A member as persisted and restored (the group metadata record's member).
#[derive(Debug, Clone)]
pub struct RestoredMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One group (Kafka's GroupMetadata without the offsets, which `offsets` keeps).
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    state: GroupState,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    /// Members of the current generation that have not sent SyncGroup yet (Kafka's
    /// pendingSyncMembers, KAFKA-12890), and when they are removed if they still have not.
    pending_sync: BTreeSet<String>,
    sync_deadline: Option<Instant>,
    /// Bumped on every state change; wall time is stamped by the coordinator on persist.
    state_changes: u64,
}

impl Group {
    pub fn new(id: String) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            state_changes: 0,
        }
    }

    /// Rebuilds a group from its metadata record: Stable with its members (who must heartbeat
    /// within their session timeout from `now`), or Empty.
    pub fn restore(
        id: String,
        protocol_type: String,
        generation: i32,
        protocol_name: Option<String>,
        leader: Option<String>,
        members: Vec<RestoredMember>,
        now: Instant,
    ) -> Self {
        let mut group = Self::new(id);
        group.generation = generation;
        group.protocol_type = (!protocol_type.is_empty()).then_some(protocol_type);
        for m in members {
            let protocols = match &protocol_name {
                Some(name) => vec![(name.clone(), m.subscription)],
                None => Vec::new(),
            };
            let session = Duration::from_millis(u64::from(m.session_timeout_ms.unsigned_abs()));
            if let Some(instance) = &m.instance_id {
                group.static_members.insert(instance.clone(), m.id.clone());
            }
            group.members.insert(
                m.id.clone(),
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    heartbeat_deadline: now + session,
                },
            );
        }
        if group.members.is_empty() {
            group.protocol_name = None;
        } else {
            group.protocol_name = protocol_name;
            group.leader = leader.filter(|l| group.members.contains_key(l));
            group.state = GroupState::Stable;
        }
        group
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn state_changes(&self) -> u64 {
        self.state_changes
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Marks the group deleted (DeleteGroups, expiry); only an Empty group may die.
    pub fn kill(&mut self) {
        assert!(self.members.is_empty(), "only an empty group is deleted");
        self.transition(GroupState::Dead);
    }

    /// Whether any member's subscription (consumer protocol) names `topic`.
    /// This broker stops coordinating the group (Kafka's `onResignation`): every member's
    /// parked JoinGroup / SyncGroup is answered NOT_COORDINATOR, so its client looks the
    /// coordinator up again instead of waiting out its request timeout.
    pub fn resign(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        for member in self.members.values_mut() {
            if let Some(waiter) = member.join_waiter.take() {
                let reply = JoinReply::error(GroupCode::NotCoordinator, &member.id);
                fx.push(Effect::Join(waiter, reply));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                fx.push(Effect::Sync(
                    waiter,
                    SyncReply::error(GroupCode::NotCoordinator),
                ));
            }
        }
        fx
    }

    /// Storing the group failed (Kafka's `storeGroup` callback with an error, e.g. this
    /// broker no longer leads its offsets partition): the answers that waited on the store
    /// carry `error` instead of success, so no member acts on a generation or assignment the
    /// log lacks (its client finds the coordinator again and rejoins); an assignment just
    /// completed is dropped and the group rebalances (Kafka's `resetAndPropagateAssignmentError`
    /// and `maybePrepareRebalance`).
    pub fn store_failed(
        &mut self,
        fx: Vec<Effect>,
        error: GroupCode,
        limits: &Limits,
        now: Instant,
    ) -> Vec<Effect> {
        let assigned = fx
            .iter()
            .any(|e| matches!(e, Effect::Sync(_, r) if r.error == GroupCode::None));
        let mut out: Vec<Effect> = fx
            .into_iter()
            .filter(|e| *e != Effect::Persist)
            .map(|e| match e {
                Effect::Join(w, r) if r.error == GroupCode::None => {
                    Effect::Join(w, JoinReply::error(error, &r.member_id))
                }
                Effect::Sync(w, r) if r.error == GroupCode::None => {
                    Effect::Sync(w, SyncReply::error(error))
                }
                other => other,
            })
            .collect();
        if assigned && self.state == GroupState::Stable {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            self.prepare_rebalance(limits, now, &mut out);
        }
        out
    }

    pub fn subscribed_to(&self, topic: &str) -> bool {
        let Some(protocol) = &self.protocol_name else {
            return false;
        };
        self.members.values().any(|m| {
            m.metadata_for(protocol)
                .is_some_and(|meta| super::subscription::topics(meta).iter().any(|t| t == topic))
        })
    }

    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.state_changes += 1;
    }

    // ---- JoinGroup --------------------------------------------------------------------------

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

    /// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by every member request.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupCode> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(owner) if owner != member_id => return Err(GroupCode::FencedInstanceId),
                None if self.members.contains_key(member_id) => {
                    return Err(GroupCode::FencedInstanceId)
                }
                None => return Err(GroupCode::UnknownMemberId),
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupCode::UnknownMemberId)
        }
    }

    /// `check_member`, then ILLEGAL_GENERATION unless `generation` is the current one.
    fn check_generation(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupCode> {
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupCode::IllegalGeneration);
        }
        Ok(())
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

    fn prepare_rebalance(&mut self, limits: &Limits, now: Instant, fx: &mut Vec<Effect>) {
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

    fn try_complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
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
    fn complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
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

    // ---- SyncGroup ----------------------------------------------------------------------------

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
    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    fn clear_pending_sync(&mut self) {
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

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
