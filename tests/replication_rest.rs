//! Replication's remaining data-path behaviours (issue 11), each against real `sluice`
//! processes: the `replication-offset-checkpoint` (high watermarks written by leaders and
//! followers every `replica.high.watermark.checkpoint.interval.ms`, read back at start, so a
//! restarted follower's high watermark is the checkpointed one, not 0 nor its log end).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::cluster::{topics_view, Cluster, ClusterOpts};
use common::wait_until;
use rdkafka::admin::{AlterConfig, ResourceSpecifier};

/// (leader, replicas, ISR) of partition 0 of `topic` as broker `index` answers it.
fn registration(cluster: &Cluster, index: usize, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    topics_view(&cluster.metadata(index))
        .into_iter()
        .find(|t| t.0 == topic)
        .and_then(|t| t.2.first().cloned())
        .map(|p| (p.1, p.3, p.4))
}

/// The high watermark of `topic`-0 in the `replication-offset-checkpoint` of `data_dir`.
fn checkpointed(data_dir: &Path, topic: &str) -> Option<i64> {
    let text = std::fs::read_to_string(data_dir.join("replication-offset-checkpoint")).ok()?;
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "version line: {text:?}");
    let count: usize = lines.next()?.parse().ok()?;
    let entries: Vec<&str> = lines.collect();
    assert_eq!(entries.len(), count, "entry count: {text:?}");
    entries.iter().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.len() == 3 && fields[0] == topic && fields[1] == "0")
            .then(|| fields[2].parse().unwrap())
    })
}

/// The `.log` segment bytes of a partition directory, concatenated in name order.
fn segment_bytes(dir: &Path) -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap_or_default())
        .collect()
}

fn signal(cluster: &Cluster, index: usize, signal: &str) {
    let pid = cluster.broker(index).pid().expect("running");
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

fn produce(cluster: &Cluster, index: usize, topic: &str, count: usize, acks: &str) {
    let producer = common::kafka::producer(cluster.broker(index), &[("acks", acks)]);
    let records = common::kafka::keyed_records(count, 3, 50);
    let deliveries = common::kafka::produce(&producer, topic, &records, Some(0));
    common::kafka::assert_all_acked(&deliveries);
}

/// Leaders and followers write their high watermark to `replication-offset-checkpoint`; a
/// follower restarted while it cannot reach its leader starts from the checkpointed high
/// watermark. The follower holds records past the high watermark (a third replica is stalled
/// in the ISR, so the leader's high watermark stays behind), so the checkpointed value (10)
/// differs from both what an unread checkpoint gives (0) and the log end (15).
#[test]
fn a_restarted_follower_starts_from_its_checkpointed_high_watermark() {
    let opts = ClusterOpts {
        // Five voters: with two replicas stalled the quorum still has a majority. No fencing
        // nor ISR shrink during the test: the stalled replicas stay in the ISR.
        nodes: 5,
        session_timeout_ms: 120_000,
        extra_toml: "\"default.replication.factor\" = 3\n\
                     \"replica.lag.time.max.ms\" = 120000\n\
                     \"replica.high.watermark.checkpoint.interval.ms\" = 100\n"
            .into(),
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(opts);
    let topic = "hw-checkpoint";
    assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
    let mut placed = None;
    wait_until(Duration::from_secs(30), "a leader with its ISR", || {
        placed = registration(&cluster, 0, topic).filter(|(l, _, isr)| *l > 0 && isr.len() == 3);
        placed.is_some()
    });
    let (leader, replicas, _) = placed.unwrap();
    let index = |id: i32| usize::try_from(id - 1).unwrap();
    let followers: Vec<usize> = replicas
        .iter()
        .filter(|r| **r != leader)
        .map(|r| index(*r))
        .collect();
    let (leader, restarted, stalled) = (index(leader), followers[0], followers[1]);
    produce(&cluster, leader, topic, 10, "all");
    for i in [leader, restarted, stalled] {
        let dir = cluster.broker(i).data_dir();
        wait_until(
            Duration::from_secs(20),
            "high watermark 10 checkpointed",
            || checkpointed(&dir, topic) == Some(10),
        );
    }
    // The stalled replica stays in the ISR: the high watermark stays at 10 while the leader
    // and the other follower hold 15 records.
    signal(&cluster, stalled, "-STOP");
    produce(&cluster, leader, topic, 5, "1");
    let part = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&part(leader));
    wait_until(
        Duration::from_secs(20),
        "the follower holds 15 records",
        || segment_bytes(&part(restarted)) == leader_bytes,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        checkpointed(&cluster.broker(leader).data_dir(), topic),
        Some(10)
    );
    assert_eq!(
        checkpointed(&cluster.broker(restarted).data_dir(), topic),
        Some(10)
    );
    // The leader stalls too: the restarted follower cannot learn any high watermark.
    signal(&cluster, leader, "-STOP");
    cluster.broker_mut(restarted).stop();
    let file = cluster
        .broker(restarted)
        .data_dir()
        .join("replication-offset-checkpoint");
    let stopped_at = SystemTime::now();
    cluster.broker_mut(restarted).start_again();
    let dir = cluster.broker(restarted).data_dir();
    wait_until(
        Duration::from_secs(20),
        "the restarted follower rewrote its checkpoint",
        || {
            std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > stopped_at)
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        checkpointed(&dir, topic),
        Some(10),
        "the checkpointed high watermark, not 0 (unread) nor 15 (the log end)"
    );
    signal(&cluster, leader, "-CONT");
    signal(&cluster, stalled, "-CONT");
}

/// Polls `cond` until it holds (true) or `timeout` passes (false).
fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// (base offset, last offset) of every batch in `bytes` (whole batches, as in a segment).
fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 27 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        let delta = i32::from_be_bytes(bytes[at + 23..at + 27].try_into().unwrap());
        out.push((base, base + i64::from(delta)));
        at += 12 + usize::try_from(len).unwrap();
    }
    out
}

