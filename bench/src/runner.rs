//! One broker's run of a workload: create topics, start consumers (and wait until they own
//! every partition), run producers for warm-up + duration while printing progress once a
//! second, drain consumers until every acknowledged message arrived (or the drain timeout),
//! then assemble the result.
//!
//! Topic names carry a per-run tag, so consecutive runs never read each other's data and a
//! fresh topic makes "read from the beginning" exact.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::consumer::{self, ConsumerPlan};
use crate::native;
use crate::payload::ProducerId;
use crate::producer::{self, DeliveryState, ErrorKinds, ProducerPlan};
use crate::report::{BrokerResult, BrokerRun, SubscriptionResult, Throughput, TimelineSample};
use crate::schedule::RunClock;
use crate::stats::{LatencyHistogram, LiveCounters, SeqSet, SubscriptionLedger};
use crate::workload::{Client, ConsumerMode, Workload};

/// How long consumers may take to own every partition before producers start anyway.
pub const ASSIGNMENT_WAIT_S: u64 = 30;
const ADMIN_TIMEOUT_S: u64 = 30;
const TICK_NS: u64 = 1_000_000_000;
const DRAIN_CHECK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("creating topics on {broker}: {source}")]
    CreateTopics { broker: String, source: KafkaError },
    #[error("creating topic {topic} on {broker}: {code}")]
    CreateTopic {
        broker: String,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(transparent)]
    Producer(#[from] producer::ProducerError),
    #[error(transparent)]
    Consumer(#[from] consumer::ConsumerError),
    #[error("native producer {0}: {1}")]
    Native(u32, crate::native::NativeError),
    #[error("spawning thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Stats(#[from] crate::stats::StatsError),
}

/// A broker under test.
#[derive(Debug, Clone)]
pub struct BrokerTarget {
    pub name: String,
    pub bootstrap: String,
    pub is_sink: bool,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub topic_prefix: String,
    pub run_tag: u32,
    pub quiet: bool,
}

struct Subscription {
    topic: String,
    topic_index: usize,
    index: u32,
    group_id: Option<String>,
    first_producer: u32,
    ledger: Arc<SubscriptionLedger>,
    assigned: Vec<Arc<AtomicUsize>>,
}

struct Running {
    producers: Vec<(JoinHandle<()>, Arc<Mutex<DeliveryState>>)>,
    consumers: Vec<JoinHandle<()>>,
    e2e: Vec<Arc<Mutex<LatencyHistogram>>>,
}

pub fn run_broker(
    target: &BrokerTarget,
    workload: &Arc<Workload>,
    options: &RunOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<BrokerRun, RunError> {
    let w = workload.as_ref();
    let topics: Vec<String> = (0..w.topics)
        .map(|t| format!("{}-{:08x}-{t}", options.topic_prefix, options.run_tag))
        .collect();
    if w.create_topics {
        create_topics(target, w, &topics, runtime)?;
    }
    let consumers_enabled = !target.is_sink && w.consumers_per_subscription > 0;
    let counters = Arc::new(LiveCounters::default());
    let errors = Arc::new(ErrorKinds::default());
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let stop_producers = Arc::new(AtomicBool::new(false));
    let clock = RunClock::starting_now();
    // Producers start after consumers are placed; times are fixed relative to that moment.
    let subscriptions = subscriptions(w, &topics, options, consumers_enabled);
    let mut running = Running {
        producers: Vec::new(),
        consumers: Vec::new(),
        e2e: Vec::new(),
    };
    // Consumers learn the measured window only once producers are about to start.
    let measure_from_ns = Arc::new(AtomicU64::new(u64::MAX));
    let measure_to_ns = Arc::new(AtomicU64::new(u64::MAX));
    if consumers_enabled {
        let window_cells = (measure_from_ns.clone(), measure_to_ns.clone());
        start_consumers(
            target,
            workload,
            options,
            &clock,
            window_cells,
            &subscriptions,
            &counters,
            &errors,
            &stop_consumers,
            &mut running,
        )?;
        wait_for_assignment(target, w, &subscriptions);
    }
    let window = Window::new(&clock, w);
    measure_to_ns.store(window.end_ns, Ordering::Relaxed);
    measure_from_ns.store(window.measure_start_ns, Ordering::Relaxed);
    start_producers(
        target,
        workload,
        options,
        &clock,
        &window,
        &topics,
        &counters,
        &errors,
        &stop_producers,
        &mut running,
    )?;
    let mut progress = Progress::new(target, w, &counters, &window);
    progress.run_until(&clock, window.end_ns, &running, options.quiet);
    let mut acked: Vec<SeqSet> = Vec::new();
    let mut publish = LatencyHistogram::new();
    for (handle, state) in running.producers.drain(..) {
        let _ = handle.join();
        let state = match state.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        publish.merge(&state.publish_latency)?;
        acked.push(state.acked);
    }
    let drain_started = Instant::now();
    let complete = if consumers_enabled {
        drain(
            &subscriptions,
            &acked,
            w,
            &mut progress,
            &clock,
            &running,
            options.quiet,
        )
    } else {
        true
    };
    let drain_s = drain_started.elapsed().as_secs_f64();
    stop_consumers.store(true, Ordering::Relaxed);
    for handle in running.consumers.drain(..) {
        let _ = handle.join();
    }
    let mut end_to_end = LatencyHistogram::new();
    for h in &running.e2e {
        match h.lock() {
            Ok(h) => end_to_end.merge(&h)?,
            Err(poisoned) => end_to_end.merge(&poisoned.into_inner())?,
        }
    }
    let result = assemble(
        target,
        w,
        topics,
        &subscriptions,
        &acked,
        &counters,
        &errors,
        &progress,
        &publish,
        &end_to_end,
        consumers_enabled,
        complete,
        drain_s,
    );
    Ok(BrokerRun {
        result,
        publish,
        end_to_end,
    })
}

/// Run-clock times of the phases.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ns: u64,
    measure_start_ns: u64,
    end_ns: u64,
}

impl Window {
    fn new(clock: &RunClock, w: &Workload) -> Window {
        let start_ns = clock.now_ns();
        let measure_start_ns = start_ns + w.warmup_s * 1_000_000_000;
        Window {
            start_ns,
            measure_start_ns,
            end_ns: measure_start_ns + w.duration_s * 1_000_000_000,
        }
    }
}

fn create_topics(
    target: &BrokerTarget,
    w: &Workload,
    topics: &[String],
    runtime: &tokio::runtime::Runtime,
) -> Result<(), RunError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &target.bootstrap)
        .create()
        .map_err(|source| RunError::CreateTopics {
            broker: target.name.clone(),
            source,
        })?;
    let partitions = i32::try_from(w.partitions_per_topic).unwrap_or(i32::MAX);
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                partitions,
                TopicReplication::Fixed(i32::from(w.replication_factor)),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(ADMIN_TIMEOUT_S)));
    let results = runtime
        .block_on(admin.create_topics(&new_topics, &options))
        .map_err(|source| RunError::CreateTopics {
            broker: target.name.clone(),
            source,
        })?;
    for result in results {
        if let Err((topic, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(RunError::CreateTopic {
                    broker: target.name.clone(),
                    topic,
                    code,
                });
            }
        }
    }
    Ok(())
}

