//! Zero-copy vs copy fetch on the same data: fills one partition through a raw Produce client,
//! then reads all of it back with a minimal raw Fetch client, alternating rounds between a
//! broker started with `fetch.zero.copy = true` and one with `false` on the same data dir (the
//! page cache stays warm, so both read from memory), and prints MB/s per mode and the ratio,
//! and the broker's CPU time per GB fetched (all its threads, with the share of its io_uring
//! io-wq worker threads, `iou-wrk-*`, from /proc/<pid>/task/*/schedstat).
//! `--baseline-bin <sluice binary>` adds a third mode: zero-copy on that binary (e.g. a build
//! of an earlier commit), so a change to the zero-copy path is measured in the same session.
//!
//! The broker is the `sluice` binary of the same profile (target/<profile>/sluice), run as a
//! child process on a loopback port it picks, with its own temp dir removed at the end:
//!
//!   cargo build --release --bin sluice && cargo run --release --example fetch_bench -- \
//!       [--total-mib 256] [--batch-kib 16] [--rounds 6] [--fetch-max-mib 8] [--cores 1] \
//!       [--baseline-bin /tmp/sluice-before]

// A benchmark tool, not the broker: a failed setup step should stop it loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const TOPIC: &str = "fetch-bench";
const PRODUCE_VERSION: i16 = 7;
const FETCH_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 4;
/// Batches per Produce request.
const BATCHES_PER_PRODUCE: usize = 64;
/// Records per batch (the batch size is split evenly among them).
const RECORDS_PER_BATCH: usize = 16;
/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response the client accepts (a sanity bound on the size prefix).
const RESPONSE_BYTES_MAX: usize = 1 << 30;

#[derive(Parser, Debug)]
struct Args {
    /// Data to produce and then fetch per round.
    #[arg(long, default_value_t = 256)]
    total_mib: usize,
    /// Size of each record batch.
    #[arg(long, default_value_t = 16)]
    batch_kib: usize,
    /// Rounds in total, alternating zero-copy and copy (zero-copy first on odd rounds).
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Fetch max_bytes and partition_max_bytes.
    #[arg(long, default_value_t = 8)]
    fetch_max_mib: usize,
    /// Broker shards.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Another sluice binary to run zero-copy rounds on, as a third mode ("base-zc").
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
}

/// One way of serving the rounds: a broker binary and its `fetch.zero.copy`.
struct Mode {
    name: &'static str,
    binary: PathBuf,
    zero_copy: bool,
}

