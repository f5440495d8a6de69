//! `sluice produce`: records from arguments or stdin (one per line, plain text or JSON) to a
//! topic, in v2 record batches (any codec), to each partition's leader.
//!
//! Partitioning follows Kafka's default: a keyed record goes to `murmur2(key) % partitions`
//! (so the same key lands where the Java client would put it), an unkeyed one round-robin,
//! unless `--partition` pins it. Records are sent in requests of at most [`BATCH_RECORDS_MAX`]
//! records, so memory stays bounded whatever the input size.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use bytes::{Bytes, BytesMut};
use clap::Args;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::{json, Value};

use super::client::{Client, Wanted};
use super::error::{check, CliError};
use super::meta;
use super::output::{Out, Table};
use super::topic::parse_pair;
use super::Ctx;

/// v3 is the first with v2 batches; v13 names topics by id.
const PRODUCE: Wanted = Wanted { min: 3, max: 12 };
/// Records per Produce request.
const BATCH_RECORDS_MAX: usize = 1_000;
/// Longest input line accepted (Kafka's default max.message.bytes is about 1 MiB).
const LINE_BYTES_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Record values; without any, one record per stdin line.
    pub values: Vec<String>,
    /// Key of every record.
    #[arg(short, long)]
    pub key: Option<String>,
    /// Split each stdin line at the first DELIM into key and value (like kcat -K).
    #[arg(short = 'K', long, value_name = "DELIM", conflicts_with = "key")]
    pub key_delim: Option<String>,
    /// Header NAME=VALUE on every record (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Partition to write to (default: by key hash, or round-robin without a key).
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Codec: none, gzip, snappy, lz4 or zstd.
    #[arg(short = 'z', long, default_value = "none")]
    pub compression: String,
    /// Acknowledgements: -1 (all), 1 (leader) or 0 (none; no offsets reported).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub acks: i16,
    /// Input: `text` (one value per line) or `json` (one object per line:
    /// {"key":..,"value":..,"headers":[{"key":..,"value":..}],"partition":..}).
    #[arg(long, default_value = "text")]
    pub input: String,
    /// The broker's time limit for acks=-1, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: i32,
}

/// One record to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub partition: Option<i32>,
}

pub fn run(ctx: &Ctx, args: ProduceArgs) -> Result<(), CliError> {
    let compression = parse_compression(&args.compression)?;
    if ![-1, 0, 1].contains(&args.acks) {
        return Err(CliError::Usage("--acks is -1, 0 or 1".into()));
    }
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| parse_pair("--header", h).map(|(k, v)| (k, Some(Bytes::from(v)))))
        .collect::<Result<_, _>>()?;
    let mut client = Client::connect(&ctx.brokers)?;
    let partitions = meta::partitions(&mut client, &args.topic)?;
    if partitions.is_empty() {
        return Err(CliError::Protocol(format!(
            "{} has no partitions",
            args.topic
        )));
    }
    let mut sender = Sender {
        client: &mut client,
        args: &args,
        partitions,
        compression,
        round_robin: 0,
        stats: BTreeMap::new(),
    };
    let mut pending = Vec::new();
    let mut feed = |record: Pending, sender: &mut Sender| -> Result<(), CliError> {
        pending.push(record);
        if pending.len() >= BATCH_RECORDS_MAX {
            sender.send(std::mem::take(&mut pending))?;
        }
        Ok(())
    };
    if args.values.is_empty() {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock().take(0);
        let mut line = String::new();
        loop {
            line.clear();
            reader.set_limit(LINE_BYTES_MAX as u64 + 1);
            let n = reader.read_line(&mut line).map_err(|source| CliError::Io {
                context: "reading stdin".into(),
                source,
            })?;
            if n == 0 {
                break;
            }
            if n > LINE_BYTES_MAX {
                return Err(CliError::Usage(format!(
                    "an input line is longer than {LINE_BYTES_MAX} bytes"
                )));
            }
            let text = line.strip_suffix('\n').unwrap_or(&line);
            let text = text.strip_suffix('\r').unwrap_or(text);
            feed(parse_line(&args, &headers, text)?, &mut sender)?;
        }
    } else {
        for v in &args.values {
            feed(parse_line(&args, &headers, v)?, &mut sender)?;
        }
    }
    let rest = std::mem::take(&mut pending);
    sender.send(rest)?;
    let stats = sender.stats;
    report(ctx.out, &args.topic, args.acks, &stats);
    Ok(())
}

fn parse_compression(name: &str) -> Result<Compression, CliError> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(CliError::Usage(format!(
                "--compression {other}: use none, gzip, snappy, lz4 or zstd"
            )))
        }
    })
}