fn subscriptions(
    w: &Workload,
    topics: &[String],
    options: &RunOptions,
    consumers_enabled: bool,
) -> Vec<Subscription> {
    if !consumers_enabled {
        return Vec::new();
    }
    let mut subs = Vec::new();
    for (t, topic) in topics.iter().enumerate() {
        for s in 0..w.subscriptions_per_topic {
            let group_id = (w.consumer_mode == ConsumerMode::Group).then(|| {
                format!(
                    "{}-{:08x}-{t}-{s}",
                    w.consumer_group_prefix, options.run_tag
                )
            });
            let first_producer = t as u32 * w.producers_per_topic;
            subs.push(Subscription {
                topic: topic.clone(),
                topic_index: t,
                index: s,
                group_id,
                first_producer,
                ledger: Arc::new(SubscriptionLedger::new(
                    first_producer,
                    w.producers_per_topic,
                )),
                assigned: (0..w.consumers_per_subscription)
                    .map(|_| Arc::new(AtomicUsize::new(0)))
                    .collect(),
            });
        }
    }
    subs
}

#[allow(clippy::too_many_arguments)]
fn start_consumers(
    target: &BrokerTarget,
    workload: &Arc<Workload>,
    options: &RunOptions,
    clock: &RunClock,
    window_cells: (Arc<AtomicU64>, Arc<AtomicU64>),
    subs: &[Subscription],
    counters: &Arc<LiveCounters>,
    errors: &Arc<ErrorKinds>,
    stop: &Arc<AtomicBool>,
    running: &mut Running,
) -> Result<(), RunError> {
    for sub in subs {
        for (c, assigned) in sub.assigned.iter().enumerate() {
            let e2e = Arc::new(Mutex::new(LatencyHistogram::new()));
            running.e2e.push(e2e.clone());
            let plan = ConsumerPlan {
                label: format!("{}/t{}s{}c{c}", target.name, sub.topic_index, sub.index),
                bootstrap: target.bootstrap.clone(),
                topic: sub.topic.clone(),
                index: c as u32,
                group_id: sub.group_id.clone(),
                workload: workload.clone(),
                clock: *clock,
                run_tag: options.run_tag,
                measure_from_ns: window_cells.0.clone(),
                measure_to_ns: window_cells.1.clone(),
                ledger: sub.ledger.clone(),
                counters: counters.clone(),
                errors: errors.clone(),
                e2e_latency: e2e,
                assigned_partitions: assigned.clone(),
                stop: stop.clone(),
            };
            let consumer = consumer::start(&plan)?;
            let handle = std::thread::Builder::new()
                .name(format!("consumer-{c}"))
                .spawn(move || consumer::run_consumer(plan, consumer))
                .map_err(RunError::Spawn)?;
            running.consumers.push(handle);
        }
    }
    Ok(())
}