/// A compacted topic's leader log has offset gaps once its cleaner ran; a follower whose copy
/// was wiped catches up from it, appending the leader's batches as they are (gaps kept, each
/// CRC checked), and ends with the leader's batches at the leader's offsets. Then leadership
/// moves and the old leader rejoins as a follower, reconciling by leader epoch over its
/// gapped log.
#[test]
fn a_wiped_follower_copies_a_compacted_leader_with_its_offset_gaps() {
    let opts = ClusterOpts {
        extra_toml: "\"default.replication.factor\" = 3\n\"log.cleaner.backoff.ms\" = 50\n".into(),
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(opts);
    let topic = "compacted-gaps";
    let topic_config = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "8192"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    let mut new_topic =
        rdkafka::admin::NewTopic::new(topic, 1, rdkafka::admin::TopicReplication::Fixed(3));
    for (k, v) in topic_config {
        new_topic = new_topic.set(k, v);
    }
    let admin = common::kafka::admin(cluster.broker(0));
    let created = common::block_on(admin.create_topics([&new_topic], &common::kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("CreateTopics: {e}"));
    assert!(created[0].is_ok(), "{created:?}");
    drop(admin);
    let mut placed = None;
    wait_until(Duration::from_secs(30), "a leader with its ISR", || {
        placed = registration(&cluster, 0, topic).filter(|(l, _, isr)| *l > 0 && isr.len() == 3);
        placed.is_some()
    });
    let (leader_id, replicas, _) = placed.unwrap();
    let index = |id: i32| usize::try_from(id - 1).unwrap();
    let leader = index(leader_id);
    let wiped = index(*replicas.iter().find(|r| **r != leader_id).unwrap());
    // The follower is away (its copy wiped) while the leader fills and cleans its log.
    cluster.broker_mut(wiped).stop();
    std::fs::remove_dir_all(cluster.broker(wiped).data_dir().join(format!("{topic}-0"))).unwrap();
    // One record per batch: the cleaner then removes whole batches (gaps between batches),
    // not only records inside them.
    let producer = common::kafka::producer(
        cluster.broker(leader),
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
    );
    let records = common::kafka::keyed_records(600, 10, 100);
    let deliveries = common::kafka::produce(&producer, topic, &records, Some(0));
    common::kafka::assert_all_acked(&deliveries);
    drop(producer);
    let dirs: Vec<std::path::PathBuf> = (0..3)
        .map(|i| cluster.broker(i).data_dir().join(format!("{topic}-0")))
        .collect();
    let part = |i: usize| dirs[i].clone();
    let has_gaps = |offsets: &[(i64, i64)]| offsets.windows(2).any(|w| w[1].0 > w[0].1 + 1);
    // Cleaned, and the cleaner done with what it can clean (the log unchanged for 2 s).
    let mut seen = (Vec::new(), std::time::Instant::now());
    wait_until(Duration::from_secs(90), "the leader's log cleaned", || {
        let now = segment_bytes(&part(leader));
        if now != seen.0 {
            seen = (now, std::time::Instant::now());
        }
        has_gaps(&batch_offsets(&seen.0)) && seen.1.elapsed() > Duration::from_secs(2)
    });
    // No more cleaning anywhere (replicas compact on their own, at their own segment
    // boundaries): what the follower holds is then exactly what it copied.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("cleanup.policy", "delete");
    let admin = common::kafka::admin(cluster.broker(leader));
    common::block_on(admin.alter_configs([&alter], &common::kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    drop(admin);
    cluster.broker_mut(wiped).start_again();
    let mut last = (Vec::new(), Vec::new());
    let copied = poll_until(Duration::from_secs(60), || {
        last = (segment_bytes(&part(leader)), segment_bytes(&part(wiped)));
        !last.0.is_empty() && last.0 == last.1
    });
    if !copied {
        let (l, f) = (batch_offsets(&last.0), batch_offsets(&last.1));
        let first_diff = l.iter().zip(&f).position(|(a, b)| a != b);
        panic!(
            "the wiped follower does not hold the leader's batches: leader {} batches {:?}.., \
             follower {} batches {:?}.., first difference at batch {first_diff:?}",
            l.len(),
            &l[..l.len().min(8)],
            f.len(),
            &f[..f.len().min(8)]
        );
    }
    let offsets = batch_offsets(&last.1);
    assert!(has_gaps(&offsets), "the copy keeps the gaps: {offsets:?}");
    assert!(
        offsets.windows(2).all(|w| w[1].0 > w[0].1),
        "offsets only increase: {offsets:?}"
    );
    // Back in the ISR: acks=all completes with it again.
    wait_until(
        Duration::from_secs(30),
        "the follower back in the ISR",
        || registration(&cluster, leader, topic).is_some_and(|(_, _, isr)| isr.len() == 3),
    );
    assert!(!cluster
        .broker(wiped)
        .log_text()
        .contains("replica append refused"));
    // Leadership moves (the leader stopped), records go to the new leader, the old one comes
    // back as a follower: it reconciles by leader epoch (OffsetForLeaderEpoch / the diverging
    // epoch) over a log with gaps and ends with the new leader's records at its offsets.
    let end_before = offsets.last().unwrap().1 + 1;
    cluster.broker_mut(leader).stop();
    let mut new_leader = 0;
    wait_until(Duration::from_secs(30), "a new leader", || {
        let asked = (0..3).find(|i| *i != leader).unwrap();
        registration(&cluster, asked, topic).is_some_and(|(l, _, _)| {
            new_leader = l;
            l > 0 && l != leader_id
        })
    });
    let new_leader = index(new_leader);
    let producer = common::kafka::producer(cluster.broker(new_leader), &[("acks", "all")]);
    let more = common::kafka::keyed_records(20, 10, 100);
    common::kafka::assert_all_acked(&common::kafka::produce(&producer, topic, &more, Some(0)));
    drop(producer);
    cluster.broker_mut(leader).start_again();
    let tail = |i: usize| {
        let bytes = segment_bytes(&part(i));
        let mut at = 0usize;
        for (base, _) in batch_offsets(&bytes) {
            if base >= end_before {
                return bytes[at..].to_vec();
            }
            let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            at += 12 + usize::try_from(len).unwrap();
        }
        Vec::new()
    };
    wait_until(
        Duration::from_secs(60),
        "the old leader holds the new leader's records at their offsets",
        || {
            let (theirs, ours) = (tail(new_leader), tail(leader));
            !theirs.is_empty() && theirs == ours
        },
    );
    let back = batch_offsets(&segment_bytes(&part(leader)));
    assert!(has_gaps(&back), "its own gaps kept: {back:?}");
}

/// FindCoordinator v3 for `key` (`key_type` 0 group, 1 transaction) asked of broker `index`.
fn find_coordinator(cluster: &Cluster, index: usize, key: &str, key_type: i8) -> i16 {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.to_owned()))
        .with_key_type(key_type);
    let addr = cluster.broker(index).socket_addr();
    let answer: FindCoordinatorResponse =
        common::wire::call(addr, ApiKey::FindCoordinator, 3, &request);
    answer.error_code
}

/// Kafka's rule for `offsets.topic.replication.factor` and
/// `transaction.state.log.replication.factor`: an internal topic is created with that factor,
/// never fewer replicas; while fewer brokers are registered its creation fails and
/// FindCoordinator answers COORDINATOR_NOT_AVAILABLE; once enough brokers are there it is
/// created with the full factor.
#[test]
fn internal_topics_wait_until_their_replication_factor_in_brokers_registered() {
    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    let opts = ClusterOpts {
        extra_toml: "\"offsets.topic.replication.factor\" = 4\n\
                     \"offsets.topic.num.partitions\" = 3\n\
                     \"transaction.state.log.replication.factor\" = 4\n\
                     \"transaction.state.log.num.partitions\" = 3\n"
            .into(),
        ..ClusterOpts::default()
    };
    let cluster = Cluster::start(opts);
    let internal = |name: &str| {
        topics_view(&cluster.metadata(0))
            .into_iter()
            .find(|t| t.0 == name)
    };
    // Three brokers for a factor of 4: nothing is created, however long the controller
    // retries (every second).
    for _ in 0..3 {
        assert_eq!(
            find_coordinator(&cluster, 0, "group-a", 0),
            COORDINATOR_NOT_AVAILABLE
        );
        assert_eq!(
            find_coordinator(&cluster, 1, "txn-a", 1),
            COORDINATOR_NOT_AVAILABLE
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(internal("__consumer_offsets").is_none());
    assert!(internal("__transaction_state").is_none());
    // A fourth broker registers: both topics are created with four replicas each.
    let _fourth = cluster.start_broker_only(4);
    wait_until(Duration::from_secs(60), "both coordinators found", || {
        find_coordinator(&cluster, 0, "group-a", 0) == 0
            && find_coordinator(&cluster, 1, "txn-a", 1) == 0
    });
    // Broker 0 answers from its own image, which may apply the second topic's records a
    // moment after broker 1 found its coordinator.
    wait_until(
        Duration::from_secs(30),
        "both topics in broker 0's Metadata",
        || internal("__consumer_offsets").is_some() && internal("__transaction_state").is_some(),
    );
    for name in ["__consumer_offsets", "__transaction_state"] {
        let view = internal(name).unwrap();
        assert_eq!(view.2.len(), 3, "{name}: {view:?}");
        assert!(
            view.2.iter().all(|p| p.3.len() == 4),
            "{name} has 4 replicas per partition: {view:?}"
        );
    }
}

/// A SIGTERM'd partition leader keeps serving its connections through its controlled
/// shutdown (Kafka stops its socket server only after leadership moved away): a request on a
/// connection opened before the signal is still answered while the controlled shutdown waits
/// for the (stalled) controller, and an idempotent acks=all producer across the stop sees no
/// delivery error and loses nothing.
#[test]
fn a_sigterm_leader_serves_until_its_controlled_shutdown_is_done() {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
    let opts = ClusterOpts {
        extra_toml: "\"default.replication.factor\" = 3\n".into(),
        ..ClusterOpts::default()
    };
    let mut cluster = Cluster::start(opts);
    let topic = "sigterm-leader";
    assert_eq!(cluster.create_topic(topic, 3, Duration::from_secs(30)), 0);
    let mut leaders = Vec::new();
    wait_until(Duration::from_secs(30), "every partition led", || {
        leaders = common::cluster::leaders(&cluster.metadata(0), topic);
        leaders.len() == 3 && leaders.iter().all(|l| *l > 0)
    });
    let load = common::load::ProducerLoad::start(
        &cluster.bootstrap(),
        topic,
        "sigterm",
        Duration::from_millis(2),
        &[],
    );
    load.wait_acked_more(200, Duration::from_secs(60));
    let mut controller = None;
    wait_until(Duration::from_secs(30), "an active controller", || {
        controller = cluster.controller_index(0);
        controller.is_some()
    });
    let controller = controller.unwrap();
    let stopped = leaders
        .iter()
        .map(|l| usize::try_from(*l - 1).unwrap())
        .find(|i| *i != controller)
        .expect("a partition led by another broker than the controller");
    let addr = cluster.broker(stopped).socket_addr();
    let metadata = |conn: &mut std::net::TcpStream, correlation_id: i32| {
        let request = MetadataRequest::default().with_topics(None);
        let frame = common::wire::encode_request(
            ApiKey::Metadata,
            12,
            correlation_id,
            "sluice-tests",
            &request,
        );
        common::wire::send(conn, &frame);
        match common::wire::read_outcome(conn) {
            common::wire::Outcome::Response(body) => {
                let _: MetadataResponse =
                    common::wire::decode_response(ApiKey::Metadata, 12, correlation_id, body);
                true
            }
            _ => false,
        }
    };
    let mut conn = common::wire::connect(addr);
    assert!(metadata(&mut conn, 1), "served before the signal");
    // The controller stalls: the controlled shutdown cannot finish yet.
    signal(&cluster, controller, "-STOP");
    signal(&cluster, stopped, "-TERM");
    std::thread::sleep(Duration::from_millis(300));
    let served = metadata(&mut conn, 2);
    signal(&cluster, controller, "-CONT");
    assert!(
        served,
        "a connection of the stopping broker is served during its controlled shutdown"
    );
    let status = cluster
        .broker_mut(stopped)
        .wait_for_exit(Duration::from_secs(60))
        .expect("the broker stops after its controlled shutdown");
    assert_eq!(status.code(), Some(0));
    load.wait_acked_more(200, Duration::from_secs(60));
    let report = load.stop();
    assert!(
        report.failed.is_empty(),
        "no delivery error: {:?}",
        report.failed.first()
    );
    let mut checker = common::checker::QueueChecker::new();
    report.feed(&mut checker);
    let reader = (0..3).find(|i| *i != stopped).unwrap();
    for r in common::kafka::consume_all(cluster.broker(reader), topic, 3) {
        checker.read(
            r.partition,
            r.offset,
            r.value.as_deref().unwrap_or_default(),
        );
    }
    let checked = checker.report();
    assert!(checked.is_clean(), "{checked:?}");
}

/// Two shards per broker, followers long-polling with a long wait: each acks=all produce, one
/// at a time, is answered once the followers fetched it, never after the fetch wait. A
/// follower's long poll reads on the partition's owning shard and then parks there; a wake-up
/// missed between the two (an append landing after the read, unseen by the park) would show
/// as a produce waiting out `replica.fetch.wait.max.ms` (5 s here).
#[test]
fn acks_all_produces_are_not_held_by_missed_wake_ups_across_shards() {
    let opts = ClusterOpts {
        cores: 2,
        extra_toml: "\"default.replication.factor\" = 3\n\
                     \"replica.fetch.wait.max.ms\" = 5000\n\
                     \"fetch.max.wait.ms\" = 5000\n"
            .into(),
        ..ClusterOpts::default()
    };
    let cluster = Cluster::start(opts);
    let topic = "sharded-wake";
    let partitions = 4;
    assert_eq!(
        cluster.create_topic(topic, partitions, Duration::from_secs(30)),
        0
    );
    wait_until(
        Duration::from_secs(30),
        "every partition led with its ISR",
        || {
            let view = topics_view(&cluster.metadata(0));
            view.iter()
                .find(|t| t.0 == topic)
                .is_some_and(|t| t.2.len() == 4 && t.2.iter().all(|p| p.1 > 0 && p.4.len() == 3))
        },
    );
    let producer =
        common::kafka::producer(cluster.broker(0), &[("acks", "all"), ("linger.ms", "0")]);
    let records = common::kafka::keyed_records(120, 16, 40);
    // Warm-up, not measured: one record per partition, so every follower's fetcher has taken
    // every partition into its fetch (one added while its fetcher is parked in a long poll is
    // fetched from the next round on, as in Kafka).
    for (i, record) in records.iter().take(4).enumerate() {
        let partition = i32::try_from(i).unwrap();
        common::kafka::send_one(&producer, topic, record, Some(partition));
        common::kafka::assert_all_acked(&common::kafka::flush_all(&producer, 1));
    }
    let records = &records[4..];
    let mut slowest = Duration::ZERO;
    for (i, record) in records.iter().enumerate() {
        let partition = i32::try_from(i).unwrap() % partitions;
        let started = std::time::Instant::now();
        common::kafka::send_one(&producer, topic, record, Some(partition));
        let delivered = common::kafka::flush_all(&producer, 1);
        common::kafka::assert_all_acked(&delivered);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(2_500),
        "an acks=all produce waited {slowest:?}: a follower's long poll missed an append"
    );
}