/// One input line (or argument) as a record.
fn parse_line(
    args: &ProduceArgs,
    headers: &[(String, Option<Bytes>)],
    text: &str,
) -> Result<Pending, CliError> {
    if args.input == "json" {
        return parse_json_record(text, headers, args.partition);
    }
    if args.input != "text" {
        return Err(CliError::Usage("--input is text or json".into()));
    }
    let (key, value) = match (&args.key_delim, &args.key) {
        (Some(delim), _) => match text.split_once(delim.as_str()) {
            Some((k, v)) => (Some(Bytes::from(k.to_owned())), v),
            None => (None, text),
        },
        (None, Some(key)) => (Some(Bytes::from(key.clone())), text),
        (None, None) => (None, text),
    };
    Ok(Pending {
        key,
        value: Some(Bytes::from(value.to_owned())),
        headers: headers.to_vec(),
        partition: args.partition,
    })
}

/// A JSON input line: the shape `sluice consume --json` prints.
pub fn parse_json_record(
    text: &str,
    extra_headers: &[(String, Option<Bytes>)],
    partition: Option<i32>,
) -> Result<Pending, CliError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| CliError::Usage(format!("input line is not JSON ({e}): {text}")))?;
    let bytes_of = |field: &Value| -> Option<Bytes> {
        match field {
            Value::Null => None,
            Value::String(s) => Some(Bytes::from(s.clone())),
            other => Some(Bytes::from(other.to_string())),
        }
    };
    let mut headers = Vec::new();
    let field = |name: &str| v.get(name).unwrap_or(&Value::Null);
    match field("headers") {
        Value::Array(items) => {
            for h in items {
                let name = h.get("key").and_then(Value::as_str).ok_or_else(|| {
                    CliError::Usage(format!("a header needs a string \"key\": {h}"))
                })?;
                headers.push((
                    name.to_owned(),
                    bytes_of(h.get("value").unwrap_or(&Value::Null)),
                ));
            }
        }
        Value::Object(map) => {
            for (k, val) in map {
                headers.push((k.clone(), bytes_of(val)));
            }
        }
        Value::Null => {}
        other => {
            return Err(CliError::Usage(format!(
                "\"headers\" is an array or object, not {other}"
            )))
        }
    }
    headers.extend_from_slice(extra_headers);
    let json_partition = match field("partition") {
        Value::Null => None,
        p => Some(
            p.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| CliError::Usage(format!("\"partition\" is an integer: {p}")))?,
        ),
    };
    Ok(Pending {
        key: bytes_of(field("key")),
        value: bytes_of(field("value")),
        headers,
        partition: partition.or(json_partition),
    })
}

/// Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// MurmurHash2 as in Kafka's `Utils.murmur2` (seed 0x9747b28c). The bench crate has the same
/// function; the two crates share no library, and both are checked against Kafka's vectors.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let Ok(word) = <[u8; 4]>::try_from(c) else {
            continue;
        };
        let mut k = u32::from_le_bytes(word);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if let Some(&third) = tail.get(2) {
        h ^= u32::from(third) << 16;
    }
    if let Some(&second) = tail.get(1) {
        h ^= u32::from(second) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// Per partition: records written and the first and last offset.
#[derive(Debug, Default)]
struct PartitionStats {
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

struct Sender<'a> {
    client: &'a mut Client,
    args: &'a ProduceArgs,
    partitions: Vec<meta::PartitionInfo>,
    compression: Compression,
    round_robin: usize,
    stats: BTreeMap<i32, PartitionStats>,
}

impl Sender<'_> {
    fn choose(&mut self, record: &Pending) -> Result<i32, CliError> {
        let count = self.partitions.len();
        if let Some(p) = record.partition {
            if !self.partitions.iter().any(|info| info.partition == p) {
                return Err(CliError::Usage(format!(
                    "partition {p} does not exist ({} has {count})",
                    self.args.topic
                )));
            }
            return Ok(p);
        }
        let index = match &record.key {
            Some(key) => partition_for_key(key, count as u32) as usize,
            None => {
                self.round_robin = (self.round_robin + 1) % count;
                self.round_robin
            }
        };
        Ok(self.partitions.get(index).map_or(0, |p| p.partition))
    }

    fn send(&mut self, records: Vec<Pending>) -> Result<(), CliError> {
        if records.is_empty() {
            return Ok(());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for r in records {
            let partition = self.choose(&r)?;
            let batch = by_partition.entry(partition).or_default();
            let offset = batch.len() as i64;
            batch.push(to_record(r, offset, now_ms));
        }
        let mut by_leader: BTreeMap<i32, Vec<PartitionProduceData>> = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (partition, batch) in by_partition {
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &batch,
                &RecordEncodeOptions {
                    version: 2,
                    compression: self.compression,
                },
            )
            .map_err(|e| CliError::Protocol(format!("encode record batch: {e}")))?;
            let leader = self
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .map_or(-1, |p| p.leader);
            counts.insert(partition, batch.len() as u64);
            by_leader.entry(leader).or_default().push(
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(buf.freeze())),
            );
        }
        for (leader, data) in by_leader {
            self.send_to(leader, data, &counts)?;
        }
        Ok(())
    }

    fn send_to(
        &mut self,
        leader: i32,
        data: Vec<PartitionProduceData>,
        counts: &BTreeMap<i32, u64>,
    ) -> Result<(), CliError> {
        let request = ProduceRequest::default()
            .with_acks(self.args.acks)
            .with_timeout_ms(self.args.timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(self.args.topic.clone().into()))
                .with_partition_data(data)]);
        let conn = self.client.node(leader)?;
        if self.args.acks == 0 {
            // Kafka sends no response to acks=0.
            let version = conn.version::<ProduceRequest>(PRODUCE)?;
            conn.send_without_response(&request, version)?;
            for (p, n) in counts {
                self.stats.entry(*p).or_default().records += n;
            }
            return Ok(());
        }
        let (response, _) = conn.call(&request, PRODUCE)?;
        for t in response.responses {
            for p in t.partition_responses {
                let message = p.error_message.as_deref().unwrap_or("");
                check(
                    p.error_code,
                    &format!("produce to {}/{}", t.name.as_str(), p.index),
                    message,
                )?;
                let n = counts.get(&p.index).copied().unwrap_or(0);
                let s = self.stats.entry(p.index).or_default();
                s.records += n;
                s.first_offset.get_or_insert(p.base_offset);
                s.last_offset = Some(p.base_offset + n as i64 - 1);
            }
        }
        Ok(())
    }
}

