//! `sluice consume`: reads a topic's partitions from an offset or a time, printing each
//! record through a format template (like kcat's `-f`) or as one JSON object per line. Without
//! `--group` it reads the chosen partitions directly; with `--group` it joins that classic
//! consumer group ([`super::member`]), reads the partitions the group assigns it from the
//! group's committed offsets (`--offset` where none is committed, like `auto.offset.reset`),
//! and commits what it printed after each fetch, leaving the group when it stops (`--num`,
//! `--exit`, SIGINT or SIGTERM).
//!
//! Fetch is sessionless (session id 0, epoch -1) and sent to each partition's leader. A
//! response's records are split into whole batches by their length field; a trailing partial
//! batch (Kafka cuts at the byte limit) is fetched again from its base offset next round.
//! Control records and records before the requested offset (inside a compressed batch) are
//! skipped, as Kafka's consumer does.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde_json::{json, Value};

use super::client::{Client, Wanted};
use super::error::{check, CliError};
use super::member::{Beat, Member};
use super::meta::{self, PartitionInfo, EARLIEST, LATEST};
use super::Ctx;
use crate::clock::system_now_ms as now_ms;

/// v13 names topics by id; v4 is Kafka 4's oldest.
const FETCH: Wanted = Wanted { min: 4, max: 12 };
const FETCH_MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// Batch header: base offset (8), batch length (4), then the rest; the last offset delta is
/// at byte 23.
const BATCH_HEADER_BYTES: usize = 12;
const LAST_OFFSET_DELTA_AT: usize = 23;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Partitions to read (repeatable; default all).
    #[arg(short, long = "partition", conflicts_with = "group")]
    pub partitions: Vec<i32>,
    /// Join this consumer group (classic protocol, range assignor): read the partitions it
    /// assigns from its committed offsets and commit what was printed.
    #[arg(short, long)]
    pub group: Option<String>,
    /// Where to start (with --group: where no offset is committed): start|end|N|-N (N
    /// before the end)|@MS (first record at or after a unix time in ms)|@-DURATION (e.g.
    /// @-1h, @-30m, @-10s).
    #[arg(short, long, default_value = "start", allow_hyphen_values = true)]
    pub offset: String,
    /// Stop after this many records.
    #[arg(short, long)]
    pub num: Option<u64>,
    /// Stop at the end of every partition instead of waiting for more.
    #[arg(short, long)]
    pub exit: bool,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %h headers,
    /// %T timestamp (ms), \n newline, \t tab.
    #[arg(short, long, default_value = "%v\\n")]
    pub format: String,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartAt {
    Start,
    End,
    Offset(i64),
    BeforeEnd(i64),
    Timestamp(i64),
}

/// Parses `--offset`; `now_ms` anchors relative times.
pub fn parse_start(spec: &str, now_ms: i64) -> Result<StartAt, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--offset {spec:?}: use start, end, N, -N, @UNIX_MS or @-DURATION (e.g. @-1h)"
        ))
    };
    match spec {
        "start" | "beginning" | "earliest" | "oldest" => return Ok(StartAt::Start),
        "end" | "latest" | "newest" => return Ok(StartAt::End),
        _ => {}
    }
    if let Some(time) = spec.strip_prefix('@') {
        if let Some(ago) = time.strip_prefix('-') {
            let ms = parse_duration_ms(ago).ok_or_else(bad)?;
            return Ok(StartAt::Timestamp(now_ms - ms));
        }
        return time.parse().map(StartAt::Timestamp).map_err(|_| bad());
    }
    if let Some(back) = spec.strip_prefix('-') {
        return back.parse().map(StartAt::BeforeEnd).map_err(|_| bad());
    }
    spec.parse().map(StartAt::Offset).map_err(|_| bad())
}

/// `500ms`, `10s`, `30m`, `2h`, `1d` -> milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

struct Position {
    info: PartitionInfo,
    offset: i64,
    log_start_offset: i64,
    high_watermark: i64,
}

/// Prints records until `--num` of them or until stdout closes.
struct Printer {
    template: String,
    json: bool,
    limit: Option<u64>,
    printed: u64,
    stdout: std::io::StdoutLock<'static>,
}

