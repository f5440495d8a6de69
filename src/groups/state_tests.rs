//! Unit tests of the pure group state machine: time is an `Instant` moved by hand.

use super::*;

const LIMITS: Limits = Limits {
    session_timeout_min_ms: 1000,
    session_timeout_max_ms: 60_000,
    initial_rebalance_delay_ms: 0,
    members_max: 3,
};

fn args(member: &str, fresh: &str) -> JoinArgs {
    JoinArgs {
        member_id: member.into(),
        client_id: "c".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        require_known_member: true,
        fresh_member_id: fresh.into(),
        ..JoinArgs::default()
    }
}

fn join_reply(fx: &[Effect], waiter: u64) -> Option<JoinReply> {
    fx.iter().find_map(|e| match e {
        Effect::Join(WaiterId(w), r) if *w == waiter => Some(r.clone()),
        _ => None,
    })
}

fn sync_reply(fx: &[Effect], waiter: u64) -> Option<SyncReply> {
    fx.iter().find_map(|e| match e {
        Effect::Sync(WaiterId(w), r) if *w == waiter => Some(r.clone()),
        _ => None,
    })
}

/// Two-step join of a new dynamic member; returns its id.
fn join_new(g: &mut Group, fresh: &str, waiter: u64, now: Instant) -> Vec<Effect> {
    let fx = g.join(args("", fresh), WaiterId(waiter), &LIMITS, now);
    let reply = join_reply(&fx, waiter).expect("answered");
    assert_eq!(reply.error, GroupCode::MemberIdRequired);
    assert_eq!(reply.member_id, fresh);
    g.join(args(fresh, "unused"), WaiterId(waiter + 1), &LIMITS, now)
}

#[test]
fn first_member_joins_leads_and_syncs_to_stable() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let fx = join_new(&mut g, "m1", 1, now);
    let reply = join_reply(&fx, 2).expect("join completes for a single member");
    assert_eq!(reply.error, GroupCode::None);
    assert_eq!(reply.generation, 1);
    assert_eq!(reply.leader, "m1");
    assert_eq!(reply.members.len(), 1);
    assert_eq!(reply.protocol_name.as_deref(), Some("range"));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let sync = SyncArgs {
        member_id: "m1".into(),
        generation: 1,
        assignments: vec![("m1".into(), Bytes::from_static(b"a1"))],
        ..SyncArgs::default()
    };
    let fx = g.sync(sync, WaiterId(3), now);
    assert_eq!(
        fx.first(),
        Some(&Effect::Persist),
        "persisted before answering"
    );
    assert_eq!(
        sync_reply(&fx, 3).unwrap().assignment,
        Bytes::from_static(b"a1")
    );
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn a_second_member_triggers_a_rebalance_that_waits_for_everyone() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    let leader_sync = SyncArgs {
        member_id: "m1".into(),
        generation: 1,
        ..SyncArgs::default()
    };
    g.sync(leader_sync, WaiterId(3), now);
    let fx = join_new(&mut g, "m2", 10, now);
    assert!(join_reply(&fx, 11).is_none(), "m2 waits for m1 to rejoin");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat("m1", None, 1, now),
        GroupCode::RebalanceInProgress
    );
    let fx = g.join(args("m1", ""), WaiterId(20), &LIMITS, now);
    let leader = join_reply(&fx, 20).unwrap();
    let follower = join_reply(&fx, 11).unwrap();
    assert_eq!((leader.generation, follower.generation), (2, 2));
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert_eq!(follower.leader, "m1");
    // The follower syncs first and waits for the leader's assignment.
    let fx = g.sync(
        SyncArgs {
            member_id: "m2".into(),
            generation: 2,
            ..SyncArgs::default()
        },
        WaiterId(30),
        now,
    );
    assert!(fx.is_empty());
    let fx = g.sync(
        SyncArgs {
            member_id: "m1".into(),
            generation: 2,
            assignments: vec![
                ("m1".into(), Bytes::from_static(b"x")),
                ("m2".into(), Bytes::from_static(b"y")),
            ],
            ..SyncArgs::default()
        },
        WaiterId(31),
        now,
    );
    assert_eq!(
        sync_reply(&fx, 30).unwrap().assignment,
        Bytes::from_static(b"y")
    );
    assert_eq!(
        sync_reply(&fx, 31).unwrap().assignment,
        Bytes::from_static(b"x")
    );
}

