use super::*;

fn ok(high_watermark: i64, has_records: bool) -> PartitionAnswer {
    PartitionAnswer {
        error_code: 0,
        high_watermark,
        diverging_epoch: None,
        has_records,
    }
}

fn error(code: i16) -> PartitionAnswer {
    PartitionAnswer {
        error_code: code,
        high_watermark: -1,
        diverging_epoch: None,
        has_records: false,
    }
}

/// Kafka's assignment hash: Java's `String.hashCode`, then `abs(31 * h + partition) % n`.
#[test]
fn fetcher_ids_follow_kafkas_hash() {
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(fetcher_id("hello", 3, 1), 0);
    // 31 * 99162322 + 3 = 3074031985, which wraps to -1220935311 in an i32.
    assert_eq!(fetcher_id("hello", 3, 7), (1_220_935_311 % 7) as usize);
    let spread: std::collections::BTreeSet<usize> =
        (0..64).map(|p| fetcher_id("orders", p, 4)).collect();
    assert_eq!(spread.len(), 4, "partitions spread over every fetcher");
}

/// The plan carries each fetching partition's offset and epochs with Kafka's limits;
/// appended records move the offset and the last fetched epoch.
#[test]
fn fetch_plan_and_appends() {
    let mut s = FetcherSession::new(2, FetcherConfig::default());
    assert_eq!(s.fetch_plan(0), None);
    s.add_partition("t", 0, 5, 3, 2);
    s.add_partition("t", 1, 0, 3, -1);
    let plan = s.fetch_plan(0).unwrap();
    assert_eq!(
        (plan.max_wait_ms, plan.min_bytes, plan.max_bytes),
        (500, 1, 10 << 20)
    );
    assert_eq!(
        plan.partitions[0],
        FetchPartition {
            topic: "t".into(),
            partition: 0,
            fetch_offset: 5,
            current_leader_epoch: 3,
            last_fetched_epoch: 2,
            partition_max_bytes: 1 << 20,
        }
    );
    assert_eq!(plan.partitions.len(), 2);
    assert_eq!(
        s.on_response("t", 0, 5, &ok(9, true), 0),
        FetchAction::Append { high_watermark: 9 }
    );
    s.on_appended("t", 0, 9, 3);
    let st = s.state("t", 0).unwrap();
    assert_eq!(
        (st.fetch_offset, st.last_fetched_epoch, st.lag),
        (9, 3, Some(4))
    );
    assert_eq!(
        s.on_response("t", 0, 9, &ok(9, false), 0),
        FetchAction::UpToDate { high_watermark: 9 }
    );
    // An answer for an offset the partition has moved past is stale.
    assert_eq!(
        s.on_response("t", 0, 5, &ok(9, true), 0),
        FetchAction::Ignore
    );
    assert_eq!(
        s.on_response("x", 0, 0, &ok(9, true), 0),
        FetchAction::Ignore
    );
}

/// A diverging epoch stops fetching until the truncation is done; an incomplete step asks
/// again (OffsetForLeaderEpoch) before fetching.
#[test]
fn diverging_epoch_truncates_before_fetching_again() {
    let mut s = FetcherSession::new(2, FetcherConfig::default());
    s.add_partition("t", 0, 12, 4, 3);
    let mut answer = ok(10, false);
    answer.diverging_epoch = Some(EpochEndOffset::new(3, 8));
    assert_eq!(
        s.on_response("t", 0, 12, &answer, 0),
        FetchAction::Truncate(EpochEndOffset::new(3, 8))
    );
    assert_eq!(s.fetch_plan(0), None, "not fetched while truncating");
    s.on_truncated("t", 0, 6, 2, false);
    assert_eq!(s.truncating(), vec![("t".to_string(), 0, 4)]);
    s.on_truncated("t", 0, 6, 2, true);
    let plan = s.fetch_plan(0).unwrap();
    assert_eq!(
        (
            plan.partitions[0].fetch_offset,
            plan.partitions[0].last_fetched_epoch
        ),
        (6, 2)
    );
    // A non-empty log without epochs starts by reconciling.
    s.add_partition("u", 0, 7, 4, -1);
    assert_eq!(s.truncating(), vec![("u".to_string(), 0, 4)]);
}