impl Printer {
    fn new(ctx: &Ctx, args: &ConsumeArgs) -> Printer {
        Printer {
            template: unescape(&args.format),
            json: ctx.out.json,
            limit: args.num,
            printed: 0,
            stdout: std::io::stdout().lock(),
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|n| self.printed >= n)
    }

    /// Prints one record; false when no more may be printed (limit reached, stdout closed).
    fn print(&mut self, topic: &str, partition: i32, record: &Record) -> bool {
        if self.full() {
            return false;
        }
        let line = if self.json {
            let mut s = record_json(topic, partition, record).to_string();
            s.push('\n');
            s
        } else {
            render(&self.template, topic, partition, record)
        };
        if self.stdout.write_all(line.as_bytes()).is_err() {
            self.limit = Some(0); // stdout closed (`| head`): done.
            return false;
        }
        self.printed += 1;
        true
    }

    fn flush(&mut self) {
        let _ = self.stdout.flush();
    }
}

pub fn run(ctx: &Ctx, args: ConsumeArgs) -> Result<(), CliError> {
    let start = parse_start(&args.offset, now_ms())?;
    let mut client = Client::connect(&ctx.brokers)?;
    let all = meta::partitions(&mut client, &args.topic)?;
    if let Some(group) = &args.group {
        return run_in_group(ctx, &args, group, &mut client, all, start);
    }
    let chosen: Vec<PartitionInfo> = if args.partitions.is_empty() {
        all
    } else {
        args.partitions
            .iter()
            .map(|p| {
                all.iter()
                    .find(|i| i.partition == *p)
                    .cloned()
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "partition {p} does not exist ({} has {})",
                            args.topic,
                            all.len()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut positions = start_positions(&mut client, &args.topic, chosen, start)?;
    let mut printer = Printer::new(ctx, &args);
    loop {
        if printer.full() {
            return Ok(());
        }
        if args.exit && positions.iter().all(|p| p.offset >= p.high_watermark) {
            return Ok(());
        }
        let records = fetch_round(&mut client, &args.topic, &mut positions)?;
        for (partition, record) in records {
            if !printer.print(&args.topic, partition, &record) {
                break;
            }
        }
        printer.flush();
    }
}

/// Set by SIGINT/SIGTERM while a group member runs, so it commits and leaves the group
/// instead of holding its partitions until the session timeout.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic swap and _exit: both async-signal-safe. A second signal exits at once (a
    // join can block for up to the rebalance timeout).
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit(2) is async-signal-safe and ends the process without unwinding.
        unsafe { libc::_exit(128 + signal) };
    }
}

fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores to an atomic,
        // which is async-signal-safe; replacing the default disposition has no other effect.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// `consume --group`: one member of a classic consumer group; always tries to leave it.
fn run_in_group(
    ctx: &Ctx,
    args: &ConsumeArgs,
    group: &str,
    client: &mut Client,
    all: Vec<PartitionInfo>,
    start: StartAt,
) -> Result<(), CliError> {
    stop_on_signals();
    let mut member = Member::join(client, group, std::slice::from_ref(&args.topic))?;
    let mut printer = Printer::new(ctx, args);
    let result = consume_as_member(client, &mut member, args, &all, start, &mut printer);
    printer.flush();
    let left = member.leave(client);
    result.and(left)
}

/// Reads the member's partitions generation after generation until `--num`, `--exit` or a
/// signal; commits the next offset after every record printed.
fn consume_as_member(
    client: &mut Client,
    member: &mut Member,
    args: &ConsumeArgs,
    all: &[PartitionInfo],
    start: StartAt,
    printer: &mut Printer,
) -> Result<(), CliError> {
    let topic = args.topic.as_str();
    loop {
        let assigned = member.partitions_of(topic);
        let mine: Vec<PartitionInfo> = all
            .iter()
            .filter(|p| assigned.contains(&p.partition))
            .cloned()
            .collect();
        let committed = member.committed(client, topic)?;
        let mut positions = start_positions(client, topic, mine, start)?;
        for p in &mut positions {
            if let Some(&offset) = committed.get(&p.info.partition) {
                // Out of range (records deleted since): the earliest, as the consumer's reset.
                p.offset = offset.clamp(p.log_start_offset, p.high_watermark);
            }
        }
        let mut to_commit = BTreeMap::new();
        let beat = loop {
            let at_end = positions.iter().all(|p| p.offset >= p.high_watermark);
            if printer.full() || (args.exit && at_end) || INTERRUPTED.load(Ordering::SeqCst) {
                member.commit(client, topic, &to_commit)?;
                return Ok(());
            }
            if member.heartbeat_if_due(client)? == Beat::Rejoin {
                break Beat::Rejoin;
            }
            let records = fetch_round(client, topic, &mut positions)?;
            let mut cut = false;
            let mut next = BTreeMap::new();
            for (partition, record) in &records {
                if !printer.print(topic, *partition, record) {
                    cut = true;
                    break;
                }
                next.insert(*partition, record.offset + 1);
            }
            printer.flush();
            if !cut {
                // Everything fetched was printed: commit past skipped control records too.
                next.extend(positions.iter().map(|p| (p.info.partition, p.offset)));
            }
            let changed = next
                .iter()
                .any(|(p, o)| to_commit.get(p).is_none_or(|c| c != o));
            to_commit.extend(next);
            if changed && member.commit(client, topic, &to_commit)? == Beat::Rejoin {
                break Beat::Rejoin;
            }
        };
        if beat == Beat::Rejoin {
            // What was printed is committed if the generation still allows it; then rejoin.
            let _ = member.commit(client, topic, &to_commit);
            member.rejoin(client)?;
        }
    }
}

fn start_positions(
    client: &mut Client,
    topic: &str,
    chosen: Vec<PartitionInfo>,
    start: StartAt,
) -> Result<Vec<Position>, CliError> {
    let wanted: Vec<(String, PartitionInfo)> = chosen
        .iter()
        .map(|p| (topic.to_owned(), p.clone()))
        .collect();
    let earliest = meta::list_offsets(client, &wanted, EARLIEST)?;
    let latest = meta::list_offsets(client, &wanted, LATEST)?;
    let by_time = match start {
        StartAt::Timestamp(ts) => Some(meta::list_offsets(client, &wanted, ts)?),
        _ => None,
    };
    Ok(chosen
        .into_iter()
        .map(|info| {
            let key = (topic.to_owned(), info.partition);
            let low = earliest.get(&key).copied().unwrap_or(0);
            let high = latest.get(&key).copied().unwrap_or(0);
            let offset = match start {
                StartAt::Start => low,
                StartAt::End => high,
                StartAt::Offset(o) => o.clamp(low, high),
                StartAt::BeforeEnd(n) => high.saturating_sub(n).max(low),
                // -1: no record at or after that time, so start at the end.
                StartAt::Timestamp(_) => match by_time.as_ref().and_then(|m| m.get(&key)) {
                    Some(&o) if o >= 0 => o,
                    _ => high,
                },
            };
            Position {
                info,
                offset,
                log_start_offset: low,
                high_watermark: high,
            }
        })
        .collect())
}

/// One Fetch per leader; returns the new records in partition order and advances positions.
fn fetch_round(
    client: &mut Client,
    topic: &str,
    positions: &mut [Position],
) -> Result<Vec<(i32, Record)>, CliError> {
    let mut leaders: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, p) in positions.iter().enumerate() {
        leaders.entry(p.info.leader).or_default().push(i);
    }
    let mut out = Vec::new();
    let began = Instant::now();
    for (leader, indexes) in leaders {
        let partitions = indexes
            .iter()
            .filter_map(|&i| positions.get(i))
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p.info.partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(p.offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(topic.to_owned().into()))
                .with_partitions(partitions)]);
        let (response, _) = client.node(leader)?.call(&request, FETCH)?;
        check(response.error_code, "fetch", "")?;
        for t in response.responses {
            for data in t.partitions {
                let Some(pos) = positions
                    .iter_mut()
                    .find(|p| p.info.partition == data.partition_index)
                else {
                    continue;
                };
                check(
                    data.error_code,
                    &format!(
                        "fetch {topic}/{} at offset {}",
                        data.partition_index, pos.offset
                    ),
                    "",
                )?;
                pos.high_watermark = data.high_watermark;
                let records = data.records.unwrap_or_default();
                let (decoded, next) = decode_batches(records, pos.offset)?;
                pos.offset = next;
                out.extend(decoded.into_iter().map(|r| (data.partition_index, r)));
            }
        }
    }
    // A broker that answers an empty fetch at once must not make this loop spin.
    if out.is_empty() && began.elapsed() < Duration::from_millis(50) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(out)
}