#[test]
fn stale_generation_and_unknown_members_are_rejected() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    assert_eq!(
        g.heartbeat("m1", None, 0, now),
        GroupCode::IllegalGeneration
    );
    assert_eq!(g.heartbeat("zz", None, 1, now), GroupCode::UnknownMemberId);
    assert_eq!(
        g.validate_commit("m1", None, 7, now),
        GroupCode::IllegalGeneration
    );
    assert_eq!(
        g.validate_commit("zz", None, 1, now),
        GroupCode::UnknownMemberId
    );
    assert_eq!(
        g.validate_commit("m1", None, 1, now),
        GroupCode::RebalanceInProgress,
        "no commits while the assignment is being synced"
    );
    let fx = g.join(args("zz", ""), WaiterId(9), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 9).unwrap().error,
        GroupCode::UnknownMemberId
    );
    let mut bad = args("", "m9");
    bad.session_timeout_ms = 10;
    let fx = g.join(bad, WaiterId(10), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 10).unwrap().error,
        GroupCode::InvalidSessionTimeout
    );
    let mut other = args("", "m9");
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    let fx = g.join(other, WaiterId(11), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 11).unwrap().error,
        GroupCode::InconsistentGroupProtocol
    );
}

#[test]
fn silent_members_expire_and_the_group_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    g.sync(
        SyncArgs {
            member_id: "m1".into(),
            generation: 1,
            ..SyncArgs::default()
        },
        WaiterId(3),
        now,
    );
    assert!(g.tick(&LIMITS, now + Duration::from_secs(5)).is_empty());
    assert_eq!(
        g.heartbeat("m1", None, 1, now + Duration::from_secs(5)),
        GroupCode::None
    );
    // 10 s session from the last heartbeat at +5 s.
    assert!(g.tick(&LIMITS, now + Duration::from_secs(14)).is_empty());
    assert_eq!(g.state(), GroupState::Stable);
    let fx = g.tick(&LIMITS, now + Duration::from_secs(16));
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
    assert_eq!(g.protocol_type(), Some("consumer"));
    assert!(fx.contains(&Effect::Persist));
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    g.sync(
        SyncArgs {
            member_id: "m1".into(),
            generation: 1,
            ..SyncArgs::default()
        },
        WaiterId(3),
        now,
    );
    join_new(&mut g, "m2", 10, now);
    // m1 keeps heartbeating but never rejoins; the rebalance ends at its timeout (10 s).
    let later = now + Duration::from_secs(9);
    assert_eq!(
        g.heartbeat("m1", None, 1, later),
        GroupCode::RebalanceInProgress
    );
    let fx = g.tick(&LIMITS, now + Duration::from_secs(11));
    let reply = join_reply(&fx, 11).expect("m2 answered");
    assert_eq!(reply.leader, "m2");
    assert_eq!(reply.members.len(), 1);
    assert_eq!(g.member_count(), 1);
}

#[test]
fn initial_delay_collects_members_before_the_first_generation() {
    let limits = Limits {
        initial_rebalance_delay_ms: 3000,
        ..LIMITS
    };
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut a = args("", "m1");
    a.require_known_member = false;
    assert!(g.join(a, WaiterId(1), &limits, now).is_empty());
    let mut b = args("", "m2");
    b.require_known_member = false;
    assert!(g
        .join(b, WaiterId(2), &limits, now + Duration::from_secs(1))
        .is_empty());
    // A member joined during the delay: the delay is extended once more, but only up to the
    // rebalance timeout (5 s), as Kafka's InitialDelayedJoin does.
    assert!(g.tick(&limits, now + Duration::from_secs(3)).is_empty());
    assert!(g
        .tick(&limits, now + Duration::from_millis(4_900))
        .is_empty());
    let fx = g.tick(&limits, now + Duration::from_secs(5));
    assert_eq!(join_reply(&fx, 1).unwrap().generation, 1);
    assert_eq!(join_reply(&fx, 2).unwrap().generation, 1);
}

