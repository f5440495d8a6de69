//! Model tests of the transaction state machine (`state`): Kafka's transitions, fencing and
//! retries, driven through a sequence of client calls as a producer makes them.

use super::api::TxnCode;
use super::state::*;

const NOW: i64 = 1_700_000_000_000;

fn parts(list: &[(&str, i32)]) -> Vec<TxnPartition> {
    list.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
}

fn fresh() -> TxnMetadata {
    TxnMetadata::new("tx".into(), 1000, 60_000, NOW)
}

fn args(expected: Option<(i64, i16)>) -> InitArgs {
    InitArgs {
        timeout_ms: 30_000,
        expected,
    }
}

fn transit(step: Result<InitStep, TxnCode>) -> TxnMetadata {
    match step {
        Ok(InitStep::Transit(m)) => m,
        other => panic!("expected a transit, got {other:?}"),
    }
}

/// InitProducerId, AddPartitions, EndTxn(commit), completion: the states a commit goes through.
#[test]
fn a_commit_walks_kafkas_states() {
    let m = transit(init(&fresh(), args(None), NOW));
    assert_eq!(
        (m.producer_epoch, m.state, m.timeout_ms),
        (0, TxnState::Empty, 30_000)
    );
    let m = add_partitions(&m, 1000, 0, &parts(&[("a", 0), ("b", 1)]), NOW + 5)
        .expect("add")
        .expect("changed");
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.start_ms, NOW + 5);
    // Adding partitions already in the transaction writes nothing.
    assert_eq!(
        add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW + 6),
        Ok(None)
    );
    // A new partition keeps the start time.
    let m = add_partitions(&m, 1000, 0, &parts(&[("c", 0)]), NOW + 7)
        .expect("add")
        .expect("changed");
    assert_eq!((m.partitions.len(), m.start_ms), (3, NOW + 5));
    let EndStep::Prepare(m) = end(&m, 1000, 0, true, false, NOW + 8).expect("end") else {
        panic!("expected a prepare")
    };
    assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareCommit, 0));
    // While prepared: more partitions or a new InitProducerId must wait.
    assert_eq!(
        add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW),
        Err(TxnCode::ConcurrentTransactions)
    );
    assert_eq!(
        init(&m, args(None), NOW),
        Err(TxnCode::ConcurrentTransactions)
    );
    // A retried EndTxn(commit) is told to wait; an abort is the wrong state.
    assert_eq!(
        end(&m, 1000, 0, true, false, NOW),
        Ok(EndStep::Answer(TxnCode::ConcurrentTransactions))
    );
    assert_eq!(
        end(&m, 1000, 0, false, false, NOW),
        Err(TxnCode::InvalidTxnState)
    );
    let m = complete(&m, NOW + 9).expect("complete");
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    assert_eq!(
        end(&m, 1000, 0, true, false, NOW),
        Ok(EndStep::Answer(TxnCode::None))
    );
    assert_eq!(
        end(&m, 1000, 0, false, false, NOW),
        Err(TxnCode::InvalidTxnState)
    );
    // The next transaction starts from CompleteCommit with a fresh partition set and start.
    let m = add_partitions(&m, 1000, 0, &parts(&[("z", 0)]), NOW + 20)
        .expect("add")
        .expect("changed");
    assert_eq!((m.partitions.len(), m.start_ms), (1, NOW + 20));
}

#[test]
fn end_without_a_transaction_is_invalid_txn_state() {
    let m = transit(init(&fresh(), args(None), NOW));
    assert_eq!(
        end(&m, 1000, 0, true, false, NOW),
        Err(TxnCode::InvalidTxnState)
    );
    assert_eq!(complete(&m, NOW), None);
}

/// A second producer with the same transactional id bumps the epoch: the first is fenced.
#[test]
fn a_new_producer_fences_the_old_one() {
    let first = transit(init(&fresh(), args(None), NOW));
    let second = transit(init(&first, args(None), NOW));
    assert_eq!((second.producer_id, second.producer_epoch), (1000, 1));
    assert_eq!(
        add_partitions(&second, 1000, 0, &parts(&[("a", 0)]), NOW),
        Err(TxnCode::ProducerFenced)
    );
    assert_eq!(
        end(&second, 1000, 0, true, false, NOW),
        Err(TxnCode::ProducerFenced)
    );
    assert_eq!(
        add_partitions(&second, 999, 1, &parts(&[("a", 0)]), NOW),
        Err(TxnCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        verify(&second, 1000, 0, &parts(&[("a", 0)])),
        Err(TxnCode::ProducerFenced)
    );
}

/// InitProducerId on an ongoing transaction fences it (epoch + 1) and aborts it first.
#[test]
fn init_during_a_transaction_fences_and_aborts_it() {
    let m = transit(init(&fresh(), args(None), NOW));
    let m = add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW)
        .expect("add")
        .expect("changed");
    let Ok(InitStep::FenceAndAbort(fenced)) = init(&m, args(None), NOW) else {
        panic!("expected a fence")
    };
    assert_eq!(
        (fenced.state, fenced.producer_epoch),
        (TxnState::PrepareAbort, 1)
    );
    assert_eq!(
        fenced.partitions, m.partitions,
        "markers go to the same partitions"
    );
    // The old producer's commit is refused.
    assert_eq!(
        end(&fenced, 1000, 0, true, false, NOW),
        Err(TxnCode::ProducerFenced)
    );
    let done = complete(&fenced, NOW).expect("complete");
    assert_eq!(done.state, TxnState::CompleteAbort);
    // The new producer's retry now gets the next epoch.
    let next = transit(init(&done, args(None), NOW));
    assert_eq!(next.producer_epoch, 2);
}