/// What one round measured.
struct RoundResult {
    mbps: f64,
    /// Broker CPU (all threads) per GB of record data.
    cpu_ms_per_gb: f64,
    /// Of which io-wq worker threads.
    iowq_ms_per_gb: f64,
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("sluice-fetch-bench-")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let batch_bytes = args.batch_kib * 1024;
    let batches = args.total_mib * 1024 * 1024 / batch_bytes;
    let produced = {
        let mut broker = Broker::start(&sluice_binary()?, dir.path(), &data_dir, true, args.cores)?;
        let mut conn = Conn::connect(broker.addr)?;
        create_topic(&mut conn)?;
        let bytes = fill(&mut conn, batches, batch_bytes)?;
        broker.stop();
        bytes
    };
    println!(
        "filled {TOPIC}-0: {batches} batches of {} KiB, {:.1} MiB on disk",
        args.batch_kib,
        produced as f64 / (1 << 20) as f64
    );
    let fetch_max = i32::try_from(args.fetch_max_mib * 1024 * 1024)?;
    let mut modes = vec![
        Mode {
            name: "zero-copy",
            binary: sluice_binary()?,
            zero_copy: true,
        },
        Mode {
            name: "copy",
            binary: sluice_binary()?,
            zero_copy: false,
        },
    ];
    if let Some(binary) = &args.baseline_bin {
        modes.push(Mode {
            name: "base-zc",
            binary: binary.clone(),
            zero_copy: true,
        });
    }
    let mut results: Vec<Vec<RoundResult>> = modes.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        // Forward then backward through the modes (Z C C Z ..., or Z C B B C Z ...) so
        // none always reads a colder cache.
        let (cycle, at) = (round / modes.len(), round % modes.len());
        let index = if cycle % 2 == 0 {
            at
        } else {
            modes.len() - 1 - at
        };
        let mode = &modes[index];
        let mut broker = Broker::start(
            &mode.binary,
            dir.path(),
            &data_dir,
            mode.zero_copy,
            args.cores,
        )?;
        let mut conn = Conn::connect(broker.addr)?;
        let pid = broker.child.id();
        let cpu_before = cpu_ns(pid)?;
        let (bytes, elapsed) = fetch_all(&mut conn, fetch_max)?;
        let cpu = cpu_ns(pid)?.since(&cpu_before);
        broker.stop();
        let gb = bytes as f64 / 1e9;
        let result = RoundResult {
            mbps: bytes as f64 / elapsed.as_secs_f64() / 1e6,
            cpu_ms_per_gb: cpu.all_ns as f64 / 1e6 / gb,
            iowq_ms_per_gb: cpu.iowq_ns as f64 / 1e6 / gb,
        };
        println!(
            "round {round}: {:<9} pid {pid} {:.1} MiB in {:.3} s = {:.0} MB/s, broker CPU {:.0} ms/GB \
             (io-wq {:.0})",
            mode.name,
            bytes as f64 / (1 << 20) as f64,
            elapsed.as_secs_f64(),
            result.mbps,
            result.cpu_ms_per_gb,
            result.iowq_ms_per_gb,
        );
        results[index].push(result);
    }
    let mean = |v: &[RoundResult], f: fn(&RoundResult) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len().max(1) as f64
    };
    for (mode, rounds) in modes.iter().zip(&results) {
        println!(
            "mean {:<9}: {:.0} MB/s, broker CPU {:.0} ms/GB (io-wq {:.0}) over {} rounds",
            mode.name,
            mean(rounds, |r| r.mbps),
            mean(rounds, |r| r.cpu_ms_per_gb),
            mean(rounds, |r| r.iowq_ms_per_gb),
            rounds.len()
        );
    }
    let (zero, copy) = (mean(&results[0], |r| r.mbps), mean(&results[1], |r| r.mbps));
    println!("zero-copy/copy = {:.2}x", zero / copy);
    if let Some(base) = results.get(2) {
        println!("zero-copy/base-zc = {:.2}x", zero / mean(base, |r| r.mbps));
    }
    Ok(())
}

/// On-CPU time of a process's threads (from schedstat, in ns), keyed by thread id.
struct CpuSample {
    threads: HashMap<String, (bool, u64)>,
}

/// CPU used between two samples.
struct CpuUsed {
    all_ns: u64,
    iowq_ns: u64,
}

/// Samples every thread of `pid`: its on-CPU ns and whether it is an io-wq worker.
fn cpu_ns(pid: u32) -> BenchResult<CpuSample> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = entry?.path();
        // A thread may exit between the listing and the reads.
        let (Ok(schedstat), Ok(comm)) = (
            std::fs::read_to_string(task.join("schedstat")),
            std::fs::read_to_string(task.join("comm")),
        ) else {
            continue;
        };
        let on_cpu_ns = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("bad schedstat")?;
        let tid = task.file_name().map(|n| n.to_string_lossy().into_owned());
        threads.insert(
            tid.ok_or("no tid")?,
            (comm.starts_with("iou-wrk"), on_cpu_ns),
        );
    }
    Ok(CpuSample { threads })
}

impl CpuSample {
    /// Time used since `before` by the threads alive now (threads that exited in between,
    /// rare within a round, are missed).
    fn since(&self, before: &CpuSample) -> CpuUsed {
        let mut used = CpuUsed {
            all_ns: 0,
            iowq_ns: 0,
        };
        for (tid, &(iowq, now_ns)) in &self.threads {
            let then_ns = before.threads.get(tid).map_or(0, |&(_, ns)| ns);
            let ns = now_ns.saturating_sub(then_ns);
            used.all_ns += ns;
            if iowq {
                used.iowq_ns += ns;
            }
        }
        used
    }
}

/// The broker child process.
struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Broker {
    fn start(
        binary: &Path,
        dir: &Path,
        data_dir: &Path,
        zero_copy: bool,
        cores: usize,
    ) -> BenchResult<Self> {
        let config = dir.join("sluice.toml");
        std::fs::write(&config, format!("\"fetch.zero.copy\" = {zero_copy}\n"))?;
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--cores")
            .arg(cores.to_string())
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Drains stderr for the broker's whole life; reports the ready line's address.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line
                    .split("ready listening=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok());
                if let Some(addr) = addr {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => Ok(Self { child, addr }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("broker not ready: {e}").into())
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sluice_binary() -> BenchResult<PathBuf> {
    // target/<profile>/examples/fetch_bench -> target/<profile>/sluice
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("sluice"))
        .ok_or("no profile dir")?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: cargo build --release --bin sluice",
            path.display()
        )
        .into())
    }
}