#[test]
fn group_size_is_bounded() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    for i in 0..3u64 {
        join_new(&mut g, &format!("m{i}"), i * 10, now);
    }
    let fx = g.join(args("", "m9"), WaiterId(100), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 100).unwrap().error,
        GroupCode::GroupMaxSizeReached
    );
    assert_eq!(g.member_count(), 3);
}

#[test]
fn leave_removes_members_and_empties_the_group() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    let (codes, _) = g.leave(
        &[("m1".into(), None), ("nobody".into(), None)],
        &LIMITS,
        now,
    );
    assert_eq!(codes, vec![GroupCode::None, GroupCode::UnknownMemberId]);
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.is_empty());
    // Kafka keeps the protocol type of an emptied group; only the protocol name goes.
    assert_eq!(g.protocol_type(), Some("consumer"));
    assert_eq!(g.protocol_name(), None);
    // An empty group accepts members of any protocol type, and takes the new type.
    let other = JoinArgs {
        protocol_type: "connect".into(),
        ..args("", "m2")
    };
    let fx = g.join(other, WaiterId(7), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 7).unwrap().error,
        GroupCode::MemberIdRequired
    );
    let fx = g.join(
        JoinArgs {
            protocol_type: "connect".into(),
            ..args("m2", "unused")
        },
        WaiterId(8),
        &LIMITS,
        now,
    );
    assert_eq!(join_reply(&fx, 8).unwrap().error, GroupCode::None);
    assert_eq!(g.protocol_type(), Some("connect"));
}

fn static_args(fresh: &str) -> JoinArgs {
    JoinArgs {
        instance_id: Some("i1".into()),
        ..args("", fresh)
    }
}

#[test]
fn a_static_member_rejoining_a_stable_group_keeps_the_generation() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let fx = g.join(static_args("s1"), WaiterId(1), &LIMITS, now);
    let first = join_reply(&fx, 1).unwrap();
    assert_eq!(
        first.error,
        GroupCode::None,
        "no MEMBER_ID_REQUIRED for static members"
    );
    g.sync(
        SyncArgs {
            member_id: "s1".into(),
            generation: 1,
            assignments: vec![("s1".into(), Bytes::from_static(b"p"))],
            ..SyncArgs::default()
        },
        WaiterId(2),
        now,
    );
    let fx = g.join(static_args("s2"), WaiterId(3), &LIMITS, now);
    let again = join_reply(&fx, 3).unwrap();
    assert_eq!((again.error, again.generation), (GroupCode::None, 1));
    assert_eq!(again.member_id, "s2");
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(
        g.heartbeat("s1", Some("i1"), 1, now),
        GroupCode::FencedInstanceId
    );
    assert_eq!(g.heartbeat("s2", Some("i1"), 1, now), GroupCode::None);
    let fx = g.sync(
        SyncArgs {
            member_id: "s2".into(),
            instance_id: Some("i1".into()),
            generation: 1,
            ..SyncArgs::default()
        },
        WaiterId(4),
        now,
    );
    assert_eq!(
        sync_reply(&fx, 4).unwrap().assignment,
        Bytes::from_static(b"p")
    );
    // Changed metadata does rebalance.
    let mut changed = static_args("s3");
    changed.protocols = vec![("range".into(), Bytes::from_static(b"other"))];
    g.join(changed, WaiterId(5), &LIMITS, now);
    assert_ne!(g.state(), GroupState::Stable);
}

#[test]
fn restored_groups_resume_stable_with_their_members() {
    let now = Instant::now();
    let member = RestoredMember {
        id: "m1".into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        subscription: Bytes::from_static(b"m"),
        assignment: Bytes::from_static(b"a"),
    };
    let mut g = Group::restore(
        "g".into(),
        "consumer".into(),
        4,
        Some("range".into()),
        Some("m1".into()),
        vec![member],
        now,
    );
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.heartbeat("m1", None, 4, now), GroupCode::None);
    let fx = g.join(args("m1", ""), WaiterId(1), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 1).unwrap().generation,
        5,
        "the leader's rejoin rebalances"
    );
}

