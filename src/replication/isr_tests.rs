use super::*;
use proptest::prelude::*;

const LAG_MS: i64 = 30_000;

fn registration(isr: &[i32]) -> LeaderRegistration {
    LeaderRegistration {
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader_epoch: 5,
        partition_epoch: 7,
    }
}

fn leader(isr: &[i32], log_end: i64, hw: i64) -> LeaderState {
    LeaderState::new(1, &registration(isr), log_end, hw, LAG_MS, 1_000)
}

/// The high watermark is the smallest log end over the ISR: it waits for the slowest ISR
/// follower, and a follower that has not fetched yet holds it where it was.
#[test]
fn high_watermark_is_the_isr_minimum() {
    let mut s = leader(&[1, 2, 3], 10, 4);
    assert_eq!(s.high_watermark(), 4);
    assert_eq!(s.on_follower_fetch(2, 10, 10, 1_100), Ok((false, None)));
    assert_eq!(s.high_watermark(), 4, "follower 3 has not fetched yet");
    assert_eq!(s.on_follower_fetch(3, 7, 10, 1_200), Ok((true, None)));
    assert_eq!(s.high_watermark(), 7);
    assert_eq!(s.on_follower_fetch(3, 10, 10, 1_300), Ok((true, None)));
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(
        s.on_follower_fetch(9, 10, 10, 1_300),
        Err(UnknownReplica(9))
    );
}

/// A truncated follower fetching below the high watermark does not move it back.
#[test]
fn high_watermark_never_goes_backwards() {
    let mut s = leader(&[1, 2], 10, 0);
    s.on_follower_fetch(2, 10, 10, 1_100).unwrap();
    assert_eq!(s.high_watermark(), 10);
    s.on_follower_fetch(2, 3, 12, 1_200).unwrap();
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(s.follower(2).unwrap().log_end_offset, 3);
}

/// A follower behind the log end for longer than replica.lag.time.max.ms is proposed out of
/// the ISR; the high watermark keeps waiting for it until the controller commits the shrink,
/// then moves to what the remaining ISR holds.
#[test]
fn lagging_follower_is_shrunk_after_the_lag_time() {
    let mut s = leader(&[1, 2, 3], 0, 0);
    s.on_follower_fetch(2, 0, 0, 1_000).unwrap();
    s.on_follower_fetch(3, 0, 0, 1_000).unwrap();
    // The leader appends to 20; follower 2 keeps up, follower 3 stops fetching.
    s.on_follower_fetch(2, 20, 20, 2_000).unwrap();
    assert_eq!(s.high_watermark(), 0);
    assert_eq!(s.maybe_shrink_isr(20, 1_000 + LAG_MS), None, "not yet");
    let proposal = s.maybe_shrink_isr(20, 1_001 + LAG_MS).unwrap();
    assert_eq!(proposal.new_isr, vec![1, 2]);
    assert_eq!((proposal.leader_epoch, proposal.partition_epoch), (5, 7));
    assert_eq!(
        s.maybe_shrink_isr(20, 1_002 + LAG_MS),
        None,
        "one in flight"
    );
    assert!(
        !s.maybe_increment_high_watermark(20),
        "waits for the commit"
    );
    assert!(s.on_isr_committed(5, 8, vec![1, 2], 20));
    assert_eq!(s.high_watermark(), 20);
    assert_eq!(s.isr_state(), &IsrState::Committed { isr: vec![1, 2] });
}

/// A follower at the leader's log end is never out of sync, however long ago it fetched
/// (an idle partition does not shrink).
#[test]
fn caught_up_follower_stays_in_sync_when_idle() {
    let mut s = leader(&[1, 2], 5, 5);
    s.on_follower_fetch(2, 5, 5, 1_000).unwrap();
    assert!(s.out_of_sync_replicas(5, 1_000 + 10 * LAG_MS).is_empty());
    // A follower that fetches steadily but is always one fetch behind stays in sync too
    // (caught up to the leader's log end of its previous fetch).
    s.on_follower_fetch(2, 5, 8, 2_000).unwrap();
    s.on_follower_fetch(2, 8, 11, 2_000 + LAG_MS / 2).unwrap();
    assert!(s.out_of_sync_replicas(11, 2_000 + LAG_MS).is_empty());
    // Caught up as of 2_000 (its fetch then reached the log end of the one before) and no
    // further: out of sync once the lag time has passed since.
    assert_eq!(s.out_of_sync_replicas(11, 2_001 + LAG_MS), vec![2]);
}

/// A follower rejoins once it has everything below the high watermark and since the start
/// of the current leader epoch; while the addition is in flight, the high watermark already
/// waits for it.
#[test]
fn caught_up_follower_is_proposed_back_into_the_isr() {
    let mut s = leader(&[1, 2], 10, 10);
    s.on_follower_fetch(2, 10, 10, 1_100).unwrap();
    let (_, expand) = s.on_follower_fetch(3, 6, 10, 1_100).unwrap();
    assert_eq!(expand, None, "below the high watermark and the epoch start");
    let (_, expand) = s.on_follower_fetch(3, 10, 12, 1_200).unwrap();
    let proposal = expand.unwrap();
    assert_eq!(proposal.new_isr, vec![1, 2, 3]);
    assert_eq!(s.isr_state().maximal_isr(), vec![1, 2, 3]);
    assert_eq!(s.isr_state().isr(), &[1, 2]);
    s.on_follower_fetch(2, 12, 12, 1_300).unwrap();
    assert_eq!(s.high_watermark(), 10, "follower 3 (pending) is at 10");
    assert_eq!(s.pending_proposal(), Some(proposal));
    s.on_isr_rejected();
    assert_eq!(s.isr_state(), &IsrState::Committed { isr: vec![1, 2] });
}