/// Errors: FENCED_LEADER_EPOCH removes the partition (metadata is behind); retriable ones back
/// off for replica.fetch.backoff.ms; OFFSET_OUT_OF_RANGE asks for the leader's offsets.
#[test]
fn errors_back_off_remove_or_resolve() {
    let mut s = FetcherSession::new(2, FetcherConfig::default());
    s.add_partition("t", 0, 0, 1, -1);
    s.add_partition("t", 1, 0, 1, -1);
    s.add_partition("t", 2, 0, 1, -1);
    assert_eq!(
        s.on_response("t", 0, 0, &error(6), 100),
        FetchAction::BackedOff
    );
    let plan = s.fetch_plan(100).unwrap();
    assert!(plan.partitions.iter().all(|p| p.partition != 0));
    assert!(s
        .fetch_plan(1_100)
        .unwrap()
        .partitions
        .iter()
        .any(|p| p.partition == 0));
    assert_eq!(
        s.on_response("t", 1, 0, &error(74), 0),
        FetchAction::Removed
    );
    assert!(s.state("t", 1).is_none());
    assert_eq!(
        s.on_response("t", 2, 0, &error(1), 0),
        FetchAction::ResolveOutOfRange
    );
    s.on_error("t", 2, 0);
    assert_eq!(s.len(), 2);
    assert!(s.remove_partition("t", 2));
    assert!(!s.remove_partition("t", 2));
}

/// Kafka's out-of-range handling: a leader behind us (unclean election) truncates us to its
/// end; a leader whose log starts past our end makes us start over there; else keep ours.
#[test]
fn out_of_range_decisions() {
    assert_eq!(out_of_range_decision(0, 5, 9), OutOfRange::TruncateTo(5));
    assert_eq!(
        out_of_range_decision(20, 30, 9),
        OutOfRange::TruncateFullyAndStartAt(20)
    );
    assert_eq!(out_of_range_decision(3, 30, 9), OutOfRange::FetchFrom(9));
}

/// The broker config's keys (Kafka's names) give Kafka's defaults, and a TOML override lands.
#[test]
fn config_keys_are_kafkas() {
    let defaults = crate::config::BrokerConfig::default();
    assert_eq!(FetcherConfig::from(&defaults), FetcherConfig::default());
    let text = "\"replica.fetch.max.bytes\" = 4096\n\"num.replica.fetchers\" = 3\n";
    let config: crate::config::BrokerConfig = toml::from_str(text).unwrap();
    let fetcher = FetcherConfig::from(&config);
    assert_eq!(
        (
            fetcher.replica_fetch_max_bytes,
            fetcher.num_replica_fetchers
        ),
        (4096, 3)
    );
    let zero: crate::config::BrokerConfig = toml::from_str("\"num.replica.fetchers\" = 0").unwrap();
    assert!(zero.validate().is_err());
}

/// An answer for a fetch offset that is no longer the log end (the log moved under the fetch
/// state) is not appended: the partition reconciles by OffsetForLeaderEpoch from its own log
/// end and latest epoch, then fetches from the truncated end.
#[test]
fn a_log_that_moved_under_the_fetcher_reconciles_by_epoch() {
    let mut s = FetcherSession::new(2, FetcherConfig::default());
    s.add_partition("t", 0, 75, 5, 4);
    assert!(s.log_still_ends_at("t", 0, 75, 75, 4), "unchanged: append");
    assert_eq!(
        s.on_response("t", 0, 75, &ok(80, true), 0),
        FetchAction::Append { high_watermark: 80 }
    );
    assert!(!s.log_still_ends_at("t", 0, 75, 76, 4));
    assert_eq!(s.fetch_plan(0), None, "not fetched before reconciling");
    assert_eq!(s.truncating(), vec![("t".to_string(), 0, 5)]);
    let state = s.state("t", 0).unwrap();
    assert_eq!((state.fetch_offset, state.last_fetched_epoch), (76, 4));
    s.on_truncated("t", 0, 75, 4, true);
    let plan = s.fetch_plan(0).unwrap();
    assert_eq!(plan.partitions[0].fetch_offset, 75);
}

/// The rolling-restart ISR flake: a fetch round in flight from the old leader (epoch 0) came
/// back after this replica became the leader in epoch 1 and appended epoch-0 batches where the
/// new epoch starts; every follower then truncated and refetched them forever. An answer for
/// a replica that took a newer epoch than the session fetches it in is dropped.
#[test]
fn answers_for_a_replica_in_a_newer_epoch_are_stale() {
    let mut s = FetcherSession::new(1, FetcherConfig::default());
    s.add_partition("t", 0, 30, 0, 0);
    assert!(!s.is_stale_for("t", 0, 0), "same epoch: applied");
    assert!(
        s.is_stale_for("t", 0, 1),
        "the replica leads (or follows) in epoch 1 now"
    );
    assert!(s.is_stale_for("t", 1, 0), "not fetched by this session");
    s.add_partition("t", 2, 30, -1, 0);
    assert!(!s.is_stale_for("t", 2, 7), "no epoch fetched: not checked");
}