fn wait_for_assignment(target: &BrokerTarget, w: &Workload, subs: &[Subscription]) {
    let deadline = Instant::now() + Duration::from_secs(ASSIGNMENT_WAIT_S);
    let wanted = w.partitions_per_topic as usize;
    loop {
        let pending = subs
            .iter()
            .filter(|s| {
                s.assigned
                    .iter()
                    .map(|a| a.load(Ordering::Relaxed))
                    .sum::<usize>()
                    < wanted
            })
            .count();
        if pending == 0 {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "[{}] {pending} subscription(s) still without every partition after {ASSIGNMENT_WAIT_S} s; starting producers anyway",
                target.name
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(clippy::too_many_arguments)]
fn start_producers(
    target: &BrokerTarget,
    workload: &Arc<Workload>,
    options: &RunOptions,
    clock: &RunClock,
    window: &Window,
    topics: &[String],
    counters: &Arc<LiveCounters>,
    errors: &Arc<ErrorKinds>,
    stop: &Arc<AtomicBool>,
    running: &mut Running,
) -> Result<(), RunError> {
    let w = workload.as_ref();
    for (t, topic) in topics.iter().enumerate() {
        for p in 0..w.producers_per_topic {
            let index = t as u32 * w.producers_per_topic + p;
            let plan = ProducerPlan {
                id: ProducerId(index),
                index,
                producer_count: w.producer_count(),
                topic: topic.clone(),
                bootstrap: target.bootstrap.clone(),
                workload: workload.clone(),
                clock: *clock,
                run_tag: options.run_tag,
                start_ns: window.start_ns,
                measure_start_ns: window.measure_start_ns,
                end_ns: window.end_ns,
                counters: counters.clone(),
                errors: errors.clone(),
                stop: stop.clone(),
                label: format!("{}/p{index}", target.name),
            };
            let thread = std::thread::Builder::new().name(format!("producer-{index}"));
            let (handle, state) = match w.client {
                Client::Rdkafka => {
                    let (client, state) = producer::start(&plan)?;
                    let handle = thread
                        .spawn(move || producer::run_producer(plan, client))
                        .map_err(RunError::Spawn)?;
                    (handle, state)
                }
                Client::Native => {
                    let client = native::start(&plan).map_err(|e| RunError::Native(index, e))?;
                    let state = Arc::new(Mutex::new(DeliveryState::default()));
                    let shared = state.clone();
                    let handle = thread
                        .spawn(move || {
                            let (label, errors) = (plan.label.clone(), plan.errors.clone());
                            if let Err(e) = native::run(plan, client, shared) {
                                errors.count(format!("native: {e}"));
                                eprintln!("[{label}] native producer: {e}");
                            }
                        })
                        .map_err(RunError::Spawn)?;
                    (handle, state)
                }
            };
            running.producers.push((handle, state));
        }
    }
    Ok(())
}

/// Once-a-second sampler: the throughput timeline and the progress line.
struct Progress {
    label: String,
    counters: Arc<LiveCounters>,
    window: Window,
    total_s: u64,
    last: Snapshot,
    last_ns: u64,
    ticks: u64,
    timeline: Vec<TimelineSample>,
    /// Counter snapshots (with their run-clock time) at the start and end of the measured
    /// window; throughput divides by the time actually between them.
    measured_from: Option<(u64, Snapshot)>,
    measured_to: Option<(u64, Snapshot)>,
}

/// Acked msgs, acked bytes, consumed msgs, consumed bytes.
type Snapshot = (u64, u64, u64, u64);

impl Progress {
    fn new(
        target: &BrokerTarget,
        w: &Workload,
        counters: &Arc<LiveCounters>,
        window: &Window,
    ) -> Progress {
        Progress {
            label: format!("{} {}", target.name, w.name),
            counters: counters.clone(),
            window: *window,
            total_s: w.warmup_s + w.duration_s,
            last: (0, 0, 0, 0),
            last_ns: window.start_ns,
            ticks: 0,
            timeline: Vec::new(),
            measured_from: (w.warmup_s == 0).then_some((window.start_ns, (0, 0, 0, 0))),
            measured_to: None,
        }
    }

    /// Run-clock time of the next whole-second tick since producers started.
    fn next_tick_ns(&self) -> u64 {
        self.window.start_ns + (self.ticks + 1) * TICK_NS
    }

    fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        (
            LiveCounters::get(&c.acked_msgs),
            LiveCounters::get(&c.acked_bytes),
            LiveCounters::get(&c.consumed_msgs),
            LiveCounters::get(&c.consumed_bytes),
        )
    }

    /// Samples once a second until `until_ns` on the run clock.
    fn run_until(&mut self, clock: &RunClock, until_ns: u64, running: &Running, quiet: bool) {
        loop {
            let now_ns = clock.now_ns();
            if now_ns >= until_ns {
                break;
            }
            let next_ns = self.next_tick_ns().min(until_ns);
            std::thread::sleep(Duration::from_nanos(next_ns.saturating_sub(now_ns)));
            self.sample(clock, running, quiet, "");
        }
    }

    fn sample(&mut self, clock: &RunClock, running: &Running, quiet: bool, phase_note: &str) {
        let now_ns = clock.now_ns();
        let snap = self.snapshot();
        let dt_s = (now_ns.saturating_sub(self.last_ns)) as f64 / 1e9;
        if dt_s <= 0.0 {
            return;
        }
        let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / dt_s;
        let sample = TimelineSample {
            t_s: (now_ns - self.window.start_ns) as f64 / 1e9,
            produce_msgs_per_s: rate(snap.0, self.last.0),
            produce_mb_per_s: rate(snap.1, self.last.1) / 1e6,
            consume_msgs_per_s: rate(snap.2, self.last.2),
            consume_mb_per_s: rate(snap.3, self.last.3) / 1e6,
        };
        // The window edges fall on tick boundaries (whole seconds from start).
        if self.measured_from.is_none() && now_ns >= self.window.measure_start_ns {
            self.measured_from = Some((now_ns, snap));
        }
        if self.measured_to.is_none() && now_ns >= self.window.end_ns {
            self.measured_to = Some((now_ns, snap));
        }
        if !quiet {
            self.print(&sample, now_ns, running, phase_note);
        }
        self.timeline.push(sample);
        self.last = snap;
        self.last_ns = now_ns;
        self.ticks = (now_ns - self.window.start_ns) / TICK_NS;
    }

    fn print(&self, s: &TimelineSample, now_ns: u64, running: &Running, phase_note: &str) {
        let elapsed_s = (now_ns - self.window.start_ns) / 1_000_000_000;
        let phase = if !phase_note.is_empty() {
            phase_note
        } else if self.last_ns < self.window.measure_start_ns {
            // The line describes the second that just ended.
            "warm-up"
        } else {
            "measure"
        };
        let mut publish = LatencyHistogram::new();
        for (_, state) in &running.producers {
            if let Ok(state) = state.lock() {
                let _ = publish.merge(&state.publish_latency);
            }
        }
        let mut e2e = LatencyHistogram::new();
        for h in &running.e2e {
            if let Ok(h) = h.lock() {
                let _ = e2e.merge(&h);
            }
        }
        let pct = |h: &LatencyHistogram| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "p50 {:.2} p99 {:.2} p99.9 {:.2}",
                    h.percentile_ms(50.0),
                    h.percentile_ms(99.0),
                    h.percentile_ms(99.9)
                )
            }
        };
        let errors = LiveCounters::get(&self.counters.produce_errors)
            + LiveCounters::get(&self.counters.consume_errors);
        eprintln!(
            "[{}] {phase} {elapsed_s}/{}s | prod {} msg/s {:.1} MB/s | cons {} msg/s | pub ms {} | e2e ms {} | errors {errors} | left {}s",
            self.label,
            self.total_s,
            crate::report::human(s.produce_msgs_per_s),
            s.produce_mb_per_s,
            crate::report::human(s.consume_msgs_per_s),
            pct(&publish),
            pct(&e2e),
            self.total_s.saturating_sub(elapsed_s),
        );
    }

    fn throughput(&self) -> Throughput {
        let (from_ns, from) = self
            .measured_from
            .unwrap_or((self.window.start_ns, (0, 0, 0, 0)));
        let (to_ns, to) = self.measured_to.unwrap_or((self.last_ns, self.last));
        let d = (to_ns.saturating_sub(from_ns) as f64 / 1e9).max(1e-3);
        Throughput {
            produce_msgs_per_s: to.0.saturating_sub(from.0) as f64 / d,
            produce_mb_per_s: to.1.saturating_sub(from.1) as f64 / d / 1e6,
            consume_msgs_per_s: to.2.saturating_sub(from.2) as f64 / d,
            consume_mb_per_s: to.3.saturating_sub(from.3) as f64 / d / 1e6,
        }
    }
}