#[test]
fn protocol_vote_picks_the_common_favourite() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut a = args("", "m1");
    a.require_known_member = false;
    a.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    g.join(a, WaiterId(1), &LIMITS, now);
    let mut b = args("m1", "");
    b.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let fx = g.join(b, WaiterId(2), &LIMITS, now);
    assert_eq!(
        join_reply(&fx, 2).unwrap().protocol_name.as_deref(),
        Some("cooperative-sticky")
    );
}

fn sync_args(member: &str, generation: i32) -> SyncArgs {
    SyncArgs {
        member_id: member.into(),
        generation,
        ..SyncArgs::default()
    }
}

/// KAFKA-12890: a member that joined but never syncs is removed after the rebalance timeout
/// (5 s in `args`), even though it heartbeats and its session (10 s) never lapses.
#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    for s in 1..5 {
        let at = now + Duration::from_secs(s);
        assert_eq!(g.heartbeat("m1", None, 1, at), GroupCode::None);
        assert!(g.tick(&LIMITS, at).is_empty());
    }
    let fx = g.tick(&LIMITS, now + Duration::from_millis(5_000));
    assert_eq!(g.state(), GroupState::Empty, "{fx:?}");
    assert!(g.is_empty());
    assert_eq!(g.generation(), 2);
    assert!(fx.contains(&Effect::Persist));
    assert_eq!(
        g.heartbeat("m1", None, 1, now + Duration::from_secs(6)),
        GroupCode::UnknownMemberId
    );
}

/// The leader syncs (group Stable) but a follower never does: the follower is removed at the
/// deadline and the group rebalances; members that synced are not pending.
#[test]
fn a_follower_that_never_syncs_is_removed_and_the_group_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    g.sync(sync_args("m1", 1), WaiterId(3), now);
    assert_eq!(g.state(), GroupState::Stable);
    // m2 joins: rebalance; m1 rejoins, the join completes with both.
    join_new(&mut g, "m2", 10, now);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let fx = g.join(args("m1", "unused"), WaiterId(20), &LIMITS, now);
    assert_eq!(join_reply(&fx, 20).map(|r| r.generation), Some(2));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let assignments = vec![
        ("m1".to_owned(), Bytes::from_static(b"a1")),
        ("m2".to_owned(), Bytes::from_static(b"a2")),
    ];
    let fx = g.sync(
        SyncArgs {
            assignments,
            ..sync_args("m1", 2)
        },
        WaiterId(21),
        now + Duration::from_secs(1),
    );
    assert_eq!(sync_reply(&fx, 21).map(|r| r.error), Some(GroupCode::None));
    assert_eq!(g.state(), GroupState::Stable);
    for s in 2..5 {
        let at = now + Duration::from_secs(s);
        assert_eq!(g.heartbeat("m1", None, 2, at), GroupCode::None);
        assert_eq!(g.heartbeat("m2", None, 2, at), GroupCode::None);
        assert!(g.tick(&LIMITS, at).is_empty());
    }
    g.tick(&LIMITS, now + Duration::from_secs(5));
    assert_eq!(g.member_count(), 1);
    assert!(g.members().all(|m| m.id == "m1"), "m2 is removed, m1 stays");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat("m2", None, 2, now + Duration::from_secs(5)),
        GroupCode::UnknownMemberId
    );
}

/// Members that sync in time are never removed by the pending-sync timer.
#[test]
fn members_that_sync_in_time_stay() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    g.sync(
        sync_args("m1", 1),
        WaiterId(3),
        now + Duration::from_secs(4),
    );
    for s in [5, 8, 12] {
        let at = now + Duration::from_secs(s);
        assert_eq!(g.heartbeat("m1", None, 1, at), GroupCode::None);
        assert!(g.tick(&LIMITS, at).is_empty());
    }
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.member_count(), 1);
}

