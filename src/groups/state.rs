//! The classic consumer-group state machine (Kafka's GroupCoordinator, protocol "classic"):
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead once deleted.
//!
//! Pure: no I/O, no clock, no randomness. Time comes in as `Instant`, fresh member ids come in
//! with the request, and answers that must wait (JoinGroup until the rebalance completes,
//! SyncGroup until the leader's assignment) are parked as `WaiterId`s and later returned as
//! `Effect`s, which the coordinator delivers (after persisting the group when asked to).
//! This file holds the states, the group and its members, and the checks every member request
//! shares; `join` holds the JoinGroup path (rebalance preparation and completion), `sync` the
//! SyncGroup path, `liveness` heartbeats, LeaveGroup, the OffsetCommit check and the timer tick.
//!
//! Invariants: a member is in `members` or in `pending`, never both; `static_members` maps each
//! instance id to exactly one member that has it; a member has at most one join and one sync
//! waiter, and every parked waiter is answered exactly once (by completion, error, fencing or
//! removal); the generation only grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::code::GroupCode;

mod join;
mod liveness;
mod sync;

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
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