/// Waits until every subscription has every acknowledged message, sampling progress.
fn drain(
    subs: &[Subscription],
    acked: &[SeqSet],
    w: &Workload,
    progress: &mut Progress,
    clock: &RunClock,
    running: &Running,
    quiet: bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(w.drain_timeout_s);
    let per_topic_acked = |first: u32| -> u64 {
        acked
            .iter()
            .skip(first as usize)
            .take(w.producers_per_topic as usize)
            .map(SeqSet::len)
            .sum()
    };
    loop {
        let done = subs.iter().all(|s| {
            s.ledger.unique() >= per_topic_acked(s.first_producer)
                && s.ledger.verify(topic_acked(acked, s, w)).lost == 0
        });
        if done {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(DRAIN_CHECK);
        if clock.now_ns() >= progress.next_tick_ns() {
            progress.sample(clock, running, quiet, "drain");
        }
    }
}

fn topic_acked<'a>(acked: &'a [SeqSet], sub: &Subscription, w: &Workload) -> &'a [SeqSet] {
    let from = (sub.first_producer as usize).min(acked.len());
    let to = (from + w.producers_per_topic as usize).min(acked.len());
    acked.get(from..to).unwrap_or(&[])
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    target: &BrokerTarget,
    w: &Workload,
    topics: Vec<String>,
    subs: &[Subscription],
    acked: &[SeqSet],
    counters: &LiveCounters,
    errors: &ErrorKinds,
    progress: &Progress,
    publish: &LatencyHistogram,
    end_to_end: &LatencyHistogram,
    consumers_enabled: bool,
    complete: bool,
    drain_s: f64,
) -> BrokerResult {
    let subscriptions: Vec<SubscriptionResult> = subs
        .iter()
        .map(|s| SubscriptionResult {
            topic: s.topic.clone(),
            subscription: s.index,
            group_id: s.group_id.clone(),
            consumers: s.assigned.len() as u32,
            verification: s.ledger.verify(topic_acked(acked, s, w)),
        })
        .collect();
    let mut notes = Vec::new();
    if target.is_sink {
        notes.push("built-in sink: acks without storing; consumers skipped".to_string());
    }
    if !complete {
        notes.push(format!(
            "consumers did not receive every acknowledged message within drain_timeout_s = {}",
            w.drain_timeout_s
        ));
    }
    if w.acks_zero() {
        notes.push("acks=0: publish latency is time until librdkafka sent the request".to_string());
    }
    let mut throughput = progress.throughput();
    if !consumers_enabled {
        throughput.consume_msgs_per_s = 0.0;
        throughput.consume_mb_per_s = 0.0;
    }
    BrokerResult {
        broker: target.name.clone(),
        bootstrap: target.bootstrap.clone(),
        is_sink: target.is_sink,
        topics,
        fixed_rate_msgs_per_s: w.is_fixed_rate().then_some(w.producer_rate_msgs_per_s),
        consumers_enabled,
        produced_sent: LiveCounters::get(&counters.sent_msgs),
        produced_acked: acked.iter().map(SeqSet::len).sum(),
        produce_errors: LiveCounters::get(&counters.produce_errors),
        consumed_total: LiveCounters::get(&counters.consumed_msgs),
        consumed_unique: subscriptions.iter().map(|s| s.verification.unique).sum(),
        consume_errors: LiveCounters::get(&counters.consume_errors),
        lost: subscriptions.iter().map(|s| s.verification.lost).sum(),
        duplicates: subscriptions
            .iter()
            .map(|s| s.verification.duplicates)
            .sum(),
        error_kinds: errors.snapshot(),
        throughput,
        publish_latency_ms: publish.summary(),
        end_to_end_latency_ms: end_to_end.summary(),
        subscriptions,
        timeline: progress.timeline.clone(),
        drain_s,
        complete,
        notes,
    }
}