/// Kafka's rebalance timeout is the largest member rebalance timeout (not the session timeout):
/// a member that does not rejoin is dropped when it lapses.
#[test]
fn the_rebalance_timeout_is_the_members_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    g.sync(sync_args("m1", 1), WaiterId(3), now);
    // m2 joins and waits; m1 heartbeats but never rejoins.
    join_new(&mut g, "m2", 10, now);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(g
        .tick(&LIMITS, now + Duration::from_millis(4_900))
        .is_empty());
    let fx = g.tick(&LIMITS, now + Duration::from_millis(5_000));
    assert_eq!(join_reply(&fx, 11).map(|r| r.generation), Some(2), "{fx:?}");
    assert_eq!(g.member_count(), 1);
}

#[test]
fn resigning_answers_parked_requests_not_coordinator() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    // m2 arrives: the group rebalances and m2's join waits for m1 to rejoin.
    let fx = join_new(&mut g, "m2", 3, now);
    assert!(join_reply(&fx, 4).is_none(), "m2 waits for the rebalance");
    let fx = g.resign();
    let reply = join_reply(&fx, 4).expect("the parked join is answered");
    assert_eq!(reply.error, GroupCode::NotCoordinator);
    assert_eq!(reply.member_id, "m2");
    assert!(
        g.resign().is_empty(),
        "each parked request is answered once"
    );
}

/// The leader's SyncGroup completes the assignment, but the group record cannot be stored
/// (the coordinator lost its offsets partition meanwhile): Kafka answers the SyncGroup with
/// the store's error and rebalances; before, the member got its assignment, went on to ask
/// this (no longer) coordinator for its committed offsets, and librdkafka stranded the
/// partitions on that request's NOT_COORDINATOR (the rolling-restart flake).
#[test]
fn a_sync_whose_group_record_is_not_stored_answers_the_error_and_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    join_new(&mut g, "m1", 1, now);
    let assignment = vec![("m1".to_owned(), Bytes::from_static(b"a"))];
    let sync = SyncArgs {
        assignments: assignment,
        ..sync_args("m1", 1)
    };
    let fx = g.sync(sync, WaiterId(3), now);
    assert!(fx.contains(&Effect::Persist), "{fx:?}");
    assert_eq!(sync_reply(&fx, 3).map(|r| r.error), Some(GroupCode::None));
    let fx = g.store_failed(fx, GroupCode::NotCoordinator, &LIMITS, now);
    let reply = sync_reply(&fx, 3).expect("the sync is answered");
    assert_eq!(reply.error, GroupCode::NotCoordinator);
    assert!(reply.assignment.is_empty());
    assert!(!fx.contains(&Effect::Persist), "{fx:?}");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(g.members().all(|m| m.assignment.is_empty()));
    // The member rejoins (at its coordinator) and gets a new generation.
    let fx = g.join(args("m1", "unused"), WaiterId(4), &LIMITS, now);
    assert_eq!(join_reply(&fx, 4).map(|r| r.generation), Some(2), "{fx:?}");
}

/// A store failure for a group this broker no longer holds only turns its answers into the
/// error (nothing to rebalance); answers that already carried an error keep it.
#[test]
fn a_store_failure_keeps_error_answers_and_turns_successes() {
    let now = Instant::now();
    let mut detached = Group::new("g".into());
    let ok = JoinReply {
        member_id: "m1".into(),
        generation: 3,
        ..JoinReply::default()
    };
    let fx = vec![
        Effect::Persist,
        Effect::Join(WaiterId(1), ok),
        Effect::Sync(
            WaiterId(2),
            SyncReply::error(GroupCode::RebalanceInProgress),
        ),
    ];
    let fx = detached.store_failed(fx, GroupCode::CoordinatorNotAvailable, &LIMITS, now);
    let join = join_reply(&fx, 1).expect("answered");
    assert_eq!(
        (join.error, join.generation, join.member_id.as_str()),
        (GroupCode::CoordinatorNotAvailable, -1, "m1")
    );
    assert_eq!(
        sync_reply(&fx, 2).map(|r| r.error),
        Some(GroupCode::RebalanceInProgress)
    );
    assert_eq!(detached.state(), GroupState::Empty);
}