/// A stale commit (older partition epoch or another leader epoch) is ignored.
#[test]
fn stale_commits_are_ignored() {
    let mut s = leader(&[1, 2], 0, 0);
    assert!(!s.on_isr_committed(4, 9, vec![1], 0));
    assert!(!s.on_isr_committed(5, 6, vec![1], 0));
    assert_eq!(s.isr_state().isr(), &[1, 2]);
}

/// A newer registration from the image replaces the ISR (settling a pending change); a stale
/// one is ignored; a new leader epoch starts at the log end, so a follower rejoins only once it
/// has reached it.
#[test]
fn registrations_from_the_image() {
    let mut s = leader(&[1, 2, 3], 10, 10);
    s.on_follower_fetch(2, 10, 10, 1_100).unwrap();
    assert!(s.maybe_shrink_isr(10, 1_000 + LAG_MS + 1).is_some());
    let mut reg = registration(&[1, 2]);
    reg.partition_epoch = 6;
    assert!(!s.on_registration(&reg, 10, 2_000), "stale partition epoch");
    assert!(s.isr_state().is_inflight());
    reg.partition_epoch = 8;
    s.on_registration(&reg, 10, 2_000);
    assert_eq!(s.isr_state(), &IsrState::Committed { isr: vec![1, 2] });
    assert_eq!(s.partition_epoch(), 8);
    // Re-elected in epoch 6 at log end 14: follower 3 at 12 (past the HW 10) stays out until
    // it reaches 14.
    let mut reg = registration(&[1, 2]);
    reg.leader_epoch = 6;
    reg.partition_epoch = 9;
    s.on_registration(&reg, 14, 3_000);
    assert_eq!(s.leader_epoch(), 6);
    let (_, expand) = s.on_follower_fetch(3, 12, 14, 3_100).unwrap();
    assert_eq!(expand, None);
    let (_, expand) = s.on_follower_fetch(3, 14, 14, 3_200).unwrap();
    assert_eq!(expand.unwrap().new_isr, vec![1, 2, 3]);
    assert_eq!(
        s.follower(2).unwrap().log_end_offset,
        10,
        "known followers are kept"
    );
}

/// min.insync.replicas: checked against the committed ISR before the append
/// (NOT_ENOUGH_REPLICAS) and again once the batch is below the high watermark
/// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
#[test]
fn min_insync_replicas_before_and_after_append() {
    let mut s = leader(&[1, 2], 0, 0);
    assert_eq!(s.check_min_isr(2), Ok(()));
    assert_eq!(
        s.check_min_isr(3),
        Err(AckError::NotEnoughReplicas { isr: 2, min_isr: 3 })
    );
    assert_eq!(s.check_replicated(5, 2), None, "not replicated yet");
    s.on_follower_fetch(2, 5, 5, 1_100).unwrap();
    assert_eq!(s.check_replicated(5, 2), Some(Ok(())));
    assert_eq!(
        s.check_replicated(5, 3),
        Some(Err(AckError::NotEnoughReplicasAfterAppend {
            isr: 2,
            min_isr: 3
        }))
    );
}

/// A single-replica ISR: the high watermark follows the leader's log end.
#[test]
fn leader_alone_in_the_isr() {
    let mut s = leader(&[1], 0, 0);
    assert!(s.maybe_increment_high_watermark(3));
    assert_eq!(s.high_watermark(), 3);
}

#[derive(Debug, Clone)]
enum Step {
    Append(u8),
    Fetch { follower: i32, behind: u8 },
    Tick(u16),
    Commit,
    Reject,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u8..5).prop_map(Step::Append),
        (2i32..4, 0u8..6).prop_map(|(follower, behind)| Step::Fetch { follower, behind }),
        (0u16..40_000).prop_map(Step::Tick),
        Just(Step::Commit),
        Just(Step::Reject),
    ]
}

proptest! {
    /// The model: whatever the interleaving of appends, follower fetches, time, commits and
    /// rejections, the high watermark never goes back, never passes the leader's log end,
    /// and never passes the log end of a member of the maximal ISR that has fetched (so an
    /// offset below it is on every ISR member: what acks=all promises).
    #[test]
    fn high_watermark_is_safe(steps in proptest::collection::vec(step(), 1..200)) {
        let mut s = leader(&[1, 2, 3], 0, 0);
        let (mut log_end, mut now) = (0i64, 1_000i64);
        let mut last_hw = 0;
        for step in steps {
            match step {
                Step::Append(n) => log_end += i64::from(n),
                Step::Fetch { follower, behind } => {
                    let offset = (log_end - i64::from(behind)).max(0);
                    let _ = s.on_follower_fetch(follower, offset, log_end, now).unwrap();
                }
                Step::Tick(ms) => {
                    now += i64::from(ms);
                    let _ = s.maybe_shrink_isr(log_end, now);
                }
                Step::Commit => {
                    if let Some(p) = s.pending_proposal() {
                        let epoch = s.partition_epoch() + 1;
                        s.on_isr_committed(5, epoch, p.new_isr, log_end);
                    }
                }
                Step::Reject => s.on_isr_rejected(),
            }
            let hw = s.high_watermark();
            prop_assert!(hw >= last_hw, "went back from {} to {}", last_hw, hw);
            prop_assert!(hw <= log_end);
            if hw > last_hw {
                // It moved: every member of the maximal ISR holds everything below it.
                for b in s.isr_state().maximal_isr().into_iter().filter(|b| *b != 1) {
                    let end = s.follower(b).map_or(-1, |f| f.log_end_offset);
                    prop_assert!(end >= hw, "moved to {} past follower {} at {}", hw, b, end);
                }
            }
            prop_assert!(s.isr_state().isr().contains(&1), "the leader stays in the ISR");
            last_hw = hw;
        }
    }
}