/// A blocking Kafka connection: one request at a time.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr) -> BenchResult<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            correlation_id: 0,
            buf: Vec::new(),
        })
    }

    fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> BenchResult<()> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("fetch-bench")));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header.encode(&mut frame, key.request_header_version(version))?;
        body.encode(&mut frame, version)?;
        let len = u32::try_from(frame.len() - 4)?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame)?;
        Ok(())
    }

    /// Reads one response into the reused buffer; returns the body (after the header).
    fn receive(&mut self, key: ApiKey, version: i16) -> BenchResult<Bytes> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix)?;
        let len = usize::try_from(u32::from_be_bytes(prefix))?;
        if len > RESPONSE_BYTES_MAX {
            return Err(format!("response of {len} bytes").into());
        }
        self.buf.resize(len, 0);
        self.stream.read_exact(&mut self.buf)?;
        let mut body = Bytes::copy_from_slice(&self.buf);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        if header.correlation_id != self.correlation_id {
            return Err("correlation id mismatch".into());
        }
        Ok(body)
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> BenchResult<Resp> {
        self.send(key, version, body)?;
        let mut response = self.receive(key, version)?;
        Ok(Resp::decode(&mut response, version)?)
    }
}

fn create_topic(conn: &mut Conn) -> BenchResult<()> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse =
        conn.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)?;
    match response.topics.first().map(|t| t.error_code) {
        Some(0) => Ok(()),
        other => Err(format!("CreateTopics failed: {other:?}").into()),
    }
}

fn batch(batch_bytes: usize) -> BenchResult<Bytes> {
    let value_bytes = batch_bytes / RECORDS_PER_BATCH - 20;
    let value: Bytes = (0..value_bytes).map(|i| (i % 251) as u8).collect();
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::try_from(i).unwrap_or(0),
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)?;
    Ok(buf.freeze())
}

/// Produces `batches` batches (acks=1); returns the bytes sent.
fn fill(conn: &mut Conn, batches: usize, batch_bytes: usize) -> BenchResult<u64> {
    let one = batch(batch_bytes)?;
    let mut sent = 0u64;
    let mut left = batches;
    while left > 0 {
        let n = left.min(BATCHES_PER_PRODUCE);
        let mut records = BytesMut::with_capacity(one.len() * n);
        for _ in 0..n {
            records.extend_from_slice(&one);
        }
        sent += records.len() as u64;
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records.freeze()))])]);
        let response: ProduceResponse = conn.call(ApiKey::Produce, PRODUCE_VERSION, &request)?;
        let code = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map(|p| p.error_code);
        if code != Some(0) {
            return Err(format!("produce failed: {code:?}").into());
        }
        left -= n;
    }
    Ok(sent)
}

/// The offset after the last whole batch in `records` (v2 batch header: base offset at 0,
/// length at 8, last offset delta at 23).
fn next_offset(mut records: &[u8]) -> Option<i64> {
    let mut next = None;
    while records.len() >= 27 {
        let base = (&records[0..8]).get_i64();
        let len = usize::try_from((&records[8..12]).get_i32()).ok()?;
        let delta = (&records[23..27]).get_i32();
        let total = 12 + len;
        if records.len() < total {
            break;
        }
        next = Some(base + i64::from(delta) + 1);
        records = &records[total..];
    }
    next
}

/// Fetches the partition from offset 0 to its high watermark; returns record bytes and time.
fn fetch_all(conn: &mut Conn, max_bytes: i32) -> BenchResult<(u64, Duration)> {
    let mut offset = 0i64;
    let mut bytes = 0u64;
    let start = Instant::now();
    loop {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let response: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request)?;
        let partition = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("empty fetch response")?;
        if partition.error_code != 0 {
            return Err(format!("fetch error {}", partition.error_code).into());
        }
        let records = partition.records.as_deref().unwrap_or_default();
        bytes += records.len() as u64;
        match next_offset(records) {
            Some(next) => offset = next,
            None if offset >= partition.high_watermark => break,
            None => return Err(format!("no progress at offset {offset}").into()),
        }
        if offset >= partition.high_watermark {
            break;
        }
    }
    Ok((bytes, start.elapsed()))
}