/// Whole batches of `records` decoded; records before `from` and control records skipped.
/// Returns them and the offset to fetch next.
pub fn decode_batches(records: Bytes, from: i64) -> Result<(Vec<Record>, i64), CliError> {
    let mut next = from;
    let mut out = Vec::new();
    let mut rest = records;
    while rest.len() >= BATCH_HEADER_BYTES {
        let base_offset = i64::from_be_bytes(be_bytes(&rest, 0)?);
        let length = i32::from_be_bytes(be_bytes(&rest, 8)?);
        let total = usize::try_from(length)
            .ok()
            .and_then(|n| n.checked_add(BATCH_HEADER_BYTES))
            .ok_or_else(|| CliError::Protocol(format!("batch length {length}")))?;
        if rest.len() < total {
            break; // Partial batch at the end of the response: fetch it again.
        }
        let mut batch = rest.split_to(total);
        let last_offset_delta = i32::from_be_bytes(be_bytes(&batch, LAST_OFFSET_DELTA_AT)?);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            CliError::Protocol(format!("record batch at offset {base_offset}: {e}"))
        })?;
        out.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control && r.offset >= from),
        );
        next = next.max(base_offset + i64::from(last_offset_delta) + 1);
    }
    Ok((out, next))
}

fn be_bytes<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], CliError> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| CliError::Protocol("record batch header cut short".into()))
}