fn to_record(r: Pending, offset_delta: i64, now_ms: i64) -> Record {
    let mut headers = IndexMap::new();
    for (k, v) in r.headers {
        headers.insert(StrBytes::from_string(k), v);
    }
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta,
        // kafka-protocol's encoder starts a new batch whenever offset - sequence changes, and
        // Kafka takes exactly one batch per partition: keep the difference constant, with the
        // base sequence at -1 (no producer id).
        sequence: i32::try_from(offset_delta).map_or(i32::MAX, |d| d.wrapping_sub(1)),
        timestamp: now_ms,
        key: r.key,
        value: r.value,
        headers,
    }
}

fn report(out: Out, topic: &str, acks: i16, stats: &BTreeMap<i32, PartitionStats>) {
    let total: u64 = stats.values().map(|s| s.records).sum();
    let rows: Vec<Value> = stats
        .iter()
        .map(|(p, s)| {
            json!({"partition": p, "records": s.records,
                   "first_offset": s.first_offset, "last_offset": s.last_offset})
        })
        .collect();
    let value = json!({"topic": topic, "records": total, "acks": acks, "partitions": rows});
    out.emit(&value, || {
        let mut t = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
        for (p, s) in stats {
            let show = |o: Option<i64>| o.map_or_else(|| "-".into(), |o| o.to_string());
            t.row(vec![
                p.to_string(),
                s.records.to_string(),
                show(s.first_offset),
                show(s.last_offset),
            ]);
        }
        format!("produced {total} records to {topic}\n{}", t.render())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 3] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input) as i32, want, "{input:?}");
        }
    }

    #[test]
    fn records_of_a_partition_make_one_batch() {
        let records: Vec<Record> = (0..3)
            .map(|i| {
                let pending = Pending {
                    key: None,
                    value: Some(Bytes::from("v")),
                    headers: vec![],
                    partition: None,
                };
                to_record(pending, i, 1_000 + i)
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        let batches =
            kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut buf.freeze())
                .unwrap();
        assert_eq!(
            batches.len(),
            1,
            "Kafka rejects a partition's records in several batches"
        );
        assert_eq!(batches[0].record_count, 3);
        assert_eq!(batches[0].base_sequence, -1);
        assert_eq!(batches[0].producer_id, -1);
    }

    #[test]
    fn json_lines_take_both_header_shapes() {
        let a = parse_json_record(
            r#"{"key":"k","value":"v","headers":[{"key":"h","value":"1"}],"partition":2}"#,
            &[],
            None,
        )
        .unwrap();
        assert_eq!(a.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(a.partition, Some(2));
        assert_eq!(a.headers, vec![("h".to_owned(), Some(Bytes::from("1")))]);
        let b = parse_json_record(r#"{"value":null,"headers":{"h":"1"}}"#, &[], None).unwrap();
        assert_eq!(b.value, None);
        assert_eq!(b.headers.len(), 1);
        assert!(parse_json_record("not json", &[], None).is_err());
    }
}