/// KIP-360: a producer with its id and epoch bumps; a stale epoch is fenced; a retry of the
/// last bump gets the same answer.
#[test]
fn kip_360_bumps_retries_and_fences() {
    let m = transit(init(&fresh(), args(None), NOW));
    let bumped = transit(init(&m, args(Some((1000, 0))), NOW));
    assert_eq!((bumped.producer_epoch, bumped.last_producer_epoch), (1, 0));
    let retried = transit(init(&bumped, args(Some((1000, 0))), NOW));
    assert_eq!(retried.producer_epoch, 1);
    assert_eq!(
        init(&bumped, args(Some((1000, 7))), NOW),
        Err(TxnCode::ProducerFenced)
    );
    assert_eq!(
        init(&bumped, args(Some((55, 1))), NOW),
        Err(TxnCode::ProducerFenced)
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut m = transit(init(&fresh(), args(None), NOW));
    m.producer_epoch = i16::MAX - 1;
    assert_eq!(init(&m, args(None), NOW), Ok(InitStep::NeedNewProducerId));
    let r = rotate(&m, 2000, args(None), NOW);
    assert_eq!(
        (r.producer_id, r.producer_epoch, r.previous_producer_id),
        (2000, 0, 1000)
    );
    // The old id at its exhausted epoch is recognised (a retry), and answered the new id.
    let again = transit(init(&r, args(Some((1000, i16::MAX - 1))), NOW));
    assert_eq!(again.producer_id, 2000);
}

#[test]
fn transactions_expire_after_their_timeout() {
    let m = transit(init(&fresh(), args(None), NOW));
    assert!(
        !m.expired(NOW + 1_000_000),
        "no transaction, nothing to expire"
    );
    let m = add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW)
        .expect("add")
        .expect("changed");
    assert!(!m.expired(NOW + 30_000));
    assert!(m.expired(NOW + 30_001));
    let aborted = fence_and_abort(&m, NOW + 30_001);
    assert_eq!(
        (aborted.state, aborted.producer_epoch),
        (TxnState::PrepareAbort, 1)
    );
    // An idle id expires, one with a transaction in flight never.
    assert!(!id_expired(&m, 10, NOW + 1_000_000));
    let done = complete(&aborted, NOW + 30_002).expect("complete");
    assert!(id_expired(&done, 10, NOW + 30_012));
    assert!(!id_expired(&done, 10, NOW + 30_011));
}

/// TV2 (EndTxn v5): every end bumps the epoch; a retry with the old epoch is recognised.
#[test]
fn tv2_bumps_the_epoch_at_every_end() {
    let m = transit(init(&fresh(), args(None), NOW));
    let m = add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW)
        .expect("add")
        .expect("changed");
    let EndStep::Prepare(p) = end(&m, 1000, 0, true, true, NOW).expect("end") else {
        panic!("expected a prepare")
    };
    assert_eq!((p.producer_epoch, p.client_txn_version), (1, 2));
    let done = complete(&p, NOW).expect("complete");
    assert_eq!(
        end(&done, 1000, 0, true, true, NOW),
        Ok(EndStep::Answer(TxnCode::None))
    );
    // The zombie of the finished transaction cannot add partitions with the old epoch.
    assert_eq!(
        add_partitions(&done, 1000, 0, &parts(&[("a", 0)]), NOW),
        Err(TxnCode::ProducerFenced)
    );
    assert!(add_partitions(&done, 1000, 1, &parts(&[("a", 0)]), NOW).is_ok());
}

#[test]
fn verify_only_reports_partitions_outside_the_transaction() {
    let m = transit(init(&fresh(), args(None), NOW));
    let m = add_partitions(&m, 1000, 0, &parts(&[("a", 0)]), NOW)
        .expect("add")
        .expect("changed");
    assert_eq!(
        verify(&m, 1000, 0, &parts(&[("a", 0), ("a", 1)])),
        Ok(vec![TxnCode::None, TxnCode::TransactionAbortable])
    );
}

#[test]
fn state_names_and_ids_are_kafkas() {
    for id in 0..=7 {
        let state = TxnState::from_id(id).expect("known id");
        assert_eq!(state.id(), id);
        assert_eq!(TxnState::from_name(state.name()), Some(state));
    }
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::PrepareCommit.name(), "PrepareCommit");
}

#[test]
fn codes_are_kafkas() {
    use kafka_protocol::ResponseError as K;
    let pairs = [
        (TxnCode::ConcurrentTransactions, K::ConcurrentTransactions),
        (TxnCode::ProducerFenced, K::ProducerFenced),
        (TxnCode::InvalidProducerEpoch, K::InvalidProducerEpoch),
        (TxnCode::InvalidTxnState, K::InvalidTxnState),
        (
            TxnCode::InvalidProducerIdMapping,
            K::InvalidProducerIdMapping,
        ),
        (
            TxnCode::InvalidTransactionTimeout,
            K::InvalidTransactionTimeout,
        ),
        (TxnCode::TransactionalIdNotFound, K::TransactionalIdNotFound),
        (TxnCode::OperationNotAttempted, K::OperationNotAttempted),
        (
            TxnCode::CoordinatorLoadInProgress,
            K::CoordinatorLoadInProgress,
        ),
    ];
    for (ours, kafka) in pairs {
        assert_eq!(ours.code(), kafka.code(), "{ours:?}");
    }
    assert_eq!(
        TxnCode::ProducerFenced.for_version(1, 2),
        K::InvalidProducerEpoch.code()
    );
    assert_eq!(
        TxnCode::ProducerFenced.for_version(2, 2),
        K::ProducerFenced.code()
    );
}