fn text(bytes: &Option<Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The JSON shape of a record (also what `sluice produce --input json` reads).
pub fn record_json(topic: &str, partition: i32, r: &Record) -> Value {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({"key": k.as_str(), "value": text(v)}))
        .collect();
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": text(&r.key),
        "value": text(&r.value),
        "headers": headers,
    })
}

fn unescape(format: &str) -> String {
    format.replace("\\n", "\n").replace("\\t", "\t")
}

/// Expands a `--format` template for one record.
pub fn render(template: &str, topic: &str, partition: i32, r: &Record) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push_str(topic),
            Some('p') => out.push_str(&partition.to_string()),
            Some('o') => out.push_str(&r.offset.to_string()),
            Some('T') => out.push_str(&r.timestamp.to_string()),
            Some('k') => out.push_str(&text(&r.key).unwrap_or_default()),
            Some('v') => out.push_str(&text(&r.value).unwrap_or_default()),
            Some('h') => {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.as_str(), text(v).unwrap_or_default()))
                    .collect();
                out.push_str(&headers.join(","));
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs() {
        assert_eq!(parse_start("start", 0).unwrap(), StartAt::Start);
        assert_eq!(parse_start("end", 0).unwrap(), StartAt::End);
        assert_eq!(parse_start("42", 0).unwrap(), StartAt::Offset(42));
        assert_eq!(parse_start("-3", 0).unwrap(), StartAt::BeforeEnd(3));
        assert_eq!(parse_start("@1000", 0).unwrap(), StartAt::Timestamp(1000));
        assert_eq!(
            parse_start("@-1h", 10_000_000).unwrap(),
            StartAt::Timestamp(10_000_000 - 3_600_000)
        );
        assert!(parse_start("soon", 0).is_err());
        assert!(parse_start("@-1y", 0).is_err());
    }

    #[test]
    fn partial_trailing_batch_is_left_for_the_next_fetch() {
        use kafka_protocol::records::{
            Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let record = |offset| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 5,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &[record(10), record(11)], &opts).unwrap();
        let one = buf.len();
        RecordBatchEncoder::encode(&mut buf, &[record(12)], &opts).unwrap();
        let cut = buf.freeze().slice(..one + 20);
        let (records, next) = decode_batches(cut, 11).unwrap();
        assert_eq!(records.len(), 1, "offset 10 is before the fetch offset");
        assert_eq!(records[0].offset, 11);
        assert_eq!(next, 12);
        let r = &records[0];
        assert_eq!(render("%p:%o %v\n", "t", 3, r), "3:11 v\n");
    }
}
